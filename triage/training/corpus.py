"""Read labelled-data files (CSV or JSONL) into rows, naming the file and row of any fault."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from triage.core.errors import DataFileError

REQUIRED_FIELDS = ("text", "label")
FORMATS = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class LabelledRow:
    """One labelled example; ``row`` is its 1-based data row (JSONL: line) in its file."""

    row: int
    id: str
    text: str
    label: str
    genre: str


@dataclass(frozen=True)
class LabelledData:
    """The rows of one labelled file, with the file's sha256 for provenance."""

    path: Path
    rows: tuple[LabelledRow, ...]
    sha256: str

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rows]


@dataclass(frozen=True)
class TrainingSet:
    """The rows a model is trained on, from one or more labelled files: ``files`` as read (for
    provenance), ``kept`` the same files without the rows left out when combining them, and
    ``set_aside`` how many rows were left out and why (see ``triage.training.datacheck``)."""

    files: tuple[LabelledData, ...]
    kept: tuple[LabelledData, ...]
    set_aside: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, data: LabelledData) -> TrainingSet:
        """One file, every row of it."""
        return cls(files=(data,), kept=(data,))

    @property
    def rows(self) -> list[LabelledRow]:
        return [row for part in self.kept for row in part.rows]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rows]

    @property
    def name(self) -> str:
        """The file, or the files joined with " + ", for messages and the model card."""
        return " + ".join(str(f.path) for f in self.files)

    @property
    def sha256(self) -> str:
        """The file's sha256; for several files, the sha256 of theirs, one per line in order."""
        if len(self.files) == 1:
            return self.files[0].sha256
        return hashlib.sha256("".join(f.sha256 + "\n" for f in self.files).encode()).hexdigest()


def read_labelled(path: Path, known_labels: Collection[str] | None = None) -> LabelledData:
    """Read and validate every row of ``path``; the first bad row raises :class:`DataFileError`.

    ``known_labels``, when given, is the label set a model knows: any other label is an error
    (a test file may not hold a label the model was never trained on).
    """
    raw = _read_bytes(path)
    rows: list[LabelledRow] = []
    for row_no, record in iter_records(path, raw):
        rows.append(parse_row(path, row_no, record, known_labels))
    if not rows:
        raise DataFileError(path, "holds no rows")
    return LabelledData(path=path, rows=tuple(rows), sha256=hashlib.sha256(raw).hexdigest())


def parse_row(
    path: Path, row_no: int, record: dict[str, object], known_labels: Collection[str] | None = None
) -> LabelledRow:
    """Validate one raw record; raise :class:`DataFileError` naming the row if it is unusable."""
    for name in REQUIRED_FIELDS:
        if name not in record or record[name] is None:
            raise DataFileError(path, f"missing field {name!r}", row_no)
    text, label = record["text"], record["label"]
    if not isinstance(text, str):
        raise DataFileError(path, f"'text' must be a string, not {type(text).__name__}", row_no)
    if not text.strip():
        raise DataFileError(path, "empty text", row_no)
    label = str(label).strip()
    if not label:
        raise DataFileError(path, "empty label", row_no)
    if known_labels is not None and label not in known_labels:
        known = ", ".join(sorted(known_labels))
        raise DataFileError(path, f"unknown label {label!r} (the model knows: {known})", row_no)
    row_id = record.get("id")
    return LabelledRow(
        row=row_no,
        id=str(row_id) if row_id not in (None, "") else f"row-{row_no}",
        text=text,
        label=label,
        genre=str(record.get("genre") or ""),
    )


def iter_records(path: Path, raw: bytes | None = None) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield ``(row number, record)`` for every data row of a CSV or JSONL file."""
    text = _decode(path, _read_bytes(path) if raw is None else raw)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_records(path, text)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_records(path, text)
    else:
        raise DataFileError(path, f"unknown format {suffix!r}: use one of {', '.join(FORMATS)}")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataFileError(path, f"cannot read: {err.strerror or err}") from None


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFileError(
            path, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} on line {line})"
        ) from None


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, object]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = reader.fieldnames or []
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise DataFileError(
            path, f"missing column {missing[0]!r} (header has: {', '.join(fields) or 'nothing'})"
        )
    for row_no, record in enumerate(reader, start=1):
        if None in record:
            raise DataFileError(path, "more values than header columns", row_no)
        yield row_no, dict(record)


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, object]]]:
    # split on "\n" only: str.splitlines() would also break inside strings at U+2028.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(path, f"not valid JSON ({err.msg})", line_no) from None
        if not isinstance(record, dict):
            raise DataFileError(path, "each line must be a JSON object", line_no)
        yield line_no, record
