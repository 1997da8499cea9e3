"""Adaptive micro-batching: concurrent single-report calls scored together in one model call."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from triage.errors import DeadlineExceeded, Overloaded
from triage.scoring import Outcome, Report

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
    """One dispatcher thread per lane takes batches from a shared queue.

    ``submit`` blocks its caller until its own report is scored; each caller gets exactly the
    outcome of its own report (futures are bound to reports, never to positions in a batch).
    """

    def __init__(
        self,
        scorer: LaneScorer,
        lanes: int,
        config: BatchingConfig = BatchingConfig(),
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._scorer = scorer
        self._config = config
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(
                target=self._run_lane, args=(lane,), name=f"batch-lane-{lane}", daemon=True
            )
            for lane in range(lanes)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(self, report: Report, deadline: float | None = None) -> tuple[str, Outcome]:
        """Queue one validated report and wait for its outcome (and the model version)."""
        pending = _Pending(report, deadline, Future())
        with self._ready:
            if self._closed:
                raise Overloaded("the service is shutting down; retry on another replica")
            if len(self._queue) >= self._config.max_queue:
                raise Overloaded(
                    f"{len(self._queue):,} reports are already waiting to be scored; retry later"
                )
            self._queue.append(pending)
            self._ready.notify()
        return pending.future.result()

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the lanes."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _take(self) -> list[_Pending] | None:
        config = self._config
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            if config.max_wait_seconds > 0 and len(self._queue) < config.max_batch:
                until = time.monotonic() + config.max_wait_seconds
                while len(self._queue) < config.max_batch:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
            return [self._queue.popleft() for _ in range(min(config.max_batch, len(self._queue)))]

    def _run_lane(self, lane: int) -> None:
        while (batch := self._take()) is not None:
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
                continue
            if self._on_batch:
                self._on_batch(len(live))
            try:
                version, outcomes = self._scorer(lane, [p.report for p in live])
            except BaseException as err:  # the lane's failure belongs to this batch's callers
                for pending in live:
                    pending.future.set_exception(err)
                continue
            for pending, outcome in zip(live, outcomes, strict=True):
                pending.future.set_result((version, outcome))
