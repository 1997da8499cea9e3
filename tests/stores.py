"""Real decision-record stores for tests: an SQLite file, and a fresh database of its own on the
PostgreSQL server at 127.0.0.1:5432 (TRIAGE_TEST_POSTGRES overrides the server URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

POSTGRES_SERVER = os.environ.get(
    "TRIAGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


def postgres_reachable() -> str | None:
    """None when the test server answers, else why not."""
    try:
        with psycopg.connect(POSTGRES_SERVER, connect_timeout=3, autocommit=True):
            return None
    except psycopg.Error as err:
        return f"{type(err).__name__}: {err}".splitlines()[0]


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards; yields its SQLAlchemy URL.
    In CI (CI=true) an unreachable server fails the test instead of skipping it."""
    problem = postgres_reachable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_SERVER} is required in CI: {problem}")
        pytest.skip(f"no PostgreSQL test server: {problem}")
    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    server = POSTGRES_SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def store_url_for(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'record' / 'triage.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url
