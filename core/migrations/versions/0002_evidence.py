"""Evidence index and custody index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.ddl import make_append_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_items",
        sa.Column("entry_index", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sm3", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("case_ref", sa.String(64), nullable=True),
        sa.Column("purpose", sa.Text, nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("original_name", sa.String(1024), nullable=True),
        sa.Column("uploader", sa.String(64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("media", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("entry_index", name="pk_evidence_items"),
    )
    op.create_index("ix_evidence_items_sha256", "evidence_items", ["sha256"])
    op.create_index("ix_evidence_items_case_ref", "evidence_items", ["case_ref"])
    op.create_table(
        "evidence_custody",
        sa.Column("entry_index", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("request", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("entry_index", name="pk_evidence_custody"),
    )
    op.create_index("ix_evidence_custody_sha256", "evidence_custody", ["sha256"])
    # The custody index mirrors log entries and is never edited.
    make_append_only(op.get_bind(), "evidence_custody")


def downgrade() -> None:
    op.drop_table("evidence_custody")
    op.drop_table("evidence_items")
