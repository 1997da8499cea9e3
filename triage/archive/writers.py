"""Write scored rows (CSV, JSONL, Parquet) and bad rows, chunk by chunk, resumably."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.archive.row_decisions import RowDecision
from triage.archive.rows import ArchiveRow
from triage.core.errors import DataFileError
from triage.core.model import REASON_NAMES, Prediction, Segment
from triage.core.scoring import Outcome

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
RESUME_HINT = "fix that (free some space?), then rerun the same command with --resume"


def output_format(path: Path) -> str:
    """The format named by ``path``'s extension."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataFileError(path, "output must end in .csv, .jsonl or .parquet") from None


@dataclass(frozen=True)
class OutputShape:
    """What an output row is: one per report (with ``with_terms``, its explanation terms), or,
    with ``segments``, one per item of every report (a single report is one item)."""

    with_terms: bool = False
    segments: bool = False


def result_columns(labels: Sequence[str], shape: OutputShape) -> list[str]:
    """Output columns: id, label, confidence, needs_review, prob_<label>..., model_version,
    review_reasons, secondary_label, language[, top_terms]; with ``segments``: id, segment,
    start, end, label, confidence, needs_review, prob_<label>..., model_version,
    review_reasons, document_label, document_reasons."""
    if shape.segments:
        columns = ["id", "segment", "start", "end", "label", "confidence", "needs_review"]
        columns += [f"prob_{label}" for label in labels]
        return [*columns, "model_version", "review_reasons", "document_label", "document_reasons"]
    columns = ["id", "label", "confidence", "needs_review"]
    columns += [f"prob_{label}" for label in labels]
    columns += ["model_version", "review_reasons", "secondary_label", "language"]
    if shape.with_terms:
        columns.append("top_terms")
    return columns


@dataclass
class EncodedChunk:
    """One chunk, ready to append: the payload, its bad rows and its tallies; and, when the run
    records its decisions, each scored row's decision and when the chunk was scored."""

    payload: Any  # bytes for CSV/JSONL, a pyarrow.Table for Parquet
    rows: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)
    needs_review: int = 0
    decisions: list[RowDecision] = field(default_factory=list)
    scored_at: float = 0.0  # Unix seconds; set with the decisions


def encode_chunk(
    rows: Sequence[ArchiveRow],
    outcomes: Sequence[Outcome],
    labels: Sequence[str],
    fmt: str,
    shape: OutputShape,
) -> EncodedChunk:
    """Turn a scored chunk into output records (input order) and error records."""
    records: list[dict[str, Any]] = []
    chunk = EncodedChunk(payload=b"", rows=len(rows))
    for row, outcome in zip(rows, outcomes, strict=True):
        p = outcome.prediction
        if p is None:
            reason = str(outcome.error) if outcome.error else "not scored"
            chunk.errors.append(
                {
                    "source": row.source,
                    "row": row.row,
                    "line": row.line,
                    "id": row.id,
                    "reason": reason,
                }
            )
            continue
        if shape.segments:
            records += _segment_records(row.id, len(row.text), p, labels)
        else:
            records.append(_prediction_record(row.id, p, labels, shape.with_terms))
        chunk.labels[p.label] += 1
        chunk.needs_review += p.needs_review
    columns = result_columns(labels, shape)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([r[c] for c in columns] for r in records)
        chunk.payload = buffer.getvalue().encode("utf-8")
    elif fmt == "jsonl":
        chunk.payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(
            "utf-8"
        )
    else:
        import pyarrow as pa

        chunk.payload = pa.Table.from_pylist(records, schema=_arrow_schema(labels, shape))
    return chunk


def _prediction_record(
    report_id: str, p: Prediction, labels: Sequence[str], with_terms: bool
) -> dict[str, Any]:
    """One output row, keyed by :func:`result_columns`."""
    scores = dict(p.scores)
    record: dict[str, Any] = {
        "id": report_id,
        "label": p.label,
        "confidence": round(p.confidence, 6),
        "needs_review": p.needs_review,
        **{f"prob_{label}": round(scores[label], 6) for label in labels},
        "model_version": p.model_version,
        "review_reasons": _reasons(p.review_reasons),
        "secondary_label": p.secondary_label,
        "language": p.language,
    }
    if with_terms:
        record["top_terms"] = "; ".join(term for term, _ in p.top_terms)
    return record


def _reasons(reasons: Sequence[str]) -> str:
    return ";".join(REASON_NAMES.get(r, r) for r in reasons)


def _segment_records(
    report_id: str, length: int, p: Prediction, labels: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per item of a document of several; a single report is one item, all of it."""
    items = p.segments or (Segment(0, length, p.label, p.confidence, p.scores, p.review_reasons),)
    out = []
    for number, item in enumerate(items):
        scores = dict(item.scores)
        out.append(
            {
                "id": report_id,
                "segment": number,
                "start": item.start,
                "end": item.end,
                "label": item.label,
                "confidence": round(item.confidence, 6),
                "needs_review": bool(item.review_reasons),
                **{f"prob_{label}": round(scores[label], 6) for label in labels},
                "model_version": p.model_version,
                "review_reasons": _reasons(item.review_reasons),
                "document_label": p.label,
                "document_reasons": _reasons(p.review_reasons),
            }
        )
    return out


def _arrow_schema(labels: Sequence[str], shape: OutputShape) -> Any:
    import pyarrow as pa

    types = {
        "id": pa.string(),
        "segment": pa.int64(),
        "start": pa.int64(),
        "end": pa.int64(),
        "confidence": pa.float64(),
        "needs_review": pa.bool_(),
    }
    return pa.schema(
        [
            (c, pa.float64() if c.startswith("prob_") else types.get(c, pa.string()))
            for c in result_columns(labels, shape)
        ]
    )


@dataclass(frozen=True)
class Checkpoint:
    """How far the output files are complete: everything before these marks is whole."""

    output_bytes: int = 0
    errors_bytes: int = 0
    parts: int = 0


class ResultSink:
    """Appends chunks to OUTPUT and bad rows to OUTPUT.errors.jsonl, each chunk made durable
    (flushed and fsynced) before its checkpoint is returned.

    Parquet cannot be appended to, so chunks go to ``OUTPUT.parts/part-NNNNNN.parquet`` (each a
    valid file) and :meth:`finish` joins them into OUTPUT. A file that cannot be written (a full
    disk) raises :class:`DataFileError` naming it; what was checkpointed before stays valid.
    """

    def __init__(
        self,
        path: Path,
        labels: Sequence[str],
        shape: OutputShape,
        resume_from: Checkpoint | None = None,
    ) -> None:
        self.path = path
        self.fmt = output_format(path)
        self.errors_path = errors_path_for(path)
        self.parts_dir = path.with_name(path.name + ".parts")
        self.labels = list(labels)
        self.shape = shape
        start = resume_from or Checkpoint()
        self._parts = start.parts
        self._out: Any = None
        self._errors: Any = None
        with _writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        with _writing(self.errors_path):
            self._errors = _open_at(self.errors_path, start.errors_bytes, fresh=resume_from is None)
        if self.fmt == "parquet":
            with _writing(self.parts_dir):
                if resume_from is None:
                    shutil.rmtree(self.parts_dir, ignore_errors=True)
                self.parts_dir.mkdir(exist_ok=True)
                for stale in self.parts_dir.glob("part-*.parquet"):
                    if int(stale.stem.split("-")[1]) >= self._parts:
                        stale.unlink()  # written after the last checkpoint: redone on resume
        else:
            with _writing(path):
                self._out = _open_at(path, start.output_bytes, fresh=resume_from is None)
                if start.output_bytes == 0 and self.fmt == "csv":
                    # Whenever the output starts from nothing, a resumed run's included.
                    header = io.StringIO()
                    csv.writer(header, lineterminator="\n").writerow(
                        result_columns(self.labels, shape)
                    )
                    self._out.write(header.getvalue().encode("utf-8"))

    def write(self, chunk: EncodedChunk) -> Checkpoint:
        if self._out is not None:
            with _writing(self.path):
                self._out.write(chunk.payload)
                _sync(self._out)
        else:
            import pyarrow.parquet as pq

            part = self.parts_dir / f"part-{self._parts:06d}.parquet"
            tmp = part.with_suffix(".tmp")
            with _writing(part):
                pq.write_table(chunk.payload, tmp)
                os.replace(tmp, part)
            self._parts += 1
        with _writing(self.errors_path):
            if chunk.errors:
                # backslashreplace: a character UTF-8 cannot hold (a surrogate in a file name)
                # comes out as its JSON \u escape instead of failing the run.
                lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in chunk.errors)
                self._errors.write(lines.encode("utf-8", errors="backslashreplace"))
            _sync(self._errors)
        return self.checkpoint()

    def checkpoint(self) -> Checkpoint:
        """How far the files are complete now (everything written so far is synced)."""
        return Checkpoint(
            output_bytes=self._out.tell() if self._out is not None else 0,
            errors_bytes=self._errors.tell(),
            parts=self._parts,
        )

    def finish(self) -> None:
        """Close the files; for Parquet, join the parts into OUTPUT (streamed, part by part)."""
        if self._out is not None:
            with _writing(self.path):
                self._out.close()
        else:
            import pyarrow.parquet as pq

            schema = _arrow_schema(self.labels, self.shape)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with _writing(self.path), pq.ParquetWriter(tmp, schema) as writer:
                for i in range(self._parts):
                    writer.write_table(pq.read_table(self.parts_dir / f"part-{i:06d}.parquet"))
            with _writing(self.path):
                os.replace(tmp, self.path)
                shutil.rmtree(self.parts_dir)
        with _writing(self.errors_path):
            self._errors.close()
            if self.errors_path.stat().st_size == 0:
                self.errors_path.unlink()

    def abort(self) -> None:
        """Close without finishing: what was checkpointed stays for --resume. Never raises: a
        close that fails (the disk that failed a write is still full) loses only what comes
        after the checkpoint, which --resume cuts off anyway."""
        for handle in (self._out, self._errors):
            if handle is not None:
                with suppress(OSError):
                    handle.close()


def errors_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".errors.jsonl")


def _open_at(path: Path, offset: int, fresh: bool) -> Any:
    if fresh or (offset == 0 and not path.exists()):
        return path.open("wb")
    if path.stat().st_size < offset:
        raise DataFileError(path, f"is shorter than its checkpoint ({offset} bytes): cannot resume")
    handle = path.open("r+b")
    handle.truncate(offset)  # drop anything a killed run wrote after its last checkpoint
    handle.seek(offset)
    return handle


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failed write (a full disk, a read-only folder) as a DataFileError naming the file."""
    try:
        yield
    except OSError as err:
        raise DataFileError(path, f"cannot write ({err.strerror or err}); {RESUME_HINT}") from None


def _sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
