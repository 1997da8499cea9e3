"""What the decision record holds, as plain values: no SQLAlchemy here, so that the gRPC layer
and archive scoring build records without knowing how they are stored."""

from __future__ import annotations

import heapq
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from triage.core.model import Prediction

# Where a decision came from (decisions.source).
SOURCES = ("Classify", "ClassifyBatch", "ClassifyStream", "archive")


def new_id(at: float | None = None) -> str:
    """A time-ordered UUID (version 7 layout: 48 bits of Unix milliseconds, then random bits),
    so that new rows land at the end of the primary-key index instead of all over it."""
    millis = int((time.time() if at is None else at) * 1000)
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def utc_now() -> datetime:
    return datetime.now(UTC)


def score_margin(scores: Iterable[float]) -> float:
    """The highest score minus the second highest (the highest alone when there is one label,
    0.0 when there is none)."""
    top_two = heapq.nlargest(2, (float(score) for score in scores))
    if not top_two:
        return 0.0
    return top_two[0] - (top_two[1] if len(top_two) == 2 else 0.0)


@dataclass(frozen=True)
class SealedText:
    """A report text encrypted for storage: the Fernet token and the id of the key that made it."""

    ciphertext: bytes
    key_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Decision:
    """One scored report, as recorded. ``text`` is set only for a decision kept for review, and
    then only encrypted."""

    decision_id: str
    report_id: str
    received_at: datetime
    model_version: str
    source: str
    label: str
    confidence: float
    scores: Mapping[str, float]
    needs_review: bool
    reasons: tuple[str, ...]
    caller: str
    latency_ms: float | None
    text: SealedText | None = None

    @property
    def margin(self) -> float:
        """The top score minus the second (decisions.margin): how close the model came to
        another label; the review queue puts the smallest first."""
        return score_margin(self.scores.values())

    @classmethod
    def of(
        cls,
        prediction: Prediction,
        *,
        report_id: str,
        source: str,
        caller: str = "",
        received_at: datetime | None = None,
        latency_ms: float | None = None,
        decision_id: str | None = None,
        text: SealedText | None = None,
    ) -> Decision:
        return cls(
            decision_id=decision_id or new_id(),
            report_id=report_id,
            received_at=received_at or utc_now(),
            model_version=prediction.model_version,
            source=source,
            label=prediction.label,
            confidence=float(prediction.confidence),
            scores={label: float(p) for label, p in prediction.scores},
            needs_review=prediction.needs_review,
            reasons=tuple(prediction.review_reasons),
            caller=caller,
            latency_ms=latency_ms,
            text=text,
        )


@dataclass(frozen=True)
class ShadowDecision:
    """A candidate model's answer for a live decision, scored off the request path."""

    decision_id: str
    model_version: str
    scored_at: datetime
    label: str
    confidence: float
    scores: Mapping[str, float]
    needs_review: bool
    reasons: tuple[str, ...]
    latency_ms: float | None = None


@dataclass(frozen=True)
class Feedback:
    """A reviewer's label for a decision. ``old_label`` is what the decision said before this
    row (the model's label, or the previous reviewer's)."""

    feedback_id: str
    decision_id: str
    report_id: str
    old_label: str
    new_label: str
    reviewer: str
    note: str
    created_at: datetime
    source: str
    recorded_by: str = ""  # the authenticated caller that put it on record


@dataclass(frozen=True)
class DecisionView:
    """A decision as looked up: the record, its feedback history (oldest first), the shadow
    answers, and whether its text is still held."""

    decision: Decision
    feedback: Sequence[Feedback] = field(default_factory=tuple)
    shadows: Sequence[ShadowDecision] = field(default_factory=tuple)
    has_text: bool = False

    @property
    def current_label(self) -> str:
        """The latest reviewer's label, else the model's."""
        return self.feedback[-1].new_label if self.feedback else self.decision.label
