"""Cases: properties, units, owners, arrears, cases, events, service attempts, preservations,
imports.

Revision ID: 0003c
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core.ddl import make_append_only

revision = "0003c"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(12, 2)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    ref_table = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{ref_table}")


def upgrade() -> None:
    op.create_table(
        "properties",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_properties"),
        sa.UniqueConstraint("name", name="uq_properties_name"),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("property_id", sa.Integer, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_units"),
        _fk("units", "property_id", "properties.id"),
        sa.UniqueConstraint("property_id", "code", name="uq_units_property_code"),
    )
    op.create_table(
        "owners",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("id_number", sa.String(32), nullable=True),
        sa.Column("service_address", sa.Text, nullable=True),
        sa.Column("address_confirmed_on", sa.Date, nullable=True),
        sa.Column("birth_date", sa.Date, nullable=True),
        sa.Column("age", sa.Integer, nullable=True),
        sa.Column("age_recorded_on", sa.Date, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_owners"),
        sa.UniqueConstraint("ref", name="uq_owners_ref"),
    )
    op.create_table(
        "owner_tags",
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "tag", name="pk_owner_tags"),
        _fk("owner_tags", "owner_id", "owners.id"),
    )
    op.create_table(
        "co_owners",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("id_number", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_co_owners"),
        _fk("co_owners", "owner_id", "owners.id"),
    )
    op.create_index("ix_co_owners_owner_id", "co_owners", ["owner_id"])
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("limitation_mode", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("ref", name="uq_cases_ref"),
        sa.UniqueConstraint("owner_id", "unit_id", name="uq_cases_owner_unit"),
        _fk("cases", "owner_id", "owners.id"),
        _fk("cases", "unit_id", "units.id"),
    )
    op.create_index("ix_cases_unit_id", "cases", ["unit_id"])
    op.create_table(
        "case_assignees",
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("case_id", "user_id", name="pk_case_assignees"),
        _fk("case_assignees", "case_id", "cases.id"),
        _fk("case_assignees", "user_id", "users.id"),
    )
    op.create_table(
        "case_imports",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("imported_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_imports"),
        sa.UniqueConstraint("entry_index", name="uq_case_imports_entry_index"),
    )
    op.create_index("ix_case_imports_sha256", "case_imports", ["sha256"])
    op.create_table(
        "arrears",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("paid_amount", MONEY, nullable=False),
        sa.Column("import_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_arrears"),
        sa.UniqueConstraint("unit_id", "period", name="uq_arrears_unit_period"),
        _fk("arrears", "case_id", "cases.id"),
        _fk("arrears", "unit_id", "units.id"),
        _fk("arrears", "import_id", "case_imports.id"),
    )
    op.create_index("ix_arrears_case_id", "arrears", ["case_id"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("delivered", sa.Boolean, nullable=True),
        sa.Column("periods", sa.JSON, nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("document", sa.String(64), nullable=True),
        sa.Column("served_date", sa.Date, nullable=True),
        sa.Column("performance_due", sa.Date, nullable=True),
        sa.Column("preservation", sa.String(64), nullable=True),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("details_sha256", sa.String(64), nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=False),
        sa.Column("import_id", sa.Integer, nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
        _fk("case_events", "case_id", "cases.id"),
        _fk("case_events", "import_id", "case_imports.id"),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])
    op.create_index("ix_case_events_entry_index", "case_events", ["entry_index"])
    op.create_table(
        "service_attempts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("document", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("address", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_service_attempts"),
        sa.UniqueConstraint("event_id", name="uq_service_attempts_event_id"),
        _fk("service_attempts", "event_id", "case_events.id"),
        _fk("service_attempts", "case_id", "cases.id"),
    )
    op.create_index("ix_service_attempts_case_id", "service_attempts", ["case_id"])
    op.create_table(
        "preservations",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("asset", sa.String(16), nullable=False),
        sa.Column("ruling_date", sa.Date, nullable=True),
        sa.Column("executed_date", sa.Date, nullable=False),
        sa.Column("expires", sa.Date, nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_preservations"),
        sa.UniqueConstraint("case_id", "ref", name="uq_preservations_case_ref"),
        sa.UniqueConstraint("event_id", name="uq_preservations_event_id"),
        _fk("preservations", "case_id", "cases.id"),
        _fk("preservations", "event_id", "case_events.id"),
    )
    # The import index mirrors log entries and is never edited.
    make_append_only(op.get_bind(), "case_imports")


def downgrade() -> None:
    for table in (
        "preservations",
        "service_attempts",
        "case_events",
        "arrears",
        "case_imports",
        "case_assignees",
        "cases",
        "co_owners",
        "owner_tags",
        "owners",
        "units",
        "properties",
    ):
        op.drop_table(table)
