"""The decision record's schema and idempotent writes, on SQLite and PostgreSQL for real."""

from __future__ import annotations

from dataclasses import replace

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from triage.core.model import Prediction
from triage.store.database import head_revision, open_store
from triage.store.records import Decision
from triage.store.schema import metadata

PREDICTION = Prediction(
    label="fraud",
    confidence=0.9,
    scores=(("fraud", 0.9), ("general", 0.1)),
    needs_review=False,
    top_terms=(),
    model_version="20261201-000000",
)


def test_an_empty_store_gets_the_latest_schema_and_it_matches_the_code(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.schema_state().current == head_revision()
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
    finally:
        store.close()


def test_decisions_are_written_once_however_often_they_are_replayed(store_url: str) -> None:
    store = open_store(store_url)
    try:
        decisions = [
            Decision.of(PREDICTION, report_id=f"r{i}", source="Classify") for i in range(300)
        ]
        assert store.insert_decisions(decisions) == 300
        assert store.insert_decisions(decisions[:100]) == 0
        assert store.insert_decisions(decisions[250:]) == 0
        assert store.count("decisions") == 300
        view = store.decision(decisions[7].decision_id)
        assert view is not None
        assert view.decision == decisions[7]
        assert view.current_label == "fraud"
    finally:
        store.close()


def test_the_journals_bulk_path_writes_the_rows_the_orm_path_writes(store_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from triage.store.records import SealedText

    store = open_store(store_url)
    try:
        sealed = SealedText(b"gAAAA-sealed", "0123456789ab", datetime(2027, 1, 1, tzinfo=UTC))
        made = [
            Decision.of(
                PREDICTION,
                report_id=f"r\x00{i}",  # a NUL: stored as U+FFFD by both paths
                source="Classify",
                caller="desk-1",
                latency_ms=1.5 if i % 2 else None,
                received_at=datetime(2026, 12, 1, 10, 0, i, 123456, tzinfo=UTC)
                + timedelta(hours=i),
                text=sealed if i % 2 else None,
            )
            for i in range(4)
        ]
        store.insert_decisions(made[:2])  # SQLAlchemy's path
        store.insert_decisions(made[2:], count=False)  # the driver's, as the journal writes
        store.insert_decisions(made, count=False)  # replayed: nothing twice
        views = [store.decision(d.decision_id) for d in made]
        assert store.count("decisions") == 4 and store.count("report_texts") == 2
        for view, sent in zip(views, made, strict=True):
            assert view is not None
            assert view.decision == replace(
                sent, report_id=sent.report_id.replace("\x00", "\ufffd"), text=None
            )
            assert view.has_text == (sent.text is not None)
    finally:
        store.close()
