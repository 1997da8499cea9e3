"""The decision record through faults, on the real thing: a `triage serve` process under gRPC
load from several client threads, its PostgreSQL stopped and started mid-load, or the server
itself killed with SIGKILL mid-load and started again on the same spool. Every answered
decision must end up in the store exactly once, and nothing that was not answered (beyond the
calls in flight at a kill)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from .private_postgres import private_postgres
from .record_load import (
    WAIT,
    Load,
    ServeProcess,
    Stored,
    spool_segments,
    stored_decisions,
    wait_for,
)

OUTAGE_SECONDS = 2.0  # how long the load goes on against a stopped store, at the least
BACKLOG = 500  # reports answered while the store cannot take them, before the kill
THREADS = 4  # client threads, one call in flight each


def _assert_recorded_once(stored: Stored, acked: dict[str, str]) -> None:
    """Every acknowledged decision is in the store once, under its own report; no report was
    recorded twice under different decision ids."""
    assert stored.rows == stored.distinct_ids == stored.distinct_reports
    missing = acked.keys() - stored.report_of.keys()
    assert not missing, f"{len(missing)} acknowledged decisions are not in the store"
    assert all(stored.report_of[i] == report for i, report in acked.items())


def _explain(load: Load, server: ServeProcess) -> Callable[[], str]:
    """What a timed-out wait reports: how the load went and what the server logged."""
    return lambda: f"{load.summary()}\nthe server's log ends:\n{server.log_tail()}"


def _assert_spool_empty(spool: Path) -> None:
    assert spool_segments(spool) == [], "the spool still holds decisions after a clean stop"
    assert not (spool / "rejected.jsonl").exists(), "the journal set decisions aside"


@pytest.mark.slow
def test_a_postgresql_outage_under_load_loses_and_duplicates_no_answered_decision(
    models_dir: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with (
        private_postgres() as database,
        ServeProcess(models_dir, database.url, spool, tmp_path / "serve.log") as server,
    ):
        with Load(server.target, threads=THREADS) as load:
            state = _explain(load, server)
            wait_for(
                lambda: server.metrics()["triage_record_written_total"] >= 200,
                "answers reach the store",
                explain=state,
            )
            database.stop("immediate")
            wait_for(
                lambda: server.metrics()["triage_record_store_up"] == 0,
                "the server sees the store is down",
                explain=state,
            )
            down = load.count
            time.sleep(OUTAGE_SECONDS)  # the load goes on against a stopped store
            wait_for(
                load.answered_more(down, 300),
                "calls are answered while the store is down",
                explain=state,
            )
            during = server.metrics()
            database.start()
            wait_for(
                lambda: server.metrics()["triage_record_store_up"] == 1,
                "the server sees the store is back",
                explain=state,
            )
            back = load.count
            wait_for(
                load.answered_more(back, 300), "calls go on once the store is back", explain=state
            )
        assert load.crashes == []
        assert load.failed() == [], f"the outage reached the callers: {load.summary()}"
        assert load.unrecorded == [], "a report was answered without a decision id"
        assert during["triage_record_write_failures_total"] > 0
        assert during["triage_record_pending"] > 0  # the spool held what the store could not

        wait_for(server.drained, "the server's journal has written everything", explain=state)
        acked = load.acked()
        stored = stored_decisions(database.url)
        _assert_recorded_once(stored, acked)
        # No call was in flight once the load stopped: nothing unanswered is on record.
        assert stored.report_of == acked
        assert server.metrics()["triage_record_store_up"] == 1
        assert server.stop() == 0, server.log_tail()
    _assert_spool_empty(spool)


@contextmanager
def _writes_blocked(store_url: str) -> Iterator[None]:
    """Hold a lock that keeps every writer out of the decisions table (readers may go on), as
    a long maintenance transaction would: the server's journal can only spool."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        with _sqlite_write_lock(url.database):
            yield
    else:
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain) as blocker:
            blocker.execute("LOCK TABLE decisions IN SHARE MODE")  # inserts wait, reads do not
            yield
            blocker.rollback()


@contextmanager
def _sqlite_write_lock(database: str) -> Iterator[None]:
    """Hold SQLite's one write lock (WAL mode: readers go on)."""
    blocker = sqlite3.connect(database, timeout=WAIT, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


@pytest.mark.slow
def test_a_server_killed_mid_load_replays_its_spool_once_after_a_restart(
    models_dir: Path, store_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with ServeProcess(models_dir, store_url, spool, tmp_path / "first.log") as first:
        load = Load(first.target, threads=THREADS, stop_on_failure=True).start()
        state = _explain(load, first)
        try:
            wait_for(
                lambda: first.metrics()["triage_record_written_total"] >= 200,
                "answers reach the store",
                explain=state,
            )
            # A backlog for certain: answers go on while the store takes none, then the kill.
            with _writes_blocked(store_url):
                blocked = load.count
                wait_for(
                    load.answered_more(blocked, BACKLOG),
                    "a backlog builds in the spool",
                    explain=state,
                )
                assert load.failed() == [], f"a call failed while the store was blocked: {state()}"
                first.kill()
                load.stop()
                before = stored_decisions(store_url)
        finally:
            load.stop()
    acked = load.acked()
    assert load.crashes == [] and load.unrecorded == [], load.summary()
    assert len(load.failed()) <= THREADS  # the calls in flight at the kill, at most
    backlog = acked.keys() - before.report_of.keys()
    # Reports answered after the lock was taken can only be in the spool, but for the few
    # (at most one call per thread) whose answer was on its way when it was taken.
    assert len(backlog) >= BACKLOG // 2, f"only {len(backlog)} answered decisions to replay"
    assert spool_segments(spool), "the kill left no spool behind"

    with ServeProcess(models_dir, store_url, spool, tmp_path / "second.log") as second:
        wait_for(
            second.drained,
            "the new server has replayed the spool",
            explain=second.log_tail,
        )
        replayed = stored_decisions(store_url)
        _assert_recorded_once(replayed, acked)
        assert second.metrics()["triage_record_written_total"] >= len(backlog)
        # Beyond the answered ones, only reports of the calls cut short by the kill.
        in_flight = {report for call in load.failed() for report in call.report_ids}
        extra = {replayed.report_of[i] for i in replayed.report_of.keys() - acked.keys()}
        assert extra <= in_flight, f"{len(extra - in_flight)} recorded reports no call asked for"

        with Load(second.target, threads=THREADS, prefix="after-") as more:
            state = _explain(more, second)
            wait_for(more.answered_more(0, 200), "the new server answers", explain=state)
        assert more.crashes == [] and more.failed() == [] and more.unrecorded == [], state()
        wait_for(second.drained, "the new server has written its own decisions", explain=state)
        final = stored_decisions(store_url)
        _assert_recorded_once(final, {**acked, **more.acked()})
        assert final.rows == replayed.rows + len(more.acked())
        assert second.stop() == 0, second.log_tail()
    _assert_spool_empty(spool)
