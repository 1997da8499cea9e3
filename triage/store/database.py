"""Open a decision record by URL, bring its schema up to date, and write and read rows.

SQLite (the embedded default: one file, WAL mode) or PostgreSQL (``postgresql+psycopg://``).
Every write is idempotent on its primary key, so that replaying a spool after a crash or an
outage writes each row exactly once.

Text is stored with U+0000 replaced by U+FFFD, on every backend: PostgreSQL cannot hold U+0000
in text, and a record that refused a row for one character would leave an answered decision
off the record (or a spool line retried for ever). Look-ups by id apply the same mapping
(:func:`storable_text`), so an id sent with U+0000 finds the row stored for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, NoSuchModuleError, SQLAlchemyError

from triage.store import schema
from triage.store.errors import StoreError, UnstorableValue
from triage.store.records import Decision, DecisionView, Feedback, ShadowDecision

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_DATA_DIR = Path("data")
DEFAULT_STORE_FILE = "triage.db"
CONNECT_SECONDS = 5  # a store that does not answer is "down", not a hung server
SQLITE_BUSY_MS = 5_000


def default_url(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    return f"sqlite:///{data_dir / DEFAULT_STORE_FILE}"


# The journal's bulk path (Store._bulk_insert_decisions): the columns of schema.decisions and
# schema.report_texts in order, and SQLAlchemy's text form of a time on SQLite.
_BULK_DECISIONS = (
    "INSERT INTO decisions (decision_id, report_id, received_at, model_version, source, label, "
    "confidence, scores, needs_review, reasons, caller, latency_ms, margin) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO NOTHING"
)
_BULK_TEXTS = (
    "INSERT INTO report_texts (decision_id, ciphertext, key_id, stored_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO NOTHING"
)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def storable_text(value: str) -> str:
    """``value`` as the record stores it: U+0000 (which PostgreSQL cannot hold in text) becomes
    U+FFFD, on every backend, so that both keep the same rows."""
    return value.replace("\x00", "\ufffd")


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable store URL)"


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite files get WAL mode and a busy timeout, and their folder is
    created; PostgreSQL connections time out instead of hanging."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            "the store URL is not a database URL: expected e.g. sqlite:///data/triage.db or "
            "postgresql+psycopg://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                _make_folder(Path(database).parent)
            engine = create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, pool_pre_ping=True
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if backend == "postgresql":
            return create_engine(
                parsed,
                connect_args={"connect_timeout": CONNECT_SECONDS},
                pool_pre_ping=True,
                pool_size=4,
                max_overflow=4,
            )
    except (NoSuchModuleError, ImportError) as err:
        raise StoreError(f"cannot open {describe(url)}: {err}") from None
    raise StoreError(f"unsupported store {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where a folder belongs, no permission, a read-only disk
        raise StoreError(
            f"cannot create the folder {folder} for the SQLite store: {err.strerror or err}"
        ) from None


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def _migration_engine(url: str) -> Engine:
    """An SQLite engine whose transactions are SQLite's own (an explicit BEGIN, DDL included),
    so that a migration is all or nothing. Python's sqlite3 module only begins a transaction
    before a data change and lets DDL run outside one; SQLAlchemy documents this workaround
    for pysqlite: turn the module's handling off and emit BEGIN when SQLAlchemy begins."""
    engine = make_engine(url)

    def no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    event.listen(engine, "connect", no_driver_transactions)
    event.listen(engine, "begin", begin)
    return engine


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: an empty database, no schema yet
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


class Store:
    """One decision record. Thread-safe: each method takes a pooled connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self, engine: Engine | None = None) -> Iterator[Connection]:
        try:
            with (engine or self.engine).begin() as connection:
                yield connection
        except DataError as err:  # the store is up; this value is one it cannot take
            cause = getattr(err, "orig", None) or err
            raise UnstorableValue(
                f"{describe(self.url)}: {type(cause).__name__}: {_first_line(cause)}"
            ) from err
        except SQLAlchemyError as err:
            cause = getattr(err, "orig", None) or err
            raise StoreError(
                f"{describe(self.url)}: {type(cause).__name__}: {_first_line(cause)}"
            ) from err

    # -- schema -------------------------------------------------------------------------------

    def schema_state(self) -> SchemaState:
        with self._transaction() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return SchemaState(current, head_revision())

    def migrate(self, revision: str = "head") -> SchemaState:
        """Upgrade the schema in place to ``revision`` (an empty database gets every table), all
        steps in one transaction: a step that fails leaves the schema as it was. A database
        with tables but no schema revision is someone else's, and is refused."""
        engine = _migration_engine(self.url) if self.dialect == "sqlite" else self.engine
        try:
            with self._transaction(engine) as connection:
                if MigrationContext.configure(connection).get_current_revision() is None:
                    self._refuse_foreign_tables(connection)
                command.upgrade(_alembic_config(connection), revision)
        except CommandError as err:  # an unknown revision, asked for or found in the store
            raise StoreError(f"cannot migrate {describe(self.url)} to {revision}: {err}") from None
        finally:
            if engine is not self.engine:
                engine.dispose()
        return self.schema_state()

    def _refuse_foreign_tables(self, connection: Connection) -> None:
        tables = sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"{describe(self.url)}: this database holds tables that are not a triage "
                f"decision record ({shown}) and no schema revision: give the record a database "
                "of its own"
            )

    def ensure_schema(self) -> None:
        """Create the schema in an empty store; refuse a store at an older or unknown
        revision (upgrading a shared store is an operator's decision: ``triage store migrate``)."""
        state = self.schema_state()
        if state.current is None:
            log.info("creating the decision record schema in %s", describe(self.url))
            self.migrate()
        elif not state.up_to_date:
            raise StoreError(
                f"{describe(self.url)} is at schema revision {state.current}, this triage "
                f"needs {state.head}: run `triage store migrate --store URL`"
            )

    # -- writes (idempotent) ------------------------------------------------------------------

    def insert_decisions(self, decisions: Sequence[Decision], count: bool = True) -> int:
        """Insert decisions (and their sealed texts) that are not there yet, in one transaction.
        Returns how many were new; with ``count=False`` (the journal's bulk path) returns 0 and
        hands the rows to the driver's executemany as plain tuples: no RETURNING, none of
        SQLAlchemy's per-row parameter processing (several times cheaper per row, and it runs
        on the serving process's interpreter)."""
        if not decisions:
            return 0
        if not count:
            self._bulk_insert_decisions(decisions)
            return 0
        rows = [_decision_row(d) for d in decisions]
        texts = [_text_row(d) for d in decisions if d.text is not None]
        with self._transaction() as connection:
            new = self._insert_new(connection, schema.decisions, rows, ["decision_id"], count)
            if texts:
                self._insert_new(connection, schema.report_texts, texts, ["decision_id"], False)
        return new

    def _bulk_insert_decisions(self, decisions: Sequence[Decision]) -> None:
        """The rows :func:`_decision_row` and :func:`_text_row` make, as the columns' own types
        would bind them (SQLite: times as SQLAlchemy's text form, JSON as text, booleans as
        integers), straight to the driver; equal rows either way (a test reads both back)."""
        sqlite_form = self.dialect == "sqlite"

        def when(value: datetime) -> Any:
            utc = value.astimezone(UTC)
            return utc.strftime(_SQLITE_TIME) if sqlite_form else utc

        decision_rows = [
            (
                d.decision_id,
                storable_text(d.report_id),
                when(d.received_at),
                storable_text(d.model_version),
                storable_text(d.source),
                storable_text(d.label),
                d.confidence,
                json.dumps({storable_text(str(k)): v for k, v in d.scores.items()}),
                int(d.needs_review) if sqlite_form else d.needs_review,
                storable_text(",".join(d.reasons)),
                storable_text(d.caller),
                d.latency_ms,
                d.margin,
            )
            for d in decisions
        ]
        text_rows = [
            (
                d.decision_id,
                d.text.ciphertext,
                storable_text(d.text.key_id),
                when(d.received_at),
                when(d.text.expires_at),
            )
            for d in decisions
            if d.text is not None
        ]
        mark = "?" if sqlite_form else "%s"
        with self._transaction() as connection:
            connection.exec_driver_sql(_BULK_DECISIONS.replace("?", mark), decision_rows)
            if text_rows:
                connection.exec_driver_sql(_BULK_TEXTS.replace("?", mark), text_rows)

    def insert_shadows(self, shadows: Sequence[ShadowDecision], count: bool = True) -> int:
        if not shadows:
            return 0
        rows = [_shadow_row(s) for s in shadows]
        with self._transaction() as connection:
            return self._insert_new(
                connection, schema.shadow_decisions, rows, ["decision_id", "model_version"], count
            )

    def insert_feedback(
        self, rows: Sequence[Feedback], connection: Connection | None = None
    ) -> int:
        """Insert the feedback rows not there yet; returns how many were new. With
        ``connection``, in that connection's transaction (the caller's read-then-write)."""
        if not rows:
            return 0
        values = [_feedback_row(f) for f in rows]
        if connection is not None:
            return self._insert_new(connection, schema.feedback, values, ["feedback_id"])
        with self._transaction() as connection:
            return self._insert_new(connection, schema.feedback, values, ["feedback_id"])

    def _insert_new(
        self,
        connection: Connection,
        table: Any,
        rows: list[dict[str, Any]],
        keys: list[str],
        count: bool = True,
    ) -> int:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=keys)
        if not count:
            connection.execute(statement, rows)  # a plain executemany (psycopg: pipelined)
            return 0
        returning = statement.returning(table.c[keys[0]])  # only the rows inserted come back
        return len(connection.execute(returning, rows).all())

    # -- reads --------------------------------------------------------------------------------

    def decision(self, decision_id: str) -> DecisionView | None:
        with self._transaction() as connection:
            row = connection.execute(
                select(schema.decisions).where(
                    schema.decisions.c.decision_id == storable_text(decision_id)
                )
            ).one_or_none()
            if row is None:
                return None
            return _view(connection, row)

    def decisions_for_report(self, report_id: str, limit: int = 100) -> list[DecisionView]:
        """The decisions recorded for ``report_id``, newest first."""
        with self._transaction() as connection:
            rows = connection.execute(
                select(schema.decisions)
                .where(schema.decisions.c.report_id == storable_text(report_id))
                .order_by(schema.decisions.c.received_at.desc())
                .limit(limit)
            ).all()
            return [_view(connection, row) for row in rows]

    def count(self, table: str) -> int:
        from sqlalchemy import func

        with self._transaction() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(schema.metadata.tables[table])
                ).scalar_one()
            )

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in a transaction, for the modules that read or write beyond the
        methods here (feedback, retention, monitoring); errors become :class:`StoreError`."""
        with self._transaction() as connection:
            yield connection


def open_store(url: str, create: bool = True) -> Store:
    """Open the record at ``url`` and check its schema (creating it in an empty store when
    ``create``); raises :class:`StoreError` with a message naming the store, never a password."""
    store = Store(url)
    try:
        if create:
            store.ensure_schema()
        else:
            store.schema_state()
    except BaseException:
        store.close()
        raise
    return store


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _storable_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every text (and every key of a JSON object) as :func:`storable_text`."""
    return {name: _storable_value(value) for name, value in row.items()}


def _storable_value(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): v for k, v in value.items()}
    return value


def _decision_row(d: Decision) -> dict[str, Any]:
    return _storable_row(
        {
            "decision_id": d.decision_id,
            "report_id": d.report_id,
            "received_at": d.received_at,
            "model_version": d.model_version,
            "source": d.source,
            "label": d.label,
            "confidence": d.confidence,
            "scores": dict(d.scores),
            "needs_review": d.needs_review,
            "reasons": ",".join(d.reasons),
            "caller": d.caller,
            "latency_ms": d.latency_ms,
            "margin": d.margin,
        }
    )


def _text_row(d: Decision) -> dict[str, Any]:
    assert d.text is not None
    return _storable_row(
        {
            "decision_id": d.decision_id,
            "ciphertext": d.text.ciphertext,
            "key_id": d.text.key_id,
            "stored_at": d.received_at,
            "expires_at": d.text.expires_at,
        }
    )


def _shadow_row(s: ShadowDecision) -> dict[str, Any]:
    return _storable_row(
        {
            "decision_id": s.decision_id,
            "model_version": s.model_version,
            "scored_at": s.scored_at,
            "label": s.label,
            "confidence": s.confidence,
            "scores": dict(s.scores),
            "needs_review": s.needs_review,
            "reasons": ",".join(s.reasons),
            "latency_ms": s.latency_ms,
        }
    )


def _feedback_row(f: Feedback) -> dict[str, Any]:
    return _storable_row(
        {
            "feedback_id": f.feedback_id,
            "decision_id": f.decision_id,
            "report_id": f.report_id,
            "old_label": f.old_label,
            "new_label": f.new_label,
            "reviewer": f.reviewer,
            "note": f.note,
            "created_at": f.created_at,
            "source": f.source,
            "recorded_by": f.recorded_by,
        }
    )


def _aware(value: datetime) -> datetime:
    """Every time in the record is UTC (SQLite hands back naive datetimes)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _reasons(value: str) -> tuple[str, ...]:
    return tuple(r for r in value.split(",") if r)


def decision_of(row: Any) -> Decision:
    m = row._mapping
    return Decision(
        decision_id=m["decision_id"],
        report_id=m["report_id"],
        received_at=_aware(m["received_at"]),
        model_version=m["model_version"],
        source=m["source"],
        label=m["label"],
        confidence=float(m["confidence"]),
        scores={str(k): float(v) for k, v in dict(m["scores"]).items()},
        needs_review=bool(m["needs_review"]),
        reasons=_reasons(m["reasons"]),
        caller=m["caller"],
        latency_ms=m["latency_ms"],
    )


def feedback_of(row: Any) -> Feedback:
    m = row._mapping
    return Feedback(
        feedback_id=m["feedback_id"],
        decision_id=m["decision_id"],
        report_id=m["report_id"],
        old_label=m["old_label"],
        new_label=m["new_label"],
        reviewer=m["reviewer"],
        note=m["note"],
        created_at=_aware(m["created_at"]),
        source=m["source"],
        recorded_by=m["recorded_by"],
    )


def shadow_of(row: Any) -> ShadowDecision:
    m = row._mapping
    return ShadowDecision(
        decision_id=m["decision_id"],
        model_version=m["model_version"],
        scored_at=_aware(m["scored_at"]),
        label=m["label"],
        confidence=float(m["confidence"]),
        scores={str(k): float(v) for k, v in dict(m["scores"]).items()},
        needs_review=bool(m["needs_review"]),
        reasons=_reasons(m["reasons"]),
        latency_ms=m["latency_ms"],
    )


def _view(connection: Connection, row: Any) -> DecisionView:
    decision_id = row._mapping["decision_id"]
    history = connection.execute(
        select(schema.feedback)
        .where(schema.feedback.c.decision_id == decision_id)
        .order_by(schema.feedback.c.created_at, schema.feedback.c.feedback_id)
    ).all()
    shadows = connection.execute(
        select(schema.shadow_decisions).where(schema.shadow_decisions.c.decision_id == decision_id)
    ).all()
    has_text = (
        connection.execute(
            select(schema.report_texts.c.decision_id).where(
                schema.report_texts.c.decision_id == decision_id
            )
        ).first()
        is not None
    )
    return DecisionView(
        decision=decision_of(row),
        feedback=tuple(feedback_of(f) for f in history),
        shadows=tuple(shadow_of(s) for s in shadows),
        has_text=has_text,
    )


def require_existing_file(url: str) -> None:
    """Refuse an SQLite URL whose file does not exist (opening it would create an empty one);
    other URLs pass (their server says whether the database exists)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Store() words the error
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).is_file():
            raise StoreError(f"no decision record at {describe(url)}: the file does not exist")


def open_existing(url: str) -> Store:
    """The record at ``url``, which must already exist at this triage's schema: commands that
    read or correct a record never create or upgrade one (a mistyped SQLite path would otherwise
    leave an empty database behind and report "nothing" instead of the mistake). Raises
    :class:`StoreError` saying what to do otherwise."""
    require_existing_file(url)
    store = open_store(url, create=False)
    try:
        state = store.schema_state()
        if state.current is None:
            raise StoreError(
                f"{describe(url)} holds no decision record: check --store, or create the schema "
                "with `triage store migrate`"
            )
        if not state.up_to_date:
            raise StoreError(
                f"{describe(url)} is at schema revision {state.current}, this triage needs "
                f"{state.head}: upgrade an older store with `triage store migrate --store URL` "
                "(a newer one needs a newer triage)"
            )
    except BaseException:
        store.close()
        raise
    return store
