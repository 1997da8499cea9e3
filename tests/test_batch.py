"""`triage score`: every input format, every output format, bad rows, order, kill and resume."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triage.archive.job import ScoreJob, progress_path_for, run_score_job
from triage.archive.readers import ArchiveSpec, count_rows, read_archive
from triage.cli import main
from triage.core.errors import DataFileError, TriageError
from triage.core.model import TriageModel
from triage.training.corpus import read_labelled

from .conftest import TINY

TEXTS = read_labelled(TINY).texts


def _read_output(path: Path) -> list[dict[str, object]]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def _write_csv(path: Path, rows: list[tuple[str, str]], opener=open) -> Path:  # type: ignore[no-untyped-def]
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "source"])
        writer.writerows((i, t, "archive") for i, t in rows)
    return path


def test_every_input_format_reads_the_same_rows(tmp_path: Path) -> None:
    rows = [(f"r{i}", t) for i, t in enumerate(TEXTS[:6])]
    _write_csv(tmp_path / "a.csv", rows)
    _write_csv(tmp_path / "a.csv.gz", rows, opener=gzip.open)
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows)
    (tmp_path / "a.jsonl").write_text(lines, "utf-8")
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(lines)
    pq.write_table(
        pa.table({"id": [i for i, _ in rows], "text": [t for _, t in rows]}), tmp_path / "a.parquet"
    )
    folder = tmp_path / "txt" / "2019"
    folder.mkdir(parents=True)
    for i, t in rows:
        (folder / f"{i}.txt").write_text(t, "utf-8")
    expected = sorted(t for _, t in rows)
    for name in ("a.csv", "a.csv.gz", "a.jsonl", "a.jsonl.gz", "a.parquet"):
        spec = ArchiveSpec((str(tmp_path / name),))
        got = list(read_archive(spec))
        assert [(r.id, r.text) for r in got] == rows, name
        assert count_rows(spec) == 6
    for spec in (
        ArchiveSpec((str(tmp_path / "txt"),)),
        ArchiveSpec((str(tmp_path / "txt" / "**" / "*.txt"),)),
    ):
        got = list(read_archive(spec))
        assert sorted(r.text for r in got) == expected
        assert {r.id for r in got} == {f"2019/r{i}.txt" for i in range(6)}


def test_ids_default_to_row_numbers_and_columns_can_be_renamed(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("body,ref\nfirst report,A\nsecond report,B\n", "utf-8")
    assert [
        r.id for r in read_archive(ArchiveSpec((str(path),), text_column="body", id_column="none"))
    ] == ["1", "2"]
    assert [
        r.id for r in read_archive(ArchiveSpec((str(path),), text_column="body", id_column="ref"))
    ] == ["A", "B"]
    with pytest.raises(DataFileError, match=r"notes\.csv: missing column 'text'"):
        list(read_archive(ArchiveSpec((str(path),))))
    with pytest.raises(DataFileError, match="no such file"):
        list(read_archive(ArchiveSpec((str(tmp_path / "absent.csv"),))))


def test_bad_rows_are_reported_with_id_and_reason_and_the_rest_scored(
    models_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(
        b'{"id": "ok1", "text": "my card was cloned at a cash machine"}\n'
        b'{"id": "empty", "text": "   "}\n'
        b'{"id": "bytes", "text": "caf\xe9 robbery"}\n'
        b'{"id": "nofield", "body": "misplaced"}\n'
        b"not json at all\n"
        b'{"id": "ok2", "text": "hackers broke into the council server"}\n'
    )
    out = tmp_path / "scored.csv"
    summary = run_score_job(ScoreJob(ArchiveSpec((str(source),)), out, models_dir / "current"))
    assert [r["id"] for r in _read_output(out)] == ["ok1", "ok2"]
    errors = [
        json.loads(x) for x in (tmp_path / "scored.csv.errors.jsonl").read_text().splitlines()
    ]
    reasons = {e["id"]: e["reason"] for e in errors}
    assert set(reasons) == {"empty", "bytes", "nofield", "5"}
    assert "empty" in reasons["empty"] and "UTF-8" in reasons["bytes"]
    assert "missing field 'text'" in reasons["nofield"] and "not valid JSON" in reasons["5"]
    assert all(e["source"] == str(source) for e in errors)
    assert (summary.rows, summary.scored, summary.errors) == (6, 2, 4)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_output_formats_hold_every_row_once_in_input_order(
    models_dir: Path, tiny_model: TriageModel, tmp_path: Path, suffix: str
) -> None:
    source = _write_csv(
        tmp_path / "in.csv", [(f"id{i}", TEXTS[i % len(TEXTS)]) for i in range(130)]
    )
    out = tmp_path / f"out{suffix}"
    summary = run_score_job(
        ScoreJob(
            ArchiveSpec((str(source),)), out, models_dir / "current", chunk_size=25, explain_terms=2
        )
    )
    rows = _read_output(out)
    assert [r["id"] for r in rows] == [f"id{i}" for i in range(130)]
    expected = tiny_model.predict([TEXTS[i % len(TEXTS)] for i in range(130)])
    assert [r["label"] for r in rows] == [p.label for p in expected]
    first = rows[0]
    assert set(first) == {
        "id",
        "label",
        "confidence",
        "needs_review",
        "model_version",
        "top_terms",
        *(f"prob_{label}" for label in tiny_model.labels),
    }
    assert float(first["confidence"]) == pytest.approx(expected[0].confidence, abs=1e-6)
    assert first["model_version"] == "v1"
    assert summary.rows == summary.scored == 130 and sum(summary.labels.values()) == 130
    assert not progress_path_for(out).exists() and not (tmp_path / f"out{suffix}.parts").exists()


def test_several_workers_give_the_same_output_as_one(models_dir: Path, tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "in.csv", [(str(i), TEXTS[i % len(TEXTS)]) for i in range(300)])
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    run_score_job(
        ScoreJob(ArchiveSpec((str(source),)), one, models_dir / "current", workers=1, chunk_size=40)
    )
    run_score_job(
        ScoreJob(ArchiveSpec((str(source),)), two, models_dir / "current", workers=2, chunk_size=40)
    )
    assert one.read_bytes() == two.read_bytes()


def test_existing_output_is_not_clobbered_and_resume_needs_a_run(
    models_dir: Path, tmp_path: Path
) -> None:
    source = _write_csv(tmp_path / "in.csv", [("a", TEXTS[0])])
    out = tmp_path / "out.csv"
    out.write_text("precious")
    job = ScoreJob(ArchiveSpec((str(source),)), out, models_dir / "current")
    with pytest.raises(TriageError, match="exists: use --overwrite"):
        run_score_job(job)
    assert out.read_text() == "precious"
    with pytest.raises(TriageError, match="nothing to resume"):
        run_score_job(ScoreJob(job.archive, out, job.model_path, resume=True))


def test_cli_score_prints_a_summary_and_names_a_bad_file(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_csv(tmp_path / "in.csv", [("a", TEXTS[0]), ("b", " ")])
    out = tmp_path / "out.parquet"
    assert (
        main(
            [
                "score",
                str(source),
                "--out",
                str(out),
                "--model",
                str(models_dir / "current"),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "scored 1 of 2 rows with model v1" in printed and "rows/s" in printed
    assert "needs review:" in printed and "errors: 1 (see" in printed
    bad = tmp_path / "bad.csv"
    bad.write_text("id,body\n1,x\n")
    assert (
        main(
            [
                "score",
                str(bad),
                "--out",
                str(tmp_path / "o.csv"),
                "--model",
                str(models_dir / "current"),
                "--quiet",
            ]
        )
        == 1
    )
    assert f"{bad}: missing column 'text'" in capsys.readouterr().err


def test_a_killed_run_resumes_to_every_row_exactly_once(models_dir: Path, tmp_path: Path) -> None:
    n = 6_000
    source = _write_csv(
        tmp_path / "big.csv", [(f"row{i}", f"{TEXTS[i % len(TEXTS)]} case {i}") for i in range(n)]
    )
    out = tmp_path / "scored.csv"
    command = [
        sys.executable,
        "-m",
        "triage",
        "score",
        str(source),
        "--out",
        str(out),
        "--model",
        str(models_dir / "current"),
        "--workers",
        "1",
        "--chunk-size",
        "200",
        "--quiet",
    ]
    process = subprocess.Popen(command)
    state = progress_path_for(out)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        if state.exists() and json.loads(state.read_text())["summary"]["rows"] >= 1_000:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = json.loads(state.read_text())["summary"]["rows"]
    assert 1_000 <= done_before < n
    with out.open("ab") as torn:  # what a kill in the middle of a write leaves behind
        torn.write(b"row99999,gen")
    assert subprocess.run([*command, "--resume"], check=False).returncode == 0
    rows = _read_output(out)
    assert [r["id"] for r in rows] == [f"row{i}" for i in range(n)]
    assert not state.exists()
    clean = tmp_path / "clean.csv"
    assert subprocess.run([*command[:6], str(clean), *command[7:]], check=False).returncode == 0
    assert out.read_bytes() == clean.read_bytes()


def test_resume_refuses_a_changed_input(models_dir: Path, tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "in.csv", [(str(i), TEXTS[i % 10]) for i in range(50)])
    out = tmp_path / "out.csv"
    state = progress_path_for(out)
    state.write_text(
        json.dumps(
            {"identity": {"format": 1, "inputs": "something else"}, "summary": {}, "checkpoint": {}}
        )
    )
    job = ScoreJob(ArchiveSpec((str(source),)), out, models_dir / "current", resume=True)
    with pytest.raises(TriageError, match="its inputs changed"):
        run_score_job(job)
    os.remove(state)
