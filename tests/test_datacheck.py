import json
from pathlib import Path

from triage.cli import main
from triage.training.datacheck import check_files

from .conftest import REPO

TRAIN = REPO / "training" / "data" / "train.jsonl"
TEST = REPO / "training" / "data" / "test.jsonl"


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "text": t, "label": lab, "genre": "short_note"}) + "\n"
            for i, (t, lab) in enumerate(rows, 1)
        ),
        "utf-8",
    )
    return path


def test_the_shipped_corpus_passes_with_no_leakage() -> None:
    report = check_files([TRAIN, TEST])
    assert not report.errors, "\n".join(report.errors[:20])
    train, test = report.files
    assert min(train.labels.values()) >= 300 and min(test.labels.values()) >= 75
    for summary in (train, test):
        for label, per_genre in summary.label_genre.items():
            total = summary.labels[label]
            assert len(per_genre) >= 3, label
            assert all(n >= total / 4 for n in per_genre.values()), (summary.path, label, per_genre)


def test_leakage_conflicts_and_bad_rows_are_all_reported(tmp_path: Path) -> None:
    shared = "Someone was photographing the gates of the water treatment works from a parked car"
    train = _write(
        tmp_path / "train.jsonl",
        [
            (shared, "terrorism_concern"),
            ("My bank card was cloned at a cash machine on the high street", "fraud"),
            ("My bank card was cloned at a cash machine on the high street", "general"),
            ("   ", "general"),
            (
                "Our school's email server was broken into and staff passwords were taken by "
                "intruders",
                "cybercrime",
            ),
        ],
    )
    test = _write(
        tmp_path / "test.jsonl",
        [
            (shared + "!", "terrorism_concern"),
            (
                "Our school email server was broken into and the staff passwords were taken "
                "by intruders",
                "cybercrime",
            ),
        ],
    )
    report = check_files([train, test])
    text = "\n".join(report.errors)
    assert f"{train}: row 4: empty text" in text
    assert "conflicting labels ['fraud', 'general']" in text
    assert "leakage: the same text in several files" in text  # punctuation does not hide it
    assert "leakage: near duplicate" in text and f"{test}: row 2" in text
    assert report.files[0].rows == 4  # the empty row is reported, the rest still counted


def test_cli_exit_code_follows_the_verdict(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    good = _write(
        tmp_path / "good.jsonl",
        [("a burglary on Mill Lane", "general"), ("a phishing text took my savings", "fraud")],
    )
    assert main(["data", "check", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.jsonl", [("same", "general"), ("same", "fraud")])
    assert main(["data", "check", str(bad), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
