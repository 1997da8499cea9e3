"""The evaluation record: a model's figures on one labelled set, with its JSON form.

Evaluations are written inside the model card, so the card's ``format`` versions their layout
too; ``triage evaluate --format json`` prints the same JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triage.core.json_fields import JsonFields


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall, F1 and support of one label."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }

    @classmethod
    def read(cls, fields: JsonFields) -> ClassScores:
        return cls(
            precision=fields.number("precision"),
            recall=fields.number("recall"),
            f1=fields.number("f1"),
            support=fields.integer("support"),
        )


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of a reliability diagram: its bounds, mean confidence and accuracy."""

    low: float
    high: float
    confidence: float
    accuracy: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "accuracy": self.accuracy,
            "count": self.count,
        }

    @classmethod
    def read(cls, fields: JsonFields) -> ReliabilityBin:
        return cls(
            low=fields.number("low"),
            high=fields.number("high"),
            confidence=fields.number("confidence"),
            accuracy=fields.number("accuracy"),
            count=fields.integer("count"),
        )


@dataclass(frozen=True)
class ReviewOutcome:
    """What a review threshold did on the set: the share sent to review, the precision of the
    rest (None when nothing was accepted)."""

    threshold: float
    rate: float
    accepted_precision: float | None


@dataclass(frozen=True)
class Evaluation:
    """All figures of one evaluation; ``review`` only when a review threshold was applied."""

    n: int
    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]  # in ``labels`` order
    confusion_matrix: tuple[tuple[int, ...], ...]  # rows: true label, columns: predicted
    ece: float
    log_loss: float
    reliability: tuple[ReliabilityBin, ...]  # only the bins that hold predictions
    review: ReviewOutcome | None = None

    def headline(self) -> dict[str, float]:
        """The single-number figures this evaluation has, by their JSON names."""
        figures = {"macro_f1": self.macro_f1, "accuracy": self.accuracy, "ece": self.ece}
        if self.review is not None:
            figures["review_rate"] = self.review.rate
            if self.review.accepted_precision is not None:
                figures["accepted_precision"] = self.review.accepted_precision
        return figures

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "n": self.n,
            "labels": list(self.labels),
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {label: scores.to_dict() for label, scores in self.per_class.items()},
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "ece": self.ece,
            "log_loss": self.log_loss,
            "reliability": [b.to_dict() for b in self.reliability],
        }
        if self.review is not None:
            document["review_threshold"] = self.review.threshold
            document["review_rate"] = self.review.rate
            document["accepted_precision"] = self.review.accepted_precision
        return document

    @classmethod
    def from_dict(cls, document: object) -> Evaluation:
        """The evaluation in ``document``; :class:`InvalidRecord` names a missing or bad field."""
        return cls.read(JsonFields(document))

    @classmethod
    def read(cls, fields: JsonFields) -> Evaluation:
        labels = fields.texts("labels")
        per_class = fields.child("per_class")
        review = None
        if "review_threshold" in fields.names():
            review = ReviewOutcome(
                threshold=fields.number("review_threshold"),
                rate=fields.number("review_rate"),
                accepted_precision=fields.optional_number("accepted_precision"),
            )
        return cls(
            n=fields.integer("n"),
            labels=labels,
            accuracy=fields.number("accuracy"),
            macro_f1=fields.number("macro_f1"),
            per_class={label: ClassScores.read(per_class.child(label)) for label in labels},
            confusion_matrix=fields.integer_rows("confusion_matrix"),
            ece=fields.number("ece"),
            log_loss=fields.number("log_loss"),
            reliability=tuple(ReliabilityBin.read(b) for b in fields.children("reliability")),
            review=review,
        )
