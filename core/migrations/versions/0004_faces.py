"""Face enrolment, templates and checks; the job table of the task queue.

Revision ID: 0004f
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004f"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "face_persons",
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("enrolled_at", TZ, nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.Column("withdrawal_index", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("ref", name="pk_face_persons"),
    )
    op.create_table(
        "face_enrolments",
        sa.Column("entry_index", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("consent_index", sa.BigInteger, nullable=False),
        sa.Column("template_hashes", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("time", TZ, nullable=False),
        sa.PrimaryKeyConstraint("entry_index", name="pk_face_enrolments"),
    )
    op.create_index("ix_face_enrolments_person_ref", "face_enrolments", ["person_ref"])
    op.create_table(
        "face_templates",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False),
        sa.Column("enrolment_index", sa.BigInteger, nullable=False),
        sa.Column("template_hash", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_face_templates"),
    )
    op.create_index("ix_face_templates_person_ref", "face_templates", ["person_ref"])
    op.create_table(
        "face_checks",
        sa.Column("entry_index", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("evidence_index", sa.BigInteger, nullable=False),
        sa.Column("job_id", sa.Integer, nullable=True),
        sa.Column("supersedes", sa.BigInteger, nullable=True),
        sa.Column("automatic", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("entry_index", name="pk_face_checks"),
        sa.UniqueConstraint("job_id", name="uq_face_checks_job_id"),
    )
    op.create_index("ix_face_checks_evidence_index", "face_checks", ["evidence_index"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("progress_done", sa.Integer, nullable=False),
        sa.Column("progress_total", sa.Integer, nullable=True),
        sa.Column("result_index", sa.BigInteger, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("log_mark", sa.BigInteger, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("heartbeat_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("not_before", TZ, nullable=True),
        sa.Column("enqueued_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("key", name="uq_jobs_key"),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("face_checks")
    op.drop_table("face_templates")
    op.drop_table("face_enrolments")
    op.drop_table("face_persons")
