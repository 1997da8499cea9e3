"""Drift of live traffic against a model's own cross-validation: population stability index.

PSI = sum over bins of (live share - CV share) * ln(live share / CV share). It is 0 when the
two distributions agree and grows with every bin that moved, in either direction. The usual
reading, used here:

- PSI <= 0.1: stable;
- 0.1 < PSI <= 0.2: a moderate shift, worth watching;
- PSI > 0.2 (:data:`PSI_ALERT`, changeable with ``--psi-alert``): a significant shift, the
  alert: the traffic no longer looks like what the model was evaluated on, so its CV figures
  (and its review threshold) no longer describe it.

A bin empty on one side would make the logarithm infinite; its share counts as
:data:`EPSILON` (1e-4) instead, so that one empty bin weighs a lot without drowning the rest.
Below :data:`MIN_DRIFT_DECISIONS` live decisions the index is still computed but not judged:
sampling noise alone can push it over 0.2 on a handful of decisions.

The baselines come from the model card: the predicted-label mix is the column sums of the CV
confusion matrix; the confidence distribution is the CV reliability bins (``low``, ``high``,
``count``), and the live confidences are binned on the same edges (a bin holds ``low <
confidence <= high``, the first one also 0), so that both sides are counted alike.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from triage.core.card import ModelCard

PSI_MODERATE = 0.1
PSI_ALERT = 0.2
EPSILON = 1e-4
MIN_DRIFT_DECISIONS = 100

# Drift.status values (stable names: they are in the JSON output).
STABLE = "stable"
MODERATE = "moderate"
SIGNIFICANT = "significant"
TOO_FEW = "too_few_decisions"
NO_BASELINE = "no_baseline"
NO_DECISIONS = "no_decisions"

STATUS_WORDS = {
    STABLE: "stable",
    MODERATE: "moderate shift",
    SIGNIFICANT: "SIGNIFICANT SHIFT",
    TOO_FEW: f"too few decisions to judge (< {MIN_DRIFT_DECISIONS})",
    NO_BASELINE: "no CV baseline",
    NO_DECISIONS: "no decisions",
}


def population_stability_index(baseline: Sequence[int], live: Sequence[int]) -> float | None:
    """PSI of ``live`` counts against ``baseline`` counts over the same bins (None when either
    side is empty)."""
    if len(baseline) != len(live):
        raise ValueError("baseline and live need the same bins")
    base_total, live_total = sum(baseline), sum(live)
    if base_total <= 0 or live_total <= 0:
        return None
    index = 0.0
    for expected_count, actual_count in zip(baseline, live, strict=True):
        expected = max(expected_count / base_total, EPSILON)
        actual = max(actual_count / live_total, EPSILON)
        index += (actual - expected) * math.log(actual / expected)
    return index


def judge(psi: float | None, live_n: int, has_baseline: bool, alert: float = PSI_ALERT) -> str:
    """The status word of an index: see the module docstring for the bands."""
    if not has_baseline:
        return NO_BASELINE
    if live_n == 0 or psi is None:
        return NO_DECISIONS
    if live_n < MIN_DRIFT_DECISIONS:
        return TOO_FEW
    if psi > alert:
        return SIGNIFICANT
    if psi > PSI_MODERATE:
        return MODERATE
    return STABLE


@dataclass(frozen=True)
class Drift:
    """One drift figure: ``kind`` is ``label`` or ``confidence``; ``bins`` names the bins
    (labels, or confidence ranges whose ``edges`` are given); ``baseline`` is None without a
    card."""

    kind: str
    bins: tuple[str, ...]
    edges: tuple[float, ...]  # confidence only: len(bins) + 1 edges; empty for labels
    baseline: tuple[int, ...] | None
    live: tuple[int, ...]
    psi: float | None
    status: str

    @property
    def alert(self) -> bool:
        return self.status == SIGNIFICANT

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": self.psi,
            "status": self.status,
            "bins": list(self.bins),
            "edges": list(self.edges),
            "baseline": list(self.baseline) if self.baseline is not None else None,
            "live": list(self.live),
        }


def label_baseline(card: ModelCard) -> dict[str, int]:
    """The predicted-label mix on cross-validation: column sums of the CV confusion matrix."""
    cv = card.training.metrics.cv
    return {label: sum(row[j] for row in cv.confusion_matrix) for j, label in enumerate(cv.labels)}


def confidence_baseline(card: ModelCard) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Edges over [0, 1] and CV counts per bin. The card lists only the reliability bins that
    held predictions; the ranges between them become bins with a count of 0."""
    bins = card.training.metrics.cv.reliability
    counts = {(b.low, b.high): b.count for b in bins}
    edges = tuple(sorted({0.0, 1.0, *(b.low for b in bins), *(b.high for b in bins)}))
    return edges, tuple(counts.get(pair, 0) for pair in itertools.pairwise(edges))


def label_drift(
    baseline: dict[str, int] | None, live: dict[str, int], alert: float = PSI_ALERT
) -> Drift:
    """Drift of the live predicted-label mix; a live label the card does not know gets a
    baseline of 0."""
    names = list(baseline or {})
    names += sorted(label for label in live if label not in names)
    live_counts = tuple(live.get(label, 0) for label in names)
    base_counts = tuple(baseline.get(label, 0) for label in names) if baseline else None
    psi = population_stability_index(base_counts, live_counts) if base_counts else None
    return Drift(
        kind="label",
        bins=tuple(names),
        edges=(),
        baseline=base_counts,
        live=live_counts,
        psi=psi,
        status=judge(psi, sum(live_counts), base_counts is not None, alert),
    )


def confidence_drift(
    edges: tuple[float, ...],
    baseline: tuple[int, ...] | None,
    live: tuple[int, ...],
    alert: float = PSI_ALERT,
) -> Drift:
    """Drift of live confidences counted on ``edges`` against the CV counts on the same."""
    psi = population_stability_index(baseline, live) if baseline is not None else None
    return Drift(
        kind="confidence",
        bins=tuple(f"{low:.3f}-{high:.3f}" for low, high in itertools.pairwise(edges)),
        edges=edges,
        baseline=baseline,
        live=live,
        psi=psi,
        status=judge(psi, sum(live), baseline is not None, alert),
    )
