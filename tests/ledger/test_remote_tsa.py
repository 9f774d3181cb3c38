"""The ledger with a remote RFC 3161 TSA (OpenSSL's `ts -reply` behind HTTP): tokens are
obtained and verified; a TSA that is down leaves checkpoints pending, never blocks or loses
an append, and pending checkpoints are stamped later."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import Cli
from tests.ledger.tsa_server import OpenSSLTSA, build_openssl_tsa, serve
from web.context import AppContext


@pytest.fixture(scope="module")
def openssl_tsa(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLTSA:
    return build_openssl_tsa(tmp_path_factory.mktemp("openssl-tsa"))


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _remote(cli: Cli, url: str, tsa: OpenSSLTSA, wait: float = 5.0) -> Cli:
    settings = replace(cli.settings, tsa_urls=(url,), tsa_ca_file=tsa.ca_pem, timestamp_wait=wait)
    remote = Cli(settings)
    remote.env.update(
        {
            "TIEZHENG_TSA_URL": url,
            "TIEZHENG_TSA_CA_FILE": str(tsa.ca_pem),
            "TIEZHENG_TIMESTAMP_WAIT": str(wait),
        }
    )
    return remote


def test_remote_tsa_tokens_verify_with_openssl(
    cli: Cli, openssl_tsa: OpenSSLTSA, tmp_path: Path
) -> None:
    with serve(openssl_tsa) as url:
        remote = _remote(cli, url, openssl_tsa)
        receipt = json.loads(remote("ledger", "append-note", "x", "--json").stdout)
        assert receipt["timestamp"]["status"] == "granted"
        size = receipt["checkpoint_size"]
        (tmp_path / "checkpoint").write_bytes(
            remote("ledger", "show-checkpoint", "--size", str(size)).stdout_bytes
        )
        remote("ledger", "timestamp", "--size", str(size), "--out", str(tmp_path / "cp.tsr"))
        remote("ledger", "tsa-certs", "--out", str(tmp_path / "certs"))
    assert (tmp_path / "certs" / "ca.pem").read_bytes().strip() == (
        openssl_tsa.ca_pem.read_bytes().strip()
    )
    res = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(tmp_path / "checkpoint"),
            "-in",
            str(tmp_path / "cp.tsr"),
            "-CAfile",
            str(tmp_path / "certs" / "ca.pem"),
            "-untrusted",
            str(tmp_path / "certs" / "tsa.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in res.stdout, res.stderr
    # The audit trusts the configured CA file for these tokens.
    report = json.loads(remote("ledger", "verify", "--require-timestamps", "--json").stdout)
    assert report["ok"] and report["timestamps"] >= 1


def test_tsa_down_leaves_checkpoints_pending_then_stamps_them(
    cli: Cli, openssl_tsa: OpenSSLTSA
) -> None:
    down = _remote(cli, _dead_url(), openssl_tsa, wait=2.0)
    started = time.monotonic()
    receipt = json.loads(down("ledger", "append-note", "while down", "--json").stdout)
    assert time.monotonic() - started < 15
    assert receipt["timestamp"] == {"status": "pending", "time": None}
    assert receipt["checkpoint_size"] == 1
    out = down("ledger", "verify").stdout
    assert "warning: 1 checkpoint(s) without a timestamp: 1" in out
    down("ledger", "verify", "--require-timestamps", expect=1)
    res = down("ledger", "stamp-pending", "--attempts", "2", "--backoff", "0.1", expect=1)
    assert "1 still pending" in res.stdout

    with serve(openssl_tsa) as url:
        up = _remote(cli, url, openssl_tsa)
        # The next process that checkpoints also stamps what is pending.
        receipt = json.loads(up("ledger", "append-note", "back up", "--json").stdout)
        assert receipt["timestamp"]["status"] == "granted"
        report = json.loads(up("ledger", "verify", "--require-timestamps", "--json").stdout)
        assert report["ok"] and report["pending_timestamps"] == []


def test_stamp_pending_command_stamps_everything(cli: Cli, openssl_tsa: OpenSSLTSA) -> None:
    down = _remote(cli, _dead_url(), openssl_tsa, wait=0.5)
    for i in range(3):
        down("ledger", "append-note", f"n{i}")
    assert len(json.loads(down("ledger", "verify", "--json").stdout)["pending_timestamps"]) == 3
    with serve(openssl_tsa) as url:
        up = _remote(cli, url, openssl_tsa)
        res = json.loads(up("ledger", "stamp-pending", "--json").stdout)
        assert sorted(res["stamped"]) == [1, 2, 3] and res["pending"] == []


def test_remote_url_without_ca_file_is_a_config_error(tmp_path: Path) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="TIEZHENG_TSA_CA_FILE"):
        Settings.from_env({"TIEZHENG_TSA_URL": "http://127.0.0.1:1/"}, home=tmp_path)


def test_in_process_ledger_reports_pending(instance: AppContext, openssl_tsa: OpenSSLTSA) -> None:
    from ledger.instance import open_ledger

    settings = replace(
        instance.settings,
        tsa_urls=(_dead_url(),),
        tsa_ca_file=openssl_tsa.ca_pem,
        timestamp_wait=0.5,
    )
    ledger = open_ledger(settings, engine=instance.engine)
    receipt = ledger.append("note", {"text": "x"}, "system")
    assert receipt.timestamp.status == "pending"
    assert ledger.pending_sizes() == [1]
    assert ledger.entry(0)  # durable and signed nonetheless
    assert ledger.checkpoint_at(1).size == 1
