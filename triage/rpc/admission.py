"""Capacity admission: how much work the server takes on at once, by call kind and by bytes."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from triage.core.errors import Overloaded

log = logging.getLogger(__name__)

# A request message up to this size never waits on the byte budget: its memory is already
# bounded by the call slots (each holds at most one message at a time), and a budget filled by
# large requests must not refuse the ordinary small ones.
FREE_MESSAGE_BYTES = 64 * 1024
REFUSAL_LOG_SECONDS = 10.0


class CapacityRefused(Overloaded):
    """A call or message refused at one named capacity limit (RESOURCE_EXHAUSTED)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class RefusalNotice:
    """Counts every refusal by limit and logs a warning at most every few seconds per limit,
    with the number refused since the last one (a flood must not become a flood of log lines)."""

    def __init__(
        self, count: Callable[[str], None] | None = None, every: float = REFUSAL_LOG_SECONDS
    ) -> None:
        self._count = count
        self._every = every
        self._lock = threading.Lock()
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def refused(self, error: CapacityRefused) -> None:
        if self._count is not None:
            self._count(error.limit)
        now = time.monotonic()
        with self._lock:
            waiting = self._unlogged.get(error.limit, 0) + 1
            if now - self._logged.get(error.limit, -math.inf) < self._every:
                self._unlogged[error.limit] = waiting
                return
            self._logged[error.limit] = now
            self._unlogged[error.limit] = 0
        log.warning("refused %d call(s) or message(s): %s", waiting, error)


class CallSlots:
    """Unary calls in flight, and long-lived streams open in all and per connection, each
    against its own limit, so that idle streams can never take the slots unary calls need."""

    def __init__(
        self,
        max_unary: int,
        max_streams: int,
        max_streams_per_connection: int,
        notice: RefusalNotice | None = None,
    ) -> None:
        self.max_unary = max_unary
        self.max_streams = max_streams
        self.max_streams_per_connection = max_streams_per_connection
        self._notice = notice or RefusalNotice()
        self._lock = threading.Lock()
        self.unary = 0
        self.streams = 0
        self._streams_of: dict[str, int] = {}  # connection (peer) -> its open streams

    def enter_unary(self) -> None:
        """Take a unary slot, or raise :class:`CapacityRefused`; pair with :meth:`leave_unary`."""
        with self._lock:
            if self.unary < self.max_unary:
                self.unary += 1
                return
        self._refuse(
            "unary",
            f"the server is handling its limit of {self.max_unary:,} calls at once; "
            "retry with backoff",
        )

    def leave_unary(self) -> None:
        with self._lock:
            self.unary -= 1

    def enter_stream(self, connection: str) -> None:
        """Take a stream slot for ``connection`` (the peer address), or raise
        :class:`CapacityRefused`; pair with :meth:`leave_stream`."""
        with self._lock:
            mine = self._streams_of.get(connection, 0)
            full = self.streams >= self.max_streams
            if not full and mine < self.max_streams_per_connection:
                self.streams += 1
                self._streams_of[connection] = mine + 1
                return
        if full:
            self._refuse(
                "streams",
                f"the server has its limit of {self.max_streams:,} streams open; retry with "
                "backoff, or send unary calls",
            )
        self._refuse(
            "connection_streams",
            f"this connection has its limit of {self.max_streams_per_connection:,} streams "
            "open; close one or send unary calls",
        )

    def leave_stream(self, connection: str) -> None:
        with self._lock:
            self.streams -= 1
            left = self._streams_of[connection] - 1
            if left:
                self._streams_of[connection] = left
            else:
                del self._streams_of[connection]  # the map holds only open connections

    def _refuse(self, limit: str, message: str) -> None:
        error = CapacityRefused(limit, message)
        self._notice.refused(error)
        raise error


class RequestBudget:
    """The bytes of request messages being handled at once. A message is admitted before it is
    parsed and held until its call (or, in a stream, its turn) is over; a message that would
    take the total over the budget is refused instead of growing memory."""

    def __init__(self, max_bytes: int, notice: RefusalNotice | None = None) -> None:
        self.max_bytes = max_bytes
        self._notice = notice or RefusalNotice()
        self._lock = threading.Lock()
        self.in_use = 0

    def take(self, size: int) -> int:
        """Admit a message of ``size`` bytes; returns what to :meth:`give_back` when done with
        it (0 for a small message), or raises :class:`CapacityRefused`."""
        if size <= FREE_MESSAGE_BYTES:
            return 0
        with self._lock:
            if self.in_use + size <= self.max_bytes:
                self.in_use += size
                return size
        error = CapacityRefused(
            "request_bytes",
            f"a request of {_mib(size)} would take the requests being handled over the "
            f"server's budget of {_mib(self.max_bytes)}; retry with backoff, or send smaller "
            "requests",
        )
        self._notice.refused(error)
        raise error

    def give_back(self, taken: int) -> None:
        if taken:
            with self._lock:
                self.in_use -= taken


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MiB"
