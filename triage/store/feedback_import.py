"""Import a file of reviewers' corrections (CSV or JSONL) as feedback, all rows or none.

Columns: ``decision_id`` or ``report_id`` (the latest decision for that report), ``label``,
``reviewer`` (may be left out when a default reviewer is given), ``note`` and ``created_at``
(ISO 8601; a time without an offset is UTC) optional; other columns are ignored. Every row is
checked before anything is written: one bad row refuses the whole file, with a message naming
the file and row of each problem (the first ten), so that a file is either on record or not,
never half. Each row's feedback id is derived from the file's sha256 and the row number, so
importing the same file again writes nothing new.

Only a regular file of at most 256 MiB (:data:`MAX_FILE_BYTES`) is read: a FIFO, a device such
as /dev/zero or a larger file is refused before anything is read into memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, select

from triage.core.errors import DataFileError, TriageError
from triage.store import schema
from triage.store.database import Store
from triage.store.errors import InvalidFeedback
from triage.store.feedback import check_fields, check_label, label_before, resolve_decision
from triage.store.records import Feedback, utc_now

COLUMNS = ("decision_id", "report_id", "label", "reviewer", "note", "created_at")
FORMATS = (".csv", ".jsonl", ".ndjson")
SHOWN_PROBLEMS = 10
# A created_at this far ahead of the importing clock is a typo, and would win over every later
# correction for as long as it stays "the latest".
FUTURE_LEEWAY = timedelta(minutes=5)
# Feedback ids of imported rows: uuid5 in this namespace of the file's sha256 and row number.
IMPORT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:triage:feedback-import")
_ID_LOOKUP_CHUNK = 500
# A file of corrections is a few megabytes; the whole file is held in memory (it is hashed and
# every row checked before any is written), so a bigger one is refused rather than read.
MAX_FILE_BYTES = 256 << 20


class FeedbackFileRefused(InvalidFeedback):
    """A feedback file with bad rows: nothing of it was imported. ``problems`` holds every
    bad row's error (the message shows the first ten)."""

    def __init__(self, path: Path, rows: int, problems: list[DataFileError]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {problem}" for problem in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{path}: {len(problems)} of {rows} rows cannot be imported, so nothing was "
            f"imported (fix them and import the file again):\n{shown}{tail}"
        )


@dataclass(frozen=True)
class ImportResult:
    """What importing one file did: rows read, rows newly recorded, rows already on record."""

    path: Path
    sha256: str
    rows: int
    new: int
    already_recorded: int

    def summary(self) -> str:
        return (
            f"{self.path}: {self.rows} rows: {self.new} new, "
            f"{self.already_recorded} already recorded"
        )


@dataclass(frozen=True)
class _FileRow:
    row: int
    feedback_id: str
    decision_id: str
    report_id: str
    label: str
    reviewer: str
    note: str
    created_at: datetime


def import_feedback(
    store: Store,
    path: Path,
    *,
    reviewer_default: str = "",
    source: str = "import",
    recorded_by: str = "",
    now: datetime | None = None,
) -> ImportResult:
    """Record every row of ``path`` as feedback in one transaction, or refuse the file
    (:class:`FeedbackFileRefused`, nothing written) if any row is bad.

    Rows without ``created_at`` are stamped with the import time, one microsecond apart in file
    order, so that of two rows for one decision the later row of the file wins.
    """
    raw = _read_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    now = (now or utc_now()).astimezone(UTC)
    problems: list[DataFileError] = []
    rows: list[_FileRow] = []
    count = 0
    for row_no, record in _records(path, raw):
        count += 1
        try:
            if isinstance(record, DataFileError):
                raise record
            rows.append(_file_row(path, digest, row_no, record, reviewer_default, source, now))
        except TriageError as err:
            problems.append(_at(path, row_no, err))
    if count == 0:
        raise DataFileError(path, "holds no rows")
    with store.connect() as connection:
        recorded = _recorded_ids(connection, [r.feedback_id for r in rows])
        waiting = [r for r in rows if r.feedback_id not in recorded]
        new_rows = _feedback_rows(connection, path, waiting, source, recorded_by, problems)
    if problems:
        problems.sort(key=lambda p: p.row or 0)
        raise FeedbackFileRefused(path, count, problems)
    new = store.insert_feedback(new_rows)  # one transaction: every row or none
    return ImportResult(path=path, sha256=digest, rows=count, new=new, already_recorded=count - new)


def _feedback_rows(
    connection: Connection,
    path: Path,
    rows: list[_FileRow],
    source: str,
    recorded_by: str,
    problems: list[DataFileError],
) -> list[Feedback]:
    """The feedback rows to write, each checked against its decision; bad ones go to
    ``problems``. Rows are taken oldest first, so each row's old label counts the file's
    earlier rows for the same decision."""
    written: list[Feedback] = []
    by_decision: dict[str, list[Feedback]] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.feedback_id)):
        try:
            decision = resolve_decision(connection, row.decision_id, row.report_id)
            check_label(row.label, decision)
        except TriageError as err:
            problems.append(_at(path, row.row, err))
            continue
        earlier = by_decision.setdefault(decision.decision_id, [])
        feedback = Feedback(
            feedback_id=row.feedback_id,
            decision_id=decision.decision_id,
            report_id=decision.report_id,
            old_label=label_before(connection, decision, row.created_at, row.feedback_id, earlier),
            new_label=row.label,
            reviewer=row.reviewer,
            note=row.note,
            created_at=row.created_at,
            source=source,
            recorded_by=recorded_by,
        )
        earlier.append(feedback)
        written.append(feedback)
    return written


def _recorded_ids(connection: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    column = schema.feedback.c.feedback_id
    for start in range(0, len(ids), _ID_LOOKUP_CHUNK):
        chunk = ids[start : start + _ID_LOOKUP_CHUNK]
        found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _at(path: Path, row_no: int, err: TriageError) -> DataFileError:
    if isinstance(err, DataFileError):
        return err
    return DataFileError(path, str(err), row_no)


def _file_row(
    path: Path,
    digest: str,
    row_no: int,
    record: dict[str, object],
    reviewer_default: str,
    source: str,
    now: datetime,
) -> _FileRow:
    """One row's fields, checked as far as they can be without the store."""
    values = {name: _text_field(path, row_no, record, name) for name in COLUMNS}
    reviewer = values["reviewer"].strip() or reviewer_default.strip()
    if not reviewer:
        raise DataFileError(
            path, "no reviewer: give a reviewer column or a default reviewer (--reviewer)", row_no
        )
    label = values["label"].strip()
    check_fields(
        label=label,
        reviewer=reviewer,
        decision_id=values["decision_id"].strip(),
        report_id=values["report_id"],
        note=values["note"],
        source=source,
    )
    if values["created_at"].strip():
        created_at = _moment(path, row_no, values["created_at"].strip())
        if created_at > now + FUTURE_LEEWAY:
            raise DataFileError(
                path, f"created_at {values['created_at']!r} is in the future", row_no
            )
    else:
        created_at = now + timedelta(microseconds=row_no)
    return _FileRow(
        row=row_no,
        feedback_id=str(uuid.uuid5(IMPORT_NAMESPACE, f"{digest}:{row_no}")),
        decision_id=values["decision_id"].strip(),
        report_id=values["report_id"],
        label=label,
        reviewer=reviewer,
        note=values["note"],
        created_at=created_at,
    )


def _text_field(path: Path, row_no: int, record: dict[str, object], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFileError(
            path, f"{name!r} must be text, not {type(value).__name__} {value!r:.40}", row_no
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # JSON's "\ud800": a lone surrogate, not a character
        raise DataFileError(
            path, f"{name!r} holds a lone surrogate (character {err.start + 1}), not text", row_no
        ) from None
    return value


def _moment(path: Path, row_no: int, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise DataFileError(
            path,
            f"created_at {raw[:40]!r} is not an ISO 8601 time (e.g. 2026-12-01T14:30:00+00:00)",
            row_no,
        ) from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise DataFileError(
            path, f"created_at {raw[:40]!r} is outside the years 1 to 9999 in UTC", row_no
        ) from None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes: a regular file of at most :data:`MAX_FILE_BYTES`, else refused."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a FIFO's open blocks
            raise DataFileError(path, "not a regular file: give a CSV or JSONL file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # swapped meanwhile
                raise DataFileError(path, "not a regular file: give a CSV or JSONL file")
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise DataFileError(path, f"cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DataFileError(
            path, f"is over {MAX_FILE_BYTES >> 20} MiB: split it into smaller files"
        )
    return raw


_Record = dict[str, object] | DataFileError


def _records(path: Path, raw: bytes) -> Iterator[tuple[int, _Record]]:
    """``(row number, record)`` for every data row (the record is the row's error when the
    row cannot be read as one): CSV rows after the header count from 1, JSONL rows are
    numbered by line. A file that cannot be read at all raises :class:`DataFileError`."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFileError(
            path, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} on line {line})"
        ) from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_records(path, text)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_records(path, text)
    else:
        raise DataFileError(path, f"unknown format {suffix!r}: use one of {', '.join(FORMATS)}")


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, _Record]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as err:  # the header line itself: a field over csv's limit, say
        raise DataFileError(path, f"the header is not valid CSV ({err})") from None
    if "label" not in header or not {"decision_id", "report_id"} & set(header):
        raise DataFileError(
            path,
            "the header needs a label column and a decision_id or report_id column (header "
            f"has: {', '.join(header)[:200] or 'nothing'})",
        )
    try:
        for row_no, record in enumerate(reader, start=1):
            if None in record:
                yield row_no, DataFileError(path, "more values than header columns", row_no)
            else:
                yield row_no, dict(record)
    except csv.Error as err:
        raise DataFileError(path, f"not valid CSV ({err})", reader.line_num) from None


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, _Record]]:
    # split on "\n" only: str.splitlines() would also break inside strings at U+2028.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield line_no, DataFileError(path, f"not valid JSON ({err.msg})", line_no)
            continue
        except ValueError:  # an integer of more digits than Python converts (over 4,300)
            yield line_no, DataFileError(path, "holds a number too long to read", line_no)
            continue
        except RecursionError:  # a line of ten thousand nested brackets
            yield line_no, DataFileError(path, "nested too deeply to be a feedback row", line_no)
            continue
        if not isinstance(record, dict):
            yield line_no, DataFileError(path, "each line must be a JSON object", line_no)
        else:
            yield line_no, record
