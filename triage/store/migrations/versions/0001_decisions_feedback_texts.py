"""The first schema: decisions, feedback, encrypted report texts, purges.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("report_id", sa.String(256), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.String(128), nullable=False),
        sa.Column("caller", sa.String(256), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_report_id", "decisions", ["report_id"])
    op.create_index("ix_decisions_received_at", "decisions", ["received_at"])
    op.create_index(
        "ix_decisions_model_version_received_at", "decisions", ["model_version", "received_at"]
    )
    op.create_table(
        "report_texts",
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.decision_id"],
            name="fk_report_texts_decision_id_decisions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("decision_id", name="pk_report_texts"),
    )
    op.create_index("ix_report_texts_expires_at", "report_texts", ["expires_at"])
    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.String(36), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("report_id", sa.String(256), nullable=False),
        sa.Column("old_label", sa.String(64), nullable=False),
        sa.Column("new_label", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("recorded_by", sa.String(256), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.decision_id"],
            name="fk_feedback_decision_id_decisions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feedback_id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_decision_id_created_at", "feedback", ["decision_id", "created_at"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_table(
        "purges",
        sa.Column("purge_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("texts_deleted", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("purge_id", name="pk_purges"),
    )


def downgrade() -> None:
    op.drop_table("purges")
    op.drop_table("feedback")
    op.drop_table("report_texts")
    op.drop_table("decisions")
