"""Put an archive run's decisions on the decision record, through a local spool that outlives
the run: what the store cannot take now is written when the next recording run starts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from triage.archive.row_decisions import RunDecisions
from triage.archive.writers import EncodedChunk
from triage.core.errors import TriageError

if TYPE_CHECKING:  # the store's modules (SQLAlchemy) are imported only by a recording run
    from triage.store.database import Store
    from triage.store.journal import DecisionJournal

log = logging.getLogger(__name__)

PROCESS_WORKERS = "triage.archive.process_executor"  # what the scoring workers start from

# How long the end of a run waits for the spool to drain into the store: a base, plus this much
# per 10,000 decisions still waiting, unless the store is seen down for DOWN_PATIENCE_SECONDS.
FLUSH_BASE_SECONDS = 5.0
FLUSH_SECONDS_PER_10K = 3.0
DOWN_PATIENCE_SECONDS = 5.0
# How long a chunk waits for room in a full spool while the store writes nothing, before the
# run stops (its output complete up to the last checkpoint, for --resume).
FULL_SPOOL_PATIENCE_SECONDS = 60.0


@dataclass(frozen=True)
class RecordSettings:
    """Where a run records its decisions, and who it records them as."""

    store_url: str
    spool_dir: Path  # one process at a time: a server's spool is not a scoring run's
    caller: str = "triage score"


@dataclass(frozen=True)
class RecordOutcome:
    """What became of the decisions at the end of a run."""

    store: str  # the store, without its password
    spool_dir: str
    spooled: int  # decisions still in the spool (the store down or behind), this run's or older
    rejected: int = 0  # decisions the store refused (a NUL in an id, say), kept in rejected_file
    rejected_file: str = ""


class RunRecord:
    """The decision record of one scoring run: the store opened (its schema created if it is
    empty) and the spool taken (what an earlier run left there replayed first) on entry; each
    chunk's decisions appended to the spool by :meth:`record`; drained by :meth:`finish`."""

    def __init__(self, settings: RecordSettings, decisions: RunDecisions) -> None:
        self.settings = settings
        self.decisions = decisions
        self._store: Store | None = None
        self._journal: DecisionJournal | None = None

    def __enter__(self) -> RunRecord:
        from triage.store.database import open_store
        from triage.store.journal import DecisionJournal

        self._store = open_store(self.settings.store_url)
        try:
            # The writer process starts from the fork server the scoring workers start from.
            self._journal = DecisionJournal(
                self._store, self.settings.spool_dir, preload=(PROCESS_WORKERS,)
            ).start()
        except BaseException:
            self._store.close()
            self._store = None
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # After a failure, what is not in the store yet stays spooled for the next start.
        self._close(timeout=1.0 if error is not None else 10.0)

    def record(self, chunk: EncodedChunk, first_row: int) -> None:
        """Append the chunk's decisions to the spool (durable across a crash of this process);
        ``first_row`` is the run's number of the chunk's first row. A spool that stays full
        stops the run with a message."""
        journal = self._open_journal()
        if not chunk.decisions:
            return
        from triage.store.errors import RecordUnavailable

        records = self.decisions.records(chunk.decisions, first_row, chunk.scored_at)
        written, progressed = journal.written, time.monotonic()
        while True:
            try:
                journal.record(records)
                return
            except RecordUnavailable as err:
                # A chunk's lines are tiny beside the spool: refused near its limit, it is full.
                full = journal.spool_bytes > journal.max_spool_bytes // 2
                if journal.written != written:
                    written, progressed = journal.written, time.monotonic()
                if not full or time.monotonic() - progressed >= FULL_SPOOL_PATIENCE_SECONDS:
                    raise TriageError(self._stopped_message(str(err), first_row, full)) from None
            journal.flush(1.0)  # the store is draining the spool: wait for room

    def finish(self) -> RecordOutcome:
        """Wait (a while, bounded) for every spooled decision to reach the store, then close the
        spool; whatever the store did not take stays there for the next recording run."""
        journal = self._open_journal()
        started = time.monotonic()
        deadline = started + FLUSH_BASE_SECONDS + FLUSH_SECONDS_PER_10K * journal.pending / 10_000
        if journal.pending >= 10_000:  # a backlog worth saying why the run has not ended
            log.info(
                "waiting up to %.0f s for %d decisions to reach the decision store",
                deadline - started,
                journal.pending,
            )
        try:
            self._drain(journal, deadline)
        except KeyboardInterrupt:  # the output is complete: Ctrl-C here only stops the wait
            log.warning("stopped waiting for the decision store: the rest stays spooled")
        self._close(timeout=0.5)
        from triage.store.journal import REJECTED_FILE

        return RecordOutcome(
            store=self._described(),
            spool_dir=str(self.settings.spool_dir),
            spooled=journal.pending,
            rejected=journal.set_aside,
            rejected_file=str(self.settings.spool_dir / REJECTED_FILE),
        )

    @staticmethod
    def _drain(journal: DecisionJournal, deadline: float) -> None:
        """Wait until the spool is in the store, the deadline passes, or the store has been
        seen down for a while (no point waiting out the deadline then)."""
        down_since: float | None = None
        while not journal.flush(min(1.0, max(0.0, deadline - time.monotonic()))):
            now = time.monotonic()
            if now >= deadline:
                return
            if journal.store_up:
                down_since = None
            elif down_since is None:
                down_since = now
            elif now - down_since >= DOWN_PATIENCE_SECONDS:
                return

    def _open_journal(self) -> DecisionJournal:
        if self._journal is None:
            raise RuntimeError("the run's decision record is used outside its with-block")
        return self._journal

    def _close(self, timeout: float) -> None:
        if self._journal is not None:
            self._journal.close(timeout)
        if self._store is not None:
            self._store.close()
            self._store = None

    def _described(self) -> str:
        from triage.store.database import describe

        return describe(self.settings.store_url)

    def _stopped_message(self, problem: str, first_row: int, full: bool) -> str:
        where = f"stopped after {first_row:,} rows: the next chunk's decisions cannot go on record"
        if full:
            return (
                f"{where}: the decision spool {self.settings.spool_dir} is full and the decision "
                f"store {self._described()} is not taking its decisions; the output is complete "
                "up to there: once the store is back, rerun the same command with --resume"
            )
        return f"{where}: {problem}; fix that, then rerun the same command with --resume"
