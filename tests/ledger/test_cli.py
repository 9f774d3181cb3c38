"""The ``tiezheng`` CLI for accounts and the ledger, end to end on a real instance."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import Cli, settings_env


def rfc9162_root_from_inclusion(leaf: bytes, index: int, size: int, hashes: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, written out here independently of the project's verifier."""
    fn, sn, r = index, size - 1, leaf
    for p in hashes:
        if sn == 0:
            raise AssertionError("proof too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def openssl_ts_verify(data: Path, tsr: Path, certs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(data),
            "-in",
            str(tsr),
            "-CAfile",
            str(certs / "ca.pem"),
            "-untrusted",
            str(certs / "tsa.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_init_is_idempotent_creates_no_user_and_appends_nothing(cli: Cli) -> None:
    home = cli.settings.home
    key = home / "keys" / "log.key"
    before = key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    out = cli("init").stdout
    assert "kept" in out
    assert key.read_bytes() == before
    assert json.loads(cli("user", "list", "--json").stdout) == []
    assert cli("ledger", "verify", "--json").stdout.count('"entries": 0') == 1
    vkey = cli("ledger", "vkey").stdout.strip()
    assert vkey.startswith(cli.settings.log_origin + "+")
    assert (home / "keys" / "log.vkey").read_text().strip() == vkey


def test_user_commands(cli: Cli) -> None:
    out = cli("user", "add", "alice", "--role", "field").stdout
    assert "password: " in out
    cli("user", "add", "bob", "--role", "legal", "--password-stdin", input="s3cret-pass\n")
    users = json.loads(cli("user", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["active"]) for u in users] == [
        ("alice", "field", True),
        ("bob", "legal", True),
    ]
    token = cli("user", "token", "alice").stdout.strip().splitlines()[-1]
    assert token.startswith("tz_") and len(token) > 30
    cli("user", "disable", "alice")
    assert not json.loads(cli("user", "list", "--json").stdout)[0]["active"]
    bad = cli("user", "add", "carol", "--role", "boss", expect=2)
    assert "unknown role" in bad.stderr
    again = cli("user", "add", "bob", "--role", "legal", "--if-missing")
    assert "already exists" in again.stdout and "password" not in again.stdout


def test_actor_comes_from_by_then_env_then_system(cli: Cli) -> None:
    cli("user", "add", "alice", "--role", "field", "--password-stdin", input="password-1\n")
    cli("user", "add", "zed", "--role", "field", "--password-stdin", input="password-2\n")
    cli("ledger", "append-note", "one", "--by", "alice")
    cli("ledger", "append-note", "two", env={"TIEZHENG_ACTOR": "zed"})
    cli("ledger", "append-note", "three")
    actors = [json.loads(cli("ledger", "entry", str(i)).stdout)["actor"] for i in range(3)]
    assert actors == ["alice", "zed", "system"]
    err = cli("ledger", "append-note", "x", "--by", "mallory", expect=1).stderr
    assert "no user named 'mallory'" in err
    cli("user", "disable", "alice")
    err = cli("ledger", "append-note", "x", "--by", "alice", expect=1).stderr
    assert "disabled" in err
    assert json.loads(cli("ledger", "verify", "--json").stdout)["entries"] == 3


def test_append_checkpoint_prove_by_hand_and_verify_timestamp_with_openssl(
    cli: Cli, tmp_path: Path
) -> None:
    for i in range(7):
        receipt = json.loads(cli("ledger", "append-note", f"note {i}", "--json").stdout)
    assert receipt["index"] == 6 and receipt["timestamp"]["status"] == "granted"
    cp = json.loads(cli("ledger", "checkpoint", "--json").stdout)
    assert cp["size"] == 7
    note = cli("ledger", "show-checkpoint").stdout_bytes
    assert note.decode() == cp["note"]
    origin, size, root_b64 = note.decode().split("\n")[:3]
    root = base64.b64decode(root_b64)
    assert (origin, int(size)) == (cli.settings.log_origin, 7)

    # The proof verifies with the RFC's algorithm, written out in this test.
    for index in range(7):
        proof = json.loads(cli("ledger", "prove", str(index)).stdout)
        entry = cli("ledger", "entry", str(index)).stdout_bytes
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        assert proof["leaf_hash"] == leaf.hex() and proof["tree_size"] == 7
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        assert rfc9162_root_from_inclusion(leaf, index, 7, hashes) == root

    checkpoint_file = tmp_path / "checkpoint"
    checkpoint_file.write_bytes(note)
    tsr = tmp_path / "checkpoint.tsr"
    cli("ledger", "timestamp", "--size", "7", "--out", str(tsr))
    certs = tmp_path / "certs"
    cli("ledger", "tsa-certs", "--out", str(certs))
    res = openssl_ts_verify(checkpoint_file, tsr, certs)
    assert "Verification: OK" in res.stdout, res.stdout + res.stderr
    checkpoint_file.write_bytes(note.replace(b"\n7\n", b"\n8\n"))
    assert "Verification: OK" not in openssl_ts_verify(checkpoint_file, tsr, certs).stdout


def test_consistency_command(cli: Cli) -> None:
    cli("ledger", "append-note", "a")
    first = json.loads(cli("ledger", "checkpoint", "--json").stdout)["size"]
    for i in range(5):
        cli("ledger", "append-note", str(i))
    second = json.loads(cli("ledger", "checkpoint", "--json").stdout)["size"]
    out = json.loads(cli("ledger", "consistency", str(first), str(second)).stdout)
    assert out["old_size"] == first and out["new_size"] == second
    assert len(out["hashes"]) >= 1
    err = cli("ledger", "consistency", str(first), str(second + 5), expect=1).stderr
    assert f"no stored checkpoint of size {second + 5}" in err


def test_clear_errors_for_missing_things(cli: Cli, tmp_path: Path) -> None:
    assert "no entry 0" in cli("ledger", "entry", "0", expect=1).stderr
    assert "no checkpoint" in cli("ledger", "show-checkpoint", expect=1).stderr
    err = cli("ledger", "timestamp", "--size", "4", "--out", str(tmp_path / "x"), expect=1).stderr
    assert "no stored checkpoint of size 4" in err
    assert not (tmp_path / "x").exists()
    other = Cli(Settings(home=tmp_path / "nowhere"))
    assert "tiezheng init" in other("ledger", "vkey", expect=2).stderr


def test_verify_reports_ok_and_json(cli: Cli) -> None:
    for i in range(3):
        cli("ledger", "append-note", str(i))
    out = cli("ledger", "verify").stdout
    assert "verified 3 entries" in out and out.strip().endswith("OK")
    data = json.loads(cli("ledger", "verify", "--require-timestamps", "--json").stdout)
    assert data["ok"] and data["pending_timestamps"] == []


def test_console_script_runs_as_a_real_process(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "inst")
    env = {**os.environ, **settings_env(settings)}
    exe = Path(sys.executable).with_name("tiezheng")
    subprocess.run([str(exe), "init"], env=env, check=True, capture_output=True)
    res = subprocess.run(
        [str(exe), "ledger", "append-note", "hi", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(res.stdout)["index"] == 0
    res = subprocess.run(
        [str(exe), "ledger", "entry", "9"], env=env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 1 and res.stderr.startswith("error: no entry 9")


@pytest.mark.parametrize("origin", ["has space", "a+b"])
def test_bad_origin_is_refused(tmp_path: Path, origin: str) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError):
        Settings.from_env({"TIEZHENG_LOG_ORIGIN": origin}, home=tmp_path)
