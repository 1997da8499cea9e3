"""Open a decision record that must already exist, for reading only.

Monitoring never creates or upgrades a store: a mistyped SQLite path would otherwise leave an
empty database behind and report "no decisions" instead of the mistake.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from triage.store.database import Store, describe, open_store
from triage.store.errors import StoreError


def open_existing(url: str) -> Store:
    """The store at ``url``, checked to exist and to be at this triage's schema; raises
    :class:`StoreError` saying what to do otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None  # open_store words the error
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).is_file():
            raise StoreError(f"no decision record at {describe(url)}: the file does not exist")
    store = open_store(url, create=False)
    try:
        state = store.schema_state()
        if state.current is None:
            raise StoreError(
                f"{describe(url)} holds no decision record (no schema): nothing to show"
            )
        if not state.up_to_date:
            raise StoreError(
                f"{describe(url)} is at schema revision {state.current}, this triage reads "
                f"{state.head}: upgrade an older store with `triage store migrate --store URL` "
                "(a newer one needs a newer triage)"
            )
    except BaseException:
        store.close()
        raise
    return store
