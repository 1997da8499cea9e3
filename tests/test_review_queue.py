"""The review desk's queue and item pages over a real decision record (SQLite and PostgreSQL),
a real model and real HTTP with a real sign-in: what is queued and in which order, filters and
counts, the item page's escaping and evidence marks, and the reviewer's label, skip and undo
as feedback rows in the store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import MetaData, insert, select
from starlette.testclient import TestClient

from triage.core.model import TriageModel
from triage.review.accounts import Accounts, add_account
from triage.review.evidence import ModelShelf, mark_terms
from triage.review.queue import QueueFilter, diverse_order, queue_page, shingles
from triage.review.web import Desk, create_app
from triage.store import schema
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import Store, open_store
from triage.store.feedback import submit_feedback
from triage.store.records import Decision, SealedText, new_id

NAME, PASSWORD = "sgt.patel", "correct horse battery"
CIPHER = TextCipher.from_keys([generate_key()])
LABELS = ("cybercrime", "fraud", "general", "terrorism_concern")  # the tiny model's
NOW = datetime.now(UTC)
CYBER_TEXT = (
    "Someone got into my email account, changed the password and sent phishing links to all "
    "my contacts asking them for money."
)


def make(
    margin: float,
    text: str | None = "a report",
    *,
    label: str = "fraud",
    second: str = "general",
    reasons: tuple[str, ...] = ("below_threshold",),
    needs_review: bool = True,
    version: str = "v1",
    received_at: datetime | None = None,
    expires_at: datetime | None = None,
    report_id: str = "",
) -> Decision:
    """A decision whose top two scores are ``margin`` apart, its text sealed."""
    top = (1.0 + margin) / 2 * 0.9
    scores = {name: 0.1 / (len(LABELS) - 2) for name in LABELS}
    scores.update({label: top, second: top - margin})
    sealed: SealedText | None = None
    if text is not None:
        sealed = CIPHER.seal(text, expires_at or NOW + timedelta(days=30))
    return Decision(
        decision_id=new_id(),
        report_id=report_id,
        received_at=received_at or NOW - timedelta(hours=1),
        model_version=version,
        source="Classify",
        label=label,
        confidence=top,
        scores=scores,
        needs_review=needs_review,
        reasons=reasons,
        caller="test",
        latency_ms=1.0,
        text=sealed,
    )


def distinct_text(i: int) -> str:
    """A text that shares no word with any other index's."""
    return " ".join(f"{word}{i}" for word in ("alpha", "bravo", "charlie", "delta", "echo"))


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Accounts:
    path = tmp_path_factory.mktemp("desk") / "accounts"
    add_account(path, NAME, "reviewer", PASSWORD)
    return Accounts.load(path)


def desk_client(store: Store, models_dir: Path, accounts: Accounts, **desk: Any) -> TestClient:
    settings: dict[str, Any] = {"cipher": CIPHER, **desk}
    app = create_app(Desk(store=store, models_dir=models_dir, accounts=accounts, **settings))
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def client(store: Store, models_dir: Path, accounts: Accounts) -> Iterator[TestClient]:
    with desk_client(store, models_dir, accounts) as test_client:
        sign_in(test_client)
        yield test_client


def sign_in(client: TestClient) -> None:
    login = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token is not None
    answer = client.post(
        "/login",
        data={"name": NAME, "password": PASSWORD, "csrf": token.group(1), "next": "/queue"},
    )
    assert answer.status_code == 303, answer.text


def csrf_of(html: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    return token.group(1)


def listed(html: str) -> list[str]:
    """The decision ids the queue page links to, in page order."""
    return re.findall(r'href="/item/([^"?]+)', html)


def history(store: Store, decision_id: str) -> list[tuple[str, str, str, str, str, str]]:
    view = store.decision(decision_id)
    assert view is not None
    return [
        (f.old_label, f.new_label, f.reviewer, f.recorded_by, f.note, f.source)
        for f in view.feedback
    ]


# -- the queue ------------------------------------------------------------------------------


def test_the_queue_lists_reviewable_items_with_text_and_no_feedback_smallest_margin_first(
    store: Store, client: TestClient
) -> None:
    first, third, second = make(0.02), make(0.40), make(0.10)
    confident = make(0.01, needs_review=False, reasons=())
    no_text = make(0.01, text=None)
    expired = make(0.01, expires_at=NOW - timedelta(minutes=1))
    labelled = make(0.01)
    store.insert_decisions([first, third, second, confident, no_text, expired, labelled])
    submit_feedback(store, label="general", reviewer="x", decision_id=labelled.decision_id)

    page = client.get("/queue")

    assert page.status_code == 200
    assert listed(page.text) == [first.decision_id, second.decision_id, third.decision_id]
    assert "3 decisions to review" in page.text
    assert "0.020" in page.text  # the margin is shown


def test_near_copies_do_not_share_the_first_page(store: Store, client: TestClient) -> None:
    original = make(
        0.001,
        "The caller says the bank card of her mother was used in three shops "
        "this morning without her consent",
    )
    copy = make(
        0.002,
        "The caller says the bank card of her mother was used in three shops "
        "this morning without her permission",
    )
    others = [make(0.01 + i / 1000, distinct_text(i)) for i in range(60)]
    store.insert_decisions([original, copy, *others])

    first = listed(client.get("/queue").text)
    second = listed(client.get("/queue?page=2").text)

    assert len(first) == 50
    assert first[0] == original.decision_id and copy.decision_id not in first
    assert copy.decision_id in second  # deferred, not lost
    assert set(first).isdisjoint(second) and len(first) + len(second) == 62
    assert "+1 near-copy later" in client.get("/queue").text


def test_filters_narrow_the_queue_and_counts_follow_them(store: Store, client: TestClient) -> None:
    yesterday = NOW - timedelta(days=1)
    evidence_free = make(
        0.05, reasons=("no_evidence", "below_threshold"), label="general", second="fraud"
    )
    old = make(0.06, received_at=NOW - timedelta(days=10))
    other_version = make(0.07, version="v0", received_at=yesterday)
    plain = make(0.08)
    store.insert_decisions([evidence_free, old, other_version, plain])

    def ids(query: str) -> set[str]:
        answer = client.get(f"/queue?{query}")
        assert answer.status_code == 200, answer.text
        return set(listed(answer.text))

    assert ids("reason=no_evidence") == {evidence_free.decision_id}
    assert ids("label=general") == {evidence_free.decision_id}
    assert ids("version=v0") == {other_version.decision_id}
    day = (NOW - timedelta(days=10)).date().isoformat()
    assert ids(f"from={day}&to={day}") == {old.decision_id}
    assert ids(f"from={yesterday.date().isoformat()}&version=v1") == {
        evidence_free.decision_id,
        plain.decision_id,
    }

    counted = queue_page(store, CIPHER, QueueFilter(version="v1")).counts
    assert counted.by_reason == {"below_threshold": 3, "no_evidence": 1}
    assert counted.total == 3
    assert counted.versions == ("v1", "v0")
    page = client.get("/queue?version=v1&reason=no_evidence").text
    assert '<span class="reason">below_threshold</span> <span class="count">3</span>' in page
    assert "1 decision to review" in page
    # An item link carries the filters, so that the next item comes from the same queue.
    assert f'href="/item/{evidence_free.decision_id}?reason=no_evidence&amp;version=v1"' in page


BAD_QUERIES = (
    "from=yesterday",
    "to=2026-13-01",
    "from=2026-12-02&to=2026-12-01",
    "page=0",
    "page=-1",
    "page=1e3",
    "reason=%3Cscript%3Ealert(1)%3C/script%3E",
    "label=" + "x" * 65,
    "version=%00",
)


def test_a_bad_filter_is_a_400_page_with_a_message(client: TestClient) -> None:
    for query in BAD_QUERIES:
        answer = client.get(f"/queue?{query}")
        assert answer.status_code == 400, query
        assert 'class="error" role="alert"' in answer.text
        assert "<script>alert" not in answer.text and "Traceback" not in answer.text
    item = make(0.1)
    answer = client.get(f"/item/{item.decision_id}?from=2026-02-30")
    assert answer.status_code == 400 and "YYYY-MM-DD" in answer.text


def test_the_queue_without_a_session_sends_to_the_sign_in_page(
    store: Store, models_dir: Path, accounts: Accounts
) -> None:
    store.insert_decisions([make(0.1)])
    with desk_client(store, models_dir, accounts) as anonymous:
        for path in ("/queue", f"/item/{new_id()}"):
            answer = anonymous.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/login?next={path}"


def test_without_the_key_the_queue_says_so_and_lists_nothing(
    store: Store, models_dir: Path, accounts: Accounts
) -> None:
    store.insert_decisions([make(0.1)])
    with desk_client(store, models_dir, accounts, cipher=None) as keyless:
        sign_in(keyless)
        page = keyless.get("/queue")
    assert page.status_code == 200
    assert "texts cannot be shown" in page.text
    assert listed(page.text) == []


# -- the item page --------------------------------------------------------------------------


def test_the_item_page_escapes_the_text_and_marks_the_evidence(
    store: Store, client: TestClient, tiny_model: TriageModel
) -> None:
    text = "<script>alert('x')</script> " + CYBER_TEXT
    item = make(0.05, text, label="cybercrime", second="fraud", report_id="case-7")
    earlier = make(
        0.5, "earlier", label="fraud", report_id="case-7", received_at=NOW - timedelta(days=2)
    )
    store.insert_decisions([item, earlier])
    submit_feedback(store, label="general", reviewer="inspector.o", decision_id=earlier.decision_id)
    terms = [term for term, _ in tiny_model.predict([text], top_k=10)[0].top_terms]
    assert terms  # the tiny model reads this text as cybercrime, for reasons

    page = client.get(f"/item/{item.decision_id}")

    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    marked = re.findall(r'<mark title="evidence: ([^"]+)">([^<]+)</mark>', page.text)
    # Every term is marked, by itself or inside a longer term that overlaps it ("my contacts").
    assert {term for term, _ in marked} <= set(terms)
    assert all(any(f" {term} " in f" {t} " for t, _ in marked) for term in terms)
    assert all(found.lower() == term for term, found in marked if " " not in term)
    buttons = re.findall(r'name="label" value="([^"]+)"', page.text)
    assert tuple(buttons) == tiny_model.labels
    assert re.search(r'<span class="key">1</span> ' + tiny_model.labels[0], page.text)
    assert page.text.count("<meter ") == len(LABELS)
    assert " style=" not in page.text and "onclick" not in page.text
    assert "Secondary label</dt><dd>fraud" in page.text
    assert earlier.decision_id in page.text and "inspector.o: fraud → general" in page.text


def test_an_unknown_decision_is_a_404_page(client: TestClient) -> None:
    for path in (f"/item/{new_id()}", "/item/a.b", "/item/%3Cb%3E", "/item/" + "a" * 37):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "No recorded decision" in answer.text


# -- actions --------------------------------------------------------------------------------


def test_a_label_is_feedback_by_the_reviewer_and_the_next_item_follows(
    store: Store, client: TestClient
) -> None:
    first, second, elsewhere = make(0.01), make(0.02), make(0.03, label="general")
    store.insert_decisions([first, second, elsewhere])
    item = client.get(f"/item/{first.decision_id}?label=fraud")

    answer = client.post(
        f"/item/{first.decision_id}/label?label=fraud",
        data={"label": "cybercrime", "note": "links in the mail", "csrf": csrf_of(item.text)},
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/item/{second.decision_id}?label=fraud"
    assert history(store, first.decision_id) == [
        ("fraud", "cybercrime", NAME, NAME, "links in the mail", "review")
    ]
    assert first.decision_id not in listed(client.get("/queue").text)


def test_undo_puts_the_earlier_label_back_as_a_new_row(store: Store, client: TestClient) -> None:
    item = make(0.01)
    store.insert_decisions([item])
    token = csrf_of(client.get(f"/item/{item.decision_id}").text)
    client.post(f"/item/{item.decision_id}/label", data={"label": "general", "csrf": token})

    answer = client.post("/undo", data={"csrf": token})

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/item/{item.decision_id}"
    assert history(store, item.decision_id) == [
        ("fraud", "general", NAME, NAME, "", "review"),
        ("general", "fraud", NAME, NAME, "undo", "review"),
    ]
    nothing_left = client.post("/undo?reason=no_evidence", data={"csrf": token})
    assert nothing_left.headers["location"] == "/queue?reason=no_evidence"
    assert len(history(store, item.decision_id)) == 2


def test_undo_leaves_a_label_someone_gave_since(store: Store, client: TestClient) -> None:
    item = make(0.01)
    store.insert_decisions([item])
    token = csrf_of(client.get(f"/item/{item.decision_id}").text)
    client.post(f"/item/{item.decision_id}/label", data={"label": "general", "csrf": token})
    submit_feedback(store, label="cybercrime", reviewer="insp.o", decision_id=item.decision_id)

    answer = client.post("/undo", data={"csrf": token})

    assert answer.status_code == 409
    assert "insp.o labelled this decision" in answer.text
    assert [row[1] for row in history(store, item.decision_id)] == ["general", "cybercrime"]


def test_skip_hides_an_item_for_the_session_and_undo_brings_it_back(
    store: Store, client: TestClient
) -> None:
    first, second = make(0.01), make(0.02)
    store.insert_decisions([first, second])
    token = csrf_of(client.get("/queue").text)

    skipped = client.post(f"/item/{first.decision_id}/skip", data={"csrf": token})

    assert skipped.headers["location"] == f"/item/{second.decision_id}"
    assert listed(client.get("/queue").text) == [second.decision_id]
    assert history(store, first.decision_id) == []
    client.post("/undo", data={"csrf": token})
    assert listed(client.get("/queue").text) == [first.decision_id, second.decision_id]


def test_the_session_cookie_stays_small_however_much_is_skipped(
    store: Store, client: TestClient
) -> None:
    token = csrf_of(client.get("/queue").text)
    for _ in range(60):
        assert client.post(f"/item/{new_id()}/skip", data={"csrf": token}).status_code == 303
    assert len(client.cookies["triage_desk"]) < 3000  # browsers drop cookies over 4 KB


def test_an_action_without_the_csrf_token_is_refused_and_records_nothing(
    store: Store, client: TestClient
) -> None:
    item = make(0.01)
    store.insert_decisions([item])
    token = csrf_of(client.get(f"/item/{item.decision_id}").text)
    client.post(f"/item/{item.decision_id}/skip", data={"csrf": token})

    for data in ({"label": "general"}, {"label": "general", "csrf": "forged"}):
        answer = client.post(f"/item/{item.decision_id}/label", data=data)
        assert answer.status_code == 403
    assert client.post("/undo", data={}).status_code == 403
    assert history(store, item.decision_id) == []
    # The refused undo left the skip on the stack.
    assert client.post("/undo", data={"csrf": token}).status_code == 303
    assert listed(client.get("/queue").text) == [item.decision_id]


def test_a_label_the_model_does_not_know_is_a_400_and_records_nothing(
    store: Store, client: TestClient
) -> None:
    item = make(0.01)
    store.insert_decisions([item])
    token = csrf_of(client.get(f"/item/{item.decision_id}").text)
    for data in ({"label": "<b>spam</b>"}, {"label": "general", "note": "n" * 2001}, {}):
        answer = client.post(f"/item/{item.decision_id}/label", data={**data, "csrf": token})
        assert answer.status_code == 400, data
        assert "<b>spam" not in answer.text
    assert history(store, item.decision_id) == []


# -- the parts ------------------------------------------------------------------------------


def test_terms_are_marked_as_whole_words_ignoring_case_and_accents() -> None:
    text = "FRAUD: the fraudster's antifraud card—card fraud. Un café, Card\nFraud!"
    pieces = mark_terms(text, ["fraud", "card fraud", "cafe"])
    marked = [(p.text, p.term) for p in pieces if p.term]
    assert marked == [
        ("FRAUD", "fraud"),
        ("card fraud", "card fraud"),
        ("café", "cafe"),
        ("Card\nFraud", "card fraud"),
    ]
    assert "".join(p.text for p in pieces) == text


@given(st.text(max_size=200), st.lists(st.text(min_size=1, max_size=12), max_size=6))
def test_marking_keeps_every_character_of_any_text(text: str, terms: list[str]) -> None:
    pieces = mark_terms(text, terms)
    assert "".join(p.text for p in pieces) == text
    assert all(p.term in terms for p in pieces if p.term is not None)


def test_near_copies_are_deferred_behind_the_first_of_them() -> None:
    base = "the van was parked across the road with its engine running all night long"
    texts = [base, distinct_text(1), base.replace("long", "through"), distinct_text(2), ""]
    order, copy_of = diverse_order([shingles(t) for t in texts])
    assert order == [0, 1, 3, 4, 2]
    assert copy_of == {2: 0}


def test_a_model_version_outside_the_models_directory_is_refused(
    models_dir: Path, tiny_model: TriageModel
) -> None:
    shelf = ModelShelf(models_dir)
    for version in ("..", "../models", "nope", "v1/../v1"):
        evidence = shelf.evidence(version, "some text")
        assert evidence.problem and evidence.labels == ()
        assert [p.text for p in evidence.pieces] == ["some text"]
    found = shelf.evidence("v1", CYBER_TEXT)
    assert found.problem is None and found.labels == tiny_model.labels
    assert shelf.model("v1") is shelf.model("v1")  # loaded once


# -- the store change -----------------------------------------------------------------------


def test_margins_are_recorded_and_filled_in_for_decisions_from_before(store_url: str) -> None:
    old = Store(store_url)
    try:
        old.migrate("0002")
        with old.connect() as connection:
            tables = MetaData()
            tables.reflect(connection)
            row = {
                "report_id": "", "received_at": NOW, "model_version": "v1",
                "source": "Classify", "label": "fraud", "confidence": 0.5, "needs_review": True,
                "reasons": "below_threshold", "caller": "", "latency_ms": None,
            }  # fmt: skip
            connection.execute(
                insert(tables.tables["decisions"]),
                [
                    {**row, "decision_id": "d-1", "scores": {"fraud": 0.5, "general": 0.3}},
                    {**row, "decision_id": "d-2", "scores": {"fraud": 1.0}},
                    {**row, "decision_id": "d-3", "scores": {}},
                ],
            )
        old.migrate()
    finally:
        old.close()
    store = open_store(store_url)
    try:
        fresh = make(0.25)
        store.insert_decisions([fresh])
        with store.connect() as connection:
            margins = dict(
                connection.execute(
                    select(schema.decisions.c.decision_id, schema.decisions.c.margin)
                ).all()
            )
    finally:
        store.close()
    assert margins["d-1"] == pytest.approx(0.2)
    assert margins["d-2"] == pytest.approx(1.0)
    assert margins["d-3"] == 0.0
    assert margins[fresh.decision_id] == pytest.approx(0.25)
