"""The tables of the decision record, as SQLAlchemy Core metadata (the latest schema).

Alembic revisions in ``migrations/versions`` create and change these tables; this module is
what the code reads and writes, and a test checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    true,
)

# Constraint names fixed by convention, so that migrations can name what they change on every
# backend (SQLite's batch mode needs names to drop or alter a constraint).
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 36  # a decision or feedback id: a UUID in its 36-character text form
REPORT_ID = 256  # the service's limit on a report_id
LABEL = 64
VERSION = 64
PERSON = 256  # a caller or reviewer: a token name or a certificate subject

# One row per scored report. Never the text: that is in report_texts, encrypted, and only for
# decisions that needed review while a review queue was on.
decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(ID), primary_key=True),
    Column("report_id", String(REPORT_ID), nullable=False, default=""),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("model_version", String(VERSION), nullable=False),
    Column("source", String(32), nullable=False),  # Classify, ClassifyBatch, ..., archive
    Column("label", String(LABEL), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("scores", JSON, nullable=False),  # {label: probability}
    Column("needs_review", Boolean, nullable=False),
    Column("reasons", String(128), nullable=False, default=""),  # comma-separated, stable names
    Column("caller", String(PERSON), nullable=False, default=""),
    Column("latency_ms", Float, nullable=True),
    # Top score minus the second (Decision.margin); added by the third revision, which filled it
    # for older rows. The review queue reads it smallest first through the index below.
    Column("margin", Float, nullable=True),
    Index(None, "report_id"),
    Index(None, "received_at"),
    Index(None, "model_version", "received_at"),
)
# The review queue, added by the third revision: only the decisions that need review, in queue
# order, holding every column the queue filters and counts on, so that ordering, filtering and
# counting read this index and not the table. Partial, so that confident decisions (most of
# them) cost nothing more to record.
Index(
    "ix_decisions_review_queue",
    decisions.c.margin,
    decisions.c.decision_id,
    decisions.c.received_at,
    decisions.c.model_version,
    decisions.c.label,
    decisions.c.reasons,
    sqlite_where=decisions.c.needs_review == true(),
    postgresql_where=decisions.c.needs_review == true(),
)

# The text of a decision that needed review, encrypted (Fernet); deleted once it expires.
report_texts = Table(
    "report_texts",
    metadata,
    Column(
        "decision_id",
        String(ID),
        ForeignKey("decisions.decision_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("key_id", String(16), nullable=False),  # which key encrypted it (for rotation)
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "expires_at"),
)

# A reviewer's correction (or confirmation) of a decision. Rows are never changed: the latest
# row of a decision wins, and the history says who changed what, when.
feedback = Table(
    "feedback",
    metadata,
    Column("feedback_id", String(ID), primary_key=True),
    Column(
        "decision_id",
        String(ID),
        ForeignKey("decisions.decision_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("report_id", String(REPORT_ID), nullable=False, default=""),
    Column("old_label", String(LABEL), nullable=False),
    Column("new_label", String(LABEL), nullable=False),
    Column("reviewer", String(PERSON), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False),  # rpc, import, review
    # Who put the row on record: the authenticated caller (token name, certificate subject),
    # which may differ from the reviewer it names (a review desk calling for its users).
    Column("recorded_by", String(PERSON), nullable=False, default=""),
    Index(None, "decision_id", "created_at"),
    Index(None, "created_at"),
)

# Every purge of expired texts, so that retention can be shown to have run.
purges = Table(
    "purges",
    metadata,
    Column("purge_id", Integer, primary_key=True, autoincrement=True),
    Column("ran_at", DateTime(timezone=True), nullable=False),
    Column("expired_before", DateTime(timezone=True), nullable=False),
    Column("texts_deleted", Integer, nullable=False),
    Column("actor", String(PERSON), nullable=False),
)

# A candidate model's answer for a decision the live model made (shadow scoring). Added by the
# second revision.
shadow_decisions = Table(
    "shadow_decisions",
    metadata,
    Column(
        "decision_id",
        String(ID),
        ForeignKey("decisions.decision_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("model_version", String(VERSION), primary_key=True),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Column("label", String(LABEL), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("needs_review", Boolean, nullable=False),
    Column("reasons", String(128), nullable=False, default=""),
    Column("latency_ms", Float, nullable=True),
    Index(None, "model_version", "scored_at"),
)
