"""The journal writer's short way from a spool line to a decisions row: the common line (a
decision without a sealed text, every field of the expected type) is read straight into the row
``Store.insert_decisions(count=False)`` would bind, without making a Decision first. About half
the writer's work per decision was that detour (checking each field through the general reader,
a Decision, then its row). Any other line (a sealed text, a shadow answer, anything unexpected
or hostile) takes the general way, :func:`triage.store.spool_format.read_spool_line`, which
reads it or says what is wrong with it; both ways store equal rows (a test reads both back)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from triage.store.database import _BULK_DECISIONS, _SQLITE_TIME, Store, storable_text
from triage.store.records import score_margin
from triage.store.spool_format import SPOOL_FORMAT, json_number, json_string

Row = tuple[Any, ...]
_TEXT_FIELDS = ("decision_id", "report_id", "model_version", "source", "label", "caller")


def plain_decision_row(value: Any, sqlite_form: bool) -> Row | None:
    """The decisions row of a parsed spool line, if it is a plain decision (no text) whose
    every field has the type the general reader accepts; None otherwise."""
    if type(value) is not dict or value.get("kind") != "decision":
        return None
    if value.get("v") != SPOOL_FORMAT or value.get("text") is not None:
        return None
    for name in _TEXT_FIELDS:
        if type(value.get(name)) is not str:
            return None
    confidence, latency = value.get("confidence"), value.get("latency_ms")
    needs_review, reasons = value.get("needs_review"), value.get("reasons")
    scores = value.get("scores")
    if (
        type(confidence) is not float
        or (latency is not None and type(latency) is not float)
        or type(needs_review) is not bool
        or type(reasons) is not list
        or type(scores) is not dict
        or not all(type(r) is str for r in reasons)
        or not all(type(p) is float for p in scores.values())
    ):
        return None
    received = value.get("received_at")
    if type(received) is not str:
        return None
    try:
        when = datetime.fromisoformat(received)
    except ValueError:
        return None
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    numbers = list(scores.values())
    if all(p == p for p in numbers):  # no NaN: sorting orders them as heapq.nlargest would
        numbers.sort(reverse=True)
        margin = numbers[0] - numbers[1] if len(numbers) > 1 else (numbers[0] if numbers else 0.0)
    else:
        margin = score_margin(numbers)
    return (
        value["decision_id"],
        storable_text(value["report_id"]),
        utc.strftime(_SQLITE_TIME) if sqlite_form else utc,
        storable_text(value["model_version"]),
        storable_text(value["source"]),
        storable_text(value["label"]),
        confidence,
        _scores_text(scores),
        int(needs_review) if sqlite_form else needs_review,
        storable_text(",".join(reasons)),
        storable_text(value["caller"]),
        latency,
        margin,
    )


def insert_rows(store: Store, rows: Sequence[Row]) -> None:
    """Insert plain decision rows that are not there yet, in one transaction (idempotent, as
    ``Store.insert_decisions``); StoreError (or UnstorableValue) as it raises them."""
    if not rows:
        return
    mark = "?" if store.dialect == "sqlite" else "%s"
    with store.connect() as connection:
        connection.exec_driver_sql(_BULK_DECISIONS.replace("?", mark), list(rows))


def _scores_text(scores: dict[str, float]) -> str:
    """The scores as ``json.dumps`` writes them (its default separators), keys as stored,
    without its set-up per call."""
    pairs = [f"{json_string(storable_text(k))}: {json_number(p)}" for k, p in scores.items()]
    return "{" + ", ".join(pairs) + "}"
