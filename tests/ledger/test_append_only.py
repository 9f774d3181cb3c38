"""The database itself refuses to change or remove rows of the log (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from core.settings import Settings
from ledger.instance import init_instance
from ledger.models import LEDGER_TABLES
from tests.conftest import PG_URL, PgSchema
from web.context import AppContext


@pytest.fixture
def filled(instance: AppContext) -> AppContext:
    # > 256 entries, so a level-8 tree node exists too.
    instance.ledger.sequencer.append_many(
        [("note", "system", {"text": f"n{i}"}) for i in range(300)]
    )
    instance.ledger.append("note", {"text": "last"}, "system")
    return instance


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_update_is_refused(filled: AppContext, table: str) -> None:
    engine = filled.engine
    before = _count(engine, table)
    assert before > 0
    column = {
        "ledger_entries": "actor",
        "ledger_nodes": "level",
        "ledger_checkpoints": "key_id",
        "ledger_timestamps": "tsa",
    }[table]
    value = "'x'" if column != "level" else "99"
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET {column} = {value}"))
    with engine.connect() as conn:
        changed = conn.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = {value}"))
        assert changed.scalar() == 0


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_delete_is_refused(filled: AppContext, table: str) -> None:
    engine = filled.engine
    before = _count(engine, table)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {table}"))
    assert _count(engine, table) == before


@pytest.mark.skipif(
    not PG_URL, reason="TRUNCATE exists only on PostgreSQL; set TIEZHENG_TEST_DATABASE_URL"
)
def test_truncate_is_refused_on_postgresql(tmp_path: Path, builtin_tsa_template: Path) -> None:
    schema = PgSchema()
    settings = Settings(home=tmp_path / "pg", database_url=schema.url, checkpoint_interval=0.0)
    shutil.copytree(builtin_tsa_template, settings.tsa_dir)
    init_instance(settings)
    ctx = AppContext(settings)
    try:
        ctx.ledger.append("note", {"text": "x"}, "system")
        _assert_truncate_refused(ctx.engine)
    finally:
        ctx.close()
        schema.drop()


def _assert_truncate_refused(engine: Engine) -> None:
    before = _count(engine, "ledger_entries")
    for table in LEDGER_TABLES:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert _count(engine, "ledger_entries") == before


def test_inserting_is_still_allowed(filled: AppContext) -> None:
    size = filled.ledger.size()
    filled.ledger.append_durable("note", {"text": "more"}, "system")
    assert filled.ledger.size() == size + 1
