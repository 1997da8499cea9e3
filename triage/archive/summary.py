"""What a scoring run did: rows read, scored and refused, labels, needs-review, speed, and the
decisions it put on record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from triage.archive.run_record import RecordOutcome
from triage.archive.writers import EncodedChunk


@dataclass
class ScoreSummary:
    """What a run did (the resumed part included)."""

    rows: int = 0
    scored: int = 0
    errors: int = 0
    needs_review: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    resumed_from: int = 0
    output: str = ""
    errors_file: str | None = None  # where bad rows went, if there were any
    model_version: str = ""
    recorded: int = 0  # decisions put on record (on their way to the store, if not there yet)
    record: RecordOutcome | None = None  # where they went; None: the run recorded nothing

    @property
    def rows_per_s(self) -> float:
        return (self.rows - self.resumed_from) / self.seconds if self.seconds else 0.0

    def add(self, chunk: EncodedChunk) -> None:
        self.rows += chunk.rows
        self.errors += len(chunk.errors)
        self.scored += chunk.rows - len(chunk.errors)
        self.needs_review += chunk.needs_review
        self.labels.update(chunk.labels)
        self.recorded += len(chunk.decisions)

    def counts(self) -> dict[str, Any]:
        """The tallies a checkpoint records, as JSON-ready values."""
        return {
            "rows": self.rows,
            "scored": self.scored,
            "errors": self.errors,
            "needs_review": self.needs_review,
            "labels": dict(self.labels),
            "recorded": self.recorded,
        }

    @classmethod
    def resumed(cls, counts: dict[str, Any]) -> ScoreSummary:
        """The summary of a run that continues from a checkpoint's :meth:`counts`."""
        return cls(
            rows=counts["rows"],
            scored=counts["scored"],
            errors=counts["errors"],
            needs_review=counts["needs_review"],
            labels=Counter(counts["labels"]),
            recorded=counts.get("recorded", 0),  # absent from a checkpoint of an older triage
            resumed_from=counts["rows"],
        )
