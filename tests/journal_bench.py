"""Figures for the decision journal: the cost of ``record`` on the request thread, how fast the
writer puts a backlog in the store, and what replaying already-written records costs at a
restart (the case a committed-offset file would save).

Usage: python -m tests.journal_bench [--decisions N] [--postgres URL]
Without --postgres, a fresh database on the test server (tests/stores.py) is used.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.stores import fresh_postgres_database
from triage.core.model import Prediction
from triage.store.database import open_store
from triage.store.journal import CAUGHT_UP_ROLL_BYTES, DecisionJournal, spool_line
from triage.store.records import Decision

PREDICTION = Prediction(
    label="fraud",
    confidence=0.91,
    scores=(("fraud", 0.91), ("general", 0.05), ("terrorism", 0.03), ("cyber", 0.01)),
    needs_review=False,
    top_terms=(),
    model_version="20261201-000000",
)


def _decisions(count: int, prefix: str) -> list[Decision]:
    return [
        Decision.of(PREDICTION, report_id=f"{prefix}{i}", source="Classify", caller="bench")
        for i in range(count)
    ]


def record_cost(url: str, work: Path, count: int) -> tuple[float, float]:
    """Median and 99th percentile of one ``record([decision])`` call, in microseconds, with
    the writer running beside it as in a server."""
    store = open_store(url)
    journal = DecisionJournal(store, work / "cost-spool").start()
    decisions = _decisions(count, "cost")
    timings = []
    clock = time.perf_counter_ns
    for decision in decisions:
        started = clock()
        journal.record([decision])
        timings.append(clock() - started)
    journal.flush(300)
    journal.close()
    store.close()
    timings.sort()
    return statistics.median(timings) / 1000, timings[int(len(timings) * 0.99)] / 1000


def writer_throughput(url: str, work: Path, count: int, name: str) -> tuple[float, float]:
    """Decisions per second the writer puts in the store from a full spool (new rows), and
    seconds to replay 1 MiB of records the store already holds."""
    spool = work / f"{name}-spool"
    spool.mkdir()
    lines = [spool_line(d) for d in _decisions(count, name)]
    (spool / "segment-000001.jsonl").write_text("".join(lines))
    store = open_store(url)
    started = time.perf_counter()
    journal = DecisionJournal(store, spool).start()
    assert journal.flush(600), "the backlog was not written"
    rate = count / (time.perf_counter() - started)
    journal.close()

    replay = []
    size = 0
    for line in lines:  # 1 MiB: the most a caught-up writer leaves behind at a crash
        if size >= CAUGHT_UP_ROLL_BYTES:
            break
        replay.append(line)
        size += len(line)
    (spool / "segment-000002.jsonl").write_text("".join(replay))
    started = time.perf_counter()
    journal = DecisionJournal(store, spool).start()
    assert journal.flush(600)
    replay_seconds = time.perf_counter() - started
    journal.close()
    store.close()
    return rate, replay_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    line = len(spool_line(_decisions(1, "size")[0]))
    print(f"spool line: {line} bytes per decision")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sqlite = f"sqlite:///{work / 'bench.db'}"
        median, p99 = record_cost(sqlite, work, 20_000)
        print(f"record(): median {median:.1f} µs, p99 {p99:.1f} µs per call of one decision")
        for name, url in (("sqlite", sqlite), ("postgresql", args.postgres)):
            if name == "postgresql" and not url:
                with fresh_postgres_database() as fresh:
                    rate, replay = writer_throughput(fresh, work, args.decisions, name)
            else:
                rate, replay = writer_throughput(url, work, args.decisions, name)
            print(
                f"{name}: writer {rate:,.0f} decisions/s from a full spool; replaying 1 MiB "
                f"already in the store takes {replay * 1000:.0f} ms"
            )


if __name__ == "__main__":
    main()
