"""The decision journal's writer, in a process of its own: it reads the spool segments the
serving (or scoring) process appends to, puts their records in the store in batches, and deletes
each segment once every line of it is in the store (or set aside).

Why a process: the writer's work (reading lines back, building rows, the driver's executemany)
held the serving process's interpreter about a fifth of the time, and every request thread
waited for it. The spool on disk is already the hand-off, so the front process only appends.

What the two processes share (:class:`JournalState`, a small array of 64-bit integers in shared
memory, no lock, so that a writer killed at any instant can never wedge the front):

- written by the front only: the number of the segment open for appends (or the number the
  next one will get) and how many bytes of it are whole appends. Every segment numbered below
  it is sealed: the front appends to it no more.
- written by the writer only: the oldest segment not yet done, how far into it (bytes and lines)
  the store has everything, and counts (written, set aside, write failures, store up). The
  position and the counts are published together (two copies and a generation number): a
  writer killed half-way through publishing leaves the previous position, whose batch the next
  writer inserts again (inserts are idempotent), so nothing is lost, duplicated or miscounted.

Messages over a pipe: the front asks the writer to ``hurry`` (someone waits for a flush) or to
``stop``; the writer forwards its log records (the front's logging is the one configured) and
asks the front to ``roll`` a segment it has caught up with (so that it can be deleted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError

from triage.lifeline import die_with_parent
from triage.store.database import Store, describe
from triage.store.errors import StoreError
from triage.store.records import Decision, ShadowDecision
from triage.store.spool_format import Record, read_spool_line
from triage.store.spool_rows import Row, insert_rows, plain_decision_row

# The journal's one logger, in whichever process the line is written (tests and operators look
# for the journal's lines under this name).
log = logging.getLogger("triage.store.journal")

SEGMENT_NAME = re.compile(r"segment-(\d+)\.jsonl")
WRITER_LOCK_FILE = "writer.lock"
REJECTED_FILE = "rejected.jsonl"
FIRST_BACKOFF_SECONDS = 0.2
LAST_BACKOFF_SECONDS = 5.0
READ_CHUNK = 1 << 20
IDLE_SECONDS = 1.0  # the writer looks around this often even when nothing wakes it
MIN_POLL_SECONDS = 0.005
WRITER_LOCK_SECONDS = 30.0  # how long a new writer waits for an orphaned one to be gone

# -- what the processes share -------------------------------------------------------------------

OPEN_SEGMENT, OPEN_SIZE = 0, 1  # the front's
WRITE_FAILURES, STORE_UP, DOWN_SINCE_US = 2, 3, 4  # the writer's
GENERATION = 5  # the writer's: which copy of the progress is current
PROGRESS = 6  # two copies of Progress from here
PROGRESS_WIDTH = 5
STATE_SIZE = PROGRESS + 2 * PROGRESS_WIDTH


@dataclass(frozen=True)
class Progress:
    """How far the writer is: every record before line ``line`` (byte ``offset``) of segment
    ``segment`` is in the store or set aside, and every segment numbered below it is done."""

    segment: int = 0
    offset: int = 0
    line: int = 0
    written: int = 0  # records put in the store (or found already there, on a replay)
    set_aside: int = 0  # lines kept in rejected.jsonl

    def reached(self, segment: int, lines: int) -> bool:
        """Whether the first ``lines`` lines of ``segment`` are done."""
        return self.segment > segment or (self.segment == segment and self.line >= lines)


class JournalState:
    """The shared array, with typed reads and writes (see the module's docstring)."""

    def __init__(self, array: Any) -> None:
        self.array = array

    @classmethod
    def create(cls, context: Any) -> JournalState:
        state = cls(context.RawArray("q", STATE_SIZE))
        state.array[STORE_UP] = 1
        return state

    def progress(self) -> Progress:
        array = self.array
        while True:
            generation = array[GENERATION]
            start = PROGRESS + (generation % 2) * PROGRESS_WIDTH
            values = array[start : start + PROGRESS_WIDTH]
            if array[GENERATION] == generation:  # not rewritten while read
                return Progress(*values)

    def publish(self, progress: Progress) -> None:
        """Publish a new position and counts at once (the writer only)."""
        array = self.array
        generation = array[GENERATION]
        start = PROGRESS + ((generation + 1) % 2) * PROGRESS_WIDTH
        array[start : start + PROGRESS_WIDTH] = [
            progress.segment,
            progress.offset,
            progress.line,
            progress.written,
            progress.set_aside,
        ]
        array[GENERATION] = generation + 1

    def open_segment(self) -> tuple[int, int]:
        """The segment open for appends (or the next number) and its whole bytes."""
        return self.array[OPEN_SEGMENT], self.array[OPEN_SIZE]

    def set_open(self, number: int, size: int) -> None:
        """A new open segment (the front only): its size first, so that a writer that reads
        the new number never pairs it with the old segment's size."""
        self.array[OPEN_SIZE] = size
        self.array[OPEN_SEGMENT] = number

    def set_open_size(self, size: int) -> None:
        self.array[OPEN_SIZE] = size

    @property
    def write_failures(self) -> int:
        return int(self.array[WRITE_FAILURES])

    @property
    def store_up(self) -> bool:
        return bool(self.array[STORE_UP])

    @property
    def down_since(self) -> float:
        """time.monotonic() (the same clock in every process) when the store went down."""
        return self.array[DOWN_SINCE_US] / 1e6


def fork_server(preload: Sequence[str] = ()) -> Any:
    """The fork-server context the writer starts from, asked to import this module (and
    ``preload``, what else the caller will start from it) once, when it starts: each writer
    process then starts in milliseconds. A fork server that already runs keeps the modules it
    was started with; asking keeps the ones asked for before (the model processes' ones)."""
    context = multiprocessing.get_context("forkserver")
    server = getattr(forkserver, "_forkserver", None)
    asked = list(getattr(server, "_preload_modules", None) or [])
    context.set_forkserver_preload(list(dict.fromkeys([*asked, *preload, __name__])))
    return context


@dataclass(frozen=True)
class WriterSettings:
    store_url: str
    spool_dir: str
    batch_size: int
    flush_seconds: float
    fsync_seconds: float | None
    roll_caught_up_at: int
    log_level: int
    # On the first start: the first segment number of this front process and how many records
    # earlier processes left before it (logged when they are all replayed).
    replay: tuple[int, int] | None = None


# -- the writer process ---------------------------------------------------------------------------


def run_writer(
    conn: Connection, lifeline: Connection, array: Any, settings: WriterSettings
) -> None:
    """The writer process: take the spool, report ready, write until told to stop (or the
    front's pipe closes), then exit."""
    die_with_parent(lifeline)  # a front killed outright takes its writer with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sender = _Sender(conn)
    _forward_logs(sender, settings.log_level)
    spool_dir = Path(settings.spool_dir)
    try:
        lock_fd = hold_writer_lock(spool_dir, WRITER_LOCK_SECONDS)
        store = Store(settings.store_url)
    except Exception as err:
        sender.send(("error", str(err)))
        return
    try:
        sender.send(("ready", os.getpid()))
        _Writer(store, spool_dir, JournalState(array), settings, conn, sender).run()
    finally:
        store.close()
        os.close(lock_fd)


def hold_writer_lock(spool_dir: Path, seconds: float) -> int:
    """Take the spool's writer lock, waiting up to ``seconds`` for a writer left by a front
    process that was killed (it exits as soon as it notices); StoreError if it stays held."""
    path = spool_dir / WRITER_LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise StoreError(f"cannot open the spool writer lock {path}: {err.strerror}") from None
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreError(
                    f"the decision spool {spool_dir} still has a writer process of another "
                    "triage process"
                ) from None
            time.sleep(0.01)


class _Sender:
    """The writer's end of the pipe, shared by the writer and its log handler."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):  # the front is gone
            self.conn.send(message)


class _Forwarder(logging.Handler):
    """Sends each log record to the front process, which logs it with its own handlers."""

    def __init__(self, sender: _Sender) -> None:
        super().__init__()
        self.sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            trace = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
            self.sender.send(("log", record.name, record.levelno, text, trace.rstrip("\n")))
        except Exception:
            self.handleError(record)


def _forward_logs(sender: _Sender, level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Forwarder(sender))
    root.setLevel(logging.WARNING)
    logging.getLogger("triage").setLevel(level)


def relay_log(message: tuple[Any, ...]) -> None:
    """In the front: log a record the writer forwarded, as if logged here."""
    _, name, level, text, trace = message
    logger = logging.getLogger(name)
    if not logger.isEnabledFor(level):
        return
    record = logger.makeRecord(name, level, "(journal writer)", 0, text, (), None)
    if trace:
        record.exc_text = trace
    logger.handle(record)


# What a spool line becomes: a plain decision's row, or a record read the general way.
_Item = Row | Record


@dataclass
class _Batch:
    """Complete lines read from the head segment, to be written in one go."""

    end: int  # the offset just past the last line
    lines: int
    records: list[tuple[int, bytes, _Item]] = field(default_factory=list)  # line no, raw, item
    set_aside: int = 0  # lines unreadable or refused by the store, kept in rejected.jsonl


class _Writer:
    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        state: JournalState,
        settings: WriterSettings,
        conn: Connection,
        sender: _Sender,
    ) -> None:
        self.store = store
        self.spool_dir = spool_dir
        self.state = state
        self.settings = settings
        self.conn = conn
        self.sender = sender
        self.poll_seconds = max(MIN_POLL_SECONDS, settings.flush_seconds)
        start = state.progress()  # where an earlier writer of this front stopped, if any
        self.segment, self.offset, self.line_no = start.segment, start.offset, start.line
        self.written, self.set_aside = start.written, start.set_aside
        self.reader: tuple[int, int] | None = None  # (segment number, read fd)
        self.stopping = False
        self.roll_asked = 0
        self.next_sync = time.monotonic() + (settings.fsync_seconds or 0.0)
        self.synced: dict[int, int] = {}  # segment number -> bytes fsynced
        self.sync_failing = False
        self.replay: tuple[int, int, int, str] | None = None  # (segment, offset, records, what)
        if settings.replay is not None and settings.replay[1] > 0:
            first_own, records = settings.replay
            self.replay = (first_own, 0, records, "left by an earlier process")

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        delay = FIRST_BACKOFF_SECONDS
        while not self.stopping:
            try:
                self._write_backlog()
                delay = FIRST_BACKOFF_SECONDS
                if not self.stopping:
                    self._receive(min(self.poll_seconds, self._seconds_to_sync()))
                    self._sync_if_due()
            except Exception:  # a bug here must not end recording for good: retry later
                log.exception("the decision journal writer failed; retrying in %.1f s", delay)
                self._pause(delay)
                delay = min(delay * 2, LAST_BACKOFF_SECONDS)
        open_number, open_size = self.state.open_segment()
        if (self.segment, self.offset) < (open_number, open_size):  # not all written: keep it
            self._sync(force=True)
        self._close_reader()

    def _receive(self, timeout: float) -> None:
        """Take the front's messages, waiting up to ``timeout`` for the first."""
        try:
            while self.conn.poll(timeout):
                message = self.conn.recv()
                if message[0] == "stop":
                    self.stopping = True
                timeout = 0.0  # "hurry" only wakes the writer: it writes what is there
        except (EOFError, OSError):  # the front is gone
            self.stopping = True

    def _write_backlog(self) -> None:
        while not self.stopping:
            batch = self._next_batch()
            if batch is None:
                return
            if not self._write(batch):
                return  # stopping while the store is down
            self._advance(batch)
            self._sync_if_due()
            self._receive(0.0)

    # -- reading the spool ----------------------------------------------------------------------

    def _next_batch(self) -> _Batch | None:
        """The next complete lines of the oldest segment; finished segments are deleted on the
        way. None when the writer has caught up."""
        while True:
            open_number, open_size = self.state.open_segment()
            fd = self._head(open_number)
            if fd is None:
                return None
            sealed = self.segment < open_number
            size = os.fstat(fd).st_size if sealed else min(open_size, os.fstat(fd).st_size)
            if self.offset >= size:
                if not sealed:
                    self._ask_to_roll(open_size)
                    return None
                self._retire()
                continue
            batch = self._read_batch(fd, size)
            if batch is not None:
                return batch
            if not sealed:
                return None  # cannot happen: the open segment's size counts whole appends
            log.warning(
                "%s ends with %d bytes of a record cut short (the process stopped while "
                "writing it): skipped; every complete record before it is kept",
                self._path(self.segment),
                size - self.offset,
            )
            self._retire()

    def _head(self, open_number: int) -> int | None:
        """A read descriptor on the oldest segment not done (moving on to the next one that
        exists, up to the open one); None if there is none yet."""
        if self.reader is not None and self.reader[0] == self.segment:
            return self.reader[1]
        self._close_reader()
        while True:
            numbers = self._numbers()
            for number in numbers:
                if number < self.segment:  # done, but its deletion was cut short
                    _unlink_quietly(self._path(number))
            waiting = [n for n in numbers if self.segment <= n <= open_number]
            if not waiting:
                return None
            if waiting[0] != self.segment:  # a gap in the numbers: nothing in between
                self.segment, self.offset, self.line_no = waiting[0], 0, 0
                self._publish()
            try:
                fd = os.open(self._path(self.segment), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                log.error(
                    "the spool segment %s was deleted before its records were written: its "
                    "decision records are lost",
                    self._path(self.segment),
                )
                self._retire()
                continue
            self.reader = (self.segment, fd)
            return fd

    def _numbers(self) -> list[int]:
        try:
            names = os.listdir(self.spool_dir)
        except OSError as err:
            raise StoreError(
                f"cannot list the decision spool {self.spool_dir}: {err.strerror}"
            ) from None
        return sorted(int(m.group(1)) for name in names if (m := SEGMENT_NAME.fullmatch(name)))

    def _read_batch(self, fd: int, size: int) -> _Batch | None:
        want = min(size - self.offset, READ_CHUNK)
        while True:
            data = os.pread(fd, want, self.offset)
            raw_lines = data.split(b"\n", self.settings.batch_size)[:-1]  # the rest: no line
            if raw_lines or len(data) < want or want >= size - self.offset:
                break
            want = min(size - self.offset, want * 2)  # a line longer than the chunk
        if not raw_lines:
            return None
        end = self.offset + sum(len(line) + 1 for line in raw_lines)
        batch = _Batch(end, len(raw_lines))
        sqlite_form = self.store.dialect == "sqlite"
        for index, raw in enumerate(raw_lines):
            line_no = self.line_no + index + 1
            try:
                try:
                    # A str: json.loads of bytes first works out their encoding.
                    row = plain_decision_row(json.loads(raw.decode("ascii")), sqlite_form)
                except (ValueError, RecursionError):  # UnicodeDecodeError included
                    row = None  # the general reader says what is wrong with it
                batch.records.append((line_no, raw, row or read_spool_line(raw)))
            except Exception as err:  # whatever is wrong with a line, retrying cannot help
                reason = str(err) if isinstance(err, ValueError) else f"unreadable ({err!r:.200})"
                self._set_line_aside(line_no, raw, reason)
                batch.set_aside += 1
        return batch

    def _ask_to_roll(self, open_size: int) -> None:
        """Caught up with a big enough open segment: ask the front to start another, so that
        this one can be deleted (short replays, a spool that shrinks back after an outage)."""
        if open_size >= self.settings.roll_caught_up_at and self.roll_asked != self.segment:
            self.roll_asked = self.segment
            self.sender.send(("roll", self.segment))

    # -- writing to the store -------------------------------------------------------------------

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

    def _insert_records(self, items: Sequence[_Item]) -> None:
        insert_rows(self.store, [r for r in items if type(r) is tuple])
        decisions = [r for r in items if isinstance(r, Decision)]
        shadows = [r for r in items if isinstance(r, ShadowDecision)]
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
                self._set_line_aside(line_no, raw, f"the store refused it: {err}")
                refused += 1
                continue
            kept.append((line_no, raw, record))
        batch.records = kept
        batch.set_aside += refused

    def _advance(self, batch: _Batch) -> None:
        self.offset = batch.end
        self.line_no += batch.lines
        self.written += len(batch.records)
        self.set_aside += batch.set_aside
        self._publish()
        self._check_replay()

    def _publish(self) -> None:
        self.state.publish(
            Progress(self.segment, self.offset, self.line_no, self.written, self.set_aside)
        )

    def _retire(self) -> None:
        """Done with the head segment: move past it (published first: a writer killed before
        the deletion deletes it next time), then delete it."""
        self._close_reader()
        done = self.segment
        self.segment, self.offset, self.line_no = done + 1, 0, 0
        self._publish()
        _unlink_quietly(self._path(done))
        self.synced.pop(done, None)
        self._check_replay()

    def _check_replay(self) -> None:
        if self.replay is None:
            return
        segment, offset, records, what = self.replay
        if (self.segment, self.offset) >= (segment, offset):
            self.replay = None
            log.info("replayed %d spooled decision records %s", records, what)

    def _write_failed(self, err: Exception) -> None:
        array = self.state.array
        array[WRITE_FAILURES] += 1
        if not array[STORE_UP]:
            return  # logged once per outage
        array[DOWN_SINCE_US] = int(time.monotonic() * 1e6)
        array[STORE_UP] = 0
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
        array = self.state.array
        if array[STORE_UP]:
            return
        array[STORE_UP] = 1
        open_number, open_size = self.state.open_segment()
        waiting = self._lines_waiting(open_number, open_size)
        log.info(
            "the decision store %s is back after %.1f s; replaying %d spooled decision records",
            describe(self.store.url),
            time.monotonic() - self.state.down_since,
            waiting,
        )
        if self.replay is None:
            self.replay = (open_number, open_size, waiting, "kept while the store was down")

    def _lines_waiting(self, open_number: int, open_size: int) -> int:
        """Complete lines from where the writer is to the end of the open segment's appends."""
        lines = 0
        for number in self._numbers():
            if number < self.segment or number > open_number:
                continue
            start = self.offset if number == self.segment else 0
            end = open_size if number == open_number else None
            with contextlib.suppress(OSError), self._path(number).open("rb") as segment:
                segment.seek(start)
                left = None if end is None else max(0, end - start)
                while left is None or left > 0:
                    chunk = segment.read(READ_CHUNK if left is None else min(left, READ_CHUNK))
                    if not chunk:
                        break
                    lines += chunk.count(b"\n")
                    if left is not None:
                        left -= len(chunk)
        return lines

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (syncing the spool when due); True if the writer is stopping."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.stopping:
            self._receive(min(left, self._seconds_to_sync()))
            self._sync_if_due()
        return self.stopping

    # -- files ----------------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.spool_dir / f"segment-{number:06d}.jsonl"

    def _close_reader(self) -> None:
        if self.reader is not None:
            os.close(self.reader[1])
            self.reader = None

    def _set_line_aside(self, line_no: int, raw: bytes, reason: str) -> None:
        rejected = self.spool_dir / REJECTED_FILE
        try:
            fd = os.open(rejected, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "ab") as out:
                os.fchmod(fd, 0o600)  # one made by an older triage may be readable by others
                out.write(raw + b"\n")
            kept = f"kept in {rejected}"
        except OSError as err:
            kept = f"and could not be kept in {rejected}: {err.strerror}"
        where = self._path(self.segment)
        log.warning("%s: line %d: %s; set aside, %s", where, line_no, reason, kept)

    def _seconds_to_sync(self) -> float:
        if self.settings.fsync_seconds is None:
            return IDLE_SECONDS
        return max(0.0, min(IDLE_SECONDS, self.next_sync - time.monotonic()))

    def _sync_if_due(self) -> None:
        if self.settings.fsync_seconds is not None and time.monotonic() >= self.next_sync:
            self._sync()

    def _sync(self, force: bool = False) -> None:
        """fsync the segments that grew since the last time (and the folder, for new ones): the
        most a power loss can take is ``fsync_seconds`` of answered decisions."""
        if self.settings.fsync_seconds is None:
            return
        self.next_sync = time.monotonic() + self.settings.fsync_seconds
        open_number, _ = self.state.open_segment()
        try:
            numbers = [n for n in self._numbers() if self.segment <= n <= open_number]
        except StoreError:
            return
        new_files = any(n not in self.synced for n in numbers)
        problem = None
        for number in numbers:
            try:
                fd = os.open(self._path(number), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # deleted meanwhile
            try:
                size = os.fstat(fd).st_size
                if force or self.synced.get(number) != size:
                    os.fsync(fd)
                    self.synced[number] = size
            except OSError as err:
                problem = err.strerror or str(err)
            finally:
                os.close(fd)
        if new_files and problem is None:
            problem = _fsync_directory(self.spool_dir)
        if problem and not self.sync_failing:
            log.warning("cannot fsync the decision spool %s: %s", self.spool_dir, problem)
        self.sync_failing = problem is not None


def _refused(err: StoreError) -> bool:
    """The store is up but will not take this data (a constraint or a value out of range):
    retrying would fail for ever, unlike an outage."""
    return isinstance(err.__cause__, IntegrityError | DataError)


def _fsync_directory(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        return err.strerror or str(err)
    try:
        os.fsync(fd)
    except OSError as err:
        return err.strerror or str(err)
    finally:
        os.close(fd)
    return None


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as err:  # deleted by the next writer instead
        log.warning("cannot delete the written spool segment %s: %s", path, err.strerror)
