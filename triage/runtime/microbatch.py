"""Adaptive micro-batching: concurrent single-report calls scored together in one model call."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from triage.core.errors import DeadlineExceeded, Overloaded
from triage.core.scoring import Outcome, Report

log = logging.getLogger(__name__)

# Scores a batch on one lane (a model process, or the in-process model) and returns the
# version of the model that scored it with one outcome per report.
LaneScorer = Callable[[int, Sequence[Report]], tuple[str, list[Outcome]]]
BatchObserver = Callable[[int], None]


@dataclass(frozen=True)
class BatchingConfig:
    """How calls are gathered. A zero wait means no fixed delay: an idle lane takes a lone
    call at once, and under load it takes whatever has queued (TF Serving and Triton batch
    the same way with their default zero delay)."""

    max_batch: int = 64
    max_wait_seconds: float = 0.0
    max_queue: int = 10_000  # calls waiting beyond this are refused (RESOURCE_EXHAUSTED)


@dataclass
class _Pending:
    report: Report
    deadline: float | None  # time.monotonic() value
    future: Future[tuple[str, Outcome]]


class MicroBatcher:
    """Lanes (a model process each, or the in-process model) take batches from a shared queue.

    A quiet service pays nothing for batching: a call that finds the queue empty and a lane idle
    is scored at once on its caller's own thread, with no hand-off. Calls that find every lane
    busy queue up, and one dispatcher thread per lane takes whatever has queued, up to
    ``max_batch``, as soon as a lane is free. ``submit`` blocks its caller until its own report
    is scored; each caller gets exactly the outcome of its own report (futures are bound to
    reports, never to positions in a batch).
    """

    def __init__(
        self,
        scorer: LaneScorer,
        lanes: int,
        config: BatchingConfig = BatchingConfig(),
        on_batch: BatchObserver | None = None,
        quiet_lane: int | None = None,
    ) -> None:
        self._scorer = scorer
        self._config = config
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._lanes = lanes
        self._idle = list(range(lanes))  # lanes nobody is driving
        # An extra lane only for a call that finds nothing else in flight (see ModelWorkerPool).
        self._quiet_lane = quiet_lane
        self._quiet_free = quiet_lane is not None
        self._callers = 0  # submit calls under way (waiting, queued or being scored)
        self._ready = threading.Condition()
        self._closed = False
        # With a maximum wait a lone call waits for company, so callers never run it directly.
        self._callers_run = config.max_wait_seconds <= 0
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"batch-dispatch-{n}", daemon=True)
            for n in range(lanes)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(self, report: Report, deadline: float | None = None) -> tuple[str, Outcome]:
        """Score one validated report and return its outcome (and the model version)."""
        pending = _Pending(report, deadline, Future())
        lane: int | None = None
        with self._ready:
            if self._closed:
                raise Overloaded("the service is shutting down; retry on another replica")
            self._callers += 1
            if self._callers_run and not self._queue and self._idle:
                # The quiet lane only for a call alone in the service: under load, scoring in
                # this process would hold its interpreter while it should take calls in.
                quiet = self._callers == 1 and len(self._idle) == self._lanes
                if self._quiet_free and quiet:
                    lane, self._quiet_free = self._quiet_lane, False
                else:
                    lane = self._idle.pop()
            else:
                try:
                    self._enqueue(pending)
                except Overloaded:
                    self._callers -= 1
                    raise
        try:
            if lane is not None:
                try:
                    self._run(lane, [pending])
                finally:
                    self._release(lane)
            return pending.future.result()
        finally:
            with self._ready:
                self._callers -= 1

    def submit_later(
        self, report: Report, deadline: float | None = None
    ) -> Future[tuple[str, Outcome]]:
        """Queue one validated report and return at once; the future settles when it is
        scored. For callers with many reports in flight (a stream): they are batched with
        each other and with everyone else's, never scored on the caller's thread."""
        pending = _Pending(report, deadline, Future())
        with self._ready:
            if self._closed:
                raise Overloaded("the service is shutting down; retry on another replica")
            self._enqueue(pending)
        return pending.future

    def _enqueue(self, pending: _Pending) -> None:
        """Queue ``pending`` for a dispatcher (the caller holds ``_ready``), or refuse it."""
        if len(self._queue) >= self._config.max_queue:
            raise Overloaded(
                f"{len(self._queue):,} reports are already waiting to be scored; retry later"
            )
        self._queue.append(pending)
        self._ready.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the dispatchers."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _release(self, lane: int) -> None:
        with self._ready:
            if lane == self._quiet_lane:
                self._quiet_free = True
                return
            self._idle.append(lane)
            self._ready.notify()  # a dispatcher may be waiting for a free lane

    def _take(self) -> tuple[int, list[_Pending]] | None:
        config = self._config
        with self._ready:
            while not (self._queue and self._idle):
                if self._closed and not self._queue:
                    return None
                self._ready.wait()
            lane = self._idle.pop()
            if config.max_wait_seconds > 0 and len(self._queue) < config.max_batch:
                until = time.monotonic() + config.max_wait_seconds
                while len(self._queue) < config.max_batch:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
            taken = [self._queue.popleft() for _ in range(min(config.max_batch, len(self._queue)))]
            return lane, taken

    def _dispatch(self) -> None:
        while (work := self._take()) is not None:
            lane, batch = work
            try:
                self._run(lane, batch)
            finally:
                self._release(lane)

    def _run(self, lane: int, batch: list[_Pending]) -> None:
        """Score ``batch`` on ``lane`` and settle every caller's future."""
        now = time.monotonic()
        live: list[_Pending] = []
        for pending in batch:
            if pending.deadline is not None and pending.deadline <= now:
                # Waited too long in the queue: the caller has given up, skip the work.
                pending.future.set_exception(
                    DeadlineExceeded("the call's deadline passed while it waited to be scored")
                )
            else:
                live.append(pending)
        if not live:
            return
        if self._on_batch:
            self._on_batch(len(live))
        try:
            version, outcomes = self._scorer(lane, [p.report for p in live])
        except BaseException as err:  # the lane's failure belongs to this batch's callers
            for pending in live:
                pending.future.set_exception(err)
            return
        for pending, outcome in zip(live, outcomes, strict=True):
            pending.future.set_result((version, outcome))
