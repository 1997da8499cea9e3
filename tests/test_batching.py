"""The micro-batcher on its own: gathering, per-caller results, deadlines in the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from triage.core.errors import DeadlineExceeded, Overloaded
from triage.core.scoring import Outcome, Report
from triage.runtime.live import LiveModel
from triage.runtime.microbatch import BatchingConfig, MicroBatcher


class GatedScorer:
    """The real in-process engine, held at a gate so a test can fill the queue behind it."""

    def __init__(self, engine: LiveModel) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]:
        self.entered.set()
        self.gate.wait(30)
        self.batches.append([r.report_id for r in reports])
        return self.engine.score(lane, reports)


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def engine(models_dir) -> LiveModel:  # type: ignore[no-untyped-def]
    live = LiveModel(models_dir / "current")
    live.reload()
    return live


def test_a_lone_call_is_scored_at_once_and_a_queue_is_taken_together(engine: LiveModel) -> None:
    scorer = GatedScorer(engine)
    batcher = MicroBatcher(scorer, lanes=1, config=BatchingConfig(max_batch=8))
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(batcher.submit, Report("a burglary", "first"))
        assert scorer.entered.wait(5)  # taken alone, without waiting for company
        rest = [
            pool.submit(batcher.submit, Report(f"hacked account {i}", f"r{i}")) for i in range(10)
        ]
        _wait_for(lambda: batcher.queue_depth == 10)
        scorer.gate.set()
        assert first.result()[1].report_id == "first"
        assert [f.result()[1].report_id for f in rest] == [f"r{i}" for i in range(10)]
    batcher.close()
    assert scorer.batches == [["first"], [f"r{i}" for i in range(8)], ["r8", "r9"]]


def test_a_quiet_service_scores_on_the_callers_own_thread(engine: LiveModel) -> None:
    # The behaviour under test is the absence of a hand-off, so the thread is what to observe.
    def run_on(config: BatchingConfig) -> set[int]:
        threads: set[int] = set()

        def scorer(lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]:
            threads.add(threading.get_ident())
            return engine.score(lane, reports)

        batcher = MicroBatcher(scorer, lanes=2, config=config)
        for i in range(3):
            _, outcome = batcher.submit(Report(f"my card was cloned {i}", str(i)))
            assert outcome.report_id == str(i) and outcome.prediction is not None
        batcher.close()
        return threads

    assert run_on(BatchingConfig()) == {threading.get_ident()}  # no hand-off to another thread
    # Asked to wait for company, a lone call waits on a dispatcher thread instead.
    assert threading.get_ident() not in run_on(BatchingConfig(max_wait_seconds=0.001))


def test_a_deadline_that_passes_in_the_queue_skips_the_work(engine: LiveModel) -> None:
    scorer = GatedScorer(engine)
    batcher = MicroBatcher(scorer, lanes=1)
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(batcher.submit, Report("a burglary", "blocker"))
        assert scorer.entered.wait(5)
        late = pool.submit(batcher.submit, Report("a bomb threat", "late"), time.monotonic() + 0.05)
        time.sleep(0.2)
        scorer.gate.set()
        blocker.result()
        with pytest.raises(DeadlineExceeded, match="while it waited"):
            late.result()
    batcher.close()
    assert scorer.batches == [["blocker"]]  # the late report never reached the model


def test_a_full_queue_refuses_at_once(engine: LiveModel) -> None:
    scorer = GatedScorer(engine)
    batcher = MicroBatcher(scorer, lanes=1, config=BatchingConfig(max_batch=1, max_queue=2))
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(batcher.submit, Report("text", "0"))]
        assert scorer.entered.wait(5)  # the lane holds call 0 at the gate: the queue is empty
        calls += [pool.submit(batcher.submit, Report("text", str(i))) for i in (1, 2)]
        _wait_for(lambda: batcher.queue_depth == 2)
        with pytest.raises(Overloaded, match="already waiting"):
            batcher.submit(Report("one too many", "x"))
        scorer.gate.set()
        assert [c.result()[1].report_id for c in calls] == ["0", "1", "2"]
    batcher.close()


def test_reports_queued_without_waiting_are_batched_and_settle_each_their_own(
    engine: LiveModel,
) -> None:
    # A stream's reports go in one after another without their caller waiting for each.
    scorer = GatedScorer(engine)
    batcher = MicroBatcher(scorer, lanes=1, config=BatchingConfig(max_batch=8))
    futures = [batcher.submit_later(Report("hacked account 0", "r0"))]
    assert scorer.entered.wait(5)  # the dispatcher took the first one at once
    futures += [batcher.submit_later(Report(f"hacked account {i}", f"r{i}")) for i in range(1, 10)]
    assert batcher.queue_depth == 9  # queued behind it, none run on this thread
    scorer.gate.set()
    assert [f.result(10)[1].report_id for f in futures] == [f"r{i}" for i in range(10)]
    batcher.close()
    assert scorer.batches == [["r0"], [f"r{i}" for i in range(1, 9)], ["r9"]]
    with pytest.raises(Overloaded):  # closed: refused at once, like submit
        batcher.submit_later(Report("late", "late"))
