"""The write path of the decision record: decisions are appended to a local spool on the request
thread, and one writer thread puts them in the store in batches, each exactly once.

Why a spool on disk rather than a queue in memory: a call is answered only after its decisions
are appended, so whatever was answered survives the process (a kill -9 keeps what is in the page
cache) and a store outage of any length short of a full spool. The writer replays the spool in
order with idempotent inserts, so a replay after a crash or an outage writes each record once.

Durability: ``record`` does not fsync (that would cost a disk flush per call); the writer fsyncs
the spool every ``fsync_seconds`` (default 1 s, None to never), so a power loss can lose at most
that window of answered decisions. A process crash loses nothing that ``record`` returned.

The spool directory holds ``segment-NNNNNN.jsonl`` files (one JSON object per line, oldest
first), ``journal.lock`` (held with flock by the one process that owns the directory) and, if
the store ever refuses a record or a line cannot be read, ``rejected.jsonl`` (mode 600: the
lines hold sealed texts and report ids) with those lines, kept for an operator rather than
retried forever.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sqlalchemy.exc import DataError, IntegrityError

from triage.store.database import Store, describe
from triage.store.errors import RecordUnavailable, StoreError
from triage.store.records import Decision, ShadowDecision
from triage.store.spool_format import Record, read_spool_line, spool_line

log = logging.getLogger(__name__)


SEGMENT_NAME = re.compile(r"segment-(\d+)\.jsonl")
LOCK_FILE = "journal.lock"
REJECTED_FILE = "rejected.jsonl"
CAUGHT_UP_ROLL_BYTES = 1 << 20  # a caught-up writer closes a segment this big: short replays
FIRST_BACKOFF_SECONDS = 0.2
LAST_BACKOFF_SECONDS = 5.0
READ_CHUNK = 1 << 20
LEADER_ROUNDS = 8  # appends one caller makes for others before handing over
FRESH_RECORDS = 50_000  # records kept in memory for the writer (beyond: it reads the spool)
IDLE_SECONDS = 1.0  # the writer looks around this often even when nothing wakes it


# -- the journal ------------------------------------------------------------------------------


@dataclass
class _Segment:
    number: int
    path: Path
    size: int  # bytes the writer may read: whole appends, or the whole file of an earlier process
    sealed: bool  # no more appends: rolled over, or left behind by an earlier process
    lines: int = 0  # complete lines in it (records, as far as ``pending`` knows)


@dataclass(eq=False)
class _Ticket:
    """One record() call's lines, waiting to be appended."""

    data: bytes
    records: Sequence[Record]
    done: threading.Event = field(default_factory=threading.Event)
    error: RecordUnavailable | None = None
    promoted: bool = False  # woken to append for everyone, not because it was appended


@dataclass
class _Batch:
    """Complete lines read from the head segment, to be written in one go."""

    segment: _Segment
    end: int  # the offset just past the last line
    lines: int
    records: list[tuple[int, bytes, Record]] = field(default_factory=list)  # line no, raw, record
    set_aside: int = 0  # lines unreadable or refused by the store, kept in rejected.jsonl


class DecisionJournal:
    """Decisions on their way to the store: ``record`` appends them to the spool (cheap, on the
    request thread); a writer thread inserts them in batches and deletes what is written.

    ``max_spool_bytes`` bounds the spool on disk (beyond it ``record`` refuses); the writer
    inserts up to ``batch_size`` records per transaction, and waits up to ``flush_seconds`` after
    a wake-up to gather a batch (not when ``flush`` is waiting); segments roll over at
    ``segment_bytes``; ``fsync_seconds`` is the most a power loss can take (None: never fsync).

    Readings for metrics: ``pending``, ``spool_bytes``, ``written``, ``write_failures``,
    ``store_up``. One process per spool directory (enforced with a lock file)."""

    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        *,
        max_spool_bytes: int = 1 << 30,
        batch_size: int = 500,
        flush_seconds: float = 0.05,
        segment_bytes: int = 8 << 20,
        fsync_seconds: float | None = 1.0,
    ) -> None:
        if max_spool_bytes <= 0 or batch_size <= 0 or segment_bytes <= 0:
            raise ValueError("max_spool_bytes, batch_size and segment_bytes must be positive")
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.max_spool_bytes = max_spool_bytes
        self.batch_size = batch_size
        self.flush_seconds = max(0.0, flush_seconds)  # how long the writer gathers a batch
        self.segment_bytes = segment_bytes
        self.fsync_seconds = fsync_seconds if fsync_seconds and fsync_seconds > 0 else None
        # Small spools roll sooner, so that a drained spool is deleted and frees its room.
        self._roll_caught_up_at = min(CAUGHT_UP_ROLL_BYTES, max(1, max_spool_bytes // 4))

        # The append side, guarded by _lock (record() and the writer's seal/retire).
        self._lock = threading.Lock()
        self._state = "new"  # new -> open -> closed
        self._segments: deque[_Segment] = deque()
        self._current: _Segment | None = None
        self._fd: int | None = None
        self._retired_fds: list[int] = []  # rolled segments, to fsync and close on the writer
        self._next_number = 1
        self._appended = 0  # records appended, counting those left by an earlier process
        self._spool_bytes = 0
        self._unsynced = False
        self._new_files = False
        self._lock_fd: int | None = None
        # What record() just appended, kept in memory so that a writer that keeps up inserts
        # it without reading and parsing the spool again: (segment number, start offset, end
        # offset, records). Bounded: beyond FRESH_RECORDS the writer reads the spool instead.
        self._fresh: deque[tuple[int, int, int, Sequence[Record]]] = deque()
        self._fresh_records = 0
        # Callers waiting for their lines to be appended (group commit), and whether one of
        # them is appending; guarded by _queue_lock, which is never held across a write.
        self._queue_lock = threading.Lock()
        self._waiting: list[_Ticket] = []
        self._leading = False

        # The writer's progress, guarded by _progress (flush() waits on it).
        self._progress = threading.Condition()
        self._settled = 0  # records written, or set aside as unreadable or refused
        self._written = 0
        self._set_aside = 0
        self._write_failures = 0
        self._store_up = True
        self._down_since = 0.0
        self._replay: tuple[int, int, str] | None = None  # (settled target, from, what)

        # The writer's own state.
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: tuple[_Segment, int] | None = None  # the head segment and its read fd
        self._offset = 0  # bytes of the head segment already in the store
        self._line_no = 0  # lines of the head segment already in the store
        self._next_sync = 0.0
        self._sync_failing = False

    # -- readings -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended but not yet in the store."""
        return max(0, self._appended - self._settled)

    @property
    def spool_bytes(self) -> int:
        """Bytes of spool segments on disk."""
        return self._spool_bytes

    @property
    def written(self) -> int:
        """Records the writer has put in the store (or found already there, on a replay)."""
        return self._written

    @property
    def write_failures(self) -> int:
        """Failed attempts to write a batch (each retry counts)."""
        return self._write_failures

    @property
    def store_up(self) -> bool:
        """False from a failed write until the next one succeeds."""
        return self._store_up

    @property
    def set_aside(self) -> int:
        """Spool lines kept in rejected.jsonl: unreadable, or refused by the store."""
        return self._set_aside

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> DecisionJournal:
        """Take the spool directory, find what an earlier process left there (replayed first,
        oldest first) and start the writer. Raises StoreError if the directory cannot be used
        or another process holds it."""
        if self._state != "new":
            raise RuntimeError("a decision journal is started once")
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise StoreError(
                f"cannot create the decision spool directory {self.spool_dir}: {err.strerror}"
            ) from None
        self._lock_fd = _take_directory(self.spool_dir)
        try:
            leftover_records = self._adopt_leftovers()
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        if leftover_records:
            log.info(
                "replaying %d decision records left in %s by an earlier process",
                leftover_records,
                self.spool_dir,
            )
            self._replay = (leftover_records, 0, "left by an earlier process")
        self._state = "open"
        self._next_sync = time.monotonic() + (self.fsync_seconds or 0.0)
        self._thread = threading.Thread(
            target=self._run, name="decision-journal-writer", daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> DecisionJournal:
        return self if self._state == "open" else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def record(self, records: Sequence[Record]) -> None:
        """Append ``records`` to the spool, on the caller's thread, before its answer is sent.
        Raises RecordUnavailable if they cannot be kept (spool full while the store is down,
        disk trouble, journal closed): the call must then be refused, not answered.

        Group commit: the first caller to arrive appends, in one write, its lines and those of
        every caller that queued meanwhile; the others wait for their turn to be written, without
        holding any lock a write is made under. (Holding a lock across the write would stall every
        request thread whenever the writing one waits to get the interpreter back after its
        system call.)"""
        if not records:
            return
        ticket = _Ticket("".join([spool_line(r) for r in records]).encode("ascii"), records)
        with self._queue_lock:
            self._waiting.append(ticket)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        else:
            ticket.done.wait()
            if ticket.promoted:
                self._lead()  # the last leader handed over: write what waits, own lines first
        if ticket.error is not None:
            raise ticket.error
        if not self._wake.is_set():
            self._wake.set()

    def _lead(self) -> None:
        """Append what waits, round after round, then hand over to a waiting caller (so that
        no one caller writes for everyone for ever) or stand down."""
        for _ in range(LEADER_ROUNDS):
            with self._queue_lock:
                batch, self._waiting = self._waiting, []
                if not batch:
                    self._leading = False
                    return
            try:
                with self._lock:
                    self._append_tickets(batch)
            except BaseException as err:  # never leave a caller waiting, now or later
                problem = RecordUnavailable(f"cannot append to the decision spool: {err}")
                for ticket in batch:
                    ticket.error = ticket.error or problem
                    ticket.done.set()
                self._hand_over()
                raise
            for ticket in batch:
                ticket.done.set()
        self._hand_over()

    def _hand_over(self) -> None:
        with self._queue_lock:
            if self._waiting:
                heir = self._waiting[0]
                heir.promoted = True
                heir.done.set()  # still leading: the heir writes next
            else:
                self._leading = False

    def _append_tickets(self, batch: list[_Ticket]) -> None:
        """Append the tickets that fit in one write; the others get their error (under _lock)."""
        if self._state != "open":
            closed = RecordUnavailable("the decision record is not open (the server is stopping)")
            for ticket in batch:
                ticket.error = closed
            return
        kept: list[_Ticket] = []
        size = 0
        for ticket in batch:
            if self._spool_bytes + size + len(ticket.data) > self.max_spool_bytes:
                ticket.error = RecordUnavailable(self._full_message())
            else:
                kept.append(ticket)
                size += len(ticket.data)
        if not kept:
            return
        try:
            segment = self._current
            if segment is None or segment.size >= self.segment_bytes:
                segment = self._open_segment()
            start = segment.size
            self._append(segment, b"".join(t.data for t in kept))
        except RecordUnavailable as err:
            for ticket in kept:
                ticket.error = err
            return
        for ticket in kept:
            end = start + len(ticket.data)
            if self._fresh_records < FRESH_RECORDS:
                self._fresh.append((segment.number, start, end, ticket.records))
                self._fresh_records += len(ticket.records)
            start = end
            segment.lines += len(ticket.records)
            self._appended += len(ticket.records)
        self._spool_bytes += size
        self._unsynced = True

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything recorded so far is in the store
        (or set aside); True if it is."""
        target = self._appended
        self._hurry.set()
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._settled >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what can be written within ``timeout`` (nothing, if the store is down: no
        waiting for it), stop the writer, and keep whatever is not in the store on disk for the
        next start."""
        if self._state != "open":
            return
        deadline = time.monotonic() + timeout
        target = self._appended
        self._hurry.set()
        self._wake.set()
        with self._progress:
            self._progress.wait_for(lambda: self._settled >= target or not self._store_up, timeout)
        with self._lock:
            self._state = "closed"
        self._stop.set()
        self._hurry.set()
        self._wake.set()
        assert self._thread is not None
        self._thread.join(max(1.0, deadline - time.monotonic()))
        writer_stopped = not self._thread.is_alive()
        if not writer_stopped:
            log.warning(
                "the decision journal writer is still waiting on %s; left running to finish",
                describe(self.store.url),
            )
        with self._lock:
            self._close_files(delete_segments=writer_stopped and self.pending == 0)
        remaining = self.pending
        if remaining:
            log.warning(
                "%d decision records remain spooled in %s; they are written at the next start",
                remaining,
                self.spool_dir,
            )
        else:
            log.info("decision journal closed: every decision is in %s", describe(self.store.url))
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the directory
            self._lock_fd = None

    # -- the append side (under _lock) ----------------------------------------------------

    def _adopt_leftovers(self) -> int:
        try:
            names = [path.name for path in self.spool_dir.iterdir()]
        except OSError as err:
            raise StoreError(
                f"cannot list the decision spool {self.spool_dir}: {err.strerror}"
            ) from None
        numbered = sorted(
            (int(match.group(1)), self.spool_dir / name)
            for name in names
            if (match := SEGMENT_NAME.fullmatch(name))
        )
        records = 0
        for number, path in numbered:
            try:
                size, lines = _measure(path)
            except OSError as err:
                raise StoreError(
                    f"cannot read the decision spool segment {path}: {err.strerror}"
                ) from None
            self._segments.append(_Segment(number, path, size, sealed=True, lines=lines))
            self._spool_bytes += size
            records += lines
            self._next_number = number + 1
        self._appended = records
        return records

    def _open_segment(self) -> _Segment:
        self._seal_current()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        while True:
            number = self._next_number
            self._next_number += 1
            path = self.spool_dir / f"segment-{number:06d}.jsonl"
            try:
                self._fd = os.open(path, flags, 0o600)
                break
            except FileExistsError:
                continue  # put there by hand; never append to a file we did not start
            except OSError as err:
                raise RecordUnavailable(
                    f"cannot create a decision spool segment in {self.spool_dir}: {err.strerror}"
                ) from None
        segment = _Segment(number, path, 0, sealed=False)
        self._segments.append(segment)
        self._current = segment
        self._new_files = True
        return segment

    def _append(self, segment: _Segment, data: bytes) -> None:
        assert self._fd is not None
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, memoryview(data)[done:])
        except OSError as err:
            if done:  # never leave half a line for the next append to run into
                try:
                    os.ftruncate(self._fd, segment.size)
                except OSError:
                    self._seal_current()  # the writer stops reading at segment.size
            raise RecordUnavailable(
                f"cannot append to the decision spool {segment.path}: {err.strerror}"
            ) from None
        segment.size += len(data)

    def _seal_current(self) -> None:
        if self._current is not None:
            self._current.sealed = True
            self._current = None
        if self._fd is not None:
            self._retired_fds.append(self._fd)
            self._fd = None

    def _full_message(self) -> str:
        room = f"the local spool {self.spool_dir} is full ({self._spool_bytes} bytes)"
        store = describe(self.store.url)
        if not self._store_up:
            down = time.monotonic() - self._down_since
            return (
                f"cannot put the decision on record: the decision store {store} has been down "
                f"for {down:.0f} s and {room}; calls are refused until the store is back"
            )
        return (
            f"cannot put the decision on record: the decision store {store} is not keeping up "
            f"and {room}; calls are refused until it catches up"
        )

    def _close_files(self, delete_segments: bool) -> None:
        fds = [*self._retired_fds, *([self._fd] if self._fd is not None else [])]
        self._retired_fds, self._fd, self._current = [], None, None
        for fd in fds:
            if self.fsync_seconds is not None and not delete_segments:
                _fsync_quietly(fd)
            os.close(fd)
        if delete_segments:
            while self._segments:
                segment = self._segments.popleft()
                _unlink_quietly(segment.path)
                self._spool_bytes -= segment.size

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        delay = FIRST_BACKOFF_SECONDS
        while not self._stop.is_set():
            try:
                self._write_backlog()
                delay = FIRST_BACKOFF_SECONDS
                if not self._stop.is_set():
                    self._wait_for_records()
            except Exception:  # a bug here must not end recording for good: retry later
                log.exception("the decision journal writer failed; retrying in %.1f s", delay)
                self._pause(delay)
                delay = min(delay * 2, LAST_BACKOFF_SECONDS)
        self._close_reader()

    def _wait_for_records(self) -> None:
        self._wake.wait(self._seconds_to_sync())
        self._sync_if_due()
        if not self._wake.is_set():
            return
        self._wake.clear()
        if self.flush_seconds and self.pending < self.batch_size:
            self._hurry.wait(self.flush_seconds)  # gather a batch, unless someone is waiting
        self._hurry.clear()

    def _write_backlog(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch is None:
                return
            if not self._write(batch):
                return  # stopping while the store is down
            self._advance(batch)
            self._sync_if_due()

    def _next_batch(self) -> _Batch | None:
        """The next complete lines of the oldest segment; finished segments are deleted on the
        way. None when the writer has caught up."""
        while True:
            with self._lock:
                if not self._segments:
                    return None
                segment = self._segments[0]
                if (
                    segment is self._current
                    and self._offset >= segment.size >= self._roll_caught_up_at
                ):
                    self._seal_current()  # caught up: start afresh so this one can go
                size, sealed = segment.size, segment.sealed
            if self._offset >= size:
                if not sealed:
                    return None
                self._retire(segment)
                continue
            try:
                batch = self._read_batch(segment, size)
            except FileNotFoundError:
                log.error(
                    "the spool segment %s was deleted before its records were written: %d "
                    "decision records are lost",
                    segment.path,
                    segment.lines - self._line_no,
                )
                self._retire(segment)
                continue
            if batch is not None:
                return batch
            if not sealed:
                return None  # cannot happen: appends are whole lines
            log.warning(
                "%s ends with %d bytes of a record cut short (the process stopped while "
                "writing it): skipped; every complete record before it is kept",
                segment.path,
                size - self._offset,
            )
            self._retire(segment)

    def _fresh_batch(self, segment: _Segment, size: int) -> _Batch | None:
        """The next records straight from what record() kept in memory, when they start exactly
        where the writer is (None: read the spool instead)."""
        taken: list[Record] = []
        end = self._offset
        with self._lock:
            fresh = self._fresh
            # Drop what the writer has already passed (read from the spool instead).
            while fresh and (
                fresh[0][0] < segment.number
                or (fresh[0][0] == segment.number and fresh[0][1] < self._offset)
            ):
                self._fresh_records -= len(fresh.popleft()[3])
            while (
                fresh
                and fresh[0][0] == segment.number
                and fresh[0][1] == end
                and fresh[0][2] <= size
                and (not taken or len(taken) + len(fresh[0][3]) <= self.batch_size)
            ):
                _, _, end, records = fresh.popleft()
                self._fresh_records -= len(records)
                taken.extend(records)
        if not taken:
            return None
        batch = _Batch(segment, end, len(taken))
        first = self._line_no + 1
        # No raw line: it is made again only if the store refuses the record (set aside).
        batch.records = [(first + i, b"", record) for i, record in enumerate(taken)]
        return batch

    def _read_batch(self, segment: _Segment, size: int) -> _Batch | None:
        fresh = self._fresh_batch(segment, size)
        if fresh is not None:
            return fresh
        fd = self._reader_for(segment)
        want = min(size - self._offset, READ_CHUNK)
        while True:
            data = os.pread(fd, want, self._offset)
            raw_lines = data.split(b"\n", self.batch_size)[:-1]  # the rest: not a whole line
            if raw_lines or len(data) < want or want >= size - self._offset:
                break
            want = min(size - self._offset, want * 2)  # a line longer than the chunk
        if not raw_lines:
            return None
        end = self._offset + sum(len(line) + 1 for line in raw_lines)
        batch = _Batch(segment, end, len(raw_lines))
        for index, raw in enumerate(raw_lines):
            line_no = self._line_no + index + 1
            try:
                batch.records.append((line_no, raw, read_spool_line(raw)))
            except Exception as err:  # whatever is wrong with a line, retrying cannot help
                reason = str(err) if isinstance(err, ValueError) else f"unreadable ({err!r:.200})"
                self._set_line_aside(segment, line_no, raw, reason)
                batch.set_aside += 1
        return batch

    def _write(self, batch: _Batch) -> bool:
        """Put the batch in the store, retrying through an outage; False if stopped first."""
        delay = FIRST_BACKOFF_SECONDS
        while True:
            try:
                self._insert(batch)
            except Exception as err:  # any store trouble: keep the batch and try again
                self._write_failed(err)
            else:
                self._write_succeeded()
                return True
            if self._pause(delay):
                return False
            delay = min(delay * 2, LAST_BACKOFF_SECONDS)

    def _insert(self, batch: _Batch) -> None:
        try:
            self._insert_records([record for _, _, record in batch.records])
        except StoreError as err:
            if not _refused(err):
                raise
            self._insert_one_by_one(batch)  # find the records the store will not take

    def _insert_records(self, records: Sequence[Record]) -> None:
        decisions = [r for r in records if isinstance(r, Decision)]
        shadows = [r for r in records if isinstance(r, ShadowDecision)]
        self.store.insert_decisions(decisions, count=False)
        self.store.insert_shadows(shadows, count=False)  # after the decisions they refer to

    def _insert_one_by_one(self, batch: _Batch) -> None:
        kept, refused = [], 0
        for line_no, raw, record in batch.records:
            try:
                self._insert_records([record])
            except StoreError as err:
                if not _refused(err):
                    raise  # the store went away meanwhile: the whole batch is retried later
                line = raw or spool_line(record).rstrip("\n").encode("ascii")
                self._set_line_aside(batch.segment, line_no, line, f"the store refused it: {err}")
                refused += 1
                continue
            kept.append((line_no, raw, record))
        batch.records = kept
        batch.set_aside += refused

    def _advance(self, batch: _Batch) -> None:
        self._offset = batch.end
        self._line_no += batch.lines
        with self._progress:
            self._settled += batch.lines
            self._written += len(batch.records)
            self._set_aside += batch.set_aside
            self._progress.notify_all()
        if self._replay is not None and self._settled >= self._replay[0]:
            target, start, what = self._replay
            self._replay = None
            log.info("replayed %d spooled decision records %s", target - start, what)

    def _write_failed(self, err: Exception) -> None:
        with self._progress:
            self._write_failures += 1
            if not self._store_up:
                return  # logged once per outage
            self._down_since = time.monotonic()
            self._store_up = False
            self._progress.notify_all()  # close() stops waiting for a store that is down
        known = isinstance(err, StoreError)
        log.warning(
            "cannot write decisions to the decision store %s (%s); they are kept in the spool %s "
            "and written when it is back",
            describe(self.store.url),
            err if known else f"{type(err).__name__}: {err}",
            self.spool_dir,
            exc_info=not known,
        )

    def _write_succeeded(self) -> None:
        if self._store_up:
            return
        self._store_up = True
        waiting = self.pending
        log.info(
            "the decision store %s is back after %.1f s; replaying %d spooled decision records",
            describe(self.store.url),
            time.monotonic() - self._down_since,
            waiting,
        )
        if self._replay is None:
            self._replay = (self._settled + waiting, self._settled, "kept while the store was down")

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (syncing the spool when due); True if the journal is stopping."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, self._seconds_to_sync())):
                return True
            self._sync_if_due()
        return self._stop.is_set()

    def _retire(self, segment: _Segment) -> None:
        """Delete a sealed segment the writer is done with: every line in the store (or, for a
        segment that vanished, none can be)."""
        self._close_reader()
        with self._lock:
            if segment is self._current:  # it vanished under the appender: start a new one
                self._seal_current()
            self._segments.popleft()
        _unlink_quietly(segment.path)
        with self._lock:
            self._spool_bytes -= segment.size
        if segment.lines > self._line_no:
            with self._progress:
                self._settled += segment.lines - self._line_no
                self._progress.notify_all()
        self._offset = 0
        self._line_no = 0

    def _reader_for(self, segment: _Segment) -> int:
        if self._reader is None or self._reader[0] is not segment:
            self._close_reader()
            self._reader = (segment, os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC))
        return self._reader[1]

    def _close_reader(self) -> None:
        if self._reader is not None:
            os.close(self._reader[1])
            self._reader = None

    def _set_line_aside(self, segment: _Segment, line_no: int, raw: bytes, reason: str) -> None:
        rejected = self.spool_dir / REJECTED_FILE
        try:
            fd = os.open(rejected, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "ab") as out:
                os.fchmod(fd, 0o600)  # one made by an older triage may be readable by others
                out.write(raw + b"\n")
            kept = f"kept in {rejected}"
        except OSError as err:
            kept = f"and could not be kept in {rejected}: {err.strerror}"
        log.warning("%s: line %d: %s; set aside, %s", segment.path, line_no, reason, kept)

    def _seconds_to_sync(self) -> float:
        if self.fsync_seconds is None:
            return IDLE_SECONDS
        return max(0.0, min(IDLE_SECONDS, self._next_sync - time.monotonic()))

    def _sync_if_due(self) -> None:
        """fsync what was appended since the last time (and close rolled segments)."""
        syncing = self.fsync_seconds is not None
        if syncing and time.monotonic() < self._next_sync:
            return  # rolled segments stay open until they are synced
        current = new_files = None
        with self._lock:
            retired, self._retired_fds = self._retired_fds, []
            if syncing:
                if self._unsynced and self._fd is not None:
                    current = os.dup(self._fd)  # fsync outside the lock: record() goes on
                self._unsynced = False
                new_files, self._new_files = self._new_files, False
        for fd in [*retired, *([current] if current is not None else [])]:
            if syncing:
                self._note_sync(_fsync_quietly(fd))
            os.close(fd)
        if self.fsync_seconds is not None:
            self._next_sync = time.monotonic() + self.fsync_seconds
            if new_files:
                self._note_sync(_fsync_directory(self.spool_dir))

    def _note_sync(self, problem: str | None) -> None:
        if problem and not self._sync_failing:
            log.warning("cannot fsync the decision spool %s: %s", self.spool_dir, problem)
        self._sync_failing = problem is not None


def _take_directory(spool_dir: Path) -> int:
    """Lock the spool directory for this process; StoreError if another one holds it."""
    path = spool_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise StoreError(f"cannot open the spool lock file {path}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise StoreError(
            f"the decision spool {spool_dir} is in use by another triage process"
            f"{f' (pid {holder})' if holder.isdigit() else ''}: give each server a spool "
            "directory of its own"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def _measure(path: Path) -> tuple[int, int]:
    """The size of a segment and how many complete lines it holds."""
    size = lines = 0
    with path.open("rb") as segment:
        while chunk := segment.read(8 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines


def _refused(err: StoreError) -> bool:
    """The store is up but will not take this data (a constraint or a value out of range):
    retrying would fail for ever, unlike an outage."""
    return isinstance(err.__cause__, IntegrityError | DataError)


def _fsync_quietly(fd: int) -> str | None:
    try:
        os.fsync(fd)
    except OSError as err:
        return err.strerror or str(err)
    return None


def _fsync_directory(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        return err.strerror or str(err)
    try:
        return _fsync_quietly(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as err:  # replayed (idempotently) at the next start instead
        log.warning("cannot delete the written spool segment %s: %s", path, err.strerror)
