"""The review desk's targets: with 100,000 decisions in the store, the queue page renders in
<= 200 ms and a relabel round trip (POST label -> 303) takes <= 50 ms, over HTTP on loopback
against a real `triage review` process, on SQLite and on PostgreSQL.

The store is filled directly (decisions as `triage serve` records them, a fifth of them needing
review with their texts sealed, training reports with a reference each, 5% of those already
labelled), so that the figure is the desk's and not the filling's. Each figure is the median of
20 requests after one warm-up request, from one signed-in session with keep-alive.

    python bench/review_bench.py [--decisions N] [--backends sqlite postgresql]
    python bench/run.py --only review
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg

from triage.core.model import BELOW_THRESHOLD, NO_EVIDENCE, load_model
from triage.review.accounts import add_account
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import open_store
from triage.store.records import Decision, Feedback, new_id
from triage.training.corpus import read_labelled

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "training" / "data" / "train.jsonl"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
QUEUE_TARGET_MS = 200.0
RELABEL_TARGET_MS = 50.0
REQUESTS = 20
REVIEW_SHARE = 0.2  # decisions that need review (their texts are kept)
LABELLED_SHARE = 0.05  # of those, already labelled by someone
BATCH = 5_000
NAME, PASSWORD = "bench", "a bench password, long enough"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ITEM = re.compile(r'href="/item/([0-9a-f-]{36})"')


@contextmanager
def fresh_store(backend: str, work: Path) -> Iterator[str]:
    """An empty store: an SQLite file, or a new database on the local PostgreSQL server."""
    if backend == "sqlite":
        yield f"sqlite:///{work / 'record.db'}"
        return
    name = f"triage_bench_review_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(
    store_url: str,
    cipher: TextCipher,
    version: str,
    labels: Sequence[str],
    texts: Sequence[str],
    decisions: int,
    seed: int = 0,
) -> dict[str, int]:
    """``decisions`` decisions of model ``version`` over the last 14 days, as a live server
    would record them; returns how many need review and how many of those are labelled."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    store = open_store(store_url)
    counts = {"decisions": 0, "needs_review": 0, "labelled": 0}
    try:
        for start in range(0, decisions, BATCH):
            batch: list[Decision] = []
            feedback: list[Feedback] = []
            for i in range(start, min(start + BATCH, decisions)):
                received = now - timedelta(seconds=rng.uniform(0, 14 * 86_400))
                unsure = rng.random() < REVIEW_SHARE
                weights = [rng.gammavariate(0.6 if unsure else 0.15, 1.0) for _ in labels]
                total = sum(weights) or 1.0
                scores = {label: w / total for label, w in zip(labels, weights, strict=True)}
                label = max(scores, key=scores.__getitem__)
                reasons: tuple[str, ...] = ()
                text = None
                if unsure:
                    reasons = (
                        (NO_EVIDENCE, BELOW_THRESHOLD)
                        if rng.random() < 0.05
                        else (BELOW_THRESHOLD,)
                    )
                    # Training reports (median 459 characters), each ~14 times among 20,000
                    # with its own reference: a few near-copies per page for the diversity step.
                    body = f"Reference {i}. {rng.choice(texts)}"
                    text = cipher.seal(body, now + timedelta(days=30))
                decision = Decision(
                    decision_id=new_id(received.timestamp()),
                    report_id=f"r-{i}",
                    received_at=received,
                    model_version=version,
                    source="Classify",
                    label=label,
                    confidence=scores[label],
                    scores=scores,
                    needs_review=unsure,
                    reasons=reasons,
                    caller="bench",
                    latency_ms=rng.uniform(1, 5),
                    text=text,
                )
                batch.append(decision)
                if unsure and rng.random() < LABELLED_SHARE:
                    feedback.append(
                        Feedback(
                            feedback_id=new_id(received.timestamp() + 60),
                            decision_id=decision.decision_id,
                            report_id=decision.report_id,
                            old_label=label,
                            new_label=rng.choice(list(labels)),
                            reviewer="earlier",
                            note="",
                            created_at=received + timedelta(minutes=1),
                            source="review",
                            recorded_by="earlier",
                        )
                    )
            store.insert_decisions(batch, count=False)
            store.insert_feedback(feedback)
            counts["decisions"] += len(batch)
            counts["needs_review"] += sum(d.needs_review for d in batch)
            counts["labelled"] += len(feedback)
    finally:
        store.close()
    return counts


def _feedback_rows(store_url: str) -> int:
    store = open_store(store_url, create=False)
    try:
        return store.count("feedback")
    finally:
        store.close()


class DeskProcess:
    """`triage review` on a free loopback port, quiet (warnings only) so that logging costs
    what it costs in production."""

    def __init__(self, store_url: str, models: Path, accounts: Path, key_file: Path) -> None:
        self.log = accounts.with_name("review.log")
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "triage",
                    "--log-level",
                    "warning",
                    "review",
                    "--port",
                    "0",
                    "--store",
                    store_url,
                    "--models",
                    str(models),
                    "--accounts",
                    str(accounts),
                    "--store-key-file",
                    str(key_file),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")},
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        match = re.search(r"serving on (\S+)", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"triage review did not start: {line!r}\n{self.log.read_text()}")
        self.address = match.group(1)
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        # The line should already mean "listening"; wait in case it came a moment early.
        parts = urlsplit(self.address)
        assert parts.hostname is not None and parts.port is not None
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((parts.hostname, parts.port), timeout=5).close()
                return
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Session:
    """One browser-like session over one keep-alive connection (the standard library's
    client: no third-party client cost in the figures), keeping the desk's session cookie."""

    def __init__(self, address: str) -> None:
        parts = urlsplit(address)
        assert parts.hostname is not None and parts.port is not None
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Answer:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode("utf-8")
        for cookie in response.headers.get_all("set-cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return Answer(response.status, text)

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


def sign_in(address: str) -> Session:
    session = Session(address)
    token = _CSRF.search(session.request("GET", "/login").text)
    assert token, "no CSRF token on the sign-in page"
    form = {"name": NAME, "password": PASSWORD, "csrf": token.group(1), "next": "/"}
    answer = session.request("POST", "/login", form)
    if answer.status != 303:
        raise RuntimeError(f"sign-in failed: HTTP {answer.status}")
    return session


def median_ms(request: Callable[[], Answer], expected: int) -> tuple[float, list[float]]:
    """The median of :data:`REQUESTS` timed calls of ``request``, after one untimed warm-up."""
    request()
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = request()
        times.append((time.perf_counter() - started) * 1000)
        if answer.status != expected:
            raise RuntimeError(f"HTTP {answer.status} where {expected} was expected")
    return statistics.median(times), times


def bench_backend(
    backend: str, model: Path, decisions: int, texts: Sequence[str]
) -> dict[str, Any]:
    loaded = load_model(model)
    labels = list(loaded.labels)
    with tempfile.TemporaryDirectory(prefix=f"triage-bench-review-{backend}-") as tmp:
        work = Path(tmp)
        key = generate_key()
        key_file = work / "store.key"
        key_file.write_bytes(key + b"\n")
        key_file.chmod(0o600)
        accounts = work / "accounts"
        add_account(accounts, NAME, "reviewer", PASSWORD)
        with fresh_store(backend, work) as store_url:
            started = time.perf_counter()
            counts = fill(
                store_url, TextCipher.from_keys([key]), loaded.version, labels, texts, decisions
            )
            fill_seconds = time.perf_counter() - started
            desk = DeskProcess(store_url, model.parent, accounts, key_file)
            try:
                session = sign_in(desk.address)
                try:
                    queue_ms, queue_runs = median_ms(lambda: session.request("GET", "/queue"), 200)
                    page = session.request("GET", "/queue").text
                    csrf = _CSRF.search(page)
                    assert csrf, "no CSRF token on the queue page"
                    ids = iter(dict.fromkeys(_ITEM.findall(page)))
                    item_ms, _ = median_ms(
                        lambda: session.request("GET", f"/item/{next(ids)}"), 200
                    )
                    form = {"label": labels[0], "csrf": csrf.group(1)}
                    before = _feedback_rows(store_url)
                    relabel_ms, relabel_runs = median_ms(
                        lambda: session.request("POST", f"/item/{next(ids)}/label", form), 303
                    )
                    if _feedback_rows(store_url) != before + REQUESTS + 1:
                        raise RuntimeError("a relabel answered 303 but recorded nothing")
                finally:
                    session.close()
            finally:
                desk.stop()
    return {
        **counts,
        "fill_seconds": fill_seconds,
        "queue_ms": queue_ms,
        "queue_runs_ms": queue_runs,
        "item_ms": item_ms,
        "relabel_ms": relabel_ms,
        "relabel_runs_ms": relabel_runs,
    }


def bench_review(
    model: Path, decisions: int = 100_000, backends: Sequence[str] = ("sqlite", "postgresql")
) -> dict[str, Any]:
    texts = read_labelled(TRAIN).texts
    return {backend: bench_backend(backend, model, decisions, texts) for backend in backends}


def print_review(report: dict[str, Any]) -> None:
    print(
        f"review desk, `triage review` on loopback, median of {REQUESTS} requests after a warm-up:"
    )
    for backend, r in report.items():
        print(
            f"  {backend:<10} {r['decisions']:,} decisions ({r['needs_review']:,} need review, "
            f"{r['labelled']:,} of them labelled; filled in {r['fill_seconds']:.0f} s): "
            f"queue page {r['queue_ms']:6.1f} ms (target <= {QUEUE_TARGET_MS:.0f} ms), "
            f"relabel POST -> 303 {r['relabel_ms']:5.1f} ms (target <= "
            f"{RELABEL_TARGET_MS:.0f} ms), item page {r['item_ms']:5.1f} ms"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "current")
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=("sqlite", "postgresql")
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    report = bench_review(args.model, args.decisions, args.backends)
    print_review(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
