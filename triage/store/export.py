"""Write reviewed reports that still have their text as a labelled training file (JSONL).

Each line is a training row (``id``, ``text``, ``label``, ``genre``, as the training reader
takes them) labelled with the decision's latest reviewer label, plus a ``provenance`` object
that says which decision, report, model and review it came from (the training reader ignores
it). Texts whose retention has run out are not exported even if a purge has not deleted them
yet: the export must not keep a text longer than the record may. The file holds report texts,
so it is written owner-readable only, and atomically (a temporary file renamed into place), so
a failed export never leaves half a training file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, select

from triage.core.errors import DataFileError
from triage.store import schema
from triage.store.crypto import TextCipher
from triage.store.database import Store, decision_of, feedback_of
from triage.store.records import Decision, Feedback, utc_now

EXPORT_GENRE = "reviewed"  # the genre of every exported row (live reports have no known genre)
_CHUNK = 500


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: rows per label, and reviewed decisions left out for want of text."""

    path: Path
    since: datetime | None
    exported: int
    without_text: int
    labels: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        labels = ", ".join(f"{label} {n}" for label, n in self.labels.items()) or "none"
        lines = [f"wrote {self.exported} reviewed reports to {self.path} (labels: {labels})"]
        if self.without_text:
            lines.append(
                f"{self.without_text} reviewed decisions have no text any more (purged or never "
                "kept) and are not exported"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class _Reviewed:
    decision: Decision
    latest: Feedback


def export_reviewed(
    store: Store,
    cipher: TextCipher,
    *,
    since: datetime | None,
    out: Path,
    now: datetime | None = None,
) -> ExportResult:
    """Write every decision whose latest feedback is at or after ``since`` (all reviewed
    decisions when None) and whose text is still held to ``out``, labelled by that feedback.
    Raises :class:`KeyProblem` when a text cannot be opened with ``cipher``'s keys."""
    since_utc = since.astimezone(UTC) if since is not None else None
    now = (now or utc_now()).astimezone(UTC)
    labels: Counter[str] = Counter()
    without_text = 0
    with _atomic_file(out) as stream, store.connect() as connection:
        for reviewed, text in _reviewed(connection, cipher, since_utc, now):
            if text is None or not text.strip():
                without_text += 1
                continue
            stream.write(json.dumps(_training_row(reviewed, text), ensure_ascii=False) + "\n")
            labels[reviewed.latest.new_label] += 1
    return ExportResult(
        path=out,
        since=since_utc,
        exported=sum(labels.values()),
        without_text=without_text,
        labels=dict(sorted(labels.items())),
    )


def _training_row(reviewed: _Reviewed, text: str) -> dict[str, Any]:
    decision, latest = reviewed.decision, reviewed.latest
    return {
        "id": decision.decision_id,
        "text": text,
        "label": latest.new_label,
        "genre": EXPORT_GENRE,
        "provenance": {
            "decision_id": decision.decision_id,
            "report_id": decision.report_id,
            "model_version": decision.model_version,
            "predicted_label": decision.label,
            "reviewer": latest.reviewer,
            "reviewed_at": latest.created_at.isoformat(),
            "feedback_id": latest.feedback_id,
        },
    }


def _reviewed(
    connection: Connection, cipher: TextCipher, since: datetime | None, now: datetime
) -> Iterator[tuple[_Reviewed, str | None]]:
    """Each reviewed decision in decision-id (time) order with its latest feedback and its
    text (None when not held, or expired), a chunk of decisions at a time."""
    feedback, decisions, texts = schema.feedback, schema.decisions, schema.report_texts
    touched = select(feedback.c.decision_id).distinct().order_by(feedback.c.decision_id)
    if since is not None:
        touched = touched.where(feedback.c.created_at >= since)
    ids = list(connection.execute(touched).scalars())
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        history: dict[str, Feedback] = {}
        for row in connection.execute(select(feedback).where(feedback.c.decision_id.in_(chunk))):
            item = feedback_of(row)
            held = history.get(item.decision_id)
            if held is None or (item.created_at, item.feedback_id) > (
                held.created_at,
                held.feedback_id,
            ):
                history[item.decision_id] = item
        sealed = {
            row.decision_id: (row.ciphertext, row.key_id)
            for row in connection.execute(
                select(texts.c.decision_id, texts.c.ciphertext, texts.c.key_id).where(
                    texts.c.decision_id.in_(chunk), texts.c.expires_at > now
                )
            )
        }
        found = connection.execute(
            select(decisions)
            .where(decisions.c.decision_id.in_(chunk))
            .order_by(decisions.c.decision_id)
        )
        for row in found:
            decision = decision_of(row)
            text = None
            if decision.decision_id in sealed:
                ciphertext, key_id = sealed[decision.decision_id]
                text = cipher.open(ciphertext, key_id)
            yield _Reviewed(decision, history[decision.decision_id]), text


@contextmanager
def _atomic_file(path: Path) -> Iterator[IO[str]]:
    """A text file written beside ``path`` (mode 600) and renamed onto it only when the body
    finished without an error."""
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise DataFileError(path, f"cannot write: {err.strerror or err}") from None
    temp = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except OSError as err:
        raise DataFileError(path, f"cannot write: {err.strerror or err}") from None
    finally:
        temp.unlink(missing_ok=True)  # gone already once renamed
