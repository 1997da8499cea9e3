"""Read report archives (CSV, JSONL, Parquet, folders or globs of .txt; .gz) as a row stream in
which every input row appears once: scorable, or with the reason it cannot be scored."""

from __future__ import annotations

import csv
import glob
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triage.archive.csv_records import CsvRecord, CsvRecords
from triage.archive.input_files import MAX_ROW_SIZE, bounded_lines, open_binary, read_faults_named
from triage.archive.rows import ArchiveRow
from triage.core.errors import DataFileError

MAX_ID_CHARS = 256
# Undecodable bytes (kept by surrogateescape, so the row can still be named) or a lone
# surrogate from a JSON \u escape: neither can be written out as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ArchiveSpec:
    """Where the reports are and which columns hold their text and id."""

    inputs: tuple[str, ...]
    text_column: str = "text"
    id_column: str = "id"


def expand_inputs(inputs: Sequence[str]) -> list[tuple[Path, Path | None]]:
    """Every file to read, in a stable order, with the folder .txt ids are relative to."""
    files: list[tuple[Path, Path | None]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            txts = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not txts:
                raise DataFileError(path, "folder holds no .txt files")
            files.extend((p, path) for p in txts)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            if not matches:
                raise DataFileError(item, "pattern matches no file")
            files.extend((p, _literal_prefix(item)) for p in matches if p.is_file())
        elif path.is_file():
            files.append((path, None))
        else:
            raise DataFileError(path, "no such file or folder")
    for path, _ in files:
        if _kind(path) is None:
            raise DataFileError(
                path, "unknown format: use .csv, .jsonl, .parquet or .txt (optionally .gz)"
            )
    return files


def _literal_prefix(pattern: str) -> Path:
    # "archive/2019/**/*.txt" -> archive/2019: .txt ids are relative to the fixed part.
    parts = Path(pattern).parts
    fixed = [part for part in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return Path(*fixed) if fixed else Path(".")


def read_archive(spec: ArchiveSpec) -> Iterator[ArchiveRow]:
    """Stream every row of every input. Bad rows come out with a ``problem``; a file that cannot
    be read at all (missing text column, not a table, a broken gzip stream) raises
    :class:`DataFileError` naming it."""
    files = expand_inputs(spec.inputs)
    many = len(files) > 1
    for path, root in files:
        kind = _kind(path)
        with read_faults_named(path):
            if kind == "txt":
                yield _txt_row(path, root)
            elif kind == "csv":
                yield from _csv_rows(path, spec, many)
            elif kind == "jsonl":
                yield from _jsonl_rows(path, spec, many)
            else:
                yield from _parquet_rows(path, spec, many)


def count_rows(spec: ArchiveSpec) -> int:
    """How many rows :func:`read_archive` will yield (a pass without scoring, for progress)."""
    total = 0
    for path, _ in expand_inputs(spec.inputs):
        kind = _kind(path)
        with read_faults_named(path):
            if kind == "txt":
                total += 1
            elif kind == "parquet":
                total += _parquet_file(path).metadata.num_rows
            elif kind == "jsonl":
                total += sum(1 for _ in _jsonl_lines(path))
            else:
                total += sum(1 for _ in _csv_records(path, spec))
    return total


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    for suffix, kind in (
        (".csv", "csv"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".parquet", "parquet"),
        (".txt", "txt"),
    ):
        if name.endswith(suffix):
            return None if kind == "parquet" and path.name.lower().endswith(".gz") else kind
    return None


def _default_id(path: Path, row: int, many: bool) -> str:
    return f"{path.name}:{row}" if many else str(row)


def _report_id(raw: object, fallback: str) -> tuple[str, str | None]:
    """The id a row's raw id value gives, or ``fallback`` with the reason the value cannot be
    one. Absent, null or "" ids are the row's number; integers are their decimal digits."""
    if raw is None or raw == "":
        return fallback, None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return fallback, f"id is {_value_kind(raw)}: ids are strings or integers"
    try:
        report_id = raw if isinstance(raw, str) else str(raw)
    except ValueError:  # an integer too long to print (Python refuses past 4,300 digits)
        return fallback, f"id is longer than {MAX_ID_CHARS} characters"
    if _SURROGATE.search(report_id):
        return fallback, "id is not valid UTF-8 (an undecodable byte or a lone surrogate)"
    if len(report_id) > MAX_ID_CHARS:
        return fallback, f"id is {len(report_id):,} characters long; the limit is {MAX_ID_CHARS}"
    return report_id, None


def _value_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a floating-point number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"of type {type(value).__name__}"


def _text_problem(text: str) -> str | None:
    if _SURROGATE.search(text):
        return "text is not valid UTF-8 (an undecodable byte or a lone surrogate)"
    return None


def _txt_row(path: Path, root: Path | None) -> ArchiveRow:
    name = str(path.relative_to(root)) if root is not None else path.name
    # A file name that is not UTF-8 still names its error row, printably.
    fallback = _SURROGATE.sub("\ufffd", name)[:MAX_ID_CHARS]
    report_id, problem = _report_id(name, fallback)
    with open_binary(path) as f:
        raw = f.read(MAX_ROW_SIZE + 1)
    if problem is None and len(raw) > MAX_ROW_SIZE:
        problem = f"file longer than {MAX_ROW_SIZE:,} bytes"
    if problem is None:
        try:
            return ArchiveRow(str(path), 1, report_id, raw.decode("utf-8-sig"), line=1)
        except UnicodeDecodeError as err:
            problem = f"text is not valid UTF-8 (byte {err.start})"
    return ArchiveRow(str(path), 1, report_id, "", problem, line=1)


def _csv_rows(path: Path, spec: ArchiveSpec, many: bool) -> Iterator[ArchiveRow]:
    source = str(path)
    for row_no, (record, text_at, id_at) in enumerate(_csv_records(path, spec), start=1):
        fallback = _default_id(path, row_no, many)
        if record.problem is not None:
            yield ArchiveRow(
                source,
                row_no,
                _id_of_malformed(record.first_line, id_at, fallback),
                "",
                f"malformed CSV record: {record.problem}",
                line=record.line,
            )
            continue
        raw_id = record.fields[id_at] if id_at is not None else None
        report_id, problem = _report_id(raw_id, fallback)
        text = record.fields[text_at]
        problem = problem or _text_problem(text)
        if problem is not None:
            yield ArchiveRow(source, row_no, report_id, "", problem, line=record.line)
        else:
            yield ArchiveRow(source, row_no, report_id, text, line=record.line)


def _csv_records(path: Path, spec: ArchiveSpec) -> Iterator[tuple[CsvRecord, int, int | None]]:
    """The records after the header, each with where the text and id columns are."""
    with open_binary(path) as raw:
        text_stream = io.TextIOWrapper(
            raw, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        records = CsvRecords(bounded_lines(text_stream))
        stream = iter(records)
        first = next(stream, None)
        if first is None:
            return  # an empty file holds no rows
        if first.problem is not None:
            raise DataFileError(path, f"malformed header (line {first.line}): {first.problem}")
        header = first.fields
        text_at = _column(path, header, spec.text_column)
        if text_at is None:
            shown = ", ".join(name[:40] for name in header[:20])
            more = ", ..." if len(header) > 20 else ""
            raise DataFileError(
                path, f"missing column {spec.text_column!r} (header has: {shown}{more})"
            )
        id_at = _column(path, header, spec.id_column)
        records.width = len(header)  # from here on, a record of another width is malformed
        for record in stream:
            yield record, text_at, id_at


def _column(path: Path, header: list[str], name: str) -> int | None:
    count = header.count(name)
    if count > 1:
        raise DataFileError(path, f"column {name!r} appears {count} times in the header")
    return header.index(name) if count else None


def _id_of_malformed(first_line: str, id_at: int | None, fallback: str) -> str:
    # The id as the record's first line alone, read leniently, gives it: it helps to find the
    # record; the row number is the fallback.
    if id_at is None:
        return fallback
    fields = next(csv.reader([first_line.rstrip("\r\n")]), [])
    if id_at >= len(fields):
        return fallback
    report_id, problem = _report_id(fields[id_at], fallback)
    return report_id if problem is None else fallback


def _jsonl_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """The numbered lines that are rows: not blank (None for a line over the size limit)."""
    with open_binary(path) as f:
        for line_no, line in enumerate(bounded_lines(f), start=1):
            if line is None or line.strip():
                yield line_no, line


def _jsonl_rows(path: Path, spec: ArchiveSpec, many: bool) -> Iterator[ArchiveRow]:
    source = str(path)
    for line_no, line in _jsonl_lines(path):
        fallback = _default_id(path, line_no, many)
        record, problem = _json_object(line)
        if record is None:
            yield ArchiveRow(source, line_no, fallback, "", problem, line=line_no)
            continue
        report_id, problem = _report_id(record.get(spec.id_column), fallback)
        text = record.get(spec.text_column)
        if problem is None:
            if text is None:
                problem = f"missing field {spec.text_column!r}"
            elif not isinstance(text, str):
                problem = f"{spec.text_column!r} is not a string"
            else:
                problem = _text_problem(text)
        if problem is None and isinstance(text, str):
            yield ArchiveRow(source, line_no, report_id, text, line=line_no)
        else:
            yield ArchiveRow(source, line_no, report_id, "", problem, line=line_no)


def _json_object(line: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    if line is None:
        return None, f"line longer than {MAX_ROW_SIZE:,} bytes"
    try:
        # surrogateescape keeps undecodable bytes, so the row's id is still known
        record = json.loads(line.decode("utf-8-sig", errors="surrogateescape"))
    except json.JSONDecodeError as err:
        return None, f"not valid JSON ({err.msg})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"
    except ValueError as err:  # an integer of more than 4,300 digits
        return None, f"not valid JSON ({str(err).split(':')[0]})"
    if not isinstance(record, dict):
        return None, "line is not a JSON object"
    return record, None


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise DataFileError(path, f"not a readable Parquet file ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    return str(err).strip().split("\n")[0][:200]


def _parquet_rows(path: Path, spec: ArchiveSpec, many: bool) -> Iterator[ArchiveRow]:
    parquet = _parquet_file(path)
    try:
        names = parquet.schema_arrow.names
    except Exception as err:  # a schema arrow cannot represent
        raise DataFileError(path, f"not a readable Parquet file ({_first_line(err)})") from None
    if spec.text_column not in names:
        raise DataFileError(
            path, f"missing column {spec.text_column!r} (columns: {', '.join(names[:20])})"
        )
    has_id = spec.id_column in names
    columns = list(dict.fromkeys([spec.text_column] + ([spec.id_column] if has_id else [])))
    batches = parquet.iter_batches(batch_size=4_096, columns=columns)
    source = str(path)
    row_no = 0
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                break
            texts = batch.column(spec.text_column).to_pylist()
            ids = batch.column(spec.id_column).to_pylist() if has_id else [None] * len(texts)
        except Exception as err:  # damaged pages or values: pyarrow raises several types
            raise DataFileError(
                path, f"unreadable Parquet data after row {row_no} ({_first_line(err)})"
            ) from None
        for text, raw_id in zip(texts, ids, strict=True):
            row_no += 1
            report_id, problem = _report_id(raw_id, _default_id(path, row_no, many))
            if problem is None and not isinstance(text, str):
                problem = "text is null or not a string"
            problem = problem or _text_problem(text)
            if problem is None and isinstance(text, str):
                yield ArchiveRow(source, row_no, report_id, text)
            else:
                yield ArchiveRow(source, row_no, report_id, "", problem)
    declared = parquet.metadata.num_rows
    if row_no != declared:  # damage pyarrow reads past without a word: no row lost silently
        raise DataFileError(path, f"damaged Parquet file: {row_no:,} of its {declared:,} rows read")
