"""A real `triage serve` process recording its decisions, a gRPC load on it from several client
threads that keeps the decision id of every answer it got, and readings of the store: the tools
of the server-level fault tests (tests/test_record_faults.py)."""

from __future__ import annotations

import json
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
from sqlalchemy import func, select

from triage.core.artifacts import CURRENT
from triage.store import schema
from triage.store.database import open_store
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import REPO, TINY

WAIT = 60.0  # generous: conditions are waited for, never timed
CALL_SECONDS = 30.0  # a call's deadline: far beyond any answer, so only a fault fails a call
FAILURE_PAUSE = 0.05
TEXTS = tuple(json.loads(line)["text"] for line in TINY.read_text("utf-8").splitlines())
METRIC_LINE = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*) (\S+)")  # a sample without labels


def wait_for(
    condition: Callable[[], bool],
    what: str,
    seconds: float = WAIT,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until it holds; AssertionError naming ``what`` after ``seconds``,
    with what ``explain`` says about the state of things then."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            state = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out waiting until {what}{state}")
        time.sleep(0.05)


# -- the server ------------------------------------------------------------------------------


class ServeProcess:
    """``python -m triage serve`` over ``models/current``, recording into ``store_url`` through
    the journal in ``spool``, on a gRPC port and a metrics port it picks; its log in ``log``."""

    def __init__(self, models_dir: Path, store_url: str, spool: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "triage",
                "serve",
                "--port",
                "0",
                "--metrics-port",
                "0",
                "--model",
                str(models_dir / CURRENT),
                "--workers",
                "0",  # in the server process: the record is what is under test
                "--store",
                store_url,
                "--spool",
                str(spool),
                "--quality-every",
                "0",
                "--watch",
                "0",
                "--access-log",
                "off",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        try:
            self.target = self._announced(r"serving on (\S+)")
            metrics = self._announced(r"metrics on (\S+)")
            self.metrics_url = f"http://{metrics}/metrics"
        except BaseException:
            self.close()
            raise

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")  # the end: the process closed its output

    def _announced(self, pattern: str) -> str:
        try:
            line = self._lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"the server did not start:\n{self.log_tail()}") from None
        found = re.search(pattern, line)
        assert found, f"the server printed {line!r}, not {pattern!r}:\n{self.log_tail()}"
        return found.group(1)

    def metrics(self) -> dict[str, float]:
        """Every unlabelled sample of /metrics, by name."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as page:
            text = page.read().decode("utf-8")
        return {
            found.group(1): float(found.group(2))
            for line in text.splitlines()
            if (found := METRIC_LINE.fullmatch(line))
        }

    def drained(self) -> bool:
        """Every decision the server recorded is in the store (none waits in its journal)."""
        return self.metrics()["triage_record_pending"] == 0

    def kill(self) -> None:
        """kill -9: no handler runs, nothing is flushed or closed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(WAIT)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops a replica; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(WAIT)

    def log_tail(self, lines: int = 40) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self._reader.join(WAIT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log_file.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# -- the load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedCall:
    """A call that got no answer: its status, and the reports it asked about."""

    code: str
    details: str
    report_ids: tuple[str, ...]


class Load:
    """Client threads, each on a channel of its own, calling Classify and ClassifyBatch (2 to 8
    reports) back to back until stopped. Every answered report's decision id is kept with its
    report id (acknowledged); a call that fails is kept with its reports (they were in flight).
    With ``stop_on_failure`` a thread stops at its first failed call (the server is gone)."""

    def __init__(
        self, target: str, threads: int = 4, prefix: str = "r", stop_on_failure: bool = False
    ) -> None:
        self.target = target
        self.prefix = prefix
        self.stop_on_failure = stop_on_failure
        self._acked: list[dict[str, str]] = [{} for _ in range(threads)]
        self._failed: list[list[FailedCall]] = [[] for _ in range(threads)]
        self.unrecorded: list[str] = []  # report ids answered without a decision id
        self.crashes: list[BaseException] = []  # anything but a failed call: a test bug
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def _run(self, number: int) -> None:
        chooser = random.Random(number)
        acked, failed = self._acked[number], self._failed[number]
        try:
            with grpc.insecure_channel(self.target) as channel:
                stub = pb_grpc.TriageServiceStub(channel)
                call = 0
                while not self._stopping.is_set():
                    size = 1 if call % 2 == 0 else chooser.randint(2, 8)
                    reports = [
                        pb.ClassifyRequest(
                            text=chooser.choice(TEXTS),
                            report_id=f"{self.prefix}{number}-{call}-{i}",
                        )
                        for i in range(size)
                    ]
                    call += 1
                    try:
                        if size == 1:
                            answers = [stub.Classify(reports[0], timeout=CALL_SECONDS)]
                        else:
                            batch = pb.ClassifyBatchRequest(reports=reports)
                            answers = list(stub.ClassifyBatch(batch, timeout=CALL_SECONDS).results)
                    except grpc.RpcError as err:
                        status = (err.code().name, err.details() or "")
                        if not isinstance(err, grpc.Call):
                            status = ("UNKNOWN", type(err).__name__)
                        failed.append(FailedCall(*status, tuple(r.report_id for r in reports)))
                        if self.stop_on_failure:
                            return
                        time.sleep(FAILURE_PAUSE)  # no busy loop against a server that is gone
                        continue
                    for report, answer in zip(reports, answers, strict=True):
                        if answer.decision_id:
                            acked[answer.decision_id] = report.report_id
                        else:
                            self.unrecorded.append(report.report_id)
        except BaseException as err:
            self.crashes.append(err)

    @property
    def count(self) -> int:
        """Reports answered so far (safe to read while the load runs)."""
        return sum(len(acked) for acked in self._acked)

    def answered_more(self, than: int, by: int) -> Callable[[], bool]:
        """A condition: ``by`` more reports answered than ``than``, or a thread gave up."""
        return lambda: self.count >= than + by or not any(t.is_alive() for t in self._threads)

    def summary(self) -> str:
        """How the load went, for a failure message."""
        failed = self.failed()
        codes = Counter(f.code for f in failed)
        first = f"; first: {failed[0].code} {failed[0].details!r}" if failed else ""
        alive = sum(t.is_alive() for t in self._threads)
        return (
            f"load: {self.count} reports answered, {len(self.unrecorded)} without a decision "
            f"id, failed calls {dict(codes)}{first}; {alive} client threads running; "
            f"crashes {self.crashes!r}"
        )

    def acked(self) -> dict[str, str]:
        """Every acknowledged decision id with its report id (read after :meth:`stop`)."""
        return {k: v for acked in self._acked for k, v in acked.items()}

    def failed(self) -> list[FailedCall]:
        return [f for failed in self._failed for f in failed]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop calling and wait for every call in flight to end."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in self._threads), "a client thread is stuck"

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# -- the store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """The decisions in a store: report id by decision id, and the raw counts."""

    report_of: dict[str, str]
    rows: int
    distinct_ids: int
    distinct_reports: int


def stored_decisions(url: str) -> Stored:
    """Read the store afresh (a new connection, so a restarted server is no trouble)."""
    store = open_store(url, create=False)
    try:
        table = schema.decisions.c
        with store.connect() as connection:
            pairs = connection.execute(select(table.decision_id, table.report_id)).all()
            rows, distinct_ids, distinct_reports = connection.execute(
                select(
                    func.count(),
                    func.count(func.distinct(table.decision_id)),
                    func.count(func.distinct(table.report_id)),
                ).select_from(schema.decisions)
            ).one()
    finally:
        store.close()
    return Stored(
        {decision_id: report_id for decision_id, report_id in pairs},
        int(rows),
        int(distinct_ids),
        int(distinct_reports),
    )


def spool_segments(spool: Path) -> list[Path]:
    """The journal's segment files: decisions not yet known to be in the store."""
    return sorted(spool.glob("segment-*.jsonl"))
