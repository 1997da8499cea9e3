"""The margin between a decision's top two scores, and the review queue's index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 5_000


def upgrade() -> None:
    # Nullable, so that SQLite adds the column in place instead of copying the table.
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("margin", sa.Float(), nullable=True))
    _fill_margins()
    needs_review = sa.column("needs_review", sa.Boolean()) == sa.true()
    op.create_index(
        "ix_decisions_review_queue",
        "decisions",
        ["margin", "decision_id", "received_at", "model_version", "label", "reasons"],
        sqlite_where=needs_review,
        postgresql_where=needs_review,
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_review_queue", table_name="decisions")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("margin")


def _fill_margins() -> None:
    """Every existing row's margin from its scores, a batch at a time in decision-id order."""
    decisions = sa.table(
        "decisions",
        sa.column("decision_id", sa.String()),
        sa.column("scores", sa.JSON()),
        sa.column("margin", sa.Float()),
    )
    connection = op.get_bind()
    after = ""
    while True:
        rows = connection.execute(
            sa.select(decisions.c.decision_id, decisions.c.scores)
            .where(decisions.c.decision_id > after)
            .order_by(decisions.c.decision_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        connection.execute(
            sa.update(decisions)
            .where(decisions.c.decision_id == sa.bindparam("id"))
            .values(margin=sa.bindparam("value")),
            [{"id": row[0], "value": _margin(row[1])} for row in rows],
        )
        after = rows[-1][0]


def _margin(scores: Any) -> float:
    # Frozen here rather than imported, so this revision does what it did when it was written.
    if isinstance(scores, str):
        scores = json.loads(scores)
    values: Iterable[float] = (float(v) for v in dict(scores or {}).values())
    top_two = heapq.nlargest(2, values)
    if not top_two:
        return 0.0
    return top_two[0] - (top_two[1] if len(top_two) == 2 else 0.0)
