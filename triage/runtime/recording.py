"""Put every answer on record before it is sent: a decision per scored report (never its text,
unless a review queue keeps the text of reports that need review, sealed), appended to the
journal, whose writer process puts them in the store off the request path (and out of this
process's interpreter); and the reviewer's side: feedback and look-ups."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from triage.core.scoring import Outcome, Report
from triage.runtime.shadow import ShadowScorer
from triage.runtime.supervision import FORK_SERVER_PRELOAD
from triage.store.crypto import TextCipher
from triage.store.database import DEFAULT_DATA_DIR, Store, default_url, open_store
from triage.store.errors import (
    RecordUnavailable,
    StoreError,
    UnknownDecision,
    UnstorableValue,
)
from triage.store.feedback import submit_feedback
from triage.store.journal import DecisionJournal
from triage.store.records import Decision, DecisionView, Feedback, new_id
from triage.store.retention import DEFAULT_RETENTION_DAYS, Purger

LOOKUP_FLUSH_SECONDS = 5.0  # how long a look-up waits for a just-answered decision to land
DEFAULT_SPOOL = DEFAULT_DATA_DIR / "spool"
PURGE_SECONDS = 3600.0
REFUSAL_LOG_SECONDS = 10.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Where and when a call came in, for its decisions' record."""

    source: str  # Classify, ClassifyBatch, ClassifyStream
    caller: str = ""  # a token's name or a certificate's subject; "" for an anonymous caller
    received_at: float = field(default_factory=time.time)  # wall clock, seconds
    started: float = field(default_factory=time.monotonic)  # for the latency


@dataclass(frozen=True)
class ReviewQueue:
    """Keep the text of decisions that need review, sealed with ``cipher``, for ``retention``."""

    cipher: TextCipher
    retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS)


@dataclass(frozen=True)
class RecordConfig:
    """Where and how a server records its decisions."""

    store_url: str = field(default_factory=default_url)
    spool_dir: Path = DEFAULT_SPOOL  # the journal: decisions answered, on their way to the store
    review_queue: ReviewQueue | None = None  # None: no report text is kept
    purge_seconds: float = PURGE_SECONDS  # how often expired texts are purged (0: never)
    shadow_model: Path | None = None  # a candidate model to score a share of traffic
    shadow_share: float = 0.1
    quality_seconds: float = 60.0  # how often live-quality gauges are computed (0: never)


class DecisionRecorder:
    """Records decisions through ``journal`` (appended before the answer leaves: nothing
    answered is unrecorded), offers them to a shadow model, and serves feedback and look-ups
    from the journal's store."""

    def __init__(
        self,
        journal: DecisionJournal,
        review_queue: ReviewQueue | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.journal = journal
        self.store: Store = journal.store
        self.review_queue = review_queue
        self.shadow = shadow
        self.purger: Purger | None = None
        self._next_refusal_log = 0.0

    def record(
        self, reports: Sequence[Report], outcomes: Sequence[Outcome], origin: Origin
    ) -> list[Outcome]:
        """Record the scored outcomes (``outcomes[i]`` answers ``reports[i]``); return them
        with their decision ids. Raises RecordUnavailable when the record cannot take them."""
        received = datetime.fromtimestamp(origin.received_at, UTC)
        latency_ms = (time.monotonic() - origin.started) * 1000.0
        decisions: list[Decision] = []
        recorded: list[Outcome] = []
        for report, outcome in zip(reports, outcomes, strict=True):
            prediction = outcome.prediction
            if prediction is None:
                recorded.append(outcome)
                continue
            decision_id = new_id(origin.received_at)
            sealed = None
            if self.review_queue is not None and prediction.needs_review:
                queue = self.review_queue
                sealed = queue.cipher.seal(report.text, received + queue.retention)
            decisions.append(
                Decision.of(
                    prediction,
                    report_id=report.report_id,
                    source=origin.source,
                    caller=origin.caller,
                    received_at=received,
                    latency_ms=latency_ms,
                    decision_id=decision_id,
                    text=sealed,
                )
            )
            recorded.append(replace(outcome, decision_id=decision_id))
        if decisions:
            try:
                self.journal.record(decisions)
            except RecordUnavailable as err:
                self._refusing(err)
                raise RecordUnavailable(
                    "the decision record cannot take this answer (its store is down and this "
                    "server's spool is full); retry later or on another replica"
                ) from None
            if self.shadow is not None:
                for report, outcome in zip(reports, recorded, strict=True):
                    if outcome.decision_id:
                        self.shadow.offer(outcome.decision_id, report.text)
        return recorded

    def _refusing(self, err: RecordUnavailable) -> None:
        """Log why answers are refused, at most every REFUSAL_LOG_SECONDS (callers get a
        message without the store's address)."""
        now = time.monotonic()
        if now >= self._next_refusal_log:
            self._next_refusal_log = now + REFUSAL_LOG_SECONDS
            log.error("refusing calls: %s", err)

    def decision(self, decision_id: str) -> DecisionView:
        with _store_trouble_hidden():
            view = self.store.decision(decision_id)
            if view is None and self.journal.flush(LOOKUP_FLUSH_SECONDS):
                view = self.store.decision(decision_id)  # it may have been on its way
        if view is None:
            raise UnknownDecision(f"no recorded decision has the id {decision_id!r}")
        return view

    def feedback(
        self,
        *,
        label: str,
        reviewer: str,
        recorded_by: str,
        decision_id: str = "",
        report_id: str = "",
        note: str = "",
        feedback_id: str | None = None,
    ) -> Feedback:
        def submit() -> Feedback:
            return submit_feedback(
                self.store,
                label=label,
                reviewer=reviewer or recorded_by,
                decision_id=decision_id,
                report_id=report_id,
                note=note,
                source="rpc",
                feedback_id=feedback_id,
                recorded_by=recorded_by,
            )

        with _store_trouble_hidden():
            try:
                return submit()
            except UnknownDecision:
                if not self.journal.flush(LOOKUP_FLUSH_SECONDS):
                    raise
                return submit()  # the decision may have been on its way to the store

    def close(self) -> None:
        if self.purger is not None:
            self.purger.stop()
        if self.shadow is not None:
            self.shadow.close()
        self.journal.close()
        self.store.close()

    @classmethod
    def open(cls, config: RecordConfig) -> DecisionRecorder:
        """Open the store (creating the schema in an empty one), replay and start the journal,
        start the shadow model and the purger; undo what was started if a step fails."""
        store = open_store(config.store_url)
        started: list[Callable[[], None]] = [store.close]
        try:
            journal = DecisionJournal(store, config.spool_dir, preload=FORK_SERVER_PRELOAD).start()
            started.append(journal.close)
            shadow = None
            if config.shadow_model is not None:
                shadow = ShadowScorer(config.shadow_model, config.shadow_share, journal.record)
                shadow.start()
                started.append(shadow.close)
            purger = None
            if config.review_queue is not None and config.purge_seconds > 0:
                purger = Purger(store, every_seconds=config.purge_seconds, actor="server")
                purger.start()
        except BaseException:
            for undo in reversed(started):
                try:
                    undo()
                except Exception:  # the first failure is the one to report
                    log.exception("cannot undo a step of opening the decision record")
            raise
        recorder = cls(journal, config.review_queue, shadow)
        recorder.purger = purger
        return recorder


@contextmanager
def _store_trouble_hidden() -> Iterator[None]:
    """A store failure is logged in full and reported to the caller without the store's
    address or driver details."""
    try:
        yield
    except UnstorableValue as err:  # the store is up: a value of the request it cannot take
        log.warning("decision record refused a value: %s", err)
        raise UnstorableValue("the decision record cannot store a value of this request") from None
    except StoreError as err:
        log.warning("decision record unavailable: %s", err)
        raise StoreError("the decision record is unavailable; retry later") from None
