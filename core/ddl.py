"""DDL shared by migrations: insert-only triggers for SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, text

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tiezheng_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def make_append_only(conn: Connection, table: str) -> None:
    """Install triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``table``."""
    if conn.dialect.name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.execute(
                text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                )
            )
    elif conn.dialect.name == "postgresql":
        conn.execute(text(PG_FUNCTION))
        conn.execute(
            text(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION tiezheng_append_only()"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tiezheng_append_only()"
            )
        )
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {conn.dialect.name}")
