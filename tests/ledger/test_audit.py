"""The full audit finds every kind of tampering and names where it is.

The tables refuse changes, so these tests play an attacker with full database access who
first removes the triggers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ledger.models import LEDGER_TABLES
from tests.conftest import Cli
from web.context import AppContext


def tamper(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        for table in LEDGER_TABLES:
            if engine.dialect.name == "sqlite":
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
            else:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text(sql), params)


@pytest.fixture
def log(instance: AppContext, cli: Cli) -> Cli:
    ledger = instance.ledger
    ledger.sequencer.append_many([("note", "system", {"text": f"n{i}"}) for i in range(300)])
    ledger.checkpoint()
    ledger.sequencer.append_many([("note", "system", {"text": f"m{i}"}) for i in range(20)])
    ledger.append("note", {"text": "last"}, "system")
    assert json.loads(cli("ledger", "verify", "--json").stdout)["ok"]
    return cli


def verify_fails(cli: Cli) -> str:
    res = cli("ledger", "verify", expect=1)
    assert "FAILED" in res.stdout
    return res.stdout


def test_altered_entry_bytes(log: Cli, instance: AppContext) -> None:
    data = instance.ledger.entry(42).replace(b'"n42"', b'"n43"')
    tamper(instance.engine, "UPDATE ledger_entries SET data = :d WHERE idx = 42", d=data)
    assert "entry 42: stored leaf hash does not match" in verify_fails(log)


def test_altered_entry_with_recomputed_leaf_breaks_the_chain(
    log: Cli, instance: AppContext
) -> None:
    from ledger import merkle

    data = instance.ledger.entry(42).replace(b'"n42"', b'"n43"')
    tamper(
        instance.engine,
        "UPDATE ledger_entries SET data = :d, leaf_hash = :h WHERE idx = 42",
        d=data,
        h=merkle.hash_leaf(data),
    )
    assert "entry 43: hash chain broken" in verify_fails(log)


def test_deleted_entry_is_a_gap(log: Cli, instance: AppContext) -> None:
    tamper(instance.engine, "DELETE FROM ledger_entries WHERE idx = 7")
    assert "entry 7: missing" in verify_fails(log)


def test_non_canonical_entry(log: Cli, instance: AppContext) -> None:
    data = instance.ledger.entry(3).replace(b'{"actor"', b'{ "actor"')
    from ledger import merkle

    tamper(
        instance.engine,
        "UPDATE ledger_entries SET data = :d, leaf_hash = :h WHERE idx = 3",
        d=data,
        h=merkle.hash_leaf(data),
    )
    assert "entry 3: entry bytes are not in canonical" in verify_fails(log)


def test_altered_checkpoint_root(log: Cli, instance: AppContext) -> None:
    tamper(
        instance.engine, "UPDATE ledger_checkpoints SET root = :r WHERE size = 300", r=b"\x00" * 32
    )
    assert "checkpoint 300: root does not match" in verify_fails(log)


def test_forged_checkpoint_signature(log: Cli, instance: AppContext) -> None:
    cp = instance.ledger.checkpoint_at(300)
    forged = cp.note[:-10] + (b"A" if cp.note[-10:-9] != b"A" else b"B") + cp.note[-9:]
    tamper(instance.engine, "UPDATE ledger_checkpoints SET note = :n WHERE size = 300", n=forged)
    assert "checkpoint 300: signed note invalid" in verify_fails(log)


def test_altered_tree_node(log: Cli, instance: AppContext) -> None:
    tamper(
        instance.engine,
        "UPDATE ledger_nodes SET hash = :h WHERE level = 8 AND idx = 0",
        h=b"\x11" * 32,
    )
    out = verify_fails(log)
    assert "checkpoint" in out or "tree node 8/0" in out


def test_missing_tree_node(log: Cli, instance: AppContext) -> None:
    tamper(instance.engine, "DELETE FROM ledger_nodes WHERE level = 8 AND idx = 0")
    out = verify_fails(log)
    assert "8/0" in out or "not consistent" in out


def test_altered_timestamp(log: Cli, instance: AppContext) -> None:
    token = instance.ledger.token(300)
    assert token is not None
    bad = bytearray(token.response)
    bad[-20] ^= 0xFF
    tamper(
        instance.engine,
        "UPDATE ledger_timestamps SET response = :r WHERE checkpoint_size = 300",
        r=bytes(bad),
    )
    assert "timestamp of checkpoint 300" in verify_fails(log)


def test_missing_timestamp_is_a_warning_or_an_error_when_required(
    log: Cli, instance: AppContext
) -> None:
    tamper(instance.engine, "DELETE FROM ledger_timestamps WHERE checkpoint_size = 300")
    out = log("ledger", "verify").stdout
    assert "warning: 1 checkpoint(s) without a timestamp: 300" in out and "OK" in out
    res = log("ledger", "verify", "--require-timestamps", expect=1)
    assert "ERROR: 1 checkpoint(s) without a timestamp: 300" in res.stdout
