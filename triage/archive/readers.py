"""Read report archives (CSV, JSONL, Parquet, folders or globs of .txt; .gz) as a row stream."""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from triage.archive.rows import ArchiveRow
from triage.core.errors import DataFileError

_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


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
    be read at all (missing text column, not a table) raises :class:`DataFileError`."""
    files = expand_inputs(spec.inputs)
    many = len(files) > 1
    for path, root in files:
        kind = _kind(path)
        if kind == "txt":
            yield _txt_row(path, root)
        elif kind == "csv":
            yield from _csv_rows(path, spec, many)
        elif kind == "jsonl":
            yield from _jsonl_rows(path, spec, many)
        else:
            yield from _parquet_rows(path, spec, many)


def count_rows(spec: ArchiveSpec) -> int:
    """How many rows :func:`read_archive` will yield (a fast pass, for progress and ETA)."""
    total = 0
    for path, _ in expand_inputs(spec.inputs):
        kind = _kind(path)
        if kind == "txt":
            total += 1
        elif kind == "parquet":
            import pyarrow.parquet as pq

            total += pq.ParquetFile(path).metadata.num_rows
        elif kind == "jsonl":
            with _open_binary(path) as f:
                total += sum(1 for line in f if line.strip())
        else:
            csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
            with _open_binary(path) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
                total += max(0, sum(1 for _ in csv.reader(text)) - 1)
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


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
    return path.open("rb")


def _default_id(path: Path, row: int, many: bool) -> str:
    return f"{path.name}:{row}" if many else str(row)


def _txt_row(path: Path, root: Path | None) -> ArchiveRow:
    report_id = str(path.relative_to(root)) if root is not None else path.name
    with _open_binary(path) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return ArchiveRow(str(path), 1, report_id, "", f"not valid UTF-8 (byte {err.start})")
    return ArchiveRow(str(path), 1, report_id, text)


def _csv_rows(path: Path, spec: ArchiveSpec, many: bool) -> Iterator[ArchiveRow]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # report texts can be long
    with _open_binary(path) as raw:
        text_stream = io.TextIOWrapper(
            raw, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        reader = csv.DictReader(text_stream)
        header = reader.fieldnames or []
        if spec.text_column not in header:
            raise DataFileError(
                path, f"missing column {spec.text_column!r} (header has: {', '.join(header)})"
            )
        has_id = spec.id_column in header
        row_no = 0
        try:
            for row_no, record in enumerate(reader, start=1):
                raw_id = record.get(spec.id_column) if has_id else None
                report_id = raw_id if raw_id else _default_id(path, row_no, many)
                text = record.get(spec.text_column)
                if text is None:
                    yield ArchiveRow(
                        str(path), row_no, report_id, "", f"row has no {spec.text_column!r} value"
                    )
                elif _SURROGATE.search(text) or _SURROGATE.search(report_id):
                    yield ArchiveRow(
                        str(path), row_no, _SURROGATE.sub("?", report_id), "", "not valid UTF-8"
                    )
                else:
                    yield ArchiveRow(str(path), row_no, report_id, text)
        except csv.Error as err:
            raise DataFileError(path, f"unreadable CSV after row {row_no}: {err}") from None


def _jsonl_rows(path: Path, spec: ArchiveSpec, many: bool) -> Iterator[ArchiveRow]:
    with _open_binary(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fallback = _default_id(path, line_no, many)
            try:
                # surrogateescape keeps undecodable bytes, so the row's id is still known
                record = json.loads(line.decode("utf-8-sig", errors="surrogateescape"))
            except json.JSONDecodeError as err:
                yield ArchiveRow(str(path), line_no, fallback, "", f"not valid JSON ({err.msg})")
                continue
            if not isinstance(record, dict):
                yield ArchiveRow(str(path), line_no, fallback, "", "line is not a JSON object")
                continue
            raw_id = record.get(spec.id_column)
            report_id = str(raw_id) if raw_id not in (None, "") else fallback
            text = record.get(spec.text_column)
            if _SURROGATE.search(report_id) or (isinstance(text, str) and _SURROGATE.search(text)):
                yield ArchiveRow(
                    str(path), line_no, _SURROGATE.sub("?", report_id), "", "not valid UTF-8"
                )
            elif not isinstance(text, str):
                problem = (
                    f"missing field {spec.text_column!r}"
                    if text is None
                    else f"{spec.text_column!r} is not a string"
                )
                yield ArchiveRow(str(path), line_no, report_id, "", problem)
            else:
                yield ArchiveRow(str(path), line_no, report_id, text)


def _parquet_rows(path: Path, spec: ArchiveSpec, many: bool) -> Iterator[ArchiveRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise DataFileError(path, f"not a readable Parquet file ({err})") from None
    names = parquet.schema_arrow.names
    if spec.text_column not in names:
        raise DataFileError(
            path, f"missing column {spec.text_column!r} (columns: {', '.join(names)})"
        )
    columns = [spec.text_column] + ([spec.id_column] if spec.id_column in names else [])
    row_no = 0
    for batch in parquet.iter_batches(batch_size=4_096, columns=columns):
        texts = batch.column(spec.text_column).to_pylist()
        ids = (
            batch.column(spec.id_column).to_pylist()
            if spec.id_column in columns
            else [None] * len(texts)
        )
        for text, raw_id in zip(texts, ids, strict=True):
            row_no += 1
            report_id = str(raw_id) if raw_id not in (None, "") else _default_id(path, row_no, many)
            if not isinstance(text, str):
                yield ArchiveRow(str(path), row_no, report_id, "", "text is null or not a string")
            else:
                yield ArchiveRow(str(path), row_no, report_id, text)
