"""The transport-free classification service that the gRPC layer (and any other) calls."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from triage.core.artifacts import ModelCard
from triage.core.errors import DeadlineExceeded, InvalidReport
from triage.core.scoring import Outcome, Report, require_text, score_valid
from triage.runtime.live import ReloadResult
from triage.runtime.microbatch import MicroBatcher
from triage.runtime.recording import DecisionRecorder, Origin
from triage.store.errors import NoRecord
from triage.store.records import DecisionView, Feedback

MAX_TOP_TERMS = 50


@dataclass(frozen=True)
class Limits:
    """Request limits; every refusal names the limit it hit."""

    max_text_chars: int = 100_000
    max_batch_size: int = 1_000
    max_message_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock after which work for a call is wasted."""

    at: float

    @classmethod
    def after(cls, seconds: float | None) -> Deadline | None:
        return None if seconds is None else cls(time.monotonic() + seconds)

    def check(self) -> None:
        if time.monotonic() >= self.at:
            raise DeadlineExceeded("the call's deadline passed before it was scored")


@dataclass(frozen=True)
class ModelInfo:
    """The serving model's card highlights and the limits enforced."""

    version: str
    labels: tuple[str, ...]
    created: str
    review_threshold: float
    review_target_precision: float
    candidate: str
    metrics: dict[str, float]
    limits: Limits


class Engine(Protocol):
    """Where models run: :class:`~triage.runtime.live.LiveModel` in this process, or
    :class:`~triage.runtime.model_processes.ModelWorkerPool` in model processes, one lane each."""

    lanes: int
    quiet_lane: int | None  # one more lane, only for a call that arrives alone; None: none
    restarts: int  # model processes started again after dying or hanging

    @property
    def loaded(self) -> bool: ...

    @property
    def serving(self) -> bool:
        """Whether a call can be scored now: health reports SERVING exactly when this holds."""
        ...

    @property
    def refusing(self) -> bool:
        """Whether the model path leads to a model a reload refused (the old one serves)."""
        ...

    @property
    def card(self) -> ModelCard: ...

    def score(self, lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]: ...

    def reload(self) -> ReloadResult: ...

    def changed_on_disk(self) -> bool: ...

    def close(self) -> None: ...


class ClassificationService:
    """Validates reports against :class:`Limits` and scores them on the engine, single calls
    through the micro-batcher when there is one."""

    def __init__(
        self,
        engine: Engine,
        limits: Limits = Limits(),
        batcher: MicroBatcher | None = None,
        reload: Callable[[], ReloadResult] | None = None,
        recorder: DecisionRecorder | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.batcher = batcher
        self.recorder = recorder  # None: decisions are not recorded
        self._reload = reload or engine.reload
        self._next_lane = itertools.cycle(range(engine.lanes))

    def validate(self, report: Report) -> None:
        """Raise :class:`InvalidReport` saying which rule ``report`` breaks."""
        require_text(report)
        if len(report.text) > self.limits.max_text_chars:
            raise InvalidReport(
                f"text has {len(report.text):,} characters, over the limit of "
                f"{self.limits.max_text_chars:,}; split or truncate the report"
            )
        if not 0 <= report.top_terms <= MAX_TOP_TERMS:
            raise InvalidReport(
                f"max_explanation_terms must be between 0 and {MAX_TOP_TERMS}, "
                f"got {report.top_terms}"
            )

    def classify(
        self, report: Report, deadline: Deadline | None = None, origin: Origin | None = None
    ) -> Outcome:
        """Score one report and put the answer on record (``origin``: who asked, when); raise
        the domain error that refuses it. The outcome holds a prediction."""
        self.validate(report)
        if deadline is not None:
            deadline.check()
        if self.batcher is not None:
            _, outcome = self.batcher.submit(report, deadline.at if deadline else None)
        else:
            _, (outcome,) = self.engine.score(0, [report])
        return self._answered(report, outcome, origin or Origin("Classify"))

    def _answered(self, report: Report, outcome: Outcome, origin: Origin) -> Outcome:
        """One scored report's outcome, put on record; the error that refused it raised."""
        if outcome.prediction is None:
            raise outcome.error or InvalidReport("the report was not scored")
        if self.recorder is not None:
            (outcome,) = self.recorder.record((report,), (outcome,), origin)
        return outcome

    def classify_later(
        self, report: Report, deadline: Deadline | None = None, origin: Origin | None = None
    ) -> Callable[[], Outcome]:
        """Start scoring one report and return a function that waits for its outcome (put on
        record as :meth:`classify` does, when it is collected). A report that is refused at
        once (invalid, past its deadline, a full queue) raises here. Many reports of one
        caller can be in flight together this way, and are batched together."""
        self.validate(report)
        if deadline is not None:
            deadline.check()
        if self.batcher is None:
            outcome = self.classify(report, deadline, origin)
            return lambda: outcome
        future = self.batcher.submit_later(report, deadline.at if deadline else None)
        source = origin or Origin("ClassifyStream")
        return lambda: self._answered(report, future.result()[1], source)

    def classify_batch(
        self,
        reports: Sequence[Report],
        deadline: Deadline | None = None,
        origin: Origin | None = None,
    ) -> tuple[str, list[Outcome]]:
        """Score every valid report in one model call; invalid ones get their own error. The
        scored ones are put on record together.

        Returns the version of the one model that scored the whole batch, and one outcome per
        report in request order.
        """
        if len(reports) > self.limits.max_batch_size:
            raise InvalidReport(
                f"batch has {len(reports):,} reports, over the limit of "
                f"{self.limits.max_batch_size:,}; send smaller batches"
            )
        if deadline is not None:
            deadline.check()
        # One lane, one model call: a batch is never split across model versions.
        lane = next(self._next_lane)
        versions: list[str] = []

        def score(valid: list[Report]) -> list[Outcome]:
            version, scored = self.engine.score(lane, valid)
            versions.append(version)
            return scored

        outcomes = score_valid(reports, self.validate, score)
        if self.recorder is not None:
            outcomes = self.recorder.record(reports, outcomes, origin or Origin("ClassifyBatch"))
        version = versions[0] if versions else self.engine.card.version
        return version, outcomes

    def decision(self, decision_id: str) -> DecisionView:
        """A recorded decision with its feedback; UnknownDecision if there is none."""
        return self._record().decision(decision_id)

    def submit_feedback(
        self,
        *,
        label: str,
        reviewer: str,
        recorded_by: str,
        decision_id: str = "",
        report_id: str = "",
        note: str = "",
        feedback_id: str | None = None,
    ) -> Feedback:
        """Record a reviewer's label for a decision (by id, or the latest for ``report_id``)."""
        return self._record().feedback(
            label=label,
            reviewer=reviewer,
            recorded_by=recorded_by,
            decision_id=decision_id,
            report_id=report_id,
            note=note,
            feedback_id=feedback_id,
        )

    def _record(self) -> DecisionRecorder:
        if self.recorder is None:
            raise NoRecord(
                "this server keeps no decision record (started with --no-record): there is "
                "nothing to look up or correct"
            )
        return self.recorder

    def model_info(self) -> ModelInfo:
        model_card = self.engine.card
        training = model_card.training
        metrics: dict[str, float] = {}
        for split, evaluation in (("cv", training.metrics.cv), ("test", training.metrics.test)):
            if evaluation is not None:
                for name, value in evaluation.headline().items():
                    metrics[f"{split}_{name}"] = value
        return ModelInfo(
            version=model_card.version,
            labels=tuple(model_card.labels),
            created=model_card.created,
            review_threshold=model_card.review_threshold,
            review_target_precision=training.review.target_precision,
            candidate=training.candidate,
            metrics=metrics,
            limits=self.limits,
        )

    def reload(self) -> ReloadResult:
        return self._reload()
