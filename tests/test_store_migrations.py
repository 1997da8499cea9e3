"""`triage store migrate`: a record made by the first schema is refused until an operator
upgrades it, and the upgrade keeps every row and ends where the code's schema is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.engine import make_url

from tests.stores import fresh_postgres_database
from triage.cli import main
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import Store, head_revision, open_store
from triage.store.errors import StoreError
from triage.store.retention import read_text
from triage.store.schema import metadata

QUIET = ["--log-level", "warning"]
FIRST = "0001"
CIPHER = TextCipher.from_keys([generate_key()])
NOW = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


def first_schema_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows as the first schema holds them: two decisions, two corrections of one of them,
    the sealed text of the other, and a purge."""
    sealed = CIPHER.seal("kept for review", NOW + timedelta(days=3650))
    decision = {
        "report_id": "r1",
        "received_at": NOW,
        "model_version": "20261101-000000",
        "source": "Classify",
        "label": "fraud",
        "confidence": 0.62,
        "scores": {"fraud": 0.62, "general": 0.38},
        "needs_review": True,
        "reasons": "BELOW_THRESHOLD",
        "caller": "desk-7",
        "latency_ms": 3.5,
    }
    feedback = {
        "decision_id": "d-1",
        "report_id": "r1",
        "reviewer": "sgt.patel",
        "note": "",
        "source": "rpc",
        "recorded_by": "review-desk",
    }
    return {
        "decisions": [
            {**decision, "decision_id": "d-1"},
            {**decision, "decision_id": "d-2", "report_id": "r2", "latency_ms": None},
        ],
        "feedback": [
            {**feedback, "feedback_id": "f-1", "old_label": "fraud", "new_label": "general",
             "created_at": NOW + timedelta(hours=1)},
            {**feedback, "feedback_id": "f-2", "old_label": "general", "new_label": "theft",
             "created_at": NOW + timedelta(hours=2), "note": "second look"},
        ],
        "report_texts": [
            {"decision_id": "d-2", "ciphertext": sealed.ciphertext, "key_id": sealed.key_id,
             "stored_at": NOW, "expires_at": sealed.expires_at},
        ],
        "purges": [
            {"ran_at": NOW, "expired_before": NOW, "texts_deleted": 0, "actor": "server"},
        ],
    }  # fmt: skip


def write_at_first_schema(store: Store) -> None:
    """Insert through the tables as the first revision made them (reflected from the database,
    not today's metadata), so the test keeps meaning the first schema as the code moves on."""
    with store.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        for name, rows in first_schema_rows().items():
            table = tables.tables[name]
            connection.execute(insert(table), [_only_columns_of(table, row) for row in rows])


def _only_columns_of(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k in table.c}


def every_row(store: Store, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables ``names`` as the database has them (reflected, so that this
    reads a first-schema store too), in primary-key order."""
    found = {}
    with store.connect() as connection:
        tables = MetaData()
        tables.reflect(connection, only=names)
        for name in names:
            table = tables.tables[name]
            order = list(table.primary_key.columns)
            rows = connection.execute(select(table).order_by(*order)).all()
            found[name] = [_comparable(dict(r._mapping)) for r in rows]
    return found


def kept(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``after`` cut to the columns ``before`` had (a later revision may add columns)."""
    columns = set(before[0]) if before else set()
    return [{k: v for k, v in row.items() if k in columns} for row in after]


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    # SQLite hands back naive datetimes (UTC), PostgreSQL aware ones.
    return {
        k: (v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v)
        for k, v in row.items()
    }


def test_a_first_schema_store_is_migrated_in_place_keeping_every_row(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = Store(store_url)
    try:
        assert old.migrate(FIRST).current == FIRST
        write_at_first_schema(old)
        before = every_row(old, list(first_schema_rows()))
    finally:
        old.close()
    assert sum(len(rows) for rows in before.values()) == 6

    with pytest.raises(StoreError, match="run `triage store migrate") as refused:
        open_store(store_url)
    assert FIRST in str(refused.value) and head_revision() in str(refused.value)

    assert main([*QUIET, "store", "migrate", "--store", store_url], env={}) == 0
    assert f"schema revision {FIRST} -> {head_revision()}" in capsys.readouterr().out
    assert main([*QUIET, "store", "migrate"], env={"TRIAGE_STORE": store_url}) == 0
    assert "nothing to do" in capsys.readouterr().out

    store = open_store(store_url)
    try:
        assert store.schema_state().up_to_date
        with store.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        after = every_row(store, list(first_schema_rows()))
        for name, rows in before.items():
            assert kept(rows, after[name]) == rows, name
        corrected = store.decision("d-1")
        assert corrected is not None
        assert [f.new_label for f in corrected.feedback] == ["general", "theft"]
        assert corrected.current_label == "theft"
        with_text = store.decision("d-2")
        assert with_text is not None and with_text.has_text
        assert read_text(store, CIPHER, "d-2") == "kept for review"
    finally:
        store.close()


def test_status_shows_a_store_behind_head(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = Store(store_url)
    try:
        old.migrate(FIRST)
        write_at_first_schema(old)
    finally:
        old.close()
    assert main([*QUIET, "store", "status", "--store", store_url], env={}) == 0
    status = capsys.readouterr().out
    assert f"schema       {FIRST}, head is {head_revision()}: run `triage store migrate`" in status
    assert "rows         decisions          2" in status
    assert "rows         shadow_decisions   - (not in this revision)" in status
    assert "texts held   1" in status


def test_an_unknown_revision_is_a_message_not_a_traceback(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*QUIET, "store", "migrate", "--store", store_url, "--revision", "9999"]
    assert main(argv, env={}) == 1
    err = capsys.readouterr().err
    assert "cannot migrate" in err and "9999" in err
    assert "Traceback" not in err


def test_a_password_in_the_store_url_is_never_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on port 1: the command fails, and says which store without the password.
    url = "postgresql+psycopg://triage:hunter2-secret@127.0.0.1:1/record"
    for command in (["migrate"], ["status"], ["purge"]):
        assert main([*QUIET, "store", *command, "--store", url], env={}) == 1
        captured = capsys.readouterr()
        assert "hunter2" not in captured.out + captured.err
        assert "triage:***@127.0.0.1:1/record" in captured.err


def test_commands_that_work_print_the_store_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fresh_postgres_database() as plain:
        url = make_url(plain)
        if url.password is None:  # the test server trusts local connections: any password does
            url = url.set(password="hunter2-secret")
        secret = str(url.password)
        with_password = url.render_as_string(hide_password=False)
        try:
            psycopg.connect(with_password.replace("+psycopg", ""), connect_timeout=3).close()
        except psycopg.OperationalError:
            pytest.skip("the test server checks passwords: give one in TRIAGE_TEST_POSTGRES")
        for command in (["migrate"], ["status"], ["purge"], ["migrate"]):
            assert main([*QUIET, "store", *command, "--store", with_password], env={}) == 0
            captured = capsys.readouterr()
            assert secret not in captured.out + captured.err
            assert ":***@" in captured.out
