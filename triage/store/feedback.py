"""Record a reviewer's label for a decision, checked against what the decision's model knows.

Feedback rows are never changed: a new row is added, and the latest row of a decision (by
``created_at``, then ``feedback_id``) wins. Each row keeps the label it replaced, so the history
says who changed what, when. A caller that retries with the same ``feedback_id`` gets the row
that was written the first time, never a second row.

Feedback on one decision is serialised: the decision's row is locked (PostgreSQL: ``SELECT ...
FOR UPDATE``; SQLite: the write lock, ``BEGIN IMMEDIATE``) before the latest row is read, and
the new row's time is taken under that lock, so concurrent reviewers still leave a history
where each row replaces the one before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, or_, select

from triage.store import schema
from triage.store.database import Store, decision_of, feedback_of, storable_text
from triage.store.errors import InvalidFeedback, UnknownDecision
from triage.store.records import Decision, Feedback, new_id, utc_now

NOTE_CHARS = 2_000
PERSON_CHARS = schema.PERSON
DECISION_ID_CHARS = schema.ID
REPORT_ID_CHARS = schema.REPORT_ID
SOURCE_CHARS = 32  # feedback.source: rpc, import, review


def check_fields(
    *, label: str, reviewer: str, decision_id: str, report_id: str, note: str, source: str
) -> None:
    """Refuse, with :class:`InvalidFeedback`, the fields no decision could make valid."""
    if not decision_id and not report_id:
        raise InvalidFeedback("feedback needs a decision_id or a report_id")
    if len(decision_id) > DECISION_ID_CHARS:
        raise InvalidFeedback(
            f"decision_id is {len(decision_id)} characters long; decision ids are at most "
            f"{DECISION_ID_CHARS}"
        )
    if len(report_id) > REPORT_ID_CHARS:
        raise InvalidFeedback(
            f"report_id is {len(report_id)} characters long, the limit is {REPORT_ID_CHARS}"
        )
    if not label:
        raise InvalidFeedback("the label is empty: send the label the report should have")
    if not reviewer:
        raise InvalidFeedback("the reviewer is empty: name who decided the label")
    if len(reviewer) > PERSON_CHARS:
        raise InvalidFeedback(
            f"the reviewer is {len(reviewer)} characters long, the limit is {PERSON_CHARS}"
        )
    if len(note) > NOTE_CHARS:
        raise InvalidFeedback(f"the note is {len(note)} characters long, the limit is {NOTE_CHARS}")
    if not source or len(source) > SOURCE_CHARS:
        raise InvalidFeedback(f"the source must be 1 to {SOURCE_CHARS} characters")


def canonical_feedback_id(feedback_id: str) -> str:
    """``feedback_id`` in the 36-character lower-case form it is stored in, so that a retry
    that spells the same UUID differently is still the same row."""
    try:
        return str(uuid.UUID(feedback_id))
    except (ValueError, AttributeError, TypeError):
        raise InvalidFeedback(
            "feedback_id must be a UUID (e.g. 0190f1e2-7c4b-7def-8a12-3456789abcde); leave it "
            "empty to have one made"
        ) from None


def check_label(label: str, decision: Decision) -> None:
    """The label must be one the decision's model could have given."""
    if label not in decision.scores:
        allowed = ", ".join(sorted(decision.scores))
        raise InvalidFeedback(
            f"label {label!r} is not one model {decision.model_version} knows: use one of {allowed}"
        )


def resolve_decision(
    connection: Connection, decision_id: str, report_id: str, lock: bool = False
) -> Decision:
    """The decision the feedback is about: by id, else the latest decision for ``report_id``
    (ids as the record stores them: :func:`storable_text`). Raises :class:`UnknownDecision`
    when there is none. With ``lock``, its row stays locked (PostgreSQL) until the
    transaction ends."""
    decisions = schema.decisions
    decision_id, report_id = storable_text(decision_id), storable_text(report_id)
    if decision_id:
        by_id = select(decisions).where(decisions.c.decision_id == decision_id)
        row = connection.execute(by_id.with_for_update() if lock else by_id).one_or_none()
        if row is None:
            raise UnknownDecision(f"no recorded decision has the id {decision_id!r}")
        decision = decision_of(row)
        if report_id and decision.report_id != report_id:
            raise InvalidFeedback(
                f"decision {decision_id} is for report {decision.report_id!r}, not "
                f"{report_id!r}: send the decision id or the report id alone"
            )
        return decision
    latest = (
        select(decisions)
        .where(decisions.c.report_id == report_id)
        .order_by(decisions.c.received_at.desc(), decisions.c.decision_id.desc())
        .limit(1)
    )
    row = connection.execute(latest.with_for_update() if lock else latest).one_or_none()
    if row is None:
        raise UnknownDecision(f"no recorded decision has the report id {report_id!r}")
    return decision_of(row)


def label_before(
    connection: Connection,
    decision: Decision,
    created_at: datetime,
    feedback_id: str,
    pending: Sequence[Feedback] = (),
) -> str:
    """The decision's label just before a feedback row at (``created_at``, ``feedback_id``):
    the latest earlier row's new label, counting ``pending`` rows not written yet, else the
    model's label."""
    table = schema.feedback
    earlier = connection.execute(
        select(table)
        .where(
            table.c.decision_id == decision.decision_id,
            or_(
                table.c.created_at < created_at,
                and_(table.c.created_at == created_at, table.c.feedback_id < feedback_id),
            ),
        )
        .order_by(table.c.created_at.desc(), table.c.feedback_id.desc())
        .limit(1)
    ).one_or_none()
    candidates = [feedback_of(earlier)] if earlier is not None else []
    candidates += [
        f
        for f in pending
        if f.decision_id == decision.decision_id
        and (f.created_at, f.feedback_id) < (created_at, feedback_id)
    ]
    if not candidates:
        return decision.label
    return max(candidates, key=lambda f: (f.created_at, f.feedback_id)).new_label


def recorded_feedback(connection: Connection, feedback_id: str) -> Feedback | None:
    row = connection.execute(
        select(schema.feedback).where(schema.feedback.c.feedback_id == feedback_id)
    ).one_or_none()
    return feedback_of(row) if row is not None else None


def submit_feedback(
    store: Store,
    *,
    label: str,
    reviewer: str,
    decision_id: str = "",
    report_id: str = "",
    note: str = "",
    source: str = "rpc",
    feedback_id: str | None = None,
    now: datetime | None = None,
    recorded_by: str = "",
) -> Feedback:
    """Record ``reviewer``'s ``label`` for a decision (by ``decision_id``, or the latest
    decision for ``report_id``) and return the row as recorded.

    Raises :class:`UnknownDecision` when no decision matches and :class:`InvalidFeedback` for a
    label the decision's model does not know or a field out of bounds. With ``feedback_id``, a
    retry returns the row already recorded under that id instead of writing another.
    """
    # As the record will store them, so that the row returned is the row on record.
    label, reviewer = storable_text(label.strip()), storable_text(reviewer.strip())
    decision_id, report_id = storable_text(decision_id), storable_text(report_id)
    note, recorded_by = storable_text(note), storable_text(recorded_by)
    check_fields(
        label=label,
        reviewer=reviewer,
        decision_id=decision_id,
        report_id=report_id,
        note=note,
        source=source,
    )
    if len(recorded_by) > PERSON_CHARS:
        recorded_by = recorded_by[:PERSON_CHARS]  # an identity, not the caller's input
    row_id = canonical_feedback_id(feedback_id) if feedback_id else new_id()
    with store.connect() as connection:
        if store.dialect == "sqlite":  # the write lock first: one feedback at a time
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        existing = recorded_feedback(connection, row_id)
        if existing is not None:
            return _retried(existing, label, decision_id, report_id)
        decision = resolve_decision(connection, decision_id, report_id, lock=True)
        check_label(label, decision)
        created_at = _stamp(connection, decision, row_id, now)
        row = Feedback(
            feedback_id=row_id,
            decision_id=decision.decision_id,
            report_id=decision.report_id,
            old_label=label_before(connection, decision, created_at, row_id),
            new_label=label,
            reviewer=reviewer,
            note=note,
            created_at=created_at,
            source=source,
            recorded_by=recorded_by,
        )
        if store.insert_feedback([row], connection) == 1:
            return row
        existing = recorded_feedback(connection, row_id)  # a concurrent retry wrote it first
    assert existing is not None  # the insert found the key taken
    return _retried(existing, label, decision_id, report_id)


def _stamp(
    connection: Connection, decision: Decision, feedback_id: str, now: datetime | None
) -> datetime:
    """The new row's time: ``now`` as given (a correction dated by its sender), else the clock,
    taken under the decision's lock and kept after the decision's latest row, so that the
    order of times is the order the rows were written in even when the clock steps back."""
    if now is not None:
        return now.astimezone(UTC)
    stamp = utc_now().astimezone(UTC)
    table = schema.feedback
    latest = connection.execute(
        select(table.c.created_at, table.c.feedback_id)
        .where(table.c.decision_id == decision.decision_id)
        .order_by(table.c.created_at.desc(), table.c.feedback_id.desc())
        .limit(1)
    ).one_or_none()
    if latest is not None:
        latest_at = latest.created_at
        latest_at = latest_at.replace(tzinfo=UTC) if latest_at.tzinfo is None else latest_at
        if (latest_at, latest.feedback_id) >= (stamp, feedback_id):
            stamp = latest_at + timedelta(microseconds=1)
    return stamp


def _retried(existing: Feedback, label: str, decision_id: str, report_id: str) -> Feedback:
    """The recorded row, if the retry asks for the same thing; a reused id is refused."""
    same_target = (not decision_id or existing.decision_id == decision_id) and (
        not report_id or existing.report_id == report_id
    )
    if same_target and existing.new_label == label:
        return existing
    raise InvalidFeedback(
        f"feedback id {existing.feedback_id} is already recorded (decision "
        f"{existing.decision_id}, label {existing.new_label!r}): a retry must send the same "
        "decision and label, and new feedback needs a new id"
    )
