"""The review queue: the decisions a reviewer should label next, the most informative first.

A decision is in the queue when it needed review, its text is still held (not expired), and no
reviewer has labelled it yet. The queue is ordered by active-learning value: the smallest margin
between the model's top two scores first (``decisions.margin``), ties broken by decision id.
Both are read in that order from ``ix_decisions_review_queue``, a partial index over the
decisions that need review which also holds every column the filters and counts use, so a page
walks the index only as far as it lists and the counts never read the decisions table.

Diversity: twenty near-copies of one report should not fill a page. The margin order is cut
into blocks of :data:`BLOCK` (five pages). Within a block each candidate's text is opened and
turned into a set of word shingles (three-word runs of its first :data:`SHINGLE_CHARS`
characters); walking the block in margin order, a candidate whose shingles have a Jaccard
similarity of at least :data:`NEAR_COPY` with a candidate already kept is deferred to the end
of the block. So the first page of a block shows up to 50 distinct reports, their near-copies
come on the block's later pages, every queued decision is on exactly one page, and a page
opens at most 250 texts whatever its number. The next item after a label or a skip
is the first of the queue (the first candidate is never deferred), so finding it opens no text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, exists, func, literal, select, true

from triage.core.errors import TriageError
from triage.core.model import BELOW_THRESHOLD, NO_EVIDENCE
from triage.store import schema
from triage.store.crypto import TextCipher
from triage.store.database import Store
from triage.store.errors import KeyProblem
from triage.store.records import utc_now

PAGE_SIZE = 50
PAGES_PER_BLOCK = 5
BLOCK = PAGE_SIZE * PAGES_PER_BLOCK  # candidates opened and compared for one page
MAX_PAGE = 100_000
NEAR_COPY = 0.8  # Jaccard similarity of word shingles at which two texts are near-copies
SHINGLE_WORDS = 3
SHINGLE_CHARS = 2_000  # enough of a report to tell copies apart, cheap for a long one
PREVIEW_CHARS = 140
KNOWN_REASONS = (NO_EVIDENCE, BELOW_THRESHOLD)

_REASON = re.compile(r"[a-z0-9_]{1,64}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PAGE = re.compile(r"[0-9]{1,6}")
_WORD = re.compile(r"\w+")

DECISIONS = schema.decisions
TEXTS = schema.report_texts
FEEDBACK = schema.feedback


class InvalidFilter(TriageError):
    """A queue filter or page number that cannot be used; the message says what is expected."""


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer narrowed the queue to; every field optional."""

    reason: str | None = None
    label: str | None = None
    version: str | None = None
    day_from: date | None = None  # UTC days, both included
    day_to: date | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueFilter:
        """The filter in query parameters ``reason``, ``label``, ``version``, ``from``, ``to``
        (empty means unset). Raises :class:`InvalidFilter` for a value no decision could
        have."""
        reason = params.get("reason") or None
        if reason is not None and not _REASON.fullmatch(reason):
            raise InvalidFilter(
                "reason must be a reason name such as no_evidence or below_threshold"
            )
        day_from = _day(params.get("from") or None, "from")
        day_to = _day(params.get("to") or None, "to")
        if day_from and day_to and day_from > day_to:
            raise InvalidFilter("the 'from' day is after the 'to' day")
        return cls(
            reason=reason,
            label=_name(params.get("label") or None, "label", schema.LABEL),
            version=_name(params.get("version") or None, "version", schema.VERSION),
            day_from=day_from,
            day_to=day_to,
        )

    def params(self) -> dict[str, str]:
        """The filter as query parameters (only those set), the inverse of ``from_params``."""
        values = {
            "reason": self.reason,
            "label": self.label,
            "version": self.version,
            "from": self.day_from.isoformat() if self.day_from else None,
            "to": self.day_to.isoformat() if self.day_to else None,
        }
        return {key: value for key, value in values.items() if value}


def parse_page(value: str | None) -> int:
    """A page number from a query parameter (absent: 1)."""
    if value is None or value == "":
        return 1
    if not _PAGE.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidFilter(f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(value)


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        if _DAY.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidFilter(f"'{name}' must be a day written YYYY-MM-DD")


def _name(value: str | None, name: str, limit: int) -> str | None:
    if value is not None and (len(value) > limit or not value.isprintable() or not value.strip()):
        raise InvalidFilter(f"{name} must be 1 to {limit} printable characters")
    return value


@dataclass(frozen=True)
class QueueRow:
    """One queued decision as the queue page lists it."""

    decision_id: str
    received_at: datetime
    model_version: str
    label: str
    confidence: float
    margin: float
    reasons: tuple[str, ...]
    preview: str | None  # the start of the text; None when no configured key opens it
    near_copies: int = 0  # near-copies of it deferred to later pages of its block


@dataclass(frozen=True)
class QueueCounts:
    """How many queued decisions the filter matches, and what the filter could choose from."""

    total: int  # matching every filter
    by_reason: Mapping[str, int]  # matching the filters other than the reason
    labels: tuple[str, ...]  # predicted labels in the queue (under the date filter)
    versions: tuple[str, ...]  # model versions in the queue (under the date filter)


@dataclass(frozen=True)
class QueuePage:
    number: int
    rows: tuple[QueueRow, ...]
    counts: QueueCounts
    filter: QueueFilter = field(default_factory=QueueFilter)

    @property
    def pages(self) -> int:
        return max(1, -(-self.counts.total // PAGE_SIZE))


def queue_page(
    store: Store,
    cipher: TextCipher,
    wanted: QueueFilter,
    number: int = 1,
    skipped: Iterable[str] = (),
    now: datetime | None = None,
) -> QueuePage:
    """Page ``number`` of the queue under ``wanted``, leaving out the ``skipped`` decisions."""
    now = now or utc_now()
    skipped = tuple(skipped)
    block, within = divmod(number - 1, PAGES_PER_BLOCK)
    with store.connect() as connection:
        counts = _counts(_groups(connection, wanted, now, skipped), wanted)
        candidates = connection.execute(
            _candidates(wanted, now, skipped).offset(block * BLOCK).limit(BLOCK)
        ).all()
        sealed = _sealed(connection, [row.decision_id for row in candidates])
    texts = [_opened(cipher, sealed.get(row.decision_id)) for row in candidates]
    order, copy_of = diverse_order([shingles(text) if text else frozenset() for text in texts])
    copies = Counter(copy_of.values())
    shown = order[within * PAGE_SIZE : (within + 1) * PAGE_SIZE]
    rows = tuple(_row(candidates[i], texts[i], copies[i]) for i in shown)
    return QueuePage(number=number, rows=rows, counts=counts, filter=wanted)


def next_decision(
    store: Store,
    wanted: QueueFilter,
    skipped: Iterable[str] = (),
    now: datetime | None = None,
) -> str | None:
    """The decision id at the head of the queue under ``wanted``, or None when it is empty."""
    statement = _candidates(wanted, now or utc_now(), tuple(skipped)).limit(1)
    with store.connect() as connection:
        row = connection.execute(statement).first()
    return row.decision_id if row is not None else None


def shingles(text: str) -> frozenset[int]:
    """The text's three-word runs (hashed), lower-cased, from its first characters; a text
    of one or two words is one shingle."""
    words = _WORD.findall(text[:SHINGLE_CHARS].casefold())
    if len(words) < SHINGLE_WORDS:
        return frozenset({hash(tuple(words))}) if words else frozenset()
    return frozenset(
        hash(tuple(words[i : i + SHINGLE_WORDS])) for i in range(len(words) - SHINGLE_WORDS + 1)
    )


def diverse_order(
    sets: Sequence[frozenset[int]], threshold: float = NEAR_COPY
) -> tuple[list[int], dict[int, int]]:
    """Indices of ``sets`` (given in priority order): those kept first, then those deferred as
    near-copies of a kept one, each group in the given order; and for each deferred index the
    kept index it copies. An empty set is never a near-copy. Shared shingles are counted
    through an inverted index, so unrelated texts cost nothing to compare."""
    kept: list[int] = []
    deferred: list[int] = []
    copy_of: dict[int, int] = {}
    postings: dict[int, list[int]] = {}
    for i, mine in enumerate(sets):
        shared: Counter[int] = Counter()
        for shingle in mine:
            shared.update(postings.get(shingle, ()))
        original = next(
            (
                j
                for j, both in sorted(shared.items())
                if both / (len(mine) + len(sets[j]) - both) >= threshold
            ),
            None,
        )
        if original is None:
            kept.append(i)
            for shingle in mine:
                postings.setdefault(shingle, []).append(i)
        else:
            deferred.append(i)
            copy_of[i] = original
    return kept + deferred, copy_of


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    """The start of ``text`` on one line, cut at ``chars`` characters."""
    start = " ".join(text[: chars * 4].split())
    return start if len(start) <= chars else start[: chars - 1].rstrip() + "…"


# -- SQL ------------------------------------------------------------------------------------


def _unlabelled(skipped: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """Needed review, no feedback, not skipped. ``needs_review = true`` is written as the
    queue index's own condition, so that both databases see that the index applies."""
    labelled = select(literal(1)).where(FEEDBACK.c.decision_id == DECISIONS.c.decision_id)
    conditions = [DECISIONS.c.needs_review == true(), ~exists(labelled)]
    if skipped:
        conditions.append(DECISIONS.c.decision_id.not_in(skipped))
    return conditions


def _held(now: datetime | None = None) -> ColumnElement[bool]:
    """A text is held for the decision (and has not expired at ``now``, when given)."""
    held = select(literal(1)).where(TEXTS.c.decision_id == DECISIONS.c.decision_id)
    return exists(held.where(TEXTS.c.expires_at > now) if now is not None else held)


def _received_between(wanted: QueueFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if wanted.day_from is not None:
        conditions.append(DECISIONS.c.received_at >= _midnight(wanted.day_from))
    if wanted.day_to is not None:
        conditions.append(DECISIONS.c.received_at < _midnight(wanted.day_to + timedelta(days=1)))
    return conditions


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _has_reason(reason: str) -> ColumnElement[bool]:
    # reasons is a comma-separated list: match a whole name, with '_' taken literally.
    listed = literal(",") + DECISIONS.c.reasons + literal(",")
    return listed.contains(f",{reason},", autoescape=True)


def _candidates(wanted: QueueFilter, now: datetime, skipped: tuple[str, ...]) -> Select[Any]:
    conditions = [*_unlabelled(skipped), _held(now), *_received_between(wanted)]
    if wanted.reason is not None:
        conditions.append(_has_reason(wanted.reason))
    if wanted.label is not None:
        conditions.append(DECISIONS.c.label == wanted.label)
    if wanted.version is not None:
        conditions.append(DECISIONS.c.model_version == wanted.version)
    return (
        select(
            DECISIONS.c.decision_id,
            DECISIONS.c.received_at,
            DECISIONS.c.model_version,
            DECISIONS.c.label,
            DECISIONS.c.confidence,
            DECISIONS.c.margin,
            DECISIONS.c.reasons,
        )
        .where(*conditions)
        .order_by(DECISIONS.c.margin, DECISIONS.c.decision_id)
    )


def _groups(
    connection: Connection, wanted: QueueFilter, now: datetime, skipped: tuple[str, ...]
) -> list[tuple[str, str, str, int]]:
    """The queue under the date filter, counted by (reasons, label, version): a few dozen rows
    from which every count and every filter choice is made.

    Counted as those with a text held minus those whose text has expired and awaits the next
    purge: whether a text is held is answered by the report_texts primary-key index alone,
    and the expired texts are a short range of the expires_at index, where checking each
    decision's expiry would read a report_texts row per queued decision."""
    keys = (DECISIONS.c.reasons, DECISIONS.c.label, DECISIONS.c.model_version)
    conditions = [*_unlabelled(skipped), *_received_between(wanted)]
    held = select(*keys, func.count()).where(*conditions, _held()).group_by(*keys)
    expired = (
        select(*keys, func.count())
        .select_from(TEXTS.join(DECISIONS, DECISIONS.c.decision_id == TEXTS.c.decision_id))
        .where(*conditions, TEXTS.c.expires_at <= now)
        .group_by(*keys)
    )
    counted: Counter[tuple[str, str, str]] = Counter()
    for reasons, label, version, count in connection.execute(held):
        counted[(reasons, label, version)] += count
    for reasons, label, version, count in connection.execute(expired):
        counted[(reasons, label, version)] -= count
    return [(*key, count) for key, count in counted.items() if count > 0]


def _counts(groups: Sequence[tuple[str, str, str, int]], wanted: QueueFilter) -> QueueCounts:
    total = 0
    by_reason: Counter[str] = Counter(dict.fromkeys(KNOWN_REASONS, 0))
    labels: set[str] = set()
    versions: set[str] = set()
    for reasons_text, label, version, count in groups:
        reasons = [r for r in str(reasons_text).split(",") if r]
        labels.add(label)
        versions.add(version)
        if wanted.label not in (None, label) or wanted.version not in (None, version):
            continue
        for reason in reasons:
            by_reason[reason] += count
        if wanted.reason is None or wanted.reason in reasons:
            total += count
    return QueueCounts(
        total=total,
        by_reason=dict(sorted(by_reason.items())),
        labels=tuple(sorted(labels)),
        versions=tuple(sorted(versions, reverse=True)),
    )


def _sealed(connection: Connection, decision_ids: list[str]) -> dict[str, tuple[bytes, str]]:
    """The sealed texts of ``decision_ids`` (at most one block), by decision id."""
    if not decision_ids:
        return {}
    rows = connection.execute(
        select(TEXTS.c.decision_id, TEXTS.c.ciphertext, TEXTS.c.key_id).where(
            TEXTS.c.decision_id.in_(decision_ids)
        )
    )
    return {decision_id: (ciphertext, key_id) for decision_id, ciphertext, key_id in rows}


def _opened(cipher: TextCipher, sealed: tuple[bytes, str] | None) -> str | None:
    """The text, or None when it was purged meanwhile or no configured key opens it."""
    if sealed is None:
        return None
    try:
        return cipher.open(*sealed)
    except KeyProblem:
        return None


def _row(row: Any, text: str | None, near_copies: int) -> QueueRow:
    received = row.received_at
    return QueueRow(
        decision_id=row.decision_id,
        received_at=received.replace(tzinfo=UTC)
        if received.tzinfo is None
        else received.astimezone(UTC),
        model_version=row.model_version,
        label=row.label,
        confidence=float(row.confidence),
        margin=float(row.margin) if row.margin is not None else 0.0,
        reasons=tuple(r for r in row.reasons.split(",") if r),
        preview=preview(text) if text is not None else None,
        near_copies=near_copies,
    )
