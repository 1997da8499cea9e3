"""Scale-out: the same job on a real dask.distributed cluster, same files, same resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from triage.archive.job import ScoreJob, progress_path_for, run_score_job
from triage.archive.readers import ArchiveSpec
from triage.cli import main
from triage.training.corpus import read_labelled

from .conftest import TINY

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

TEXTS = read_labelled(TINY).texts


def _archive_with_bad_rows(folder: Path) -> tuple[Path, Path]:
    """A CSV and a JSONL file, each with good rows around undecodable, empty and broken ones
    (in the CSV, an unclosed quote that would swallow the next row)."""
    csv_path = folder / "calls.csv"
    lines = [b"id,text"]
    lines += [f'c{i},"{TEXTS[i % len(TEXTS)]} ({i})"'.encode() for i in range(40)]
    lines.insert(5, b'c-bytes,"caf\xe9 robbery"')
    lines.insert(9, b'c-empty,"   "')
    lines.insert(15, b'c-open,"an unclosed quote')
    csv_path.write_bytes(b"\n".join(lines) + b"\n")
    jsonl_path = folder / "notes.jsonl"
    records = [
        json.dumps({"id": f"j{i}", "text": f"{TEXTS[(i * 7) % len(TEXTS)]} [{i}]"}).encode()
        for i in range(30)
    ]
    records.insert(3, b"{not json")
    records.insert(11, b'{"id": "j-bytes", "text": "stolen \xff\xfe card"}')
    records.insert(20, b'{"id": "j-nofield", "body": "misplaced"}')
    jsonl_path.write_bytes(b"\n".join(records) + b"\n")
    return csv_path, jsonl_path


def test_dask_local_writes_the_same_output_and_errors_file_as_a_local_run(
    models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "warning")
    inputs = [str(p) for p in _archive_with_bad_rows(tmp_path)]
    model = ["--model", str(models_dir / "current")]
    here, there = tmp_path / "local.jsonl", tmp_path / "dask.jsonl"
    assert main(["score", *inputs, "--out", str(here), *model, "--workers", "1"]) == 0
    capsys.readouterr()
    command = ["score", *inputs, "--out", str(there), *model, "--dask", "local", "--workers", "1"]
    # A chunk size that cuts the archive unlike the local run: the files must not show it.
    assert main([*command, "--chunk-size", "7"]) == 0

    assert there.read_bytes() == here.read_bytes()
    errors = tmp_path / "dask.jsonl.errors.jsonl"
    assert errors.read_bytes() == (tmp_path / "local.jsonl.errors.jsonl").read_bytes()
    reasons = {e["id"]: e["reason"] for e in map(json.loads, errors.read_text().splitlines())}
    assert set(reasons) == {
        "c-bytes",
        "c-empty",
        "c-open",
        "notes.jsonl:4",
        "j-bytes",
        "j-nofield",
    }
    assert "UTF-8" in reasons["c-bytes"] and "UTF-8" in reasons["j-bytes"]
    assert "empty" in reasons["c-empty"] and "not valid JSON" in reasons["notes.jsonl:4"]
    assert "missing field 'text'" in reasons["j-nofield"]
    assert "unclosed quote? a quoted field runs over lines 16-17" in reasons["c-open"]
    scored = [json.loads(line)["id"] for line in there.read_text().splitlines()]
    assert scored == [f"c{i}" for i in range(40)] + [f"j{i}" for i in range(30)]
    printed = capsys.readouterr().out
    assert "scored 70 of 76 rows on Dask with model v1" in printed
    assert f"errors: 6 (see {errors})" in printed
    assert not progress_path_for(there).exists() and not (tmp_path / "dask.jsonl.parts").exists()


def test_a_running_scheduler_gets_chunks_of_chunk_size_and_is_left_running(
    models_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "id,text\n" + "".join(f'd{i},"{TEXTS[i % len(TEXTS)]} {i}"\n' for i in range(400)),
        "utf-8",
    )
    spec = ArchiveSpec((str(source),))
    local_out, dask_out = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    run_score_job(ScoreJob(spec, local_out, models_dir / "current", chunk_size=500))
    finished: list[int] = []  # rows per chunk, as the progress display sees them
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        job = ScoreJob(
            spec,
            dask_out,
            models_dir / "current",
            chunk_size=64,
            dask_scheduler=cluster.scheduler_address,
        )
        summary = run_score_job(job, progress=finished.append)
        with distributed.Client(cluster, set_as_default=False) as client:
            assert len(client.nthreads()) == 2  # someone else's cluster: not shut down
    assert finished == [64] * 6 + [16]
    assert pq.read_table(dask_out).equals(pq.read_table(local_out))
    assert (summary.rows, summary.scored, summary.errors) == (400, 400, 0)


def test_a_killed_dask_run_resumes_to_every_row_exactly_once(
    models_dir: Path, tmp_path: Path
) -> None:
    n = 12_000
    source = tmp_path / "big.csv"
    source.write_text(
        "id,text\n" + "".join(f'row{i},"{TEXTS[i % len(TEXTS)]} case {i}"\n' for i in range(n)),
        "utf-8",
    )
    out = tmp_path / "scored.csv"
    score = [sys.executable, "-m", "triage", "score", str(source), "--model"]
    score += [str(models_dir / "current"), "--chunk-size", "200", "--quiet"]
    on_dask = [*score, "--out", str(out), "--dask", "local", "--workers", "1"]
    driver = subprocess.Popen(on_dask, env=_quiet_dask())
    state = progress_path_for(out)
    deadline = time.monotonic() + 120
    while True:
        assert driver.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        if state.exists() and json.loads(state.read_text())["summary"]["rows"] > 0:
            break
        time.sleep(0.01)
    cluster = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    done_before = json.loads(state.read_text())["summary"]["rows"]
    assert 0 < done_before < n and done_before % 200 == 0
    # The workers notice their driver is gone and stop: a killed run leaves no orphans.
    _, alive = psutil.wait_procs(cluster, timeout=30)
    assert not alive
    with out.open("ab") as torn:  # what a kill in the middle of a write leaves behind
        torn.write(b"row99999,gen")

    assert subprocess.run([*on_dask, "--resume"], env=_quiet_dask(), check=False).returncode == 0
    assert not state.exists()
    clean = tmp_path / "clean.csv"
    run_score_job(ScoreJob(ArchiveSpec((str(source),)), clean, models_dir / "current"))
    assert out.read_bytes() == clean.read_bytes()
    ids = [line.split(",", 1)[0] for line in out.read_text().splitlines()[1:]]
    assert ids == [f"row{i}" for i in range(n)]


def _quiet_dask() -> dict[str, str]:
    return {**os.environ, "DASK_LOGGING__DISTRIBUTED": "error"}
