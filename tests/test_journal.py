"""The decision journal: every acknowledged decision reaches the store exactly once, through
concurrent load, a kill -9, a real PostgreSQL outage, torn and hostile spool lines and a full
spool; on SQLite and PostgreSQL for real."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from triage.core.model import Prediction
from triage.store import schema
from triage.store.database import Store, open_store
from triage.store.errors import RecordUnavailable, StoreError
from triage.store.journal import DecisionJournal
from triage.store.records import Decision, SealedText, ShadowDecision, utc_now
from triage.store.spool_format import spool_line

from .conftest import REPO
from .private_postgres import private_postgres

PREDICTION = Prediction(
    label="fraud",
    confidence=0.9,
    scores=(("fraud", 0.9), ("general", 0.1)),
    needs_review=False,
    top_terms=(),
    model_version="20261201-000000",
)
WAIT = 60.0  # generous: conditions are waited for, never timed
JOURNAL_LOG = "triage.store.journal"


def _decisions(count: int, prefix: str = "r") -> list[Decision]:
    return [
        Decision.of(PREDICTION, report_id=f"{prefix}{i}", source="Classify") for i in range(count)
    ]


def _shadow_of(decision: Decision) -> ShadowDecision:
    return ShadowDecision(
        decision_id=decision.decision_id,
        model_version="candidate",
        scored_at=utc_now(),
        label="general",
        confidence=0.6,
        scores={"general": 0.6, "fraud": 0.4},
        needs_review=True,
        reasons=("BELOW_THRESHOLD",),
        latency_ms=1.5,
    )


def _ids_in(store: Store) -> tuple[list[str], int]:
    """Every decision id in the store, and how many distinct ones there are."""
    with store.connect() as connection:
        ids = list(connection.execute(select(schema.decisions.c.decision_id)).scalars())
        distinct = connection.execute(
            select(func.count(func.distinct(schema.decisions.c.decision_id)))
        ).scalar_one()
    return ids, int(distinct)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("segment-*.jsonl"))


class _Load:
    """Threads recording decisions until stopped; each keeps the ids ``record`` acknowledged."""

    def __init__(self, journal: DecisionJournal, threads: int, pause: float = 0.0) -> None:
        self.journal = journal
        self.pause = pause
        self.acked: list[list[str]] = [[] for _ in range(threads)]
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def _run(self, number: int) -> None:
        chooser = random.Random(number)
        mine = self.acked[number]
        try:
            while not self.stopping.is_set():
                decisions = _decisions(chooser.randint(1, 5), prefix=f"t{number}-{len(mine)}-")
                self.journal.record(decisions)
                mine.extend(d.decision_id for d in decisions)
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as err:  # every record() must return: the test reports this
            self.errors.append(err)

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.acked)

    def all_acked(self) -> set[str]:
        return {i for ids in self.acked for i in ids}

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(WAIT)


# -- 1. concurrent load --------------------------------------------------------------------


def test_records_from_many_threads_are_all_written_exactly_once(
    store: Store, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    journal = DecisionJournal(store, spool, segment_bytes=64 << 10).start()
    expires = utc_now() + timedelta(days=30)
    recorded: dict[int, list[Decision]] = {}
    shadows: dict[int, list[ShadowDecision]] = {}

    def client(number: int) -> None:
        mine = recorded.setdefault(number, [])
        theirs = shadows.setdefault(number, [])
        for call in range(150):
            decisions = _decisions(1 + call % 4, prefix=f"c{number}-{call}-")
            sealed = SealedText(os.urandom(40) + b"\n\x00", f"k{number}", expires)
            decisions[-1] = replace(decisions[-1], needs_review=True, text=sealed)
            journal.record(decisions)
            mine.extend(decisions)
            if call % 10 == 0:  # a candidate's answer, recorded after the live decision
                shadow = _shadow_of(decisions[0])
                journal.record([shadow])
                theirs.append(shadow)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    decisions = [d for mine in recorded.values() for d in mine]
    all_shadows = [s for theirs in shadows.values() for s in theirs]

    assert journal.flush(WAIT)
    assert journal.pending == 0
    assert journal.written == len(decisions) + len(all_shadows)
    ids, distinct = _ids_in(store)
    assert len(ids) == distinct == len(decisions)
    assert set(ids) == {d.decision_id for d in decisions}
    assert store.count("shadow_decisions") == len(all_shadows)
    assert store.count("report_texts") == sum(1 for d in decisions if d.text is not None)
    for sample in (decisions[0], decisions[-1], decisions[len(decisions) // 2]):
        view = store.decision(sample.decision_id)
        assert view is not None
        assert view.decision == replace(sample, text=None)
        assert view.has_text == (sample.text is not None)
    shadow_view = store.decision(all_shadows[-1].decision_id)
    assert shadow_view is not None and list(shadow_view.shadows) == [all_shadows[-1]]
    with store.connect() as connection:
        ciphertexts = dict(
            connection.execute(
                select(schema.report_texts.c.decision_id, schema.report_texts.c.ciphertext)
            ).all()
        )
    assert all(ciphertexts[d.decision_id] == d.text.ciphertext for d in decisions if d.text)

    journal.close()
    assert _segments(spool) == []  # everything written: nothing left to replay
    assert journal.spool_bytes == 0
    with pytest.raises(RecordUnavailable, match="not open"):
        journal.record(_decisions(1))


# -- 2. kill -9 mid-load ---------------------------------------------------------------------


def test_a_kill_9_mid_load_loses_and_duplicates_nothing_acknowledged(
    store_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    store = open_store(store_url)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.journal_child", store_url, str(spool), str(32 << 10), "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    acked: list[str] = []
    assert child.stdout is not None
    stdout = child.stdout

    def read() -> None:
        for line in stdout:
            if line.endswith(b"\n"):  # a line cut by the kill was never acknowledged
                acked.append(line.decode().strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Kill once the child's writer has put some in the store and many more are acked: more
        # than the one batch (500) its writer process may finish after the kill, before it
        # notices that the child is gone.
        _wait_for(
            lambda: len(acked) > 3000 and 0 < store.count("decisions") < len(acked) - 1500,
            "the load is on",
        )
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(WAIT)
        reader.join(WAIT)
        stdout.close()
    assert child.returncode == -signal.SIGKILL
    acknowledged = {i for i in acked if i != "started"}
    before, _ = _ids_in(store)
    assert len(acknowledged - set(before)) > 0, "the kill left nothing to replay: no test"
    assert _segments(spool), "the kill left no spool behind"

    journal = DecisionJournal(store, spool).start()
    try:
        assert journal.flush(WAIT)
        ids, distinct = _ids_in(store)
        assert len(ids) == distinct
        assert acknowledged <= set(ids)
        # At most the one call appended but not yet printed when the kill came is extra.
        assert len(set(ids) - acknowledged) <= 1
        assert journal.pending == 0
    finally:
        journal.close()
        store.close()
    assert _segments(spool) == []


# -- 3. a real PostgreSQL outage -----------------------------------------------------------


@pytest.mark.slow
def test_a_postgresql_outage_mid_load_loses_and_duplicates_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=JOURNAL_LOG)
    with private_postgres() as server:
        store = open_store(server.url)
        journal = DecisionJournal(store, tmp_path / "spool").start()
        try:
            with _Load(journal, threads=4, pause=0.002) as load:
                _wait_for(lambda: journal.written >= 500, "decisions reach the store")
                server.stop("immediate")
                _wait_for(lambda: not journal.store_up, "the writer notices the outage")
                during = load.count
                _wait_for(lambda: load.count > during + 2000, "calls are answered while down")
                assert journal.pending > 0 and journal.write_failures > 0
                server.start()
                _wait_for(lambda: journal.store_up, "the writer notices the store is back")
                after = load.count
                _wait_for(lambda: load.count > after + 500, "calls go on")
            assert load.errors == []
            assert journal.flush(WAIT)
            assert journal.pending == 0
            ids, distinct = _ids_in(store)
            assert len(ids) == distinct
            assert set(ids) == load.all_acked()
            assert journal.write_failures > 0
        finally:
            journal.close()
            store.close()
    journal_lines = [r for r in caplog.records if r.name == JOURNAL_LOG]
    outage = [r for r in journal_lines if "cannot write decisions" in r.getMessage()]
    assert len(outage) == 1 and outage[0].levelno == logging.WARNING  # once, not per retry
    assert "127.0.0.1" in outage[0].getMessage()  # the store is named
    assert any("is back" in r.getMessage() for r in journal_lines)
    assert any("replayed" in r.getMessage() for r in journal_lines)


# -- 4. torn and hostile lines ---------------------------------------------------------------


def test_a_torn_last_line_is_skipped_with_one_log_line(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    decisions = _decisions(20)
    lines = [spool_line(d) for d in decisions]
    torn = spool_line(_decisions(1, prefix="torn")[0])
    # Two segments a crashed process left behind; the shadow in the second needs the first's
    # decision in the store, so they must be replayed in order.
    shadow = _shadow_of(decisions[0])
    (spool / "segment-000001.jsonl").write_text("".join(lines[:10]))
    second = spool / "segment-000002.jsonl"
    second.write_text("".join(lines[10:]) + spool_line(shadow) + torn[: len(torn) // 2])

    with DecisionJournal(store, spool).start() as journal:
        assert journal.flush(WAIT)
        _wait_for(lambda: _segments(spool) == [], "the replayed segments are deleted")
    ids, _ = _ids_in(store)
    assert sorted(ids) == sorted(d.decision_id for d in decisions)
    assert store.count("shadow_decisions") == 1
    about_torn = [r for r in caplog.records if "cut short" in r.getMessage()]
    assert len(about_torn) == 1
    assert str(second) in about_torn[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records if r.name == JOURNAL_LOG)
    assert journal.set_aside == 0


def test_unreadable_and_refused_lines_are_set_aside_and_the_rest_written(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    decisions = _decisions(6)
    orphan = _shadow_of(_decisions(1, prefix="never-recorded")[0])  # no decision: refused
    hostile = [
        "not json at all\n",
        '{"kind": "decision", "v": 99}\n',
        '{"kind": "decision", "v": 1, "decision_id": 7}\n',
        '["a", "list"]\n',
        "[" * 100_000 + "\n",
    ]
    segment = spool / "segment-000001.jsonl"
    segment.write_text(
        "".join(spool_line(d) for d in decisions[:3])
        + "".join(hostile)
        + spool_line(orphan)
        + "".join(spool_line(d) for d in decisions[3:])
    )

    with DecisionJournal(store, spool).start() as journal:
        assert journal.flush(WAIT)
        assert journal.pending == 0
        assert journal.written == 6
        assert journal.set_aside == 6
    ids, _ = _ids_in(store)
    assert sorted(ids) == sorted(d.decision_id for d in decisions)
    assert store.count("shadow_decisions") == 0
    kept = (spool / "rejected.jsonl").read_text().splitlines(keepends=True)
    assert sorted(kept) == sorted([*hostile, spool_line(orphan)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for line_no in (4, 5, 6, 7, 8, 9):  # each named by file and line
        assert any(f"{segment}: line {line_no}:" in w for w in warnings), line_no
    assert all(r.exc_info is None for r in caplog.records if r.name == JOURNAL_LOG)


def test_closing_while_the_store_is_down_keeps_the_spool_for_the_next_start(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = Store(f"postgresql+psycopg://postgres@127.0.0.1:{port}/triage")
    decisions = _decisions(50)
    journal = DecisionJournal(unreachable, spool).start()
    try:
        for decision in decisions:
            journal.record([decision])
        _wait_for(lambda: journal.write_failures > 0, "the writer tries the store")
        assert not journal.store_up
    finally:
        journal.close(timeout=0.5)
        unreachable.close()
    assert journal.pending == 50
    assert any("50 decision records remain spooled" in r.getMessage() for r in caplog.records)
    assert _segments(spool)

    with DecisionJournal(store, spool).start() as replaying:
        assert replaying.pending == 50
        assert replaying.flush(WAIT)
    ids, distinct = _ids_in(store)
    assert sorted(ids) == sorted(d.decision_id for d in decisions) and distinct == 50
    assert _segments(spool) == []


# -- 5. spool full -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_spool_while_the_store_is_down_refuses_calls_until_it_drains(
    tmp_path: Path,
) -> None:
    with private_postgres() as server:
        store = open_store(server.url)
        journal = DecisionJournal(store, tmp_path / "spool", max_spool_bytes=32 << 10).start()
        try:
            server.stop("immediate")
            acked = _decisions(1, prefix="first")
            journal.record(acked)
            _wait_for(lambda: not journal.store_up, "the writer notices the outage")
            refused = None
            for decision in _decisions(10_000):
                try:
                    journal.record([decision])
                except RecordUnavailable as err:
                    refused = str(err)
                    break
                acked.append(decision)
            assert refused is not None, "the spool never filled"
            assert "down" in refused and "spool" in refused and "full" in refused
            assert journal.spool_bytes <= 32 << 10

            server.start()
            assert journal.flush(WAIT)
            _wait_for(lambda: journal.spool_bytes == 0, "the drained spool is deleted")
            late = _decisions(1, prefix="late")
            journal.record(late)  # taken again
            assert journal.flush(WAIT)
            ids, distinct = _ids_in(store)
            assert len(ids) == distinct
            assert set(ids) == {d.decision_id for d in [*acked, *late]}
        finally:
            journal.close()
            store.close()


# -- 6. one process per spool --------------------------------------------------------------


def test_a_second_journal_on_the_same_spool_is_refused(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = DecisionJournal(store, spool).start()
    try:
        with pytest.raises(StoreError, match="another triage process") as refused:
            DecisionJournal(store, spool).start()
        assert str(spool) in str(refused.value)
        first.record(_decisions(3))
    finally:
        first.close()
    with DecisionJournal(store, spool).start() as second:  # free again once closed
        second.record(_decisions(2, prefix="again"))
        assert second.flush(WAIT)
    assert store.count("decisions") == 5


# -- 7. the writer process -----------------------------------------------------------------


def test_the_writer_runs_in_its_own_process_and_a_killed_one_is_replaced_losing_nothing(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    journal = DecisionJournal(store, spool, segment_bytes=64 << 10).start()
    try:
        first = journal.writer_pid
        assert first is not None and first != os.getpid()
        with _Load(journal, threads=4, pause=0.001) as load:
            _wait_for(lambda: journal.written >= 300, "decisions reach the store")
            os.kill(first, signal.SIGKILL)  # mid-batch, as likely as not
            _wait_for(
                lambda: journal.writer_restarts == 1 and journal.writer_pid not in (None, first),
                "a new writer process is started",
            )
            written = journal.written
            _wait_for(lambda: journal.written >= written + 300, "the new writer writes")
        assert load.errors == []  # no call noticed
        assert journal.flush(WAIT)
        assert journal.pending == 0
        ids, distinct = _ids_in(store)
        assert len(ids) == distinct
        assert set(ids) == load.all_acked()
    finally:
        journal.close()
    assert _segments(spool) == []
    assert journal.spool_bytes == 0
    lost = [r for r in caplog.records if "writer process" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR
    assert str(first) in lost[0].getMessage()


def test_the_writer_process_ends_with_the_journal(store: Store, tmp_path: Path) -> None:
    journal = DecisionJournal(store, tmp_path / "spool").start()
    pid = journal.writer_pid
    assert pid is not None
    journal.record(_decisions(5))
    journal.close()
    assert journal.writer_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped
    assert store.count("decisions") == 5
