"""Retention: kept report texts are deleted once they expire, by `triage store purge` and by the
server's purger thread, every purge is on record, and the decisions themselves stay."""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from triage.cli import main
from triage.core.model import Prediction
from triage.store import schema
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import Store, head_revision
from triage.store.records import Decision
from triage.store.retention import Purger, last_purge, purge_expired, read_text, text_holdings

PREDICTION = Prediction(
    label="fraud",
    confidence=0.55,
    scores=(("fraud", 0.55), ("general", 0.45)),
    needs_review=True,
    top_terms=(),
    model_version="20261201-000000",
    review_reasons=("BELOW_THRESHOLD",),
)
CIPHER = TextCipher.from_keys([generate_key()])
QUIET = ["--log-level", "warning"]


def record(store: Store, expiries: list[datetime | None]) -> list[Decision]:
    """One decision per expiry; those with an expiry keep a text until then."""
    decisions = [
        Decision.of(
            PREDICTION,
            report_id=f"r{i}",
            source="Classify",
            text=CIPHER.seal(f"report text {i}", expiry) if expiry else None,
        )
        for i, expiry in enumerate(expiries)
    ]
    store.insert_decisions(decisions)
    return decisions


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_purge_deletes_expired_texts_only_and_is_recorded(store: Store) -> None:
    now = datetime.now(UTC)
    decisions = record(
        store,
        [now - timedelta(days=2), now - timedelta(seconds=1), now, now + timedelta(days=1), None],
    )
    assert read_text(store, CIPHER, decisions[3].decision_id) == "report text 3"
    result = purge_expired(store, now=now, actor="test")
    assert result.texts_deleted == 3  # expired before now, and at now exactly
    assert result.expired_before == now and result.actor == "test"
    assert store.count("report_texts") == 1
    assert read_text(store, CIPHER, decisions[0].decision_id) is None
    assert read_text(store, CIPHER, decisions[3].decision_id) == "report text 3"
    assert read_text(store, CIPHER, decisions[4].decision_id) is None  # never kept
    # The decisions themselves stay on record.
    assert store.count("decisions") == 5
    view = store.decision(decisions[0].decision_id)
    assert view is not None and not view.has_text and view.decision.label == "fraud"

    # A purge with nothing due is on record too.
    again = purge_expired(store, now=now, actor="test again")
    assert again.texts_deleted == 0
    assert store.count("purges") == 2
    latest = last_purge(store)
    assert latest is not None
    assert (latest.actor, latest.texts_deleted) == ("test again", 0)
    assert latest.expired_before == now


def test_a_text_past_its_expiry_is_not_read_even_before_the_purge(store: Store) -> None:
    now = datetime.now(UTC)
    decisions = record(store, [now - timedelta(minutes=1), now + timedelta(minutes=10)])
    assert read_text(store, CIPHER, decisions[0].decision_id) is None
    assert read_text(store, CIPHER, decisions[1].decision_id) == "report text 1"
    holdings = text_holdings(store)
    assert holdings.held == 2
    assert holdings.oldest_expiry is not None
    assert abs(holdings.oldest_expiry - (now - timedelta(minutes=1))) < timedelta(seconds=1)


def test_the_purger_thread_purges_on_its_own(store: Store) -> None:
    now = datetime.now(UTC)
    record(store, [now - timedelta(hours=1), now - timedelta(hours=2), now + timedelta(days=1)])
    purger = Purger(store, every_seconds=0.05)
    purger.start()
    try:
        wait_for(lambda: store.count("purges") >= 2, "two purges by the thread")
    finally:
        purger.stop()
    assert store.count("report_texts") == 1
    assert store.count("decisions") == 3
    with store.connect() as connection:
        rows = connection.execute(schema.purges.select().order_by(schema.purges.c.purge_id)).all()
    assert [(r.actor, r.texts_deleted) for r in rows[:2]] == [("server", 2), ("server", 0)]


def test_the_purger_survives_a_failing_store_and_logs_once_per_streak(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    record(store, [now - timedelta(hours=1)])
    # Without the purges table a purge cannot be recorded, so it must not delete either.
    with store.connect() as connection:
        connection.execute(text("DROP TABLE purges"))
    caplog.set_level(logging.INFO, logger="triage.store.retention")
    purger = Purger(store, every_seconds=0.02)
    purger.start()
    try:
        wait_for(lambda: purger.failures >= 3, "three failed purges")
        assert store.count("report_texts") == 1  # the deletes went back with the failure
        schema.purges.create(store.engine)
        wait_for(lambda: purger.last is not None, "a purge once the table is back")
    finally:
        purger.stop()
    assert store.count("report_texts") == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "triage.store.retention"]
    assert sum("failed" in m for m in messages) == 1
    assert sum("works again" in m for m in messages) == 1
    assert any("purged 1 expired" in m for m in messages)
    assert not any("report text 0" in m for m in messages)


def test_purge_and_status_from_the_command_line(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    record(store, [now - timedelta(days=1), now - timedelta(days=3), now + timedelta(days=5)])
    url = store.url
    assert main([*QUIET, "store", "purge", "--store", url], env={}) == 0
    assert "purged 2 report texts" in capsys.readouterr().out
    assert main([*QUIET, "store", "status"], env={"TRIAGE_STORE": url}) == 0
    status = capsys.readouterr().out
    assert f"schema       {head_revision()} (head)" in status
    assert "rows         decisions          3" in status
    assert "rows         report_texts       1" in status
    assert "rows         purges             1" in status
    assert "texts held   1, oldest expiry " in status
    assert f"key {CIPHER.primary_key_id}: 1" in status
    assert "by triage store purge: 2 deleted" in status
    assert "report text" not in status


def test_purge_refuses_a_store_without_a_record(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'triage.db'}"
    assert main([*QUIET, "store", "purge", "--store", url], env={}) == 1
    assert "no decision record" in capsys.readouterr().err


def test_status_of_a_mistyped_sqlite_path_is_an_error_and_creates_nothing(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "triage.db"
    code = main([*QUIET, "store", "status", "--store", f"sqlite:///{missing}"], env={})
    assert code == 1
    assert "the file does not exist" in capsys.readouterr().err
    assert not missing.exists() and not missing.parent.exists()
