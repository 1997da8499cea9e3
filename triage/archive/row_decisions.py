"""A scored archive row's decision: compact as a worker sends it back (no text, no Prediction),
and as the record keeps it, under an id that a resumed run makes again for the same row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from triage.archive.rows import ArchiveRow
from triage.core.scoring import Outcome
from triage.store.records import Decision

ARCHIVE_SOURCE = "archive"  # decisions.source of every decision an archive run records


class RowDecision(NamedTuple):
    """What the record needs of one scored row, and nothing else: a tuple pickles small, which
    matters when every chunk's decisions travel back from a worker process or a Dask worker."""

    position: int  # the row's place in its chunk, errors rows included
    report_id: str
    label: str
    confidence: float
    scores: tuple[float, ...]  # one per model label, in the model's label order
    needs_review: bool
    reasons: tuple[str, ...]


def row_decisions(
    rows: Sequence[ArchiveRow], outcomes: Sequence[Outcome], labels: Sequence[str]
) -> list[RowDecision]:
    """One decision per scored row of a chunk; a refused row (one for the errors file) has
    none."""
    decisions: list[RowDecision] = []
    for position, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
        p = outcome.prediction
        if p is None:
            continue
        scores = dict(p.scores)
        decisions.append(
            RowDecision(
                position,
                row.id,
                p.label,
                float(p.confidence),
                tuple(float(scores[label]) for label in labels),
                bool(p.needs_review),
                tuple(p.review_reasons),
            )
        )
    return decisions


def new_run_id() -> str:
    return str(uuid.uuid4())


def decision_id(run_id: str, row_number: int) -> str:
    """Row ``row_number``'s decision id in run ``run_id``: the same whenever that row is scored
    again in that run (after a --resume), so the record's idempotent insert keeps it once."""
    return str(uuid.uuid5(uuid.UUID(run_id), str(row_number)))


@dataclass(frozen=True)
class RunDecisions:
    """Turns a run's compact row decisions into records: what every decision of the run
    shares (its run id, model, labels and caller)."""

    run_id: str
    model_version: str
    labels: tuple[str, ...]
    caller: str

    def records(
        self, decisions: Sequence[RowDecision], first_row: int, scored_at: float
    ) -> list[Decision]:
        """The records of a chunk whose first row is the run's row ``first_row`` (0-based, in
        the order rows are read) and which was scored at ``scored_at`` (Unix seconds)."""
        received = datetime.fromtimestamp(scored_at, UTC)
        return [
            Decision(
                decision_id=decision_id(self.run_id, first_row + d.position),
                report_id=d.report_id,
                received_at=received,
                model_version=self.model_version,
                source=ARCHIVE_SOURCE,
                label=d.label,
                confidence=d.confidence,
                scores=dict(zip(self.labels, d.scores, strict=True)),
                needs_review=d.needs_review,
                reasons=d.reasons,
                caller=self.caller,
                latency_ms=None,
            )
            for d in decisions
        ]
