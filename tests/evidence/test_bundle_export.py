"""Export evidence bundles from a real instance and verify them offline: with our verifier,
with openssl and sha256sum on the unpacked files, and after tampering."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

from ledger.entry import decode_entry
from tests.conftest import Cli
from web.context import AppContext


def _add(cli: Cli, path: Path, kind: str, case: str, purpose: str = "") -> dict[str, object]:
    args = ["evidence", "add", str(path), "--kind", kind, "--case", case, "--json"]
    if purpose:
        args += ["--purpose", purpose]
    return dict(json.loads(cli(*args).stdout))


def test_export_a_case_and_verify_it_offline(
    cli: Cli, instance: AppContext, media: dict[str, Path], tmp_path: Path
) -> None:
    cli("user", "add", "wang", "--role", "legal", "--password-stdin", input="password-1\n")
    video = _add(cli, media["mp4"], "visit", "C-001", "证明已上门催缴")
    call = _add(cli, media["m4a"], "call", "C-001", "证明电话催缴")
    _add(cli, media["mp3"], "call", "C-002")
    cli("evidence", "show", str(video["sha256"]))
    out = tmp_path / "C-001.zip"
    res = json.loads(
        cli(
            "bundle", "export", "--case", "C-001", "--out", str(out), "--by", "wang", "--json"
        ).stdout
    )
    assert res["items"] == [video["index"], call["index"]]
    export = decode_entry(instance.ledger.entry(res["export_index"]))
    assert export.type == "export" and export.actor == "wang"
    assert export.payload["items"] == res["items"] and export.payload["case"] == "C-001"

    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest_bytes = zf.read("manifest.json")
        assert hashlib.sha256(manifest_bytes).hexdigest() == export.payload["manifest_sha256"]
        manifest = json.loads(manifest_bytes)
        assert zf.read(f"files/{video['sha256']}") == media["mp4"].read_bytes()
        trail = zf.read(f"custody/{video['sha256']}.csv").decode()
        zf.extractall(tmp_path / "unpacked")
    assert {
        "manifest.json",
        "checkpoint",
        "checkpoint.tsr",
        "log.vkey",
        "tsa/ca.pem",
        "tsa/tsa.pem",
        "catalogue.html",
        "catalogue.pdf",
        "VERIFY.md",
    } <= names
    assert f"proofs/{res['export_index']}.json" in names
    assert [i["index"] for i in manifest["items"]] == res["items"]
    assert manifest["items"][0]["purpose"] == "证明已上门催缴"
    assert ",view," in trail and ",export," in trail and ",upload," in trail
    # The other case's evidence is not in this bundle.
    assert not any(
        n.startswith("files/") and n not in (f"files/{video['sha256']}", f"files/{call['sha256']}")
        for n in names
    )

    # Our offline verifier, with keys obtained independently of the bundle.
    vkey = cli("ledger", "vkey").stdout.strip()
    certs = tmp_path / "certs"
    cli("ledger", "tsa-certs", "--out", str(certs))
    ok = cli("bundle", "verify", str(out), "--vkey", vkey, "--tsa-ca", str(certs / "ca.pem"))
    assert "bundle verified: 2 item(s)" in ok.stdout
    report = json.loads(cli("bundle", "verify", str(out), "--json").stdout)
    assert report["ok"] and report["trusted_key_source"] == "bundle"

    # Standard tools on the unpacked bundle.
    root = tmp_path / "unpacked"
    res_ts = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            "checkpoint",
            "-in",
            "checkpoint.tsr",
            "-CAfile",
            "tsa/ca.pem",
            "-untrusted",
            "tsa/tsa.pem",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in res_ts.stdout, res_ts.stderr
    for path, digest in manifest["files"].items():
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == digest, path

    # Tampering with an original inside the ZIP is caught.
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == f"files/{call['sha256']}":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(info, data)
    failed = cli("bundle", "verify", str(bad), expect=1)
    assert "FAILED" in failed.stdout and call["sha256"] in failed.stdout

    # The log still verifies, with the export and custody entries in it.
    assert json.loads(cli("ledger", "verify", "--json").stdout)["ok"]


def test_batch_export_one_bundle_per_case(cli: Cli, media: dict[str, Path], tmp_path: Path) -> None:
    _add(cli, media["mp4"], "visit", "C-1")
    _add(cli, media["wav"], "call", "C-2")
    out_dir = tmp_path / "bundles"
    res = json.loads(
        cli(
            "bundle",
            "export",
            "--case",
            "C-1",
            "--case",
            "C-2",
            "--out-dir",
            str(out_dir),
            "--json",
        ).stdout
    )
    assert [Path(r["path"]).name for r in res] == ["C-1.zip", "C-2.zip"]
    for r in res:
        assert json.loads(cli("bundle", "verify", r["path"], "--json").stdout)["ok"]


def test_export_refuses_bad_requests_and_writes_nothing(
    cli: Cli, instance: AppContext, media: dict[str, Path], tmp_path: Path
) -> None:
    _add(cli, media["mp4"], "visit", "C-1")
    size = instance.ledger.size()
    out = tmp_path / "x.zip"
    assert (
        "has no evidence"
        in cli("bundle", "export", "--case", "NOPE", "--out", str(out), expect=2).stderr
    )
    assert (
        "not an evidence entry"
        in cli("bundle", "export", "--index", "99", "--out", str(out), expect=1).stderr
    )
    assert "either --case or --index" in cli("bundle", "export", "--out", str(out), expect=2).stderr
    out.write_bytes(b"keep me")
    assert (
        "refusing to overwrite"
        in cli("bundle", "export", "--case", "C-1", "--out", str(out), expect=2).stderr
    )
    assert out.read_bytes() == b"keep me"
    assert instance.ledger.size() == size
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"PK\x03\x04 not really")
    assert "FAILED" in cli("bundle", "verify", str(garbage), expect=1).stdout
