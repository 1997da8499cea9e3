"""Alembic environment: runs on the connection that :mod:`triage.store.database` opens
(``config.attributes["connection"]``), never on a URL from a configuration file."""

from __future__ import annotations

from alembic import context

from triage.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them; batch mode does that
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
