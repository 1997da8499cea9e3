"""Keep report texts only as long as allowed: purge expired texts (on record), read live ones,
and re-encrypt stored texts under a new key.

A text is held for a retention period (``DEFAULT_RETENTION_DAYS`` unless configured) and then
deleted by a purge, which the operator runs (``triage store purge``) and the server runs on a
timer (:class:`Purger`). Each purge writes a row in ``purges`` in the same transaction as its
deletes, even when nothing was due, so that retention can be shown to have run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, insert, select, update

from triage.store import schema
from triage.store.crypto import TextCipher
from triage.store.database import Store
from triage.store.errors import StoreError
from triage.store.records import utc_now

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30
DEFAULT_PURGE_SECONDS = 3600
ROTATE_BATCH = 500


@dataclass(frozen=True)
class PurgeResult:
    """One purge, as recorded in ``purges``."""

    ran_at: datetime
    expired_before: datetime
    texts_deleted: int
    actor: str


@dataclass(frozen=True)
class TextHoldings:
    """What the store holds of report texts: how many, the oldest expiry, and how many under
    each key id (a key can be dropped once no text is under it)."""

    held: int
    oldest_expiry: datetime | None
    by_key: dict[str, int]


def _utc(value: datetime) -> datetime:
    """UTC-aware: SQLite hands back naive datetimes, and compares times as written."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def purge_expired(store: Store, *, now: datetime | None = None, actor: str) -> PurgeResult:
    """Delete every text whose ``expires_at`` is at or before ``now`` and record the purge, in
    one transaction (a purge that fails leaves neither the deletes nor its record)."""
    ran_at = utc_now()
    cutoff = _utc(now) if now is not None else ran_at
    texts = schema.report_texts
    with store.connect() as connection:
        deleted = connection.execute(delete(texts).where(texts.c.expires_at <= cutoff)).rowcount
        result = PurgeResult(
            ran_at=ran_at, expired_before=cutoff, texts_deleted=int(deleted or 0), actor=actor
        )
        connection.execute(
            insert(schema.purges).values(
                ran_at=result.ran_at,
                expired_before=result.expired_before,
                texts_deleted=result.texts_deleted,
                actor=result.actor,
            )
        )
    return result


def last_purge(store: Store) -> PurgeResult | None:
    """The most recent purge on record, or None if none has run."""
    purges = schema.purges
    with store.connect() as connection:
        row = connection.execute(
            select(purges).order_by(purges.c.ran_at.desc(), purges.c.purge_id.desc()).limit(1)
        ).first()
    if row is None:
        return None
    m = row._mapping
    return PurgeResult(
        ran_at=_utc(m["ran_at"]),
        expired_before=_utc(m["expired_before"]),
        texts_deleted=int(m["texts_deleted"]),
        actor=m["actor"],
    )


def text_holdings(store: Store) -> TextHoldings:
    texts = schema.report_texts
    with store.connect() as connection:
        held, oldest = connection.execute(
            select(func.count(), func.min(texts.c.expires_at)).select_from(texts)
        ).one()
        by_key = connection.execute(
            select(texts.c.key_id, func.count()).group_by(texts.c.key_id).order_by(texts.c.key_id)
        ).all()
    return TextHoldings(
        held=int(held),
        oldest_expiry=_utc(oldest) if oldest is not None else None,
        by_key={str(key): int(count) for key, count in by_key},
    )


def read_text(store: Store, cipher: TextCipher, decision_id: str) -> str | None:
    """The text kept for ``decision_id``, or None when none is held (never kept, purged, or
    past its expiry and awaiting the next purge). Raises :class:`KeyProblem` when no
    configured key opens it."""
    return read_texts(store, cipher, [decision_id]).get(decision_id)


def read_texts(store: Store, cipher: TextCipher, decision_ids: Iterable[str]) -> dict[str, str]:
    """The texts held for ``decision_ids`` (those without a live text are left out)."""
    wanted = list(dict.fromkeys(decision_ids))
    if not wanted:
        return {}
    texts = schema.report_texts
    now = utc_now()
    found: dict[str, str] = {}
    with store.connect() as connection:
        for start in range(0, len(wanted), ROTATE_BATCH):
            rows = connection.execute(
                select(texts.c.decision_id, texts.c.ciphertext, texts.c.key_id).where(
                    texts.c.decision_id.in_(wanted[start : start + ROTATE_BATCH]),
                    texts.c.expires_at > now,
                )
            ).all()
            for decision_id, ciphertext, key_id in rows:
                found[decision_id] = cipher.open(ciphertext, key_id)
    return found


def rotate_keys(store: Store, cipher: TextCipher, batch: int = ROTATE_BATCH) -> int:
    """Re-encrypt under the primary key every stored text sealed with another key, ``batch``
    texts per transaction; returns how many were re-encrypted. Safe to interrupt and run
    again: a re-encrypted text carries the primary key's id and is not picked up twice, and a
    row changed or purged meanwhile is left alone."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    texts = schema.report_texts
    primary = cipher.primary_key_id
    rotated = 0
    after = ""  # keyset paging on the primary key, so every pass moves forward
    while True:
        with store.connect() as connection:
            rows = connection.execute(
                select(texts.c.decision_id, texts.c.ciphertext, texts.c.key_id)
                .where(texts.c.key_id != primary, texts.c.decision_id > after)
                .order_by(texts.c.decision_id)
                .limit(batch)
            ).all()
            if not rows:
                return rotated
            for decision_id, ciphertext, key_id in rows:
                resealed = cipher.rotate(ciphertext, key_id)
                rotated += connection.execute(
                    update(texts)
                    .where(and_(texts.c.decision_id == decision_id, texts.c.key_id == key_id))
                    .values(ciphertext=resealed, key_id=primary)
                ).rowcount
            after = rows[-1][0]
        log.info("re-encrypted %d stored texts under key %s so far", rotated, primary)


class Purger:
    """Purges expired texts every ``every_seconds`` on a daemon thread, starting at once.

    A store that is down does not stop it: the first failure of a streak is logged, the next
    ones are not, and the return of the store is logged once.
    """

    def __init__(
        self,
        store: Store,
        every_seconds: float = DEFAULT_PURGE_SECONDS,
        actor: str = "server",
    ) -> None:
        if every_seconds <= 0:
            raise ValueError("every_seconds must be positive")
        self.store = store
        self.every_seconds = every_seconds
        self.actor = actor
        self.last: PurgeResult | None = None  # the latest purge that went through
        self.failures = 0  # purges failed in a row (0 while the store answers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-purger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the purge in progress, if any (a purge is one short transaction)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._purge_once()
            self._stop.wait(self.every_seconds)

    def _purge_once(self) -> None:
        try:
            result = purge_expired(self.store, actor=self.actor)
        except StoreError as err:
            if not self.failures:
                log.warning("purging expired report texts failed (will retry): %s", err)
            self.failures += 1
            return
        except Exception:  # a bug must not end retention silently for the server's life
            if not self.failures:
                log.exception("purging expired report texts failed (will retry)")
            self.failures += 1
            return
        if self.failures:
            log.info("purging expired report texts works again")
        self.failures = 0
        self.last = result
        if result.texts_deleted:
            log.info("purged %d expired report texts", result.texts_deleted)
