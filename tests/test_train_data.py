"""Training on several files: reviewed reports from the record train beside the corpus, texts
that conflict across files or leak into the test file stop training unless an option says how to
resolve them, and the model card names every file."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from triage.cli import main
from triage.core.artifacts import read_card
from triage.core.card import ModelCard
from triage.core.errors import DataFileError, InvalidRecord
from triage.core.model import Prediction, load_model
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import open_store
from triage.store.feedback import submit_feedback
from triage.store.records import Decision
from triage.training.corpus import read_labelled
from triage.training.datacheck import (
    TrainingDataRefused,
    check_files,
    combine_training_files,
)
from triage.training.train import TrainResult, check_trainable

from .conftest import TINY

FAST = ["--folds", "3", "--no-search", "--jobs", "1"]
QUIET = ["--log-level", "warning"]
LEGACY_CARD = Path(__file__).parent / "data" / "legacy-models" / "v0" / "model.json"

# Reports a reviewer corrected: none is in the tiny corpus.
REVIEWED = [
    ("Someone took over my email account and sent messages to all my contacts", "cybercrime"),
    ("Our office computers were locked by ransomware overnight", "cybercrime"),
    ("A caller pretending to be my bank talked me into moving my savings", "fraud"),
    ("I paid for a puppy advertised online and the seller vanished", "fraud"),
    ("A garden shed was broken into and a lawnmower taken", "general"),
    ("Graffiti sprayed on the wall of the library overnight", "general"),
    ("A man was asking staff about the busiest times at the stadium gates", "terrorism_concern"),
    ("An abandoned van parked outside the arena with wires on the seat", "terrorism_concern"),
]


def split_tiny(tmp_path: Path) -> tuple[Path, Path]:
    """The tiny corpus as a training file (9 rows per label) and a test file (3 per label)."""
    lines = TINY.read_text("utf-8").splitlines()
    corpus, test = tmp_path / "corpus.jsonl", tmp_path / "test.jsonl"
    corpus.write_text("".join(line + "\n" for i, line in enumerate(lines) if i % 4), "utf-8")
    test.write_text("".join(line + "\n" for i, line in enumerate(lines) if not i % 4), "utf-8")
    return corpus, test


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "text": text, "label": label}) + "\n"
            for i, (text, label) in enumerate(rows, 1)
        ),
        "utf-8",
    )
    return path


def text_of(path: Path, row: int) -> tuple[str, str]:
    record = json.loads(path.read_text("utf-8").splitlines()[row - 1])
    return record["text"], record["label"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reviewed_reports_exported_from_the_record_train_beside_the_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, test = split_tiny(tmp_path)
    url = f"sqlite:///{tmp_path / 'record' / 'triage.db'}"
    key = generate_key()
    cipher = TextCipher.from_keys([key])
    store = open_store(url)
    try:
        # The live model called every one of them "general"; reviewers said otherwise.
        scores = (("general", 0.4), ("cybercrime", 0.2), ("fraud", 0.2), ("terrorism_concern", 0.2))
        guess = Prediction("general", 0.4, scores, True, (), "live-1", ("BELOW_THRESHOLD",))
        expiry = datetime.now(UTC) + timedelta(days=30)
        decisions = [
            Decision.of(guess, report_id=f"r{i}", source="Classify", text=cipher.seal(text, expiry))
            for i, (text, _) in enumerate(REVIEWED)
        ]
        store.insert_decisions(decisions)
        for d, (_, label) in zip(decisions, REVIEWED, strict=True):
            submit_feedback(store, decision_id=d.decision_id, label=label, reviewer="alice")
    finally:
        store.close()
    reviewed = tmp_path / "reviewed.jsonl"
    env = {"TRIAGE_STORE": url, "TRIAGE_STORE_KEYS": key.decode()}
    assert main([*QUIET, "feedback", "export", "--out", str(reviewed)], env) == 0
    assert f"wrote 8 reviewed reports to {reviewed}" in capsys.readouterr().out

    models = tmp_path / "models"
    common = [*QUIET, "train", "--data", str(corpus), "--data", str(reviewed), "--test", str(test)]
    assert main([*common, "--out", str(models), "--version", "v2", *FAST]) == 0
    assert "model v2 written" in capsys.readouterr().out

    data = read_card(models / "v2").training.data
    assert data.files is not None
    first, second = data.files
    assert (first.path, first.sha256, first.rows) == (str(corpus), sha256(corpus), 36)
    assert (second.path, second.sha256, second.rows) == (str(reviewed), sha256(reviewed), 8)
    assert second.genres == {"reviewed": 8}
    assert second.labels == {label: 2 for label in sorted({label for _, label in REVIEWED})}
    assert first.labels == {label: 9 for label in second.labels}
    assert data.train.path == f"{corpus} + {reviewed}" and data.train.rows == 44
    assert data.train.labels == {label: 11 for label in second.labels}
    expected = hashlib.sha256(f"{sha256(corpus)}\n{sha256(reviewed)}\n".encode()).hexdigest()
    assert data.train.sha256 == expected
    assert data.set_aside == {"duplicate": 0, "overridden": 0, "leaked": 0}
    assert data.test is not None and data.test.sha256 == sha256(test)

    model = load_model(models / "v2")
    assert model.card.training.data == data
    evaluate = ["evaluate", "--model", str(models / "v2"), "--data", str(test)]
    assert main([*evaluate, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == "v2"


def test_a_text_labelled_differently_in_two_files_stops_training_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, test = split_tiny(tmp_path)
    text, label = text_of(corpus, 2)
    assert label == "terrorism_concern"
    corrections = write_rows(
        tmp_path / "corrections.jsonl",
        [(REVIEWED[0][0], "cybercrime"), ("  " + text.upper() + " ", "general")],
    )
    models = tmp_path / "models"
    common = [
        *QUIET,
        "train",
        "--data",
        str(corpus),
        "--data",
        str(corrections),
        "--test",
        str(test),
    ]
    assert main([*common, "--out", str(models), *FAST]) == 1
    err = capsys.readouterr().err
    assert (
        "conflicting labels ['general', 'terrorism_concern'] for the same text: "
        f"{corpus}: row 2 (id ter-03); {corrections}: row 2 (id c2)"
    ) in err
    assert "--allow-conflicts" in err and "Traceback" not in err
    assert not models.exists()

    assert main([*common, "--out", str(models), "--version", "v", "--allow-conflicts", *FAST]) == 0
    data = read_card(models / "v").training.data
    assert data.set_aside == {"duplicate": 0, "overridden": 1, "leaked": 0}
    assert data.train.rows == 36 + 2 - 1
    # The later file's label won: one terrorism_concern row fewer, one more general.
    assert data.train.labels["terrorism_concern"] == 8 and data.train.labels["general"] == 10


def test_a_training_text_in_the_test_file_stops_training_unless_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, test = split_tiny(tmp_path)
    leaked_text, leaked_label = text_of(test, 3)
    corrections = write_rows(
        tmp_path / "corrections.jsonl", [(REVIEWED[2][0], "fraud"), (leaked_text, leaked_label)]
    )
    models = tmp_path / "models"
    common = [
        *QUIET,
        "train",
        "--data",
        str(corpus),
        "--data",
        str(corrections),
        "--test",
        str(test),
    ]
    assert main([*common, "--out", str(models), *FAST]) == 1
    err = capsys.readouterr().err
    assert (
        f"leakage: {corrections}: row 2 (id c2) is also in the test file, at {test}: row 3" in err
    )
    assert "--drop-leaked" in err and not models.exists()

    files = [read_labelled(corpus), read_labelled(corrections)]
    combined = combine_training_files(files, read_labelled(test), drop_leaked=True)
    assert combined.set_aside["leaked"] == 1
    assert leaked_text not in combined.texts and REVIEWED[2][0] in combined.texts
    assert [len(part.rows) for part in combined.kept] == [36, 1]
    assert [len(f.rows) for f in combined.files] == [36, 2]  # the files as given, for the card


def test_the_same_text_in_two_training_files_is_trained_on_once(tmp_path: Path) -> None:
    corpus, _ = split_tiny(tmp_path)
    text, label = text_of(corpus, 5)
    copy = write_rows(tmp_path / "copy.jsonl", [(text + "!", label), (REVIEWED[4][0], "general")])
    combined = combine_training_files([read_labelled(corpus), read_labelled(copy)], None)
    assert combined.set_aside == {"duplicate": 1, "overridden": 0, "leaked": 0}
    assert len(combined.rows) == 37
    assert [r.id for r in combined.kept[1].rows] == ["c1", "c2"]  # the last file's copy is kept
    # A test file that is a training file is what the caller asked for: not leakage.
    tiny = read_labelled(TINY)
    assert combine_training_files([tiny], tiny).set_aside["leaked"] == 0


def test_a_refusal_lists_ten_problems_and_counts_the_rest(tmp_path: Path) -> None:
    corpus, _ = split_tiny(tmp_path)
    rows = [text_of(corpus, n) for n in range(1, 13)]
    flipped = write_rows(
        tmp_path / "flipped.jsonl",
        [(text, "general" if label != "general" else "fraud") for text, label in rows],
    )
    with pytest.raises(TrainingDataRefused) as refused:
        combine_training_files([read_labelled(corpus), read_labelled(flipped)], None)
    message = str(refused.value)
    assert message.startswith("the training data has 12 text(s) with conflicting labels")
    assert message.count("conflicting labels [") == 10 and "... and 2 more" in message


def test_data_check_with_a_test_file_tells_duplicates_conflicts_and_leakage_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, test = split_tiny(tmp_path)
    same, same_label = text_of(corpus, 1)
    other, other_label = text_of(corpus, 9)
    leaked, leaked_label = text_of(test, 1)
    extra = write_rows(
        tmp_path / "extra.jsonl",
        [
            (same, same_label),
            (other, "fraud" if other_label != "fraud" else "general"),
            (leaked.lower(), leaked_label),
        ],
    )
    report = check_files([corpus, extra], test=test)
    errors, warnings = "\n".join(report.errors), "\n".join(report.warnings)
    assert (
        f"conflicting labels ['fraud', '{other_label}'] for the same text: {corpus}: row 9"
        in errors
    )
    assert (
        "leakage: the same text in the training and test files: "
        f"{extra}: row 3 (id c3); {test}: row 1 (id ter-01)"
    ) in errors
    assert (
        "the same text and label in several training files (training keeps the copy of the last "
        f"file): {corpus}: row 1"
    ) in warnings
    assert [f.path for f in report.files] == [str(corpus), str(extra), str(test)]
    assert main(["data", "check", str(corpus), str(extra), "--test", str(test)]) == 1
    assert "FAILED" in capsys.readouterr().out
    # Without --test the roles are unknown: a text in two files is leakage, as it always was.
    legacy = check_files([corpus, extra])
    assert any(e.startswith("leakage: the same text in several files") for e in legacy.errors)


def test_too_few_examples_across_files_names_each_file(tmp_path: Path) -> None:
    a = write_rows(tmp_path / "a.jsonl", [("one", "fraud"), ("two", "fraud"), ("x", "general")])
    b = write_rows(tmp_path / "b.jsonl", [("three", "fraud"), ("y", "general")])
    combined = combine_training_files([read_labelled(a), read_labelled(b)], None)
    with pytest.raises(DataFileError) as caught:
        check_trainable(combined, folds=3)
    assert str(caught.value) == (
        f"{a} + {b}: label 'general' has only 2 example(s) (rows {a}: 3; {b}: 2); "
        "3-fold cross-validation needs at least 3"
    )


def test_cards_with_one_training_file_and_with_several_read_back(
    tiny_result: TrainResult,
) -> None:
    legacy = ModelCard.from_json(LEGACY_CARD.read_text("utf-8")).training.data
    assert legacy.files is None and legacy.set_aside is None
    assert legacy.train_files == (legacy.train,)
    assert "train_files" not in legacy.to_dict()

    data = tiny_result.card.data
    assert data.files == (data.train,) and data.train_files == (data.train,)
    assert data.set_aside == {}
    document = json.loads(LEGACY_CARD.read_text("utf-8"))
    document["data"] = data.to_dict()
    assert ModelCard.from_dict(document).training.data == data
    document["data"]["train_files"][0]["rows"] = "48"
    with pytest.raises(InvalidRecord, match=r"data\.train_files\[0\]\.rows"):
        ModelCard.from_dict(document)
