"""Reviewers' feedback on record (one at a time, or a file all at once) and reviewed reports out
again as training data, on SQLite and PostgreSQL for real."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from triage.cli import main
from triage.core.model import Prediction
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import Store, open_store
from triage.store.errors import InvalidFeedback, KeyProblem, UnknownDecision
from triage.store.export import export_reviewed
from triage.store.feedback import submit_feedback
from triage.store.feedback_import import FeedbackFileRefused, import_feedback
from triage.store.records import Decision
from triage.training.corpus import read_labelled

LABELS = ("cybercrime", "fraud", "general", "terrorism_concern")
KEY = generate_key()
CIPHER = TextCipher.from_keys([KEY])
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
QUIET = ["--log-level", "warning"]


def prediction(label: str = "fraud", version: str = "20261201-000000") -> Prediction:
    others = [(other, 0.1) for other in LABELS if other != label]
    return Prediction(
        label=label,
        confidence=0.7,
        scores=((label, 0.7), *others),
        needs_review=True,
        top_terms=(),
        model_version=version,
        review_reasons=("BELOW_THRESHOLD",),
    )


def decision(
    report_id: str,
    label: str = "fraud",
    text: str | None = None,
    received_at: datetime = START,
    expires_at: datetime | None = None,
) -> Decision:
    sealed = None
    if text is not None:
        sealed = CIPHER.seal(text, expires_at or datetime.now(UTC) + timedelta(days=30))
    return Decision.of(
        prediction(label),
        report_id=report_id,
        source="Classify",
        received_at=received_at,
        text=sealed,
    )


def test_feedback_keeps_the_label_it_replaced_and_the_latest_wins(store: Store) -> None:
    first = decision("r1", "fraud")
    later = decision("r1", "general", received_at=START + timedelta(minutes=5))
    other = decision("r2", "fraud")
    store.insert_decisions([first, later, other])

    one = submit_feedback(
        store,
        decision_id=first.decision_id,
        label="cybercrime",
        reviewer="alice",
        note="a hacked account, not a scam",
        now=START + timedelta(hours=1),
    )
    two = submit_feedback(
        store,
        decision_id=first.decision_id,
        label=" terrorism_concern ",
        reviewer="bob",
        now=START + timedelta(hours=2),
    )
    assert (one.old_label, one.new_label, one.reviewer) == ("fraud", "cybercrime", "alice")
    assert (two.old_label, two.new_label) == ("cybercrime", "terrorism_concern")
    view = store.decision(first.decision_id)
    assert view is not None and view.current_label == "terrorism_concern"
    assert [f.feedback_id for f in view.feedback] == [one.feedback_id, two.feedback_id]
    assert view.feedback[0] == one and view.feedback[1] == two  # as returned, so as stored
    assert view.feedback[0].note == "a hacked account, not a scam"

    # By report id: the latest decision for the report.
    by_report = submit_feedback(store, report_id="r1", label="fraud", reviewer="carol")
    assert by_report.decision_id == later.decision_id and by_report.old_label == "general"
    assert store.decision(other.decision_id).current_label == "fraud"  # type: ignore[union-attr]
    assert store.count("feedback") == 3


def test_a_retry_with_the_same_feedback_id_is_written_once(store: Store) -> None:
    d = decision("r1")
    store.insert_decisions([d])
    feedback_id = str(uuid.uuid4())
    sent = submit_feedback(
        store, decision_id=d.decision_id, label="general", reviewer="alice", feedback_id=feedback_id
    )
    retried = submit_feedback(
        store,
        decision_id=d.decision_id,
        label="general",
        reviewer="alice",
        feedback_id=feedback_id.upper(),  # the same UUID, spelled differently
        now=START + timedelta(days=3),
    )
    assert retried == sent and store.count("feedback") == 1
    # The same id for something else is a client bug, not a retry.
    with pytest.raises(InvalidFeedback, match="already recorded"):
        submit_feedback(
            store,
            decision_id=d.decision_id,
            label="fraud",
            reviewer="alice",
            feedback_id=feedback_id,
        )
    with pytest.raises(InvalidFeedback, match="must be a UUID"):
        submit_feedback(
            store, decision_id=d.decision_id, label="fraud", reviewer="alice", feedback_id="retry-1"
        )
    assert store.count("feedback") == 1


BAD_FEEDBACK: list[tuple[dict[str, str], type[Exception], str]] = [
    ({"decision_id": "0190f1e2-7c4b-7def-8a12-3456789abcde"}, UnknownDecision, "no recorded"),
    ({"decision_id": "", "report_id": "nobody"}, UnknownDecision, "report id 'nobody'"),
    ({"label": "weather"}, InvalidFeedback, "use one of cybercrime, fraud, general, terror"),
    ({"label": ""}, InvalidFeedback, "label is empty"),
    ({"reviewer": "  "}, InvalidFeedback, "reviewer is empty"),
    ({"reviewer": "x" * 257}, InvalidFeedback, "257 characters long, the limit is 256"),
    ({"note": "n" * 2001}, InvalidFeedback, "note is 2001 characters long"),
    ({"decision_id": "d" * 37}, InvalidFeedback, "at most 36"),
    ({"decision_id": "", "report_id": "r" * 257}, InvalidFeedback, "limit is 256"),
    ({"decision_id": "", "report_id": ""}, InvalidFeedback, "decision_id or a report_id"),
    ({"report_id": "r2"}, InvalidFeedback, "is for report 'r1', not 'r2'"),
]


def test_bad_feedback_is_refused_by_name_and_nothing_is_written(store: Store) -> None:
    d = decision("r1")
    store.insert_decisions([d, decision("r2")])
    for fields, error, message in BAD_FEEDBACK:
        sent = {"decision_id": d.decision_id, "label": "general", "reviewer": "alice", **fields}
        with pytest.raises(error, match=message):
            submit_feedback(
                store,
                label=sent["label"],
                reviewer=sent["reviewer"],
                decision_id=sent["decision_id"],
                report_id=sent.get("report_id", ""),
                note=sent.get("note", ""),
            )
    assert store.count("feedback") == 0


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), "utf-8")
    return path


def test_importing_a_file_twice_writes_it_once(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = decision("r-a", "fraud"), decision("r-b", "general")
    store.insert_decisions([a, b])
    corrections = _write_csv(
        tmp_path / "corrections.csv",
        "decision_id,report_id,label,reviewer,note,created_at",
        [
            f"{a.decision_id},,cybercrime,alice,,2025-06-02T10:00:00Z",
            ',r-b,fraud,,"looks like a scam, said the caller",',
            # Older than the first row: it does not win, and the first row's old label is it.
            f"{a.decision_id},,general,bob,,2025-06-02T09:00:00+00:00",
        ],
    )
    first = import_feedback(store, corrections, reviewer_default="desk-7")
    assert (first.rows, first.new, first.already_recorded) == (3, 3, 0)
    view_a, view_b = store.decision(a.decision_id), store.decision(b.decision_id)
    assert view_a is not None and view_b is not None
    assert [(f.old_label, f.new_label, f.reviewer) for f in view_a.feedback] == [
        ("fraud", "general", "bob"),
        ("general", "cybercrime", "alice"),
    ]
    assert view_a.current_label == "cybercrime"
    (row_b,) = view_b.feedback
    assert (row_b.reviewer, row_b.note, row_b.source) == (
        "desk-7",
        "looks like a scam, said the caller",
        "import",
    )

    again = import_feedback(store, corrections, reviewer_default="desk-7")
    assert (again.new, again.already_recorded) == (0, 3)
    assert store.count("feedback") == 3
    code = main(
        [*QUIET, "feedback", "import", str(corrections), "--reviewer", "desk-7"],
        env={"TRIAGE_STORE": store_url},
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == f"{corrections}: 3 rows: 0 new, 3 already recorded"
    assert store.count("feedback") == 3


def test_a_file_with_bad_rows_is_refused_naming_each_row_and_nothing_is_written(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = decision("r-1", "fraud")
    store.insert_decisions([good])
    lines = [
        {"decision_id": good.decision_id, "label": "general", "reviewer": "alice"},  # 1: fine
        {"decision_id": good.decision_id, "label": "weather", "reviewer": "alice"},  # 2
        "{not json",  # 3
        {"report_id": "nobody-knows", "label": "fraud", "reviewer": "alice"},  # 4
        {"decision_id": good.decision_id, "label": "fraud"},  # 5: no reviewer
        {"decision_id": good.decision_id, "label": "fraud", "reviewer": "a", "note": "n" * 2001},
        {
            "decision_id": good.decision_id,
            "label": "fraud",
            "reviewer": "a",
            "created_at": "2099-01-01",
        },
        {"decision_id": good.decision_id, "label": "fraud", "reviewer": "a", "created_at": "soon"},
        {"decision_id": 7, "label": "fraud", "reviewer": "a"},  # 9
        ["a", "list"],  # 10
        {"label": "fraud", "reviewer": "a"},  # 11
        {"decision_id": good.decision_id, "label": "fraud", "reviewer": "bob"},  # 12: fine
        {"decision_id": good.decision_id, "label": " ", "reviewer": "bob"},  # 13
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        "utf-8",
    )
    with pytest.raises(FeedbackFileRefused) as refused:
        import_feedback(store, path)
    assert store.count("feedback") == 0
    problems = {p.row or 0: p.reason for p in refused.value.problems}
    assert sorted(problems) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert "label 'weather' is not one model 20261201-000000 knows" in problems[2]
    assert "not valid JSON" in problems[3]
    assert "report id 'nobody-knows'" in problems[4]
    assert "no reviewer" in problems[5]
    assert "note is 2001 characters" in problems[6]
    assert "in the future" in problems[7]
    assert "not an ISO 8601 time" in problems[8]
    assert "'decision_id' must be text" in problems[9]
    assert "JSON object" in problems[10]
    assert "decision_id or a report_id" in problems[11]
    assert "label is empty" in problems[13]
    message = str(refused.value)
    assert message.startswith(f"{path}: 11 of 13 rows cannot be imported, so nothing was imported")
    assert f"{path}: row 2: label 'weather'" in message
    assert f"{path}: row 11:" in message and "row 13" not in message  # the first ten
    assert message.endswith("... and 1 more") and message.count(f"{path}: row ") == 10

    code = main([*QUIET, "feedback", "import", str(path)], env={"TRIAGE_STORE": store_url})
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"triage: error: {path}: 11 of 13 rows cannot be imported")
    assert store.count("feedback") == 0


def test_an_unreadable_feedback_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_url = f"sqlite:///{tmp_path / 'triage.db'}"
    open_store(store_url).close()
    env = {"TRIAGE_STORE": store_url}
    cases = {
        "notes.txt": (b"decision_id,label\n", "unknown format '.txt'"),
        "latin1.csv": (b"report_id,label,reviewer\nr1,fraud,Jos\xe9\n", "not valid UTF-8"),
        "header.csv": (b"id,label\n1,fraud\n", "needs a label column and a decision_id"),
        "empty.jsonl": (b"\n\n", "holds no rows"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert main([*QUIET, "feedback", "import", str(path)], env=env) == 1
        err = capsys.readouterr().err
        assert f"{path}" in err and message in err and "Traceback" not in err, err
    missing = tmp_path / "missing.csv"
    assert main([*QUIET, "feedback", "import", str(missing)], env=env) == 1
    assert f"{missing}: cannot read" in capsys.readouterr().err


def test_a_store_url_with_no_record_behind_it_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_csv(tmp_path / "c.csv", "report_id,label,reviewer", ["r1,fraud,alice"])
    url = f"sqlite:///{tmp_path / 'typo' / 'triage.db'}"
    assert main([*QUIET, "feedback", "import", str(path)], env={"TRIAGE_STORE": url}) == 1
    assert "no decision record" in capsys.readouterr().err


def _reviewed_store(store: Store, now: datetime) -> dict[str, Decision]:
    """Decisions in every state an export must tell apart."""
    made = {
        "reviewed": decision("r-reviewed", "fraud", text="My card was used in Spain by someone"),
        "confirmed": decision("r-confirmed", "general", text="A bike stolen from the station"),
        "unreviewed": decision("r-unreviewed", "fraud", text="An email asking for my PIN"),
        "no_text": decision("r-no-text", "fraud"),
        "expired": decision(
            "r-expired", "fraud", text="kept too long", expires_at=now - timedelta(minutes=1)
        ),
        "before_since": decision("r-old", "general", text="A lost wallet on the bus"),
    }
    store.insert_decisions(list(made.values()))
    since = now - timedelta(days=1)
    for key, label, at in [
        ("reviewed", "general", since + timedelta(hours=1)),
        ("reviewed", "cybercrime", since + timedelta(hours=2)),
        ("confirmed", "general", since),  # exactly at --since: included
        ("no_text", "general", since + timedelta(hours=3)),
        ("expired", "general", since + timedelta(hours=3)),
        ("before_since", "fraud", since - timedelta(seconds=1)),
    ]:
        submit_feedback(
            store, decision_id=made[key].decision_id, label=label, reviewer="alice", now=at
        )
    return made


def test_export_writes_reviewed_texts_in_the_training_format_with_provenance(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    made = _reviewed_store(store, now)
    since = now - timedelta(days=1)
    out = tmp_path / "reviewed.jsonl"
    out.write_text("an older export\n")
    result = export_reviewed(store, CIPHER, since=since, out=out)
    assert (result.exported, result.without_text) == (2, 2)
    assert result.labels == {"cybercrime": 1, "general": 1}
    assert "2 reviewed decisions have no text any more (purged or never kept)" in result.summary()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {made["reviewed"].decision_id, made["confirmed"].decision_id}
    row = by_id[made["reviewed"].decision_id]
    assert (row["text"], row["label"], row["genre"]) == (
        "My card was used in Spain by someone",
        "cybercrime",
        "reviewed",
    )
    provenance = row["provenance"]
    assert provenance["report_id"] == "r-reviewed" and provenance["predicted_label"] == "fraud"
    assert provenance["model_version"] == "20261201-000000" and provenance["reviewer"] == "alice"
    latest = store.decision(made["reviewed"].decision_id).feedback[-1]  # type: ignore[union-attr]
    assert provenance["feedback_id"] == latest.feedback_id
    assert datetime.fromisoformat(provenance["reviewed_at"]) == latest.created_at
    # The training reader takes the file as it is.
    data = read_labelled(out)
    assert sorted(data.labels) == ["cybercrime", "general"]
    exported_since = out.read_text("utf-8")

    # Without --since: every reviewed decision with a text.
    everything = export_reviewed(store, CIPHER, since=None, out=out)
    assert (everything.exported, everything.without_text) == (3, 2)

    out_cli = tmp_path / "cli.jsonl"
    env = {"TRIAGE_STORE": store_url, "TRIAGE_STORE_KEYS": KEY.decode()}
    day = since.isoformat()
    assert main([*QUIET, "feedback", "export", "--since", day, "--out", str(out_cli)], env=env) == 0
    printed = capsys.readouterr().out
    assert f"wrote 2 reviewed reports to {out_cli}" in printed
    assert "2 reviewed decisions have no text any more" in printed
    assert out_cli.read_text("utf-8") == exported_since


def test_an_export_that_fails_leaves_no_file_behind(
    store: Store, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _reviewed_store(store, datetime.now(UTC))
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / "reviewed.jsonl"
    stranger = TextCipher.from_keys([generate_key()])
    with pytest.raises(KeyProblem, match="not among the configured keys"):
        export_reviewed(store, stranger, since=None, out=out)
    assert list(exports.iterdir()) == []  # neither the file nor a temporary one

    env = {"TRIAGE_STORE": store_url}
    assert main([*QUIET, "feedback", "export", "--out", str(out)], env=env) == 1
    assert "needs the keys" in capsys.readouterr().err
    nowhere = tmp_path / "no" / "such" / "dir" / "reviewed.jsonl"
    env["TRIAGE_STORE_KEYS"] = KEY.decode()
    assert main([*QUIET, "feedback", "export", "--out", str(nowhere)], env=env) == 1
    assert f"{nowhere}: cannot write" in capsys.readouterr().err
    assert main([*QUIET, "feedback", "export", "--since", "last week", "--out", str(out)]) == 2
    assert "not an ISO 8601 date" in capsys.readouterr().err
    assert list(exports.iterdir()) == []
