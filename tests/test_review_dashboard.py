"""The review desk's dashboard over a real decision record (SQLite and PostgreSQL), through real
HTTP with a real sign-in: the numbers on the page against hand counts, SVG that parses, and a
page that follows new feedback."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from triage.monitor.proportion import wilson_interval
from triage.review.accounts import Accounts, add_account
from triage.review.web import Desk, create_app
from triage.store.database import Store
from triage.store.records import Decision, Feedback, ShadowDecision, new_id

NAME, PASSWORD = "ana", "correct horse battery"
SVG = "{http://www.w3.org/2000/svg}"


def decision(
    label: str, at: datetime, reasons: tuple[str, ...] = (), version: str = "v1"
) -> Decision:
    return Decision(
        decision_id=new_id(at.timestamp()),
        report_id=f"r-{new_id()}",
        received_at=at,
        model_version=version,
        source="Classify",
        label=label,
        confidence=0.5 if reasons else 0.9,
        scores={label: 0.5 if reasons else 0.9},
        needs_review=bool(reasons),
        reasons=reasons,
        caller="test",
        latency_ms=1.0,
    )


def feedback(d: Decision, new_label: str, minutes: int = 5) -> Feedback:
    return Feedback(
        feedback_id=new_id(),
        decision_id=d.decision_id,
        report_id=d.report_id,
        old_label=d.label,
        new_label=new_label,
        reviewer="reviewer-1",
        note="",
        created_at=d.received_at + timedelta(minutes=minutes),
        source="review",
    )


class Tables(HTMLParser):
    """Every <table> of a page: its caption and its rows of cell texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._caption: list[str] | None = None
        self._rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._current = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows, self._current = [], ""
        elif tag == "caption":
            self._caption = []
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption" and self._caption is not None:
            self._current = " ".join("".join(self._caption).split())
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self.tables[self._current] = self._rows

    def handle_data(self, data: str) -> None:
        if self._caption is not None:
            self._caption.append(data)
        if self._cell is not None:
            self._cell.append(data)


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed as XML (raises if one is not well-formed)."""
    found = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    return [ET.fromstring(markup) for markup in found]


@pytest.fixture
def client(store: Store, models_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    accounts = tmp_path / "accounts"
    add_account(accounts, NAME, "reviewer", PASSWORD)
    desk = Desk(store=store, models_dir=models_dir, accounts=Accounts.load(accounts))
    with TestClient(create_app(desk), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient) -> None:
    login = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token is not None
    answer = client.post(
        "/login",
        data={"name": NAME, "password": PASSWORD, "csrf": token.group(1), "next": "/dashboard"},
    )
    assert answer.status_code == 303, answer.text


def days() -> tuple[datetime, datetime]:
    """Just after midnight today and noon yesterday, UTC: two whole days inside the default
    window at whatever time the test runs."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=1, microsecond=0)
    return today, today - timedelta(hours=12)


def fill(store: Store) -> dict[str, list[Decision]]:
    """Model v1 over two UTC days: yesterday 3 fraud and 2 general, all accepted; today 1 fraud
    accepted and 4 cybercrime, 3 of them sent to review (2 below threshold, 1 of those with no
    evidence either, 1 with no evidence only). Reviewers labelled the 5 accepted of yesterday
    (the first general one as fraud: 4 confirmed) and 2 of the flagged (1 confirmed)."""
    today_at, yesterday_at = days()
    step = timedelta(minutes=1)
    yesterday = [decision("fraud", yesterday_at + i * step) for i in range(3)]
    yesterday += [decision("general", yesterday_at + (3 + i) * step) for i in range(2)]
    today = [
        decision("fraud", today_at),
        decision("cybercrime", today_at + step),
        decision("cybercrime", today_at + 2 * step, ("below_threshold",)),
        decision("cybercrime", today_at + 3 * step, ("below_threshold", "no_evidence")),
        decision("cybercrime", today_at + 4 * step, ("no_evidence",)),
    ]
    store.insert_decisions(yesterday + today)
    labels = ["fraud", "fraud", "fraud", "fraud", "general"]
    rows = [feedback(d, label) for d, label in zip(yesterday, labels, strict=True)]
    rows += [feedback(today[2], "cybercrime"), feedback(today[3], "fraud")]
    store.insert_feedback(rows)
    return {"yesterday": yesterday, "today": today}


def dashboard(client: TestClient, query: str = "") -> str:
    answer = client.get(f"/dashboard{query}")
    assert answer.status_code == 200, answer.text
    return answer.text


def interval(successes: int, n: int) -> str:
    low, high = wilson_interval(successes, n)
    return f"{low:.1%}-{high:.1%}"


def test_the_dashboard_shows_the_record_s_numbers(client: TestClient, store: Store) -> None:
    made = fill(store)
    sign_in(client)
    html = dashboard(client)
    tables = Tables(html).tables

    mix = tables["Decisions per UTC day and predicted label, model v1"]
    day1, day2 = (
        d.received_at.date().isoformat() for d in (made["yesterday"][0], made["today"][0])
    )
    assert mix == [
        ["day", "cybercrime", "fraud", "general", "total"],
        [day1, "0", "3", "2", "5"],
        [day2, "4", "1", "0", "5"],
        ["all days", "4", "4", "2", "10"],
    ]

    overview = tables["Decisions, review rate, accepted accuracy and drift per model version"]
    assert overview[1][:4] == ["v1", "10", "3", "30.0%"]
    # Accepted and reviewed: the 5 of yesterday, 4 right.
    assert f"80.0% (95% CI {interval(4, 5)}, n=5): not enough feedback" in overview[1][4]

    reasons = tables["Decisions sent to review per reason, model v1 (review rate 30.0%)"]
    assert reasons[1:] == [["below_threshold", "2", "20.0%"], ["no_evidence", "2", "20.0%"]]

    accuracy = tables["Live accuracy of model v1 against reviewer labels"]
    assert accuracy[1] == ["accepted", "80.0%", interval(4, 5), "5", "no (n < 20)"]
    assert accuracy[2] == ["sent to review", "50.0%", interval(1, 2), "2", "no (n < 20)"]
    assert accuracy[3] == ["all reviewed", "71.4%", interval(5, 7), "7", "no (n < 20)"]

    drift = next(caption for caption in tables if caption.startswith("Live label mix against"))
    assert "alert above 0.2" in drift
    assert "too few decisions to judge" in html  # 10 decisions: PSI shown, not judged
    assert "No shadow" not in html and "Shadow model" not in html


def test_every_chart_is_well_formed_svg_with_a_title_and_no_inline_style(
    client: TestClient, store: Store
) -> None:
    made = fill(store)
    day1, day2 = (
        d.received_at.date().isoformat() for d in (made["yesterday"][0], made["today"][0])
    )
    # A version and a label named like markup: escaped in the SVG and the tables alike.
    hostile = decision('<b>&"x', made["today"][0].received_at, version="v<2>&'")
    store.insert_decisions([hostile])
    sign_in(client)
    html = dashboard(client)
    charts = svgs(html)
    assert len(charts) >= 8  # overview + 5 per version with a card + 3 without
    for chart in charts:
        assert chart.tag == f"{SVG}svg"
        assert chart.get("role") == "img"
        title, desc = chart.find(f"{SVG}title"), chart.find(f"{SVG}desc")
        assert title is not None and title.text and desc is not None and desc.text
        assert chart.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert "style=" not in html
    assert "<b>" not in html
    titles = [t.text for chart in charts for t in chart.iter(f"{SVG}title")]
    assert f'{day2}: <b>&"x 1' in titles  # the raw name, once parsed
    bars = {
        t.text
        for chart in charts
        for rect in chart.iter(f"{SVG}rect")
        for t in rect.iter(f"{SVG}title")
    }
    assert f"{day1}: fraud 3" in bars
    assert f"{day2}: cybercrime 4" in bars

    # v1's label mix: each day's segments stack without gap or overlap, and the bars' heights
    # are in proportion to the days' totals (5 and 5).
    mix = next(c for c in charts if c.findtext(f"{SVG}title") == "Label mix per day of model v1")
    columns: dict[str, list[tuple[float, float]]] = {}
    for rect in mix.iter(f"{SVG}rect"):
        columns.setdefault(rect.get("x", ""), []).append(
            (float(rect.get("y", "0")), float(rect.get("height", "0")))
        )
    assert len(columns) == 2
    heights = []
    for segments in columns.values():
        segments.sort()
        for (y, height), (next_y, _) in itertools.pairwise(segments):
            assert y + height == pytest.approx(next_y, abs=0.02)
        heights.append(sum(height for _, height in segments))
    assert heights[0] == pytest.approx(heights[1], abs=0.05)


def test_new_feedback_changes_the_page(client: TestClient, store: Store) -> None:
    made = fill(store)
    sign_in(client)
    before = Tables(dashboard(client)).tables
    caption = "Live accuracy of model v1 against reviewer labels"
    assert before[caption][1][1:4] == ["80.0%", interval(4, 5), "5"]
    accepted_today = made["today"][0]
    general = made["yesterday"][3]
    # A new accepted decision confirmed, and the wrong one relabelled later as general: the
    # latest feedback of a decision wins, so accepted becomes 6 of 6.
    store.insert_feedback(
        [feedback(accepted_today, "fraud"), feedback(general, "general", minutes=30)]
    )
    after = Tables(dashboard(client)).tables
    assert after[caption][1][1:4] == ["100.0%", interval(6, 6), "6"]


def test_shadow_agreement_shows_when_a_shadow_model_answered(
    client: TestClient, store: Store
) -> None:
    made = fill(store)
    shadows = [
        ShadowDecision(
            decision_id=d.decision_id,
            model_version="v2-candidate",
            scored_at=d.received_at + timedelta(seconds=1),
            label="fraud",
            confidence=0.8,
            scores={"fraud": 0.8},
            needs_review=False,
            reasons=(),
        )
        for d in made["yesterday"]
    ]
    store.insert_shadows(shadows)
    sign_in(client)
    html = dashboard(client)
    tables = Tables(html).tables
    chart = tables["Shadow v2-candidate against live v1"]
    # Yesterday's 5: the shadow says fraud for all, the live model for 3 of them.
    assert chart[1] == ["agreement", "60.0%", interval(3, 5), "5", "no (n < 20)"]
    # Reviewed: the 5; the live model was right on 4, the shadow on 4 (all said fraud but one).
    assert chart[2][1:4] == ["80.0%", interval(4, 5), "5"]
    assert chart[3][1:4] == ["80.0%", interval(4, 5), "5"]
    confusion = tables["Labels of live v1 (rows) against shadow v2-candidate (columns)"]
    assert confusion[1:] == [["fraud", "3", "0"], ["general", "2", "0"]]
    assert '<option value="v2-candidate" selected>' in html
    assert client.get("/dashboard?shadow=v9-unknown").status_code == 400


def test_without_a_session_the_dashboard_redirects_to_sign_in(client: TestClient) -> None:
    answer = client.get("/dashboard")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/dashboard"


@pytest.mark.parametrize("days", ["0", "366", "abc", "-3", "1e3", "７", "14 "])
def test_a_bad_window_is_a_400_page_saying_why(client: TestClient, days: str) -> None:
    sign_in(client)
    answer = client.get("/dashboard", params={"days": days})
    assert answer.status_code == 400
    assert "days must be a whole number from 1 to 365" in answer.text


def test_the_window_leaves_out_older_days(client: TestClient, store: Store) -> None:
    made = fill(store)
    sign_in(client)
    tables = Tables(dashboard(client, "?days=1")).tables
    mix = tables["Decisions per UTC day and predicted label, model v1"]
    today = made["today"][0].received_at.date().isoformat()
    assert mix == [
        ["day", "cybercrime", "fraud", "total"],
        [today, "4", "1", "5"],
        ["all days", "4", "1", "5"],
    ]
