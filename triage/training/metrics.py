"""Evaluation figures for predicted probabilities: per-class scores, confusion, calibration."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from triage.core.evaluation import ClassScores, Evaluation, ReliabilityBin, ReviewOutcome

CALIBRATION_BINS = 15
REVIEW_EVERYTHING = math.nextafter(1.0, 2.0)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Top-label ECE: the support-weighted gap between confidence and accuracy per bin."""
    table = reliability_table(confidence, correct, bins)
    total = sum(b.count for b in table)
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in table))


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[ReliabilityBin, ...]:
    """Per-bin mean confidence, accuracy and count (bins that hold predictions): the data of a
    reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            table.append(
                ReliabilityBin(
                    low=float(edges[b]),
                    high=float(edges[b + 1]),
                    confidence=float(confidence[in_bin].mean()),
                    accuracy=float(correct[in_bin].mean()),
                    count=int(in_bin.sum()),
                )
            )
    return tuple(table)


def choose_review_threshold(
    confidence: np.ndarray, correct: np.ndarray, target_precision: float
) -> float:
    """Lowest confidence threshold whose accepted predictions reach ``target_precision``.

    Predictions with confidence >= threshold are accepted; the rest go to human review.
    When no threshold reaches the target it returns the smallest float above 1.0, so that
    every prediction goes to review.
    """
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # Only cut between distinct confidences: ties are accepted or reviewed together.
    last_of_tie = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    ok = np.flatnonzero(last_of_tie & (precision >= target_precision))
    if ok.size == 0:
        return REVIEW_EVERYTHING
    return float(conf_sorted[ok[-1]])


def review_curve(
    y_true: Sequence[str] | np.ndarray, proba: np.ndarray, labels: Sequence[str]
) -> list[tuple[float, float, float]]:
    """Every threshold an operator could choose, as (threshold, review rate, precision of the
    accepted answers): one point per distinct confidence, most reviewed last."""
    confidence = proba.max(axis=1)
    correct = np.asarray(labels)[proba.argmax(axis=1)] == np.asarray(y_true)
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    accepted = np.arange(1, len(order) + 1)
    precision = np.cumsum(correct[order]) / accepted
    last_of_tie = np.r_[conf_sorted[1:] != conf_sorted[:-1], True] if len(order) else []
    n = len(order)
    return [
        (float(conf_sorted[i]), 1.0 - accepted[i] / n, float(precision[i]))
        for i in np.flatnonzero(last_of_tie)
    ]


def evaluate(
    y_true: Sequence[str] | np.ndarray,
    proba: np.ndarray,
    labels: Sequence[str],
    review_threshold: float | None = None,
) -> Evaluation:
    """All figures of one evaluation of ``proba`` (columns in ``labels`` order) against ``y_true``.

    With a review threshold it also holds the review rate and the precision of the predictions
    that are not sent to review.
    """
    labels = tuple(labels)
    y = np.asarray(y_true)
    pred = np.asarray(labels)[proba.argmax(axis=1)]
    confidence = proba.max(axis=1)
    correct = pred == y
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    review = None
    if review_threshold is not None:
        accepted = confidence >= review_threshold
        review = ReviewOutcome(
            threshold=float(review_threshold),
            rate=float(1.0 - accepted.mean()),
            accepted_precision=float(correct[accepted].mean()) if accepted.any() else None,
        )
    return Evaluation(
        n=len(y),
        labels=labels,
        accuracy=float(accuracy_score(y, pred)),
        macro_f1=float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        per_class={
            label: ClassScores(
                precision=float(precision[i]),
                recall=float(recall[i]),
                f1=float(f1[i]),
                support=int(support[i]),
            )
            for i, label in enumerate(labels)
        },
        confusion_matrix=tuple(
            tuple(int(count) for count in row) for row in confusion_matrix(y, pred, labels=labels)
        ),
        ece=expected_calibration_error(confidence, correct),
        log_loss=float(log_loss(y, np.clip(proba, 1e-12, 1.0), labels=labels)),
        reliability=reliability_table(confidence, correct),
        review=review,
    )


def format_report(title: str, ev: Evaluation) -> str:
    """A plain-text evaluation report, as ``triage train`` and ``triage evaluate`` print it."""
    labels = ev.labels
    width = max(12, *(len(label) for label in labels))
    lines = [
        f"{title}  (n={ev.n})",
        f"  accuracy {ev.accuracy:.3f}   macro-F1 {ev.macro_f1:.3f}   "
        f"ECE {ev.ece:.3f}   log-loss {ev.log_loss:.3f}",
    ]
    if ev.review is not None:
        accepted = ev.review.accepted_precision
        lines.append(
            f"  review threshold {ev.review.threshold:.3f}: review rate "
            f"{ev.review.rate:.1%}, precision of the rest "
            + ("n/a" if accepted is None else f"{accepted:.3f}")
        )
    lines.append(f"  {'label':<{width}}  precision  recall     f1  support")
    for label in labels:
        s = ev.per_class[label]
        lines.append(
            f"  {label:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}  {s.support:7d}"
        )
    lines.append("  confusion matrix (rows: true, columns: predicted)")
    short = [label[:10] for label in labels]
    lines.append(f"  {'':<{width}}  " + " ".join(f"{s:>10}" for s in short))
    for label, counts in zip(labels, ev.confusion_matrix, strict=True):
        lines.append(f"  {label:<{width}}  " + " ".join(f"{c:>10d}" for c in counts))
    return "\n".join(lines)
