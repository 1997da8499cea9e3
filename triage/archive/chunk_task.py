"""The work one chunk of archive rows gets, wherever it runs: scored, then encoded for output."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from triage.archive.row_decisions import row_decisions
from triage.archive.rows import ArchiveRow
from triage.archive.writers import EncodedChunk, OutputShape, encode_chunk
from triage.core.model import TriageModel
from triage.core.scoring import Report, score_reports


@dataclass(frozen=True)
class ChunkTask:
    """Score a chunk with a model and encode it in the output format; small enough to ship to
    a worker process or a Dask worker with every chunk. With ``record``, the chunk also carries
    each scored row's decision back, for the decision record."""

    fmt: str
    explain_terms: int = 0
    record: bool = False
    segments: bool = False  # one output row per item of a document of several

    def __call__(self, model: TriageModel, rows: Sequence[ArchiveRow]) -> EncodedChunk:
        reports = [
            Report(text=r.text, report_id=r.id, top_terms=self.explain_terms, problem=r.problem)
            for r in rows
        ]
        outcomes = score_reports(model, reports)
        scored_at = time.time()
        shape = OutputShape(with_terms=self.explain_terms > 0, segments=self.segments)
        chunk = encode_chunk(rows, outcomes, model.labels, self.fmt, shape)
        if self.record:
            chunk.decisions = row_decisions(rows, outcomes, model.labels)
            chunk.scored_at = scored_at
        return chunk
