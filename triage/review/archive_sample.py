"""Active learning over archives: pick the rows of a ``triage score`` output the model was least
sure of and put them on the decision record for the review desk's queue, with their texts.

The output (CSV, JSONL or Parquet, as :mod:`triage.archive.writers` writes it: ``id``,
``label``, ``confidence``, ``needs_review``, one ``prob_<label>`` column per label,
``model_version``) is read twice, first to check every row, then to choose: nothing is written
unless every row is sound. Uncertainty is the margin between the two highest probabilities (the
smaller, the less sure); ties go to the earlier row. The texts come from the archive the output
was scored from, matched by report id in file order (the output lists the scored rows in input
order, leaving out the rows that could not be scored), so the input rows are passed in by the
caller, read by the archive readers.

Each sampled row becomes a decision with source ``archive``, ``needs_review`` true and the
reason ``archive_sample``, its id a UUID 5 of the output's SHA-256 and the row number: sampling
the same output again adds nothing new, and a larger ``n`` adds only the rows it did not have.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from triage.core.errors import DataFileError, TriageError
from triage.store import schema
from triage.store.crypto import TextCipher
from triage.store.database import Store
from triage.store.records import Decision, score_margin, utc_now

SOURCE = "archive"
REASON = "archive_sample"
PROBABILITY_PREFIX = "prob_"
REQUIRED_COLUMNS = ("id", "label", "confidence")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
SHOWN_PROBLEMS = 10
# Decision ids of sampled rows: uuid5 in this namespace of the output's sha256 and row number.
SAMPLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:triage:archive-sample")
_HASH_CHUNK = 1 << 20


class SampleRefused(TriageError):
    """A scored output with bad rows: nothing was put on record. ``problems`` holds the first
    :data:`SHOWN_PROBLEMS` (each naming the file and row), ``count`` how many there were."""

    def __init__(self, path: Path, problems: list[DataFileError], count: int) -> None:
        self.problems = problems
        self.count = count
        shown = "\n".join(f"  {problem}" for problem in problems)
        more = count - len(problems)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{path}: {count} bad row{'s' if count != 1 else ''}, so nothing was queued "
            f"(fix the output or score the archive again):\n{shown}{tail}"
        )


class InputRow(Protocol):
    """One row of the scored archive, as the archive readers give it."""

    @property
    def id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def problem(self) -> str | None: ...


@dataclass(frozen=True)
class ScoredRow:
    """One row of a score output, checked."""

    row: int  # 1-based, data rows only (the CSV header is not a row)
    report_id: str
    label: str
    confidence: float
    scores: Mapping[str, float]
    model_version: str

    @property
    def margin(self) -> float:
        """Top probability minus the runner-up, as the record and the desk's queue count it."""
        return score_margin(self.scores.values())


@dataclass(frozen=True)
class SampledRow:
    scored: ScoredRow
    text: str


@dataclass(frozen=True)
class SampleResult:
    """What sampling one output did."""

    path: Path
    sha256: str
    rows: int  # rows in the output
    sampled: tuple[SampledRow, ...]  # smallest margin first
    new: int  # decisions newly on record (the others were there from an earlier run)
    expires_at: datetime

    def summary(self) -> str:
        if not self.sampled:
            return f"{self.path}: no rows to sample"
        margins = [s.scored.margin for s in self.sampled]
        already = len(self.sampled) - self.new
        return (
            f"{self.path}: queued the {len(self.sampled):,} most uncertain of {self.rows:,} rows "
            f"for review (margins {min(margins):.3f} to {max(margins):.3f}): {self.new:,} new, "
            f"{already:,} already on record; texts kept until "
            f"{self.expires_at.isoformat(timespec='minutes')}"
        )


def decision_id(sha256: str, row: int) -> str:
    return str(uuid.uuid5(SAMPLE_NAMESPACE, f"{sha256}:{row}"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except OSError as err:
        raise DataFileError(path, f"cannot read: {err.strerror or err}") from None
    return digest.hexdigest()


def read_scored(path: Path, model_version: str | None = None) -> Iterator[ScoredRow]:
    """Every row of the output at ``path``, checked; raises :class:`SampleRefused` after the
    last row if any was bad, or :class:`DataFileError` for a file that cannot be read as an
    output at all. ``model_version`` stands in for a missing or empty ``model_version``."""
    problems: list[DataFileError] = []
    count = 0
    for row_no, record in _records(path):
        try:
            if isinstance(record, DataFileError):
                raise record
            yield _scored_row(path, row_no, record, model_version)
        except DataFileError as err:
            count += 1
            if len(problems) < SHOWN_PROBLEMS:
                problems.append(err)
    if count:
        raise SampleRefused(path, problems, count)


def check_scored(path: Path, model_version: str | None = None) -> int:
    """How many rows the output holds, once every one is checked (see :func:`read_scored`)."""
    return sum(1 for _ in read_scored(path, model_version))


def most_uncertain(
    path: Path,
    scored: Iterable[ScoredRow],
    inputs: Iterable[InputRow],
    n: int,
) -> list[SampledRow]:
    """The ``n`` rows of ``scored`` with the smallest margins (ties: the earlier row), each
    with its text from ``inputs``, smallest margin first. Raises :class:`DataFileError` when a
    scored row's id is not in the rest of the input (not the archive it was scored from)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    chosen: list[tuple[float, int, SampledRow]] = []  # a max-heap by (margin, row), negated
    source = iter(inputs)
    read = 0  # input rows read so far: the next search starts after them
    for row in scored:
        searched_from = read + 1
        text = None
        for candidate in source:
            read += 1
            if candidate.problem is None and candidate.id == row.report_id:
                text = candidate.text
                break
        if text is None:
            raise DataFileError(
                path,
                f"id {_shown_id(row.report_id)} is not in the input (searched from its row "
                f"{searched_from:,} on): give the archive this output was scored from, with the "
                "same --id-column and --text-column, its files in the same order",
                row.row,
            )
        entry = (-row.margin, -row.row, SampledRow(row, text))
        if len(chosen) < n:
            heapq.heappush(chosen, entry)
        elif entry > chosen[0]:  # a smaller margin (or an equal one, earlier) than the worst
            heapq.heapreplace(chosen, entry)
    return [sampled for _, _, sampled in sorted(chosen, reverse=True)]


def sample_archive(
    store: Store,
    cipher: TextCipher,
    path: Path,
    inputs: Iterable[InputRow],
    *,
    n: int,
    retention: timedelta,
    caller: str,
    model_version: str | None = None,
    now: datetime | None = None,
) -> SampleResult:
    """Queue the ``n`` most uncertain rows of the output at ``path`` for review: every row is
    checked first (:class:`SampleRefused` and nothing written if one is bad), then the chosen
    rows go on record in one transaction, their texts sealed by ``cipher`` until ``now +
    retention``."""
    sha256 = file_sha256(path)
    rows = check_scored(path, model_version)
    sampled = most_uncertain(path, read_scored(path, model_version), inputs, n)
    now = now or utc_now()
    expires_at = now + retention
    decisions = [
        Decision(
            decision_id=decision_id(sha256, s.scored.row),
            report_id=s.scored.report_id,
            received_at=now,
            model_version=s.scored.model_version,
            source=SOURCE,
            label=s.scored.label,
            confidence=s.scored.confidence,
            scores=dict(s.scored.scores),
            needs_review=True,
            reasons=(REASON,),
            caller=caller[: schema.PERSON],
            latency_ms=None,
            text=cipher.seal(s.text, expires_at),
        )
        for s in sampled
    ]
    new = store.insert_decisions(decisions)
    return SampleResult(path, sha256, rows, tuple(sampled), new, expires_at)


# -- reading a score output ----------------------------------------------------------------------

_Record = dict[str, Any] | DataFileError


def _records(path: Path) -> Iterator[tuple[int, _Record]]:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataFileError(
            path, "unknown format: a `triage score` output ends in .csv, .jsonl or .parquet"
        )
    if not path.is_file():
        raise DataFileError(path, "no such file")
    try:
        if kind == "csv":
            yield from _csv_records(path)
        elif kind == "jsonl":
            yield from _jsonl_records(path)
        else:
            yield from _parquet_records(path)
    except OSError as err:
        raise DataFileError(path, f"cannot read: {err.strerror or err}") from None


def _check_header(path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    labels = [c for c in columns if c.startswith(PROBABILITY_PREFIX)]
    if missing or not labels:
        wanted = ", ".join([*missing, *([] if labels else ["prob_<label>"])])
        shown = ", ".join(c[:40] for c in columns[:20]) or "nothing"
        raise DataFileError(
            path, f"not a `triage score` output: no {wanted} column (it has: {shown})"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataFileError(path, f"column {duplicated[0]!r} appears more than once")


def _csv_records(path: Path) -> Iterator[tuple[int, _Record]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        row_no = 0
        try:
            header = next(reader, None)
            if header is None:
                return
            _check_header(path, header)
            for fields in reader:
                row_no += 1
                if len(fields) != len(header):
                    yield (
                        row_no,
                        DataFileError(
                            path, f"{len(fields)} values for {len(header)} columns", row_no
                        ),
                    )
                else:
                    yield row_no, dict(zip(header, fields, strict=True))
        except csv.Error as err:
            raise DataFileError(path, f"not valid CSV ({err})", row_no + 1) from None
        except UnicodeDecodeError:
            raise DataFileError(path, "not valid UTF-8", row_no + 1) from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, _Record]]:
    row_no = 0
    checked = False
    with path.open("rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            row_no += 1
            try:
                record = json.loads(raw.decode("utf-8-sig"))
            except UnicodeDecodeError:
                yield row_no, DataFileError(path, "not valid UTF-8", row_no)
                continue
            except (json.JSONDecodeError, RecursionError, ValueError):
                yield row_no, DataFileError(path, "not valid JSON", row_no)
                continue
            if not isinstance(record, dict):
                yield row_no, DataFileError(path, "not a JSON object", row_no)
                continue
            if not checked:
                _check_header(path, list(record))
                checked = True
            yield row_no, record


def _parquet_records(path: Path) -> Iterator[tuple[int, _Record]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        _check_header(path, parquet.schema_arrow.names)
        row_no = 0
        for batch in parquet.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                row_no += 1
                yield row_no, record
    except DataFileError:
        raise
    except Exception as err:  # pyarrow raises several types for a damaged or foreign file
        first = str(err).strip().split("\n")[0][:200]
        raise DataFileError(path, f"not a readable Parquet file ({first})") from None


def _scored_row(
    path: Path, row_no: int, record: Mapping[str, Any], default_version: str | None
) -> ScoredRow:
    def bad(problem: str) -> DataFileError:
        return DataFileError(path, problem, row_no)

    report_id = record.get("id")
    if not isinstance(report_id, str) or not report_id:
        raise bad("id is empty or not text")
    if len(report_id) > schema.REPORT_ID:
        raise bad(f"id is longer than {schema.REPORT_ID} characters")
    scores = {
        name[len(PROBABILITY_PREFIX) :]: _probability(record[name], name, bad)
        for name in record
        if name.startswith(PROBABILITY_PREFIX)
    }
    label = record.get("label")
    if not isinstance(label, str) or label not in scores:
        raise bad(f"label {_shown_id(str(label))} is not one of the prob_<label> columns")
    if len(label) > schema.LABEL:
        raise bad(f"label is longer than {schema.LABEL} characters")
    confidence = _probability(record.get("confidence"), "confidence", bad)
    version = record.get("model_version")
    if version is None or version == "":
        version = default_version
    if not isinstance(version, str) or not version:
        raise bad("no model version: the output has none for this row; give --model-version")
    if len(version) > schema.VERSION:
        raise bad(f"model_version is longer than {schema.VERSION} characters")
    return ScoredRow(row_no, report_id, label, confidence, scores, version)


def _probability(value: object, name: str, bad: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(f"{name} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise bad(f"{name} {_shown_id(str(value))} is not a number") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise bad(f"{name} {number!r} is not a probability between 0 and 1")
    return number


def _shown_id(value: str) -> str:
    """A value from the file, quoted, printable and short, for a message."""
    cleaned = "".join(c if c.isprintable() else "?" for c in value)
    return repr(cleaned if len(cleaned) <= 60 else cleaned[:57] + "...")
