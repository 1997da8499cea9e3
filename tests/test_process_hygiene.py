"""No process outlives `triage score` or `triage serve`, however they end (SIGKILL included)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from triage.archive.job import progress_path_for
from triage.core.artifacts import CURRENT

from .conftest import TINY

MARKER = "TRIAGE_TEST_PROCESS_TREE"


def _tree(marker: str) -> set[int]:
    """Every live process (zombies excluded) whose environment carries ``marker``: the
    command's own process and everything it started, whoever their parent is now."""
    needle = f"{MARKER}={marker}".encode() + b"\0"
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours
            continue
        if needle in environ and state != "Z":
            found.add(int(entry.name))
    return found


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _wait_until_gone(marker: str, seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while (left := _tree(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _kill_leftovers(pids: set[int]) -> None:
    for pid in pids:  # so that a failing run does not leave them behind either
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _environment(marker: str) -> dict[str, str]:
    return {**os.environ, MARKER: marker}


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_score_run_leaves_no_process_behind(
    models_dir: Path, tmp_path: Path, kill: signal.Signals
) -> None:
    texts = [json.loads(line)["text"] for line in TINY.read_text("utf-8").splitlines()]
    source = tmp_path / "big.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for i in range(20_000):
            f.write(json.dumps({"id": f"r{i}", "text": f"{texts[i % len(texts)]} {i}"}) + "\n")
    out = tmp_path / "scored.jsonl"
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "triage",
            "score",
            str(source),
            "--out",
            str(out),
            "--model",
            str(models_dir / CURRENT),
            "--workers",
            "2",
            "--chunk-size",
            "100",
            "--quiet",
        ],
        env=_environment(marker),
    )
    state = progress_path_for(out)
    deadline = time.monotonic() + 60
    try:
        # Running for real: chunks come back from the workers (fork server, resource tracker
        # and two workers all started).
        while not (state.exists() and len(_tree(marker)) >= 4):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.02)
        process.send_signal(kill)
        process.wait(timeout=30)
        left = _wait_until_gone(marker, 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _kill_leftovers(left)
    assert left == set(), f"left behind after {kill.name}: {sorted(left)}"


@contextlib.contextmanager
def _serving(
    models_dir: Path, tmp_path: Path, marker: str, *options: str
) -> Iterator[subprocess.Popen[str]]:
    """`triage serve` on port 0 under ``marker``, once it says it is serving; killed on the way
    out if the test has not ended it."""
    log = (tmp_path / "serve.log").open("w")
    command = [sys.executable, "-m", "triage", "serve", "--port", "0", "--watch", "0"]
    process = subprocess.Popen(
        [*command, "--model", str(models_dir / CURRENT), "--access-log", "off", *options],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=_environment(marker),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert re.search(r"serving on \S+", line), line + (tmp_path / "serve.log").read_text()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def test_a_killed_server_leaves_no_model_process_behind_even_a_stopped_one(
    models_dir: Path, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    with _serving(models_dir, tmp_path, marker, "--workers", "2", "--no-record") as process:
        tree = _tree(marker)
        # The model processes are the fork server's children (the server -> fork server ->
        # model processes); one of them is stopped, as a hung one would be: it cannot run any
        # code of its own to notice that the server is gone.
        model_processes = {pid for pid in tree if _parent(pid) in tree - {process.pid}}
        assert len(model_processes) == 2, tree
        os.kill(min(model_processes), signal.SIGSTOP)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        left = _wait_until_gone(marker, 10)
    _kill_leftovers(left)
    assert left == set(), f"left behind after SIGKILL: {sorted(left)}"


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_recording_server_leaves_no_journal_writer_behind(
    models_dir: Path, tmp_path: Path, kill: signal.Signals
) -> None:
    """The decision journal's writer process (and the fork server it starts from) ends with
    the server, killed outright or stopped."""
    marker = uuid.uuid4().hex
    store = ("--store", f"sqlite:///{tmp_path / 'record.db'}", "--spool", str(tmp_path / "spool"))
    with _serving(
        models_dir, tmp_path, marker, "--workers", "0", "--quality-every", "0", *store
    ) as process:
        writers = {pid for pid in _tree(marker) if _is_journal_writer(pid)}
        assert writers, f"no journal writer process in {sorted(_tree(marker))}"
        process.send_signal(kill)
        process.wait(timeout=30)
        left = _wait_until_gone(marker, 10)
    _kill_leftovers(left)
    assert left == set(), f"left behind after {kill.name}: {sorted(left)}"


def _is_journal_writer(pid: int) -> bool:
    """Whether ``pid`` holds the spool's writer lock open (the writer process does)."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).endswith("/spool/writer.lock"):
                    return True
    return False
