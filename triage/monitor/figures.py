"""The live quality figures of each model version in a window of the decision record.

Per version: decisions, review rate and reasons, label mix per UTC day, a 10-bin confidence
histogram, the accuracy of its predictions against reviewer labels (the latest feedback row of
a decision wins), and drift against its own cross-validation (see :mod:`triage.monitor.drift`).
Everything is counted by the database (:mod:`triage.monitor.queries`).

``QualityReport.to_dict`` is the ``triage monitor --json`` document; its field names are
stable (``format`` changes if they ever must):

- ``format`` (1), ``window`` {``since``, ``until``: ISO 8601 UTC or null; until exclusive},
  ``thresholds`` {``psi_moderate``, ``psi_alert``, ``psi_epsilon``, ``min_drift_decisions``,
  ``min_feedback``}, ``histogram_edges`` (the 11 edges of the confidence histogram);
- ``versions``: one object per model version, by name: ``version``, ``card`` (bool),
  ``card_problem`` (why there is no CV baseline, or null), ``decisions``, ``needs_review``,
  ``review_rate``, ``reasons`` {reason: decisions}, ``labels`` {label: decisions},
  ``label_mix_by_day`` [{``day``, ``labels`` {label: decisions}}], ``confidence_histogram``
  [counts per bin], ``accuracy`` {``accepted``, ``flagged``, ``reviewed``, ``corrected``},
  each {``successes``, ``n``, ``share``, ``low``, ``high``, ``enough``} with a 95% Wilson
  interval, and ``drift`` {``label``, ``confidence``}, each {``psi``, ``status``, ``bins``,
  ``edges``, ``baseline``, ``live``};
- ``compare`` (only with a shadow version): {``shadow_version``, ``versions``: [{
  ``live_version``, ``agreement``, ``labels``, ``confusion`` (rows live, columns shadow),
  ``live_accuracy``, ``shadow_accuracy``}]};
- ``plots`` (added by ``triage monitor``): the PNG files written, empty without ``--plots``.

The accuracies: ``accepted`` is the share of accepted decisions (``needs_review`` false) with
feedback whose reviewer label is the model's, the live counterpart of the card's accepted
precision; ``flagged`` the same over decisions sent to review; ``reviewed`` over every decision
with feedback; ``corrected`` the share of reviewed decisions whose reviewer label differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from triage.monitor import drift, queries
from triage.monitor.baselines import Baseline, read_baselines
from triage.monitor.drift import Drift
from triage.monitor.proportion import MIN_N, Proportion
from triage.monitor.shadow import ShadowComparison, compare_shadow
from triage.monitor.window import Window
from triage.store.database import Store

REPORT_FORMAT = 1
HISTOGRAM_EDGES = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class DayMix:
    """The labels a version gave on one UTC day."""

    day: str  # YYYY-MM-DD
    labels: dict[str, int]

    @property
    def decisions(self) -> int:
        return sum(self.labels.values())


@dataclass(frozen=True)
class LiveAccuracy:
    """A version's predictions against reviewer labels (see the module docstring)."""

    accepted: Proportion
    flagged: Proportion
    reviewed: Proportion
    corrected: Proportion

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted.to_dict(),
            "flagged": self.flagged.to_dict(),
            "reviewed": self.reviewed.to_dict(),
            "corrected": self.corrected.to_dict(),
        }


@dataclass(frozen=True)
class VersionFigures:
    """Every figure of one model version in the window."""

    version: str
    baseline: Baseline
    decisions: int
    needs_review: int
    reasons: dict[str, int]
    labels: dict[str, int]
    days: tuple[DayMix, ...]
    histogram: tuple[int, ...]  # decisions per bin of HISTOGRAM_EDGES
    accuracy: LiveAccuracy
    label_drift: Drift
    confidence_drift: Drift

    @property
    def review_rate(self) -> float | None:
        return self.needs_review / self.decisions if self.decisions else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "card": self.baseline.card is not None,
            "card_problem": self.baseline.problem,
            "decisions": self.decisions,
            "needs_review": self.needs_review,
            "review_rate": self.review_rate,
            "reasons": dict(self.reasons),
            "labels": dict(self.labels),
            "label_mix_by_day": [{"day": d.day, "labels": dict(d.labels)} for d in self.days],
            "confidence_histogram": list(self.histogram),
            "accuracy": self.accuracy.to_dict(),
            "drift": {
                "label": self.label_drift.to_dict(),
                "confidence": self.confidence_drift.to_dict(),
            },
        }


@dataclass(frozen=True)
class QualityReport:
    """Every version's figures in ``window``, and the shadow comparison when one was asked."""

    window: Window
    psi_alert: float
    versions: tuple[VersionFigures, ...]
    comparison: ShadowComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "window": self.window.to_dict(),
            "thresholds": {
                "psi_moderate": drift.PSI_MODERATE,
                "psi_alert": self.psi_alert,
                "psi_epsilon": drift.EPSILON,
                "min_drift_decisions": drift.MIN_DRIFT_DECISIONS,
                "min_feedback": MIN_N,
            },
            "histogram_edges": list(HISTOGRAM_EDGES),
            "versions": [v.to_dict() for v in self.versions],
        }
        if self.comparison is not None:
            document["compare"] = self.comparison.to_dict()
        return document


def measure_quality(
    store: Store,
    models_dir: Path | None,
    window: Window,
    *,
    versions: Sequence[str] | None = None,
    psi_alert: float = drift.PSI_ALERT,
    compare: str | None = None,
) -> QualityReport:
    """The figures of every version with decisions in ``window`` (only ``versions`` if given),
    with CV baselines from the cards in ``models_dir``; ``compare`` names a shadow version to
    compare the live decisions with. Raises ``StoreError`` when the record cannot be read."""
    with store.connect() as connection:
        reviews = queries.review_counts(connection, window, versions)
        found = sorted({r.version for r in reviews})
        baselines = read_baselines(models_dir, found)
        days = queries.label_days(connection, window, found)
        histograms = queries.confidence_counts(connection, window, HISTOGRAM_EDGES, found)
        feedback = queries.feedback_counts(connection, window, found)
        figures = tuple(
            _version_figures(
                connection,
                window,
                baselines[version],
                [r for r in reviews if r.version == version],
                [d for d in days if d.version == version],
                histograms.get(version, (0,) * (len(HISTOGRAM_EDGES) - 1)),
                [f for f in feedback if f.version == version],
                psi_alert,
            )
            for version in found
        )
        comparison = compare_shadow(connection, window, compare, versions) if compare else None
    return QualityReport(window, psi_alert, figures, comparison)


def _version_figures(
    connection: Connection,
    window: Window,
    baseline: Baseline,
    reviews: list[queries.ReviewCount],
    days: list[queries.DayLabelCount],
    histogram: tuple[int, ...],
    feedback: list[queries.FeedbackCount],
    psi_alert: float,
) -> VersionFigures:
    version = baseline.version
    reasons: dict[str, int] = {}
    for review in reviews:
        for reason in filter(None, review.reasons.split(",")):
            reasons[reason] = reasons.get(reason, 0) + review.count
    labels: dict[str, int] = {}
    by_day: dict[str, dict[str, int]] = {}
    for row in days:
        labels[row.label] = labels.get(row.label, 0) + row.count
        by_day.setdefault(row.day, {})[row.label] = row.count
    card = baseline.card
    if card is not None:
        edges, cv_counts = drift.confidence_baseline(card)
        live = queries.confidence_counts(connection, window, edges, [version]).get(version)
        confidence = drift.confidence_drift(
            edges, cv_counts, live or (0,) * len(cv_counts), psi_alert
        )
    else:
        confidence = drift.confidence_drift(HISTOGRAM_EDGES, None, histogram, psi_alert)
    return VersionFigures(
        version=version,
        baseline=baseline,
        decisions=sum(r.count for r in reviews),
        needs_review=sum(r.count for r in reviews if r.needs_review),
        reasons=dict(sorted(reasons.items())),
        labels=dict(sorted(labels.items())),
        days=tuple(DayMix(day, dict(sorted(mix.items()))) for day, mix in sorted(by_day.items())),
        histogram=histogram,
        accuracy=_accuracy(feedback),
        label_drift=drift.label_drift(
            drift.label_baseline(card) if card is not None else None, labels, psi_alert
        ),
        confidence_drift=confidence,
    )


def _accuracy(rows: list[queries.FeedbackCount]) -> LiveAccuracy:
    def share(selected: list[queries.FeedbackCount]) -> Proportion:
        return Proportion(
            sum(r.count for r in selected if r.agrees), sum(r.count for r in selected)
        )

    reviewed = share(rows)
    return LiveAccuracy(
        accepted=share([r for r in rows if not r.needs_review]),
        flagged=share([r for r in rows if r.needs_review]),
        reviewed=reviewed,
        corrected=Proportion(reviewed.n - reviewed.successes, reviewed.n),
    )
