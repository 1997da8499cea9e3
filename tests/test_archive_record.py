"""`triage score --record`: every scored archive row's decision on the record exactly once, from
worker processes and Dask, across a crash, a kill or a full spool disk and --resume, and through a
store outage, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from triage.archive.job import ScoreJob, progress_path_for, run_score_job
from triage.archive.readers import ArchiveSpec
from triage.archive.run_record import RecordSettings
from triage.cli import main
from triage.cli.score_command import print_summary
from triage.core.errors import TriageError
from triage.core.model import BELOW_THRESHOLD, NO_EVIDENCE, TriageModel
from triage.store import schema
from triage.store.database import Store, decision_of, open_store
from triage.store.records import Decision
from triage.training.corpus import read_labelled

from .conftest import TINY
from .stores import POSTGRES_SERVER, store_url_for

TEXTS = read_labelled(TINY).texts


def _archive(path: Path, n: int, prefix: str = "row") -> Path:
    """A CSV archive of ``n`` reports with the ids PREFIX0, PREFIX1, ..."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows((f"{prefix}{i}", f"{TEXTS[i % len(TEXTS)]} case {i}") for i in range(n))
    return path


def _recorded(url: str) -> list[Decision]:
    store = Store(url)
    try:
        with store.connect() as connection:
            return [decision_of(row) for row in connection.execute(select(schema.decisions))]
    finally:
        store.close()


def _output(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("segment-*.jsonl"))


def test_every_scored_row_is_recorded_once_as_the_output_has_it_and_bad_rows_are_not(
    models_dir: Path,
    tiny_model: TriageModel,
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "mixed.jsonl"
    good = [json.dumps({"id": f"ok{i}", "text": TEXTS[i % len(TEXTS)]}) for i in range(40)]
    good.insert(3, json.dumps({"text": "no id: the row key stands in for it, my card was cloned"}))
    lines = [line.encode() for line in good]
    lines.insert(10, b'{"id": "empty", "text": "   "}')
    lines.insert(20, b"not json at all")
    lines.insert(30, b'{"id": "bytes", "text": "caf\xe9 robbery"}')
    source.write_bytes(b"\n".join(lines) + b"\n")
    out, spool = tmp_path / "scored.csv", tmp_path / "spool"
    command = ["score", str(source), "--out", str(out), "--model", str(models_dir / "current")]
    command += ["--record", "--store", store_url, "--spool", str(spool)]
    started = time.time()
    # Two worker processes and chunks of 7: decisions come back from other processes, in pieces.
    assert main([*command, "--workers", "2", "--chunk-size", "7"]) == 0
    assert "decisions recorded: 41 in " in capsys.readouterr().out

    scored = {row["id"]: row for row in _output(out)}
    recorded = {d.report_id: d for d in _recorded(store_url)}
    assert len(scored) == 41 and "4" in scored  # the row without an id: its row number
    assert recorded.keys() == scored.keys()  # once each (report ids are unique here)
    errors = [
        json.loads(x) for x in (tmp_path / "scored.csv.errors.jsonl").read_text().splitlines()
    ]
    assert {e["id"] for e in errors} == {"empty", "21", "bytes"}
    assert not {e["id"] for e in errors} & recorded.keys()
    for report_id, decision in recorded.items():
        row = scored[report_id]
        assert decision.label == row["label"]
        assert decision.confidence == pytest.approx(float(row["confidence"]), abs=1e-6)
        assert decision.needs_review == (row["needs_review"] == "True")
        assert decision.scores.keys() == set(tiny_model.labels)
        for label, p in decision.scores.items():
            assert p == pytest.approx(float(row[f"prob_{label}"]), abs=1e-6)
        assert bool(decision.reasons) == decision.needs_review
        assert (decision.source, decision.model_version, decision.latency_ms) == (
            "archive",
            "v1",
            None,
        )
        assert decision.caller.startswith("triage score")
        assert started - 1 <= decision.received_at.timestamp() <= time.time() + 1
    reasons = {r for d in recorded.values() for r in d.reasons}
    assert reasons and reasons <= {NO_EVIDENCE, BELOW_THRESHOLD}
    assert not _segments(spool)  # every decision reached the store


def test_rows_scored_again_after_a_crash_keep_their_decision_ids(
    models_dir: Path, store_url: str, tmp_path: Path
) -> None:
    """A crash between putting a chunk's decisions on record and saving its checkpoint makes
    --resume score those rows again. Here three chunks' worth: the progress file is put back
    as it was two chunks into a run that recorded five."""
    n, chunk = 1_000, 100
    source = _archive(tmp_path / "in.csv", n)
    out, spool = tmp_path / "scored.csv", tmp_path / "spool"
    record = RecordSettings(store_url, spool, caller="test")
    state = progress_path_for(out)
    saved: list[str] = []

    def crash_after_five_chunks(rows: int) -> None:
        saved.append(state.read_text())
        if len(saved) == 5:
            raise KeyboardInterrupt

    job = ScoreJob(ArchiveSpec((str(source),)), out, models_dir / "current", chunk_size=chunk)
    with pytest.raises(KeyboardInterrupt):
        run_score_job(ScoreJob(**{**vars(job), "record": record}), crash_after_five_chunks)
    state.write_text(saved[1])
    run_id = json.loads(saved[1])["run"]
    assert len(_recorded(store_url)) + len(_segments(spool)) > 0  # some went on record

    resume = ScoreJob(**{**vars(job), "record": record, "resume": True})
    summary = run_score_job(resume)
    assert (summary.rows, summary.scored, summary.recorded) == (n, n, n)
    assert summary.record is not None and summary.record.spooled == 0
    recorded = _recorded(store_url)
    assert len(recorded) == n and len({d.report_id for d in recorded}) == n
    ids = {d.report_id: d.decision_id for d in recorded}
    assert all(ids[f"row{i}"] == str(uuid.uuid5(uuid.UUID(run_id), str(i))) for i in range(n)), (
        "each row's id comes from the run id and its row number"
    )
    assert [row["id"] for row in _output(out)] == [f"row{i}" for i in range(n)]


def test_a_killed_run_resumed_records_every_row_exactly_once(
    models_dir: Path, store_url: str, tmp_path: Path
) -> None:
    n = 4_000
    source = _archive(tmp_path / "big.csv", n)
    out, spool = tmp_path / "scored.csv", tmp_path / "spool"
    command = [sys.executable, "-m", "triage", "score", str(source), "--out", str(out)]
    command += ["--model", str(models_dir / "current"), "--workers", "1", "--chunk-size", "100"]
    command += ["--quiet", "--record", "--store", store_url, "--spool", str(spool)]
    process = subprocess.Popen(command)
    state = progress_path_for(out)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        if state.exists() and json.loads(state.read_text())["summary"]["rows"] >= 1_000:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = json.loads(state.read_text())["summary"]["rows"]
    assert 1_000 <= done_before < n

    assert subprocess.run([*command, "--resume"], check=False).returncode == 0
    recorded = _recorded(store_url)
    by_report = Counter(d.report_id for d in recorded)
    assert len(recorded) == len(by_report) == n, "each row recorded exactly once"
    assert set(by_report) == {f"row{i}" for i in range(n)}
    assert not _segments(spool) and not state.exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount(8)), grown to 8 MiB by remounting."""
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


def test_a_full_spool_disk_stops_the_run_and_resume_records_every_row_once(
    models_dir: Path, tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 3_000  # about 1.2 MB of spool lines: more than the disk holds before the writer rolls
    source = _archive(tmp_path / "in.csv", n)
    out, spool = tmp_path / "scored.csv", small_disk / "spool"
    with store_url_for("sqlite", tmp_path) as url:
        command = ["score", str(source), "--out", str(out), "--quiet", "--chunk-size", "100"]
        command += ["--model", str(models_dir / "current"), "--record", "--store", url]
        command += ["--spool", str(spool)]
        assert main(command) == 1
        err = capsys.readouterr().err
        assert f"cannot append to the decision spool {spool}/" in err
        assert "No space left on device" in err and "--resume" in err and "Traceback" not in err
        done = json.loads(progress_path_for(out).read_text())["summary"]["rows"]
        assert 0 < done < n
        grown = ["mount", "-o", "remount,size=8m", str(small_disk)]
        assert subprocess.run(grown, check=False).returncode == 0
        assert main([*command, "--resume"]) == 0
        recorded = _recorded(url)
    by_report = Counter(d.report_id for d in recorded)
    assert len(recorded) == len(by_report) == n
    assert [row["id"] for row in _output(out)] == [f"row{i}" for i in range(n)]


@contextmanager
def _postgres_refusing_connections(url: str) -> Iterator[None]:
    """The store's database refuses every connection (and its open ones are cut) until the
    block ends: the store is down, as far as the scoring run can tell."""
    name = make_url(url).database
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
    try:
        yield
    finally:
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


class _StoreGoesDown:
    """A progress callback that takes the PostgreSQL store down once the first chunk is done."""

    def __init__(self, url: str) -> None:
        self._outage = _postgres_refusing_connections(url)
        self._down = False

    def __call__(self, rows: int) -> None:
        if not self._down:
            self._outage.__enter__()
            self._down = True

    def end(self) -> None:
        if self._down:
            self._outage.__exit__(None, None, None)
            self._down = False


def test_decisions_a_down_store_cannot_take_stay_spooled_until_the_next_recording_run(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 1_000
    source = _archive(tmp_path / "in.csv", n)
    out, spool = tmp_path / "scored.csv", tmp_path / "spool"
    with store_url_for("postgresql", tmp_path) as url:
        job = ScoreJob(
            ArchiveSpec((str(source),)),
            out,
            models_dir / "current",
            chunk_size=100,
            record=RecordSettings(url, spool),
        )
        outage = _StoreGoesDown(url)
        try:
            summary = run_score_job(job, progress=outage)  # no error: the output is complete
        finally:
            outage.end()
        assert [row["id"] for row in _output(out)] == [f"row{i}" for i in range(n)]
        assert summary.record is not None and summary.recorded == n
        spooled = summary.record.spooled
        assert 900 <= spooled <= n and _segments(spool)
        print_summary(summary, "")
        printed = capsys.readouterr().out
        assert f"decisions recorded: {n:,} in postgresql+psycopg://" in printed
        assert f"{spooled:,} decisions are still spooled in {spool}" in printed
        assert f"`triage score --record --spool {spool}` starts" in printed

        later = _archive(tmp_path / "later.csv", 5, prefix="later")
        command = ["score", str(later), "--out", str(tmp_path / "later.csv.out.csv"), "--quiet"]
        command += ["--model", str(models_dir / "current"), "--record", "--store", url]
        assert main([*command, "--spool", str(spool)]) == 0
        recorded = _recorded(url)
    by_report = Counter(d.report_id for d in recorded)
    assert len(recorded) == len(by_report) == n + 5
    assert set(by_report) == {f"row{i}" for i in range(n)} | {f"later{i}" for i in range(5)}
    assert not _segments(spool)


def test_without_record_no_store_or_spool_is_touched(models_dir: Path, tmp_path: Path) -> None:
    source = _archive(tmp_path / "in.csv", 20)
    db, spool = tmp_path / "record" / "triage.db", tmp_path / "spool"
    command = ["score", str(source), "--out", str(tmp_path / "o.csv"), "--quiet"]
    command += ["--model", str(models_dir / "current"), "--store", f"sqlite:///{db}"]
    assert main([*command, "--spool", str(spool)]) == 0
    assert not db.exists() and not db.parent.exists() and not spool.exists()


def test_resume_refuses_to_start_or_stop_recording_halfway(
    models_dir: Path, tmp_path: Path
) -> None:
    source = _archive(tmp_path / "in.csv", 300)
    out = tmp_path / "o.csv"

    def stop(rows: int) -> None:
        raise KeyboardInterrupt

    job = ScoreJob(ArchiveSpec((str(source),)), out, models_dir / "current", chunk_size=100)
    with pytest.raises(KeyboardInterrupt):
        run_score_job(job, stop)
    record = RecordSettings(f"sqlite:///{tmp_path / 'never.db'}", tmp_path / "spool")
    resumed = ScoreJob(**{**vars(job), "resume": True, "record": record})
    with pytest.raises(TriageError, match=r"its recording of decisions \(--record\) changed"):
        run_score_job(resumed)
    assert not (tmp_path / "never.db").exists()


def test_a_dask_run_records_every_row(models_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    n = 300
    source = _archive(tmp_path / "in.csv", n)
    with store_url_for("sqlite", tmp_path) as url:
        command = ["score", str(source), "--out", str(tmp_path / "o.jsonl"), "--quiet"]
        command += ["--model", str(models_dir / "current"), "--dask", "local", "--workers", "1"]
        command += ["--chunk-size", "64", "--record", "--store", url]
        assert main([*command, "--spool", str(tmp_path / "spool")]) == 0
        recorded = _recorded(url)
    assert sorted(d.report_id for d in recorded) == sorted(f"row{i}" for i in range(n))


def test_a_decision_the_store_refuses_is_counted_and_kept_not_claimed(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    text = json.dumps(TEXTS[0])
    source.write_text(f'{{"id": "a-b", "text": {text}}}\n{{"id": "ok", "text": {text}}}\n')
    spool = tmp_path / "spool"
    with store_url_for("postgresql", tmp_path) as url:
        # A store that refuses one row (a constraint an operator added): the record maps U+0000,
        # once the way to make PostgreSQL refuse a decision, so the refusal is made explicit.
        store = open_store(url)
        try:
            with store.connect() as connection:
                connection.exec_driver_sql(
                    "ALTER TABLE decisions ADD CONSTRAINT no_a_b CHECK (report_id <> 'a-b')"
                )
        finally:
            store.close()
        command = ["score", str(source), "--out", str(tmp_path / "o.csv"), "--record"]
        command += ["--model", str(models_dir / "current"), "--store", url]
        assert main([*command, "--spool", str(spool)]) == 0
        assert [d.report_id for d in _recorded(url)] == ["ok"]
    printed = capsys.readouterr().out
    assert "1 decision was refused by the store" in printed
    assert f"kept in {spool / 'rejected.jsonl'}" in printed
    assert len((spool / "rejected.jsonl").read_text().splitlines()) == 1
