"""The write path of the decision record: decisions are appended to a local spool on the request
thread, and a writer process puts them in the store in batches, each exactly once.

Why a spool on disk rather than a queue in memory: a call is answered only after its decisions
are appended, so whatever was answered survives the process (a kill -9 keeps what is in the page
cache) and a store outage of any length short of a full spool. The writer replays the spool in
order with idempotent inserts, so a replay after a crash or an outage writes each record once.

Why a writer process (triage/store/journal_writer.py): reading the lines back, building rows and
the driver's work held the serving process's interpreter about a fifth of the time; in a process
of its own they cost the request threads nothing. The spool is the hand-off: this process only
appends (and publishes, in shared memory, how far the appends go); the writer reads, inserts,
and deletes finished segments. The writer is supervised (restarted if it dies, from where it had
got to), ends with this process however it ends, and its log lines are logged here.

Durability: ``record`` does not fsync (that would cost a disk flush per call); the writer fsyncs
the spool every ``fsync_seconds`` (default 1 s, None to never), so a power loss can lose at most
that window of answered decisions. A process crash loses nothing that ``record`` returned.

The spool directory holds ``segment-NNNNNN.jsonl`` files (one JSON object per line, oldest
first), ``journal.lock`` (held with flock by the one process that owns the directory),
``writer.lock`` (held by its writer process) and, if the store ever refuses a record or a line
cannot be read, ``rejected.jsonl`` (mode 600: the lines hold sealed texts and report ids) with
those lines, kept for an operator rather than retried forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from triage.lifeline import Lifeline
from triage.store.database import Store, describe
from triage.store.errors import RecordUnavailable, StoreError
from triage.store.journal_writer import (
    FIRST_BACKOFF_SECONDS,
    LAST_BACKOFF_SECONDS,
    REJECTED_FILE,
    SEGMENT_NAME,
    WRITER_LOCK_SECONDS,
    JournalState,
    WriterSettings,
    fork_server,
    hold_writer_lock,
    relay_log,
    run_writer,
)
from triage.store.spool_format import Record, spool_lines

log = logging.getLogger(__name__)

__all__ = ["REJECTED_FILE", "DecisionJournal"]

LOCK_FILE = "journal.lock"
CAUGHT_UP_ROLL_BYTES = 1 << 20  # a caught-up writer has a segment this big closed: short replays
LEADER_ROUNDS = 8  # appends one caller makes for others before handing over
START_SECONDS = 60.0  # a writer process not ready by then has failed to start
STOP_SECONDS = 10.0  # how long a stopping writer may take to finish its batch
FLUSH_POLL_SECONDS = 0.002  # how often a flush looks at the writer's progress


# -- the journal ------------------------------------------------------------------------------


@dataclass
class _Segment:
    number: int
    path: Path
    size: int  # bytes on disk: whole appends, or the whole file of an earlier process
    lines: int = 0  # complete lines in it (records, as far as ``pending`` knows)


@dataclass(eq=False)
class _Ticket:
    """One record() call's lines, waiting to be appended."""

    data: bytes
    records: int
    # Held until the lines are appended (or this caller is to append), for a caller that waits:
    # a bare lock is far cheaper to make than an Event, and the leader never needs one.
    waiting: threading.Lock | None = None
    error: RecordUnavailable | None = None
    promoted: bool = False  # woken to append for everyone, not because it was appended

    def wait(self) -> None:
        if self.waiting is not None:
            self.waiting.acquire()

    def done(self) -> None:
        if self.waiting is not None:
            self.waiting.release()
            self.waiting = None


@dataclass
class _Child:
    process: Any  # multiprocessing.Process (its type varies with the start method)
    conn: Connection


class DecisionJournal:
    """Decisions on their way to the store: ``record`` appends them to the spool (cheap, on the
    request thread); a writer process inserts them in batches and deletes what is written.

    ``max_spool_bytes`` bounds the spool on disk (beyond it ``record`` refuses); the writer
    inserts up to ``batch_size`` records per transaction, and looks for new ones every
    ``flush_seconds`` (at once when ``flush`` is waiting: a look-up never waits that long; a
    longer pause makes bigger batches, fewer commits and less of the machine's CPU); segments
    roll over at ``segment_bytes``; ``fsync_seconds`` is the most a power loss can take (None:
    never fsync).
    ``preload``: modules the caller will start fork-server processes from too (imported once
    in the fork server the writer starts from, if this starts it).

    Readings for metrics: ``pending``, ``spool_bytes``, ``written``, ``write_failures``,
    ``store_up``. One process per spool directory (enforced with a lock file)."""

    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        *,
        max_spool_bytes: int = 1 << 30,
        batch_size: int = 500,
        flush_seconds: float = 0.2,
        segment_bytes: int = 8 << 20,
        fsync_seconds: float | None = 1.0,
        preload: Sequence[str] = (),
    ) -> None:
        if max_spool_bytes <= 0 or batch_size <= 0 or segment_bytes <= 0:
            raise ValueError("max_spool_bytes, batch_size and segment_bytes must be positive")
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.max_spool_bytes = max_spool_bytes
        self.batch_size = batch_size
        self.flush_seconds = max(0.0, flush_seconds)  # how often the writer looks
        self.segment_bytes = segment_bytes
        self.fsync_seconds = fsync_seconds if fsync_seconds and fsync_seconds > 0 else None
        self.preload = tuple(preload)
        # Small spools roll sooner, so that a drained spool is deleted and frees its room.
        self._roll_caught_up_at = min(CAUGHT_UP_ROLL_BYTES, max(1, max_spool_bytes // 4))

        # The append side, guarded by _lock (record(), the roll the writer asks for, readings).
        self._lock = threading.Lock()
        self._state = "new"  # new -> open -> closed
        self._segments: deque[_Segment] = deque()  # oldest first, up to the open one
        self._current: _Segment | None = None
        self._fd: int | None = None
        self._next_number = 1
        self._lock_fd: int | None = None
        # Callers waiting for their lines to be appended (group commit), and whether one of
        # them is appending; guarded by _queue_lock, which is never held across a write.
        self._queue_lock = threading.Lock()
        self._waiting: list[_Ticket] = []
        self._leading = False

        # The writer process, its supervisor thread, and what they share.
        self._shared: JournalState | None = None
        self._context: Any = None
        self._lifeline: Lifeline | None = None
        self._child: _Child | None = None
        self._send_lock = threading.Lock()
        self._closing = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._writer_exits = 0  # writer processes lost (and restarted)

    # -- readings -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended but not yet in the store (or set aside)."""
        if self._shared is None:
            return sum(s.lines for s in self._segments)
        done = self._shared.progress()
        with self._lock:
            self._forget_done(done.segment)
            total = sum(s.lines for s in self._segments)
            head = self._segments[0] if self._segments else None
            return max(0, total - (done.line if head and head.number == done.segment else 0))

    @property
    def spool_bytes(self) -> int:
        """Bytes of spool segments on disk (not yet done)."""
        if self._shared is None:
            return sum(s.size for s in self._segments)
        done = self._shared.progress()
        with self._lock:
            self._forget_done(done.segment)
            return sum(s.size for s in self._segments)

    @property
    def written(self) -> int:
        """Records the writer has put in the store (or found already there, on a replay)."""
        return self._shared.progress().written if self._shared is not None else 0

    @property
    def write_failures(self) -> int:
        """Failed attempts to write a batch (each retry counts)."""
        return self._shared.write_failures if self._shared is not None else 0

    @property
    def store_up(self) -> bool:
        """False from a failed write until the next one succeeds."""
        return self._shared.store_up if self._shared is not None else True

    @property
    def set_aside(self) -> int:
        """Spool lines kept in rejected.jsonl: unreadable, or refused by the store."""
        return self._shared.progress().set_aside if self._shared is not None else 0

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (None when it is not running)."""
        child = self._child
        return child.process.pid if child is not None and child.process.is_alive() else None

    @property
    def writer_restarts(self) -> int:
        """Writer processes that died and were replaced."""
        return self._writer_exits

    def _forget_done(self, done_segment: int) -> None:
        """Drop the segments the writer is done with (under _lock)."""
        while self._segments and self._segments[0].number < done_segment:
            self._segments.popleft()

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> DecisionJournal:
        """Take the spool directory, find what an earlier process left there (replayed first,
        oldest first) and start the writer process. Raises StoreError if the directory cannot
        be used or another process holds it."""
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
            # A writer of a front process killed a moment ago exits as soon as it notices.
            os.close(hold_writer_lock(self.spool_dir, WRITER_LOCK_SECONDS))
            leftover_records = self._adopt_leftovers()
            self._context = fork_server(self.preload)
            self._shared = JournalState.create(self._context)
            self._shared.set_open(self._next_number, 0)
            self._lifeline = Lifeline()  # the writer ends with this process, however it ends
            if leftover_records:
                log.info(
                    "replaying %d decision records left in %s by an earlier process",
                    leftover_records,
                    self.spool_dir,
                )
            self._child = self._start_writer((self._next_number, leftover_records))
        except BaseException:
            if self._lifeline is not None:
                self._lifeline.close()
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._state = "open"
        self._supervisor = threading.Thread(
            target=self._supervise, name="decision-journal-supervisor", daemon=True
        )
        self._supervisor.start()
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
        ticket = _Ticket(spool_lines(records), len(records))
        with self._queue_lock:
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                ticket.waiting = threading.Lock()
                ticket.waiting.acquire()
            self._waiting.append(ticket)
        if lead:
            self._lead()
        else:
            ticket.wait()
            if ticket.promoted:
                self._lead()  # the last leader handed over: write what waits, own lines first
        if ticket.error is not None:
            raise ticket.error

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
                    ticket.done()
                self._hand_over()
                raise
            for ticket in batch:
                ticket.done()
        self._hand_over()

    def _hand_over(self) -> None:
        with self._queue_lock:
            if self._waiting:
                heir = self._waiting[0]
                heir.promoted = True
                heir.done()  # still leading: the heir writes next
            else:
                self._leading = False

    def _append_tickets(self, batch: list[_Ticket]) -> None:
        """Append the tickets that fit in one write; the others get their error (under _lock)."""
        if self._state != "open":
            closed = RecordUnavailable("the decision record is not open (the server is stopping)")
            for ticket in batch:
                ticket.error = closed
            return
        assert self._shared is not None
        self._forget_done(self._shared.progress().segment)
        room = self.max_spool_bytes - sum(s.size for s in self._segments)
        kept: list[_Ticket] = []
        size = 0
        for ticket in batch:
            if size + len(ticket.data) > room:
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
            self._append(segment, b"".join(t.data for t in kept) if len(kept) > 1 else kept[0].data)
        except RecordUnavailable as err:
            for ticket in kept:
                ticket.error = err
            return
        segment.lines += sum(t.records for t in kept)
        self._shared.set_open_size(segment.size)  # the writer may read them now

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything recorded so far is in the store
        (or set aside); True if it is."""
        return self._wait_for_writer(timeout, give_up_when_down=False)

    def _wait_for_writer(self, timeout: float, give_up_when_down: bool) -> bool:
        with self._lock:
            last = self._segments[-1] if self._segments else None
            target = (last.number, last.lines) if last is not None else None
        if target is None or self._shared is None:
            return True
        deadline = time.monotonic() + timeout
        if not self._shared.progress().reached(*target):
            self._send(("hurry",))
        pause = FLUSH_POLL_SECONDS / 4
        while not self._shared.progress().reached(*target):
            left = deadline - time.monotonic()
            if left <= 0 or (give_up_when_down and not self._shared.store_up):
                return False
            time.sleep(min(left, pause))
            pause = min(pause * 2, FLUSH_POLL_SECONDS * 5)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what can be written within ``timeout`` (nothing, if the store is down: no
        waiting for it), stop the writer, and keep whatever is not in the store on disk for the
        next start."""
        if self._state != "open":
            return
        deadline = time.monotonic() + timeout
        self._wait_for_writer(timeout, give_up_when_down=True)
        with self._lock:
            self._state = "closed"
        self._closing.set()
        self._send(("stop",))
        assert self._supervisor is not None
        self._supervisor.join(max(STOP_SECONDS, deadline - time.monotonic()))
        child, self._child = self._child, None
        if child is not None:
            child.process.join(1.0)
            if child.process.is_alive():
                log.warning(
                    "the decision journal writer did not stop in time (the store %s is slow); "
                    "stopped: what it had not written stays spooled",
                    describe(self.store.url),
                )
                child.process.kill()
                child.process.join(5.0)
            child.conn.close()
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None
        remaining = self.pending
        with self._lock:
            self._close_files(delete_segments=remaining == 0)
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

    # -- the writer process ---------------------------------------------------------------

    def _start_writer(self, replay: tuple[int, int] | None) -> _Child:
        """A writer process, ready (its store engine made, the spool's writer lock held)."""
        assert self._shared is not None and self._lifeline is not None
        settings = WriterSettings(
            store_url=self.store.url,
            spool_dir=str(self.spool_dir),
            batch_size=self.batch_size,
            flush_seconds=self.flush_seconds,
            fsync_seconds=self.fsync_seconds,
            roll_caught_up_at=self._roll_caught_up_at,
            log_level=logging.getLogger("triage.store.journal").getEffectiveLevel(),
            replay=replay,
        )
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=run_writer,
            args=(child, self._lifeline.end, self._shared.array, settings),
            name="triage-journal-writer",
            daemon=True,
        )
        process.start()
        child.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if not parent.poll(max(0.0, deadline - time.monotonic())):
                    raise StoreError("the decision journal's writer process did not start in time")
                message = parent.recv()
            except (EOFError, OSError, StoreError) as err:
                process.kill()
                process.join(5.0)
                parent.close()
                if isinstance(err, StoreError):
                    raise
                raise StoreError(
                    f"the decision journal's writer process exited while starting "
                    f"(exit code {process.exitcode})"
                ) from None
            if message[0] == "ready":
                return _Child(process, parent)
            if message[0] == "error":
                process.join(5.0)
                parent.close()
                raise StoreError(f"the decision journal's writer cannot start: {message[1]}")
            self._handle(message)

    def _send(self, message: tuple[Any, ...]) -> None:
        child = self._child
        if child is None:
            return
        with self._send_lock, contextlib.suppress(OSError, ValueError):  # it is gone: restarted
            child.conn.send(message)

    def _supervise(self) -> None:
        """Relay the writer's messages; restart it if it dies (not when closing)."""
        delay = FIRST_BACKOFF_SECONDS
        while True:
            child = self._child
            if child is None:
                return
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                child.process.join(5.0)
                if self._closing.is_set():
                    return
                self._writer_exits += 1
                log.error(
                    "the decision journal's writer process %s exited (exit code %s); starting "
                    "another, which goes on from where it had got to",
                    child.process.pid,
                    child.process.exitcode,
                )
                child.conn.close()
                while not self._closing.wait(delay):
                    try:
                        self._child = self._start_writer(None)
                        if self._closing.is_set():
                            self._send(("stop",))  # close() asked the one that died
                        break
                    except Exception as err:
                        log.error("cannot start the decision journal's writer: %s", err)
                        delay = min(delay * 2, LAST_BACKOFF_SECONDS)
                else:
                    self._child = None
                    return
                continue
            delay = FIRST_BACKOFF_SECONDS
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        if message[0] == "log":
            relay_log(message)
        elif message[0] == "roll":
            with self._lock:
                current = self._current
                if current is not None and current.number == message[1]:
                    self._seal_current()

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
            self._segments.append(_Segment(number, path, size, lines=lines))
            records += lines
            self._next_number = number + 1
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
                self._next_number -= 1
                raise RecordUnavailable(
                    f"cannot create a decision spool segment in {self.spool_dir}: {err.strerror}"
                ) from None
        segment = _Segment(number, path, 0)
        self._segments.append(segment)
        self._current = segment
        assert self._shared is not None
        self._shared.set_open(number, 0)
        return segment

    def _append(self, segment: _Segment, data: bytes) -> None:
        assert self._fd is not None
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, memoryview(data)[done:])
        except OSError as err:
            if done:  # never leave half a line for the next append to run into
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, segment.size)
                self._seal_current()  # and never append after it again
            raise RecordUnavailable(
                f"cannot append to the decision spool {segment.path}: {err.strerror}"
            ) from None
        segment.size += len(data)

    def _seal_current(self) -> None:
        """No more appends to the open segment: the writer reads it to its end (and deletes
        it once written)."""
        self._current = None
        if self._fd is not None:
            os.close(self._fd)  # the writer fsyncs it
            self._fd = None
        if self._shared is not None:
            self._shared.set_open(self._next_number, 0)

    def _full_message(self) -> str:
        spooled = sum(s.size for s in self._segments)
        room = f"the local spool {self.spool_dir} is full ({spooled} bytes)"
        store = describe(self.store.url)
        if not self.store_up:
            assert self._shared is not None
            down = time.monotonic() - self._shared.down_since
            return (
                f"cannot put the decision on record: the decision store {store} has been down "
                f"for {down:.0f} s and {room}; calls are refused until the store is back"
            )
        return (
            f"cannot put the decision on record: the decision store {store} is not keeping up "
            f"and {room}; calls are refused until it catches up"
        )

    def _close_files(self, delete_segments: bool) -> None:
        fd, self._fd, self._current = self._fd, None, None
        if fd is not None:
            if self.fsync_seconds is not None and not delete_segments:
                _fsync_quietly(fd)
            os.close(fd)
        if delete_segments:
            while self._segments:
                _unlink_quietly(self._segments.popleft().path)


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


def _fsync_quietly(fd: int) -> str | None:
    try:
        os.fsync(fd)
    except OSError as err:
        return err.strerror or str(err)
    return None


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as err:  # replayed (idempotently) at the next start instead
        log.warning("cannot delete the written spool segment %s: %s", path, err.strerror)
