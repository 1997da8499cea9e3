"""The SQL aggregates live quality is made of, on SQLite and PostgreSQL alike.

Every figure is a GROUP BY in the database: a report over millions of decisions brings back a
few hundred rows of counts, never the decisions. Computed keys (the UTC day, a confidence bin,
whether a reviewer agreed) are selected in a subquery and grouped on outside it, so that the
database groups on a plain column (PostgreSQL will not match two copies of an expression with
bound parameters in SELECT and GROUP BY).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, String, case, exists, func, literal, select
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from triage.monitor.window import Window
from triage.store import schema

DECISIONS = schema.decisions
FEEDBACK = schema.feedback
SHADOWS = schema.shadow_decisions


class UtcDay(FunctionElement[str]):
    """The UTC calendar day (``YYYY-MM-DD``) of a timestamp column, whatever the session's
    time zone."""

    type = String()
    inherit_cache = True
    name = "utc_day"


@compiles(UtcDay)
def _utc_day_unknown(element: UtcDay, compiler: Any, **kw: Any) -> str:
    raise CompileError(f"no UTC day expression for {compiler.dialect.name}")


@compiles(UtcDay, "sqlite")
def _utc_day_sqlite(element: UtcDay, compiler: Any, **kw: Any) -> str:
    # SQLite holds the record's UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff' text.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(UtcDay, "postgresql")
def _utc_day_postgresql(element: UtcDay, compiler: Any, **kw: Any) -> str:
    return f"to_char(timezone('UTC', {compiler.process(element.clauses, **kw)}), 'YYYY-MM-DD')"


@dataclass(frozen=True)
class ReviewCount:
    """Decisions of a version with one ``needs_review`` value and one set of reasons."""

    version: str
    needs_review: bool
    reasons: str  # comma-separated, as stored
    count: int


@dataclass(frozen=True)
class DayLabelCount:
    version: str
    day: str  # YYYY-MM-DD, UTC
    label: str
    count: int


@dataclass(frozen=True)
class FeedbackCount:
    """Decisions of a version with reviewer feedback, by whether the model asked for review and
    whether the latest reviewer label is the model's."""

    version: str
    needs_review: bool
    agrees: bool
    count: int


@dataclass(frozen=True)
class ShadowPairCount:
    """Live decisions of ``version`` that ``shadow_version`` also answered, by both labels and,
    where a reviewer labelled the decision, which of the two was right."""

    version: str
    live_label: str
    shadow_label: str
    reviewed: bool
    live_right: bool
    shadow_right: bool
    count: int


def _window_filter(window: Window, versions: Sequence[str] | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if window.since is not None:
        conditions.append(DECISIONS.c.received_at >= window.since)
    if window.until is not None:
        conditions.append(DECISIONS.c.received_at < window.until)
    if versions is not None:
        conditions.append(DECISIONS.c.model_version.in_(list(versions)))
    return conditions


def bin_index(column: Any, edges: Sequence[float]) -> ColumnElement[int]:
    """Which of the bins between ``edges`` holds ``column``: bin i is (edges[i], edges[i+1]],
    the first one taking everything at or below its upper edge (0 included)."""
    inner = list(edges[1:-1])
    if not inner:
        return literal(0)
    return case(*((column <= edge, i) for i, edge in enumerate(inner)), else_=len(inner))


def _latest_feedback_of_decision(latest: Any) -> ColumnElement[bool]:
    """Join condition: ``latest`` (an alias of feedback) is the latest row of the decision, by
    time, then by feedback id (time-ordered too); its reviewer label is the one that counts.

    Written as "no later row exists" rather than a ranking subquery, so that the database
    probes the (decision_id, created_at) index per decision whatever its statistics say; a
    ranked subquery joined to a window of decisions can turn into a product of the two."""
    later = FEEDBACK.alias("later_feedback")
    return (latest.c.decision_id == DECISIONS.c.decision_id) & ~exists().where(
        later.c.decision_id == latest.c.decision_id,
        (later.c.created_at > latest.c.created_at)
        | (
            (later.c.created_at == latest.c.created_at)
            & (later.c.feedback_id > latest.c.feedback_id)
        ),
    )


def review_counts(
    connection: Connection, window: Window, versions: Sequence[str] | None = None
) -> list[ReviewCount]:
    statement = (
        select(
            DECISIONS.c.model_version,
            DECISIONS.c.needs_review,
            DECISIONS.c.reasons,
            func.count(),
        )
        .where(*_window_filter(window, versions))
        .group_by(DECISIONS.c.model_version, DECISIONS.c.needs_review, DECISIONS.c.reasons)
    )
    return [
        ReviewCount(str(version), bool(needs_review), str(reasons or ""), int(n))
        for version, needs_review, reasons, n in connection.execute(statement)
    ]


def label_days(
    connection: Connection, window: Window, versions: Sequence[str] | None = None
) -> list[DayLabelCount]:
    keyed = (
        select(
            DECISIONS.c.model_version.label("version"),
            UtcDay(DECISIONS.c.received_at).label("day"),
            DECISIONS.c.label.label("label"),
        )
        .where(*_window_filter(window, versions))
        .subquery()
    )
    statement = select(keyed.c.version, keyed.c.day, keyed.c.label, func.count()).group_by(
        keyed.c.version, keyed.c.day, keyed.c.label
    )
    return [
        DayLabelCount(str(version), str(day), str(label), int(n))
        for version, day, label, n in connection.execute(statement)
    ]


def confidence_counts(
    connection: Connection,
    window: Window,
    edges: Sequence[float],
    versions: Sequence[str] | None = None,
) -> dict[str, tuple[int, ...]]:
    """Decisions per confidence bin between ``edges``, per version."""
    keyed = (
        select(
            DECISIONS.c.model_version.label("version"),
            bin_index(DECISIONS.c.confidence, edges).label("bin"),
        )
        .where(*_window_filter(window, versions))
        .subquery()
    )
    statement = select(keyed.c.version, keyed.c.bin, func.count()).group_by(
        keyed.c.version, keyed.c.bin
    )
    bins = len(edges) - 1
    counts: dict[str, list[int]] = {}
    for version, index, n in connection.execute(statement):
        counts.setdefault(str(version), [0] * bins)[int(index)] += int(n)
    return {version: tuple(row) for version, row in counts.items()}


def feedback_counts(
    connection: Connection, window: Window, versions: Sequence[str] | None = None
) -> list[FeedbackCount]:
    latest = FEEDBACK.alias("latest_feedback")
    keyed = (
        select(
            DECISIONS.c.model_version.label("version"),
            DECISIONS.c.needs_review.label("needs_review"),
            case((DECISIONS.c.label == latest.c.new_label, 1), else_=0).label("agrees"),
        )
        .join_from(DECISIONS, latest, _latest_feedback_of_decision(latest))
        .where(*_window_filter(window, versions))
        .subquery()
    )
    statement = select(
        keyed.c.version, keyed.c.needs_review, keyed.c.agrees, func.count()
    ).group_by(keyed.c.version, keyed.c.needs_review, keyed.c.agrees)
    return [
        FeedbackCount(str(version), bool(needs_review), bool(agrees), int(n))
        for version, needs_review, agrees, n in connection.execute(statement)
    ]


def shadow_pair_counts(
    connection: Connection,
    window: Window,
    shadow_version: str,
    versions: Sequence[str] | None = None,
) -> list[ShadowPairCount]:
    latest = FEEDBACK.alias("latest_feedback")
    reviewer = latest.c.new_label
    keyed = (
        select(
            DECISIONS.c.model_version.label("version"),
            DECISIONS.c.label.label("live_label"),
            SHADOWS.c.label.label("shadow_label"),
            case((reviewer.is_not(None), 1), else_=0).label("reviewed"),
            case((DECISIONS.c.label == reviewer, 1), else_=0).label("live_right"),
            case((SHADOWS.c.label == reviewer, 1), else_=0).label("shadow_right"),
        )
        .join_from(
            DECISIONS,
            SHADOWS,
            (SHADOWS.c.decision_id == DECISIONS.c.decision_id)
            & (SHADOWS.c.model_version == shadow_version),
        )
        .outerjoin(latest, _latest_feedback_of_decision(latest))
        .where(*_window_filter(window, versions))
        .subquery()
    )
    keys = (
        keyed.c.version,
        keyed.c.live_label,
        keyed.c.shadow_label,
        keyed.c.reviewed,
        keyed.c.live_right,
        keyed.c.shadow_right,
    )
    statement = select(*keys, func.count()).group_by(*keys)
    return [
        ShadowPairCount(
            str(version), str(live), str(shadow), bool(reviewed), bool(lr), bool(sr), int(n)
        )
        for version, live, shadow, reviewed, lr, sr, n in connection.execute(statement)
    ]
