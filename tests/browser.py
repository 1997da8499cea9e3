"""The review desk as a reviewer meets it: a real `triage serve` fills a real store, a real
`triage review` serves it, and Debian's Chromium, driven by Playwright, does the clicking.

Nothing here downloads a browser: the tests use /usr/bin/chromium (installed by .ci/chromium)
and skip without it, except in CI, where a missing browser fails the run.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import grpc
import pytest

from triage.core.artifacts import CURRENT
from triage.review.accounts import add_account
from triage.store.crypto import generate_key
from triage.store.database import open_store
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium that talks to nothing but the desk: no sandbox (containers lack the user
# namespaces it needs), no GPU, no background fetches, no component updates, no first-run UI.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 400, "height": 800}
START_SECONDS = 60.0  # a process that has not said where it serves by then has failed
STORE_SECONDS = 30.0  # decisions answered must be in the store by then

REVIEWER = "alice"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Report:
    report_id: str
    text: str


# A dozen reports or so: three the tiny model is sure of (its own training rows), the rest
# unsure, four of them with nothing it can read (no_evidence: the queue's head, margin 0), and
# one report sent twice, so that an item has an earlier decision for its report id. Every text
# is unique, so that a grep for it means it.
REPORTS: tuple[Report, ...] = (
    Report(
        "sure-1",
        "A man was filming the security barriers and the staff entrance of the stadium for "
        "twenty minutes and ran off when a steward approached him.",
    ),
    Report(
        "sure-2",
        "I sent money to a woman I met on a dating app who said she needed it for a flight, "
        "now she has blocked me.",
    ),
    Report(
        "sure-3",
        "Two cars collided at the roundabout, the road is closed while the scene is cleared.",
    ),
    Report(
        "unsure-1", "My neighbour says a parcel went missing from the porch on Tuesday afternoon."
    ),
    Report(
        "unsure-2",
        "There was a loud argument outside the pub and a window got broken around midnight.",
    ),
    Report(
        "unsure-3",
        "My email account was hacked and messages asking for money were sent to all my contacts.",
    ),
    Report(
        "unsure-4",
        "Ransomware encrypted the surgery's patient files and the screen demands bitcoin.",
    ),
    Report("unsure-5", "Kids were setting off fireworks in the park and a dog was frightened."),
    Report("unreadable-1", "Звонок в 23:15, подробности позже."),
    Report("unreadable-2", "Αναφορά για θόρυβο στον δρόμο."),
    Report("unreadable-3", "ქუჩაში ხმაური იყო გვიან ღამით."),
    Report("unreadable-4", "Փողոցում աղմուկ կար ուշ գիշերով։"),
    Report(
        "unsure-2",
        "Update on the pub: the landlord says a phishing email took the card details of the till "
        "account.",
    ),
)


def require_chromium() -> Path:
    """/usr/bin/chromium, or skip (fail in CI, where .ci/chromium must have installed it)."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright. Each launch runs on a fresh temporary profile
    (Playwright makes and deletes it), and each test context starts with no cookies."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class TriageProcess:
    """One ``python -m triage ...`` process: its address from the "serving on" line it prints,
    its standard error kept in a file (the log a report text must never reach). Started at
    once; :meth:`serving` waits for the address, so that two processes can start side by side.
    """

    def __init__(self, arguments: Sequence[str], log: Path) -> None:
        self.log = log
        self._address: str | None = None
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "triage", "--log-level", "debug", *arguments],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=_without_triage_settings(),
            )

    def serving(self) -> TriageProcess:
        """Wait for the "serving on" line (failing with the log if it never comes)."""
        if self._address is not None:
            return self
        assert self.process.stdout is not None
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline:
                if selector.select(timeout=0.5):
                    line = self.process.stdout.readline()
                    break
                if self.process.poll() is not None:
                    break
        match = re.search(rb"serving on (\S+)", line)
        if match is None:
            self.stop()
            raise AssertionError(f"triage did not start ({line!r}):\n{self.log_text()}")
        self._address = match.group(1).decode()
        # The line should mean "connect now"; a desk that prints it before its socket listens
        # is caught by its own test, and waited for here so that the other tests still run.
        deadline = time.monotonic() + START_SECONDS
        while not accepts_connections(self._address):
            assert time.monotonic() < deadline, f"nothing listens at {self._address}"
            time.sleep(0.02)
        return self

    def serving_line(self) -> str:
        """The address in the "serving on" line, without waiting for anything else."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(rb"serving on (\S+)", line)
        assert match, f"{line!r}\n{self.log_text()}"
        self._address = match.group(1).decode()
        return self._address

    @property
    def address(self) -> str:
        assert self._address is not None, "call serving() first"
        return self._address

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _without_triage_settings() -> dict[str, str]:
    """The environment minus TRIAGE_* settings: only the flags given here configure the child."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}


def write_key_file(path: Path) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(generate_key() + b"\n")
    return path


@dataclass(frozen=True)
class Site:
    """A running desk over a store that a real server filled with :data:`REPORTS`."""

    address: str  # http://127.0.0.1:PORT of `triage review`
    store_url: str
    answers: dict[str, pb.ClassifyResponse]  # the service's answers, by decision id
    serve: TriageProcess  # stopped once the store was filled; its log stays
    desk: TriageProcess


@contextmanager
def review_site(models_dir: Path, store_url: str, work: Path) -> Iterator[Site]:
    """`triage serve` (with a review queue) and `triage review` side by side over one store;
    :data:`REPORTS` sent through gRPC Classify and waited for in the store; the server stopped."""
    open_store(store_url).close()  # the schema first: two processes must not both create it
    key_file = write_key_file(work / "store.key")
    accounts = write_accounts(work / "accounts")
    serve = TriageProcess(
        [
            "serve",
            "--port",
            "0",
            "--model",
            str(models_dir / CURRENT),
            "--workers",
            "0",
            "--watch",
            "0",
            "--store",
            store_url,
            "--spool",
            str(work / "spool"),
            "--review-queue",
            "--store-key-file",
            str(key_file),
        ],
        work / "serve.log",
    )
    desk = desk_process(models_dir, store_url, key_file, accounts, work / "review.log")
    try:
        with grpc.insecure_channel(serve.serving().address) as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            answers = [
                stub.Classify(pb.ClassifyRequest(text=r.text, report_id=r.report_id), timeout=30)
                for r in REPORTS
            ]
        wait_for_rows(store_url, "decisions", len(REPORTS))
        serve.stop()
        yield Site(
            address=desk.serving().address,
            store_url=store_url,
            answers={a.decision_id: a for a in answers},
            serve=serve,
            desk=desk,
        )
    finally:
        serve.stop()
        desk.stop()


def write_accounts(path: Path) -> Path:
    add_account(path, REVIEWER, "reviewer", PASSWORD)
    return path


def desk_process(
    models_dir: Path, store_url: str, key_file: Path, accounts: Path, log: Path
) -> TriageProcess:
    """`triage review` on a free loopback port (started, not yet waited for)."""
    return TriageProcess(
        [
            "review",
            "--port",
            "0",
            "--store",
            store_url,
            "--models",
            str(models_dir),
            "--accounts",
            str(accounts),
            "--store-key-file",
            str(key_file),
        ],
        log,
    )


def accepts_connections(address: str) -> bool:
    """Does something accept a TCP connection at ``address`` (scheme://host:port) right now?"""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    assert parts.hostname is not None and parts.port is not None
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def wait_for_rows(store_url: str, table: str, rows: int) -> None:
    store = open_store(store_url, create=False)
    try:
        deadline = time.monotonic() + STORE_SECONDS
        while store.count(table) < rows:
            assert time.monotonic() < deadline, f"{table}: {store.count(table)} rows, not {rows}"
            time.sleep(0.05)
    finally:
        store.close()


@dataclass(frozen=True)
class FeedbackRow:
    decision_id: str
    old_label: str
    new_label: str
    reviewer: str
    source: str
    note: str


def feedback_rows(store_url: str) -> list[FeedbackRow]:
    """Every feedback row in the store, oldest first."""
    from sqlalchemy import select

    from triage.store import schema

    table = schema.feedback
    store = open_store(store_url, create=False)
    try:
        with store.connect() as connection:
            rows = connection.execute(
                select(
                    table.c.decision_id,
                    table.c.old_label,
                    table.c.new_label,
                    table.c.reviewer,
                    table.c.source,
                    table.c.note,
                ).order_by(table.c.created_at, table.c.feedback_id)
            ).all()
    finally:
        store.close()
    return [FeedbackRow(*row) for row in rows]


def reasons_on_record(store_url: str) -> dict[str, tuple[str, ...]]:
    """The review reasons of every decision, by decision id (the answers do not carry them)."""
    from sqlalchemy import select

    from triage.store import schema

    table = schema.decisions
    store = open_store(store_url, create=False)
    try:
        with store.connect() as connection:
            rows = connection.execute(select(table.c.decision_id, table.c.reasons)).all()
    finally:
        store.close()
    return {decision_id: tuple(filter(None, reasons.split(","))) for decision_id, reasons in rows}


def margin(answer: pb.ClassifyResponse) -> float:
    """The gap between the answer's two highest scores: the smaller, the more a label is
    worth to the model."""
    top = sorted((s.probability for s in answer.scores), reverse=True)
    return top[0] - top[1]
