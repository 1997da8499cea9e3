"""Shadow agreement: how often a candidate scored in shadow gives the live model's label, and,
on decisions reviewers labelled, which of the two was right more often."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from triage.monitor.proportion import Proportion
from triage.monitor.queries import ShadowPairCount, shadow_pair_counts
from triage.monitor.window import Window


@dataclass(frozen=True)
class ShadowAgreement:
    """One live version against the shadow version, on the decisions both answered.

    ``confusion`` rows are the live label, columns the shadow label, both in ``labels`` order.
    The two accuracies rest on the same reviewed decisions, so they compare like with like."""

    live_version: str
    agreement: Proportion
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    live_accuracy: Proportion
    shadow_accuracy: Proportion

    def to_dict(self) -> dict[str, Any]:
        return {
            "live_version": self.live_version,
            "agreement": self.agreement.to_dict(),
            "labels": list(self.labels),
            "confusion": [list(row) for row in self.confusion],
            "live_accuracy": self.live_accuracy.to_dict(),
            "shadow_accuracy": self.shadow_accuracy.to_dict(),
        }


@dataclass(frozen=True)
class ShadowComparison:
    """Every live version's agreement with ``shadow_version`` (empty: it answered nothing in
    the window)."""

    shadow_version: str
    versions: tuple[ShadowAgreement, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "shadow_version": self.shadow_version,
            "versions": [v.to_dict() for v in self.versions],
        }


def compare_shadow(
    connection: Connection,
    window: Window,
    shadow_version: str,
    versions: Sequence[str] | None = None,
) -> ShadowComparison:
    by_version: dict[str, list[ShadowPairCount]] = {}
    for row in shadow_pair_counts(connection, window, shadow_version, versions):
        by_version.setdefault(row.version, []).append(row)
    return ShadowComparison(
        shadow_version,
        tuple(_agreement(version, rows) for version, rows in sorted(by_version.items())),
    )


def _agreement(version: str, rows: list[ShadowPairCount]) -> ShadowAgreement:
    labels = tuple(sorted({r.live_label for r in rows} | {r.shadow_label for r in rows}))
    where = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for r in rows:
        confusion[where[r.live_label]][where[r.shadow_label]] += r.count
    reviewed = [r for r in rows if r.reviewed]
    n_reviewed = sum(r.count for r in reviewed)
    return ShadowAgreement(
        live_version=version,
        agreement=Proportion(
            sum(r.count for r in rows if r.live_label == r.shadow_label),
            sum(r.count for r in rows),
        ),
        labels=labels,
        confusion=tuple(tuple(row) for row in confusion),
        live_accuracy=Proportion(sum(r.count for r in reviewed if r.live_right), n_reviewed),
        shadow_accuracy=Proportion(sum(r.count for r in reviewed if r.shadow_right), n_reviewed),
    )
