"""`triage score`: every input format, every output format, bad rows, order, kill and resume."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triage.archive.input_files import MAX_ROW_SIZE
from triage.archive.job import ScoreJob, progress_path_for, run_score_job
from triage.archive.readers import ArchiveSpec, count_rows, read_archive
from triage.archive.rows import ArchiveRow
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
        "review_reasons",
        "secondary_label",
        "language",
        "top_terms",
        *(f"prob_{label}" for label in tiny_model.labels),
    }
    assert float(first["confidence"]) == pytest.approx(expected[0].confidence, abs=1e-6)
    names = {"below_threshold": "LOW_CONFIDENCE", "near_tie": "NEAR_TIE"}
    for row, p in zip(rows, expected, strict=True):
        assert row["review_reasons"] == ";".join(names[r] for r in p.review_reasons)
        assert (row["secondary_label"] or "") == p.secondary_label
        assert row["language"] == p.language == "en"
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


# ---------------------------------------------------------------------------------------------
# Hostile and broken archives (issue 10): no row lost silently, no traceback.


def _rows_and_count(path: Path) -> list[ArchiveRow]:
    spec = ArchiveSpec((str(path),))
    rows = list(read_archive(spec))
    assert count_rows(spec) == len(rows)  # the progress total agrees with what is read
    return rows


def test_an_unclosed_quote_is_an_error_row_and_the_rows_it_swallowed_are_still_scored(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "x.csv"
    source.write_bytes(b'id,text\nr1,a\nr2,b\nr3,"c\nr4,d\nr5,"e"\nr6,f\n')
    out = tmp_path / "o.jsonl"
    assert (
        main(["score", str(source), "--out", str(out), "--model", str(models_dir / "current")]) == 0
    )
    assert "scored 5 of 6 rows" in capsys.readouterr().out
    assert [r["id"] for r in _read_output(out)] == ["r1", "r2", "r4", "r5", "r6"]
    (error,) = map(json.loads, (tmp_path / "o.jsonl.errors.jsonl").read_text().splitlines())
    assert (error["source"], error["row"], error["line"], error["id"]) == (str(source), 3, 4, "r3")
    assert "unclosed quote" in error["reason"] and "lines 4-6" in error["reason"]


# Each layout: the file, then (id, physical line, a phrase of the problem or None) per row.
_CSV_LAYOUTS = {
    "a quote closed by a later quoted field": (
        b'id,text\nr1,a\nr2,"b\nr3,c\nr4,"d"\nr5,e\n',
        [
            ("r1", 2, None),
            ("r2", 3, "lines 3-5"),
            ("r3", 4, None),
            ("r4", 5, None),
            ("r5", 6, None),
        ],
    ),
    "a quote never closed": (
        b'id,text\nr1,a\nr2,"b\nr3,c\nr4,d\n',
        [
            ("r1", 2, None),
            ("r2", 3, "the file ends inside a quoted field (lines 3-5)"),
            ("r3", 4, None),
            ("r4", 5, None),
        ],
    ),
    "an extra field": (
        b"id,text\nr1,a,surplus\nr2,b\n",
        [("r1", 2, "3 fields where the header has 2"), ("r2", 3, None)],
    ),
    "a missing field": (
        b"id,text\nr1\nr2,b\n",
        [("r1", 2, "1 field where the header has 2"), ("r2", 3, None)],
    ),
    "text after a closing quote": (
        b'id,text\nr1,"a"b\nr2,c\n',
        [("r1", 2, "text after a closing quote"), ("r2", 3, None)],
    ),
    "an unclosed quote closed with an extra field": (
        b'id,text\nr1,"a\nr2,b",c\nr3,d\n',
        [
            ("r1", 2, "3 fields where the header has 2 (lines 2-3: an unclosed quote?)"),
            ("r2", 3, "3 fields"),
            ("r3", 4, None),
        ],
    ),
    "every line opens a quote": (
        b'id,text\nr1,"a\nr2,"b\nr3,"c\n',
        [("r1", 2, "lines 2-3"), ("r2", 3, "lines 3-4"), ("r3", 4, "the file ends inside")],
    ),
    "a quote opened inside a malformed record": (
        b'id,text\nr1,"a\nr2",y,"z\nr3,c\nr4,"d"\nr5,e\n',
        [
            ("r1", 2, "lines 2-5"),
            ('r2"', 3, "runs into the malformed record on line 2"),
            ("r3", 4, None),
            ("r4", 5, None),
            ("r5", 6, None),
        ],
    ),
    "bad bytes and over-long ids": (
        b"id,text\nr1,caf\xe9\nr\xff2,x\n" + b"a" * 257 + b",y\n" + b"b" * 256 + b",z\n",
        [
            ("r1", 2, "text is not valid UTF-8"),
            ("2", 3, "id is not valid UTF-8"),
            ("3", 4, "id is 257 characters long; the limit is 256"),
            ("b" * 256, 5, None),
        ],
    ),
}


@pytest.mark.parametrize("layout", list(_CSV_LAYOUTS))
def test_a_malformed_csv_record_is_an_error_row_naming_its_line(
    tmp_path: Path, layout: str
) -> None:
    content, expected = _CSV_LAYOUTS[layout]
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    rows = list(read_archive(ArchiveSpec((str(path),))))
    assert [(r.id, r.problem is None) for r in rows] == [(i, p is None) for i, _, p in expected]
    for row, (_, _, problem) in zip(rows, expected, strict=True):
        if problem is None:
            assert row.text, row
        else:
            assert row.problem is not None and problem in row.problem, row
            assert row.text == ""
    assert [(r.row, r.line) for r in rows] == [(n, x[1]) for n, x in enumerate(expected, 1)]
    assert count_rows(ArchiveSpec((str(path),))) == len(rows)  # the progress total agrees


def test_legal_csv_still_reads_exactly(tmp_path: Path) -> None:
    # Quoted line breaks (CRLF too), commas and doubled quotes; a BOM, blank lines and no final
    # line end: all legal, all read as written.
    path = tmp_path / "in.csv"
    path.write_bytes(
        b'\xef\xbb\xbfid,text\r\n\r\nr1,"first line\r\nsecond, with ""quotes"""\r\n'
        b'r2,"a\rb"\n\nr3,plain'
    )
    rows = _rows_and_count(path)
    assert [(r.id, r.text, r.line, r.problem) for r in rows] == [
        ("r1", 'first line\r\nsecond, with "quotes"', 3, None),
        ("r2", "a\rb", 5, None),
        ("r3", "plain", 8, None),
    ]


def test_an_empty_csv_has_no_rows_and_a_broken_header_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _rows_and_count(empty) == []
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b'id,"text\nr1,a\n')
    with pytest.raises(DataFileError, match=r"broken\.csv: malformed header \(line 1\)"):
        list(read_archive(ArchiveSpec((str(broken),))))
    twice = tmp_path / "twice.csv"
    twice.write_bytes(b"id,text,text\nr1,a,b\n")
    with pytest.raises(DataFileError, match="column 'text' appears 2 times"):
        list(read_archive(ArchiveSpec((str(twice),))))


def test_rows_over_the_size_limit_are_error_rows_and_reading_goes_on(tmp_path: Path) -> None:
    big = b"x" * MAX_ROW_SIZE
    long_csv = tmp_path / "long.csv"
    long_csv.write_bytes(b"id,text\nr1," + big + b"\nr2,b\n")
    unclosed = tmp_path / "unclosed.csv"  # a quote left open over more than the limit
    swallowed = MAX_ROW_SIZE // 1_000 + 1
    unclosed.write_bytes(b'id,text\nr1,"a\n' + (b"r," + b"y" * 997 + b"\n") * swallowed)
    long_jsonl = tmp_path / "long.jsonl"
    long_jsonl.write_bytes(b'{"id": "j1", "text": "' + big + b'"}\n{"id": "j2", "text": "b"}\n')
    rows = _rows_and_count(long_csv)
    assert [(r.id, r.problem) for r in rows] == [
        ("1", f"malformed CSV record: line longer than {MAX_ROW_SIZE:,} characters"),
        ("r2", None),
    ]
    rows = _rows_and_count(unclosed)
    assert rows[0].id == "r1" and "record longer than" in str(rows[0].problem)
    assert all(r.problem is None for r in rows[1:]) and len(rows) == 1 + swallowed
    rows = _rows_and_count(long_jsonl)
    assert [(r.id, r.problem) for r in rows] == [
        ("1", f"line longer than {MAX_ROW_SIZE:,} bytes"),
        ("j2", None),
    ]


def test_bad_ids_are_error_rows_and_the_run_goes_on(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(TEXTS[0])
    ids = [
        '"b\\ud800"',
        '{"a": 1}',
        "[1]",
        "1.5",
        "true",
        "null",
        "42",
        json.dumps("x" * 257),
        json.dumps("y" * 256),
        '"ok"',
    ]
    lines = [f'{{"id": {i}, "text": {text}}}' for i in ids]
    lines.append('{"id": "lone", "text": "stolen \\udc80 card"}')
    source = tmp_path / "ids.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    out = tmp_path / "o.csv"
    command = ["score", str(source), "--out", str(out), "--model", str(models_dir / "current")]
    assert main(command) == 0
    assert "scored 4 of 11 rows" in capsys.readouterr().out
    assert [r["id"] for r in _read_output(out)] == ["6", "42", "y" * 256, "ok"]
    errors = [json.loads(x) for x in (tmp_path / "o.csv.errors.jsonl").read_text().splitlines()]
    assert [(e["id"], e["line"]) for e in errors] == [
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("4", 4),
        ("5", 5),
        ("8", 8),
        ("lone", 11),
    ]
    reasons = [e["reason"] for e in errors]
    assert "id is not valid UTF-8" in reasons[0] and "id is an object" in reasons[1]
    assert "id is a list" in reasons[2] and "id is a floating-point number" in reasons[3]
    assert "id is a boolean" in reasons[4] and "257 characters long" in reasons[5]
    assert "text is not valid UTF-8" in reasons[6]


def test_parquet_ids_follow_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([7, None, 9]), "text": ["a", "b", None]}), path)
    floats = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"id": [1.0, 2.5], "text": ["a", "b"]}), floats)
    assert [(r.id, r.problem) for r in _rows_and_count(path)] == [
        ("7", None),
        ("2", None),
        ("9", "text is null or not a string"),
    ]
    assert [r.problem for r in _rows_and_count(floats)] == [
        "id is a floating-point number: ids are strings or integers"
    ] * 2


_JSONL_GZ = gzip.compress(
    b"".join(b'{"id": "g%d", "text": "card stolen %d"}\n' % (i, i) for i in range(2_000))
)
_CSV_GZ = gzip.compress(b"id,text\n" + b"".join(b"g%d,card %d\n" % (i, i) for i in range(2_000)))


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n  \n\n"),
        ("empty.jsonl.gz", gzip.compress(b"")),
        ("header-only.csv", b"id,text\n"),
        ("empty.csv", b""),
        ("header-only.csv.gz", gzip.compress(b"id,text\r\n")),
    ],
)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_an_empty_input_gives_an_empty_output_and_a_summary(
    models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    suffix: str,
) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / f"out{suffix}"
    command = ["score", str(source), "--out", str(out), "--model", str(models_dir / "current")]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "scored 0 of 0 rows" in printed and "errors: 0" in printed
    assert _read_output(out) == []
    if suffix == ".csv":
        assert out.read_text().startswith("id,label,confidence,needs_review,")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["models", name, out.name])
    assert main([*command, "--overwrite", "--quiet"]) == 0  # nothing left blocks a rerun


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("not-gzip.jsonl.gz", b"hello\n", "not a valid gzip file"),
        ("cut.jsonl.gz", _JSONL_GZ[:1_000], "the gzip stream ends early"),
        ("cut.csv.gz", _CSV_GZ[:1_000], "the gzip stream ends early"),
        ("crc.jsonl.gz", _JSONL_GZ[:-8] + b"\0" * 8, "not a valid gzip file"),
        ("empty.parquet", b"", "not a readable Parquet file"),
        ("junk.parquet", bytes(range(256)) * 4, "not a readable Parquet file"),
        ("cut.txt.gz", _JSONL_GZ[:1_000], "the gzip stream ends early"),
    ],
)
@pytest.mark.parametrize("quiet", [True, False])  # without --quiet, rows are counted first
def test_an_unreadable_file_is_a_message_naming_it(
    models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    says: str,
    quiet: bool,
) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    command = ["score", str(source), "--out", str(tmp_path / "o.csv")]
    command += ["--model", str(models_dir / "current"), *(["--quiet"] if quiet else [])]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"triage: error: {source}: {says}" in err and "Traceback" not in err


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount(8)); grown to 8 MiB by ``_grow``."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount(8) to make a small file system")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_a_message_and_resume_finishes_once_space_is_freed(
    models_dir: Path, tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 5_000
    source = _write_csv(
        tmp_path / "in.csv", [(f"row{i}", f"{TEXTS[i % len(TEXTS)]} {i}") for i in range(n)]
    )
    out = small_disk / "scored.csv"
    command = ["score", str(source), "--out", str(out), "--model", str(models_dir / "current")]
    command += ["--chunk-size", "250", "--quiet"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"triage: error: {small_disk}/" in err and "No space left on device" in err
    assert "--resume" in err and "Traceback" not in err
    done = json.loads(progress_path_for(out).read_text())["summary"]["rows"]
    assert 0 < done < n
    grown = ["mount", "-o", "remount,size=8m", str(small_disk)]
    assert subprocess.run(grown, check=False).returncode == 0
    assert main([*command, "--resume"]) == 0
    clean = tmp_path / "clean.csv"
    assert main([*command[:3], str(clean), *command[4:]]) == 0
    assert out.read_bytes() == clean.read_bytes()
    assert [r["id"] for r in _read_output(out)] == [f"row{i}" for i in range(n)]
