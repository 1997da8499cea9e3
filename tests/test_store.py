"""The decision record's schema and idempotent writes, on SQLite and PostgreSQL for real."""

from __future__ import annotations

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
