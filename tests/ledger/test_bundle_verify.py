"""The offline verifier of evidence bundles, and the standard-tool recipes of VERIFY.md.

Every bundle here is built from scratch by ``bundle_factory`` (real entries, tree, Ed25519
checkpoint, RFC 3161 token); each part is then tampered with in turn and the verifier must name
the part. VERIFY.md's shell blocks are run as they stand with the real sha256sum, openssl and
python3 on an unzipped bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ledger.bundle
from ledger.bundle import BundleReport, verify_bundle, verify_md
from ledger.errors import BundleError, LedgerError
from ledger.merkle import hash_leaf, inclusion_proof, root_of
from ledger.note import NoteSigner
from ledger.tsa import BuiltinTSA, gen_time_of
from tests.ledger.bundle_factory import (
    CHECKPOINT_SIZE,
    EXPORT_INDEX,
    ITEMS,
    LOG_SIZE_AT_EXPORT,
    ORIGIN,
    BuiltBundle,
    build_bundle,
    rewrite,
    signed_checkpoint,
    write_zip,
)

# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tsa(builtin_tsa_template: Path) -> BuiltinTSA:
    """The log's TSA (RSA, shared with the session)."""
    return BuiltinTSA.load(builtin_tsa_template)


@pytest.fixture(scope="module")
def other_tsa(tmp_path_factory: pytest.TempPathFactory) -> BuiltinTSA:
    """Someone else's TSA (EC: quick to make)."""
    path = tmp_path_factory.mktemp("other-tsa") / "tsa"
    return BuiltinTSA.create(path, name="Other TSA", key_type="ec")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tsa: BuiltinTSA) -> BuiltBundle:
    """One valid bundle; tests copy it before changing anything."""
    return build_bundle(tmp_path_factory.mktemp("bundle"), tsa)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flip(data: bytes, at: int) -> bytes:
    """``data`` with one bit of byte ``at`` flipped."""
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def failed(report: BundleReport) -> str:
    assert not report.ok, "the bundle verified but should not have"
    assert report.failure is not None
    return report.failure


# --- valid bundles ---------------------------------------------------------------------------


def test_valid_bundle_verifies_and_says_it_trusts_its_own_keys(bundle: BuiltBundle) -> None:
    report = verify_bundle(bundle.path)
    assert report.ok, report.failure
    assert report.failure is None
    assert report.origin == ORIGIN
    assert report.checkpoint_size == CHECKPOINT_SIZE
    assert report.checkpoint_root == root_of([hash_leaf(e) for e in bundle.log]).hex()
    assert report.timestamp == gen_time_of(bundle.members["checkpoint.tsr"])
    assert report.export_index == EXPORT_INDEX
    assert report.trusted_key_source == "bundle"
    assert report.trusted_tsa_source == "bundle"
    assert any("log.vkey" in note and "--vkey" in note for note in report.notes)
    assert any("tsa/ca.pem" in note and "--tsa-ca" in note for note in report.notes)
    assert [item["index"] for item in report.items] == list(ITEMS)
    by_kind = {o.kind: o for o in bundle.originals.values()}
    for item in report.items:
        original = by_kind[item["kind"]]
        assert item["sha256"] == original.sha256
        assert item["sm3"] == original.sm3
        assert item["size"] == len(original.data)
        assert item["case"] == "C-001"
    assert len(report.checks) == 8
    assert "FAILED" not in report.text()
    assert json.loads(json.dumps(report.to_dict()))["timestamp"].endswith("Z")


def test_valid_bundle_with_given_key_and_tsa_ca_has_no_trust_notes(
    bundle: BuiltBundle, tsa: BuiltinTSA
) -> None:
    report = verify_bundle(bundle.path, vkey=bundle.vkey, tsa_ca=[tsa.ca_certificate])
    assert report.ok, report.failure
    assert report.trusted_key_source == "given"
    assert report.trusted_tsa_source == "given"
    assert report.notes == []


def test_bundle_bytes_verify_like_the_file(bundle: BuiltBundle) -> None:
    report = verify_bundle(bundle.path.read_bytes(), vkey=bundle.vkey)
    assert report.ok, report.failure
    assert report.checkpoint_size == CHECKPOINT_SIZE


def test_another_log_key_fails(bundle: BuiltBundle) -> None:
    other = NoteSigner.generate(ORIGIN).vkey()
    report = verify_bundle(bundle.path, vkey=other)
    message = failed(report)
    assert message.startswith("checkpoint: not signed by the given verifier key")
    assert "no signature by a known key" in message
    assert report.trusted_key_source == "given"
    assert report.checkpoint_size is None


def test_malformed_given_key_fails(bundle: BuiltBundle) -> None:
    message = failed(verify_bundle(bundle.path, vkey="not-a-key"))
    assert message.startswith("the given verifier key is not a valid verifier key")


def test_another_tsa_ca_fails(bundle: BuiltBundle, other_tsa: BuiltinTSA) -> None:
    report = verify_bundle(bundle.path, vkey=bundle.vkey, tsa_ca=[other_tsa.ca_certificate])
    message = failed(report)
    assert message.startswith("checkpoint.tsr: not a valid timestamp of checkpoint")
    assert "the given TSA CA" in message
    # What was verified before the failure is still reported.
    assert report.checkpoint_size == CHECKPOINT_SIZE
    assert report.timestamp is None


def test_empty_tsa_ca_list_fails(bundle: BuiltBundle) -> None:
    assert "no TSA CA certificate given" in failed(verify_bundle(bundle.path, tsa_ca=[]))


# --- tampering with each part ----------------------------------------------------------------

Tamper = Callable[[BuiltBundle], dict[str, bytes | None]]


def _sha_of(bundle: BuiltBundle, key: str) -> str:
    return bundle.originals[key].sha256


def _entry_reserialised(bundle: BuiltBundle) -> dict[str, bytes | None]:
    obj = json.loads(bundle.members["entries/4.json"])
    return {"entries/4.json": json.dumps(obj, indent=1, ensure_ascii=False).encode()}


def _entry_changed(bundle: BuiltBundle) -> dict[str, bytes | None]:
    data = bundle.members["entries/2.json"]
    assert b'"action":"view"' in data
    return {"entries/2.json": data.replace(b'"action":"view"', b'"action":"veiw"')}


def _proof_hash(bundle: BuiltBundle) -> dict[str, bytes | None]:
    proof = json.loads(bundle.members["proofs/5.json"])
    first = proof["hashes"][0]
    proof["hashes"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    return {"proofs/5.json": json.dumps(proof).encode()}


def _proof_size(bundle: BuiltBundle) -> dict[str, bytes | None]:
    proof = json.loads(bundle.members["proofs/5.json"])
    proof["tree_size"] = CHECKPOINT_SIZE - 1
    return {"proofs/5.json": json.dumps(proof).encode()}


def _checkpoint_text(bundle: BuiltBundle) -> dict[str, bytes | None]:
    data = bundle.members["checkpoint"]
    line = f"\n{CHECKPOINT_SIZE}\n".encode()
    assert line in data
    return {"checkpoint": data.replace(line, f"\n{CHECKPOINT_SIZE + 1}\n".encode(), 1)}


def _checkpoint_signature(bundle: BuiltBundle) -> dict[str, bytes | None]:
    data = bundle.members["checkpoint"]
    at = len(data) - 12  # inside the base64 signature, away from its padding
    swapped = b"A" if data[at : at + 1] != b"A" else b"B"
    return {"checkpoint": data[:at] + swapped + data[at + 1 :]}


def _other_token(bundle: BuiltBundle) -> dict[str, bytes | None]:
    other = signed_checkpoint(bundle.signer, CHECKPOINT_SIZE - 1, hash_leaf(b"x"))
    return {"checkpoint.tsr": bundle.tsa.stamp(hashlib.sha256(other).digest()).response}


def _manifest_item(bundle: BuiltBundle) -> dict[str, bytes | None]:
    manifest = json.loads(bundle.members["manifest.json"])
    manifest["items"][0]["sha256"] = _sha_of(bundle, "D")
    return {"manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2).encode()}


def _manifest_files(bundle: BuiltBundle) -> dict[str, bytes | None]:
    manifest = json.loads(bundle.members["manifest.json"])
    del manifest["files"]["catalogue.pdf"]
    return {"manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2).encode()}


_CHECKPOINT_FAILS = (
    "checkpoint: not signed by log.vkey {vkey}: signature by key {name} does not verify"
)

TAMPERING: dict[str, tuple[Tamper, str]] = {
    "original byte": (
        lambda b: {f"files/{_sha_of(b, 'B')}": flip(b.originals["B"].data, 1_000_000)},
        "files/{B}: its SHA-256 is",
    ),
    "original swapped for another": (
        lambda b: {f"files/{_sha_of(b, 'A')}": b.originals["C"].data},
        "files/{A}: its SHA-256 is {C}",
    ),
    "entry byte": (
        _entry_changed,
        "proofs/2.json: the inclusion proof of entries/2.json does not lead to the checkpoint",
    ),
    "entry re-serialised": (
        _entry_reserialised,
        "entries/4.json: entry bytes are not in canonical (RFC 8785) form",
    ),
    "entry of another index": (
        lambda b: {"entries/2.json": b.log[3]},
        "entries/2.json holds entry index 3, not 2",
    ),
    "proof hash": (
        _proof_hash,
        "proofs/5.json: the inclusion proof of entries/5.json does not lead to the checkpoint",
    ),
    "entry nested too deeply": (
        lambda b: {"entries/2.json": b"[" * 200_000 + b"]" * 200_000},
        "entries/2.json: entry is nested too deeply",
    ),
    "proof nested too deeply": (
        lambda b: {"proofs/2.json": b"[" * 200_000 + b"]" * 200_000},
        "proofs/2.json is nested too deeply",
    ),
    "proof tree_size": (
        _proof_size,
        f"proofs/5.json: tree_size {CHECKPOINT_SIZE - 1} is not the checkpoint's size "
        f"{CHECKPOINT_SIZE}",
    ),
    "checkpoint text": (_checkpoint_text, _CHECKPOINT_FAILS),
    "checkpoint signature": (_checkpoint_signature, _CHECKPOINT_FAILS),
    "tsr bit flip": (
        lambda b: {"checkpoint.tsr": flip(b.members["checkpoint.tsr"], -1)},
        "checkpoint.tsr: not a valid timestamp of checkpoint",
    ),
    "tsr of another checkpoint": (_other_token, "message imprint mismatch"),
    "manifest item sha256": (_manifest_item, "manifest.json: its SHA-256"),
    "manifest file list": (_manifest_files, "manifest.json: its SHA-256"),
    "catalogue.pdf": (
        lambda b: {"catalogue.pdf": b.members["catalogue.pdf"] + b"%"},
        "catalogue.pdf: its SHA-256 is",
    ),
    "catalogue.html": (
        lambda b: {
            "catalogue.html": b.members["catalogue.html"].replace(b"placeholder", b"tampered")
        },
        "catalogue.html: its SHA-256 is",
    ),
    "VERIFY.md": (
        lambda b: {"VERIFY.md": b.members["VERIFY.md"].replace(b"sha256sum -c", b"true", 1)},
        "VERIFY.md: its SHA-256 is",
    ),
    "custody trail": (
        lambda b: {f"custody/{_sha_of(b, 'A')}.csv": b"index,time,actor,action,reason,request\n"},
        "custody/{A}.csv: its SHA-256 is",
    ),
    "original removed": (
        lambda b: {f"files/{_sha_of(b, 'C')}": None},
        "files/{C} is listed in manifest.json but missing from the bundle",
    ),
    "custody trail removed": (
        lambda b: {f"custody/{_sha_of(b, 'B')}.csv": None},
        "custody/{B}.csv is listed in manifest.json but missing from the bundle",
    ),
    "catalogue removed": (
        lambda b: {"catalogue.pdf": None},
        "catalogue.pdf is missing from the bundle",
    ),
    "proof removed": (
        lambda b: {"proofs/8.json": None},
        "entries/8.json has no inclusion proof proofs/8.json",
    ),
    "entry removed": (
        lambda b: {"entries/8.json": None},
        "proofs/8.json has no entry entries/8.json",
    ),
    "export entry missing": (
        lambda b: {f"entries/{EXPORT_INDEX}.json": None, f"proofs/{EXPORT_INDEX}.json": None},
        "no export entry",
    ),
    "listed entry missing": (
        lambda b: {"entries/8.json": None, "proofs/8.json": None},
        "entries/8.json is listed in manifest.json but missing from the bundle",
    ),
    "tsa/ca.pem of another CA": (
        lambda b: {"tsa/ca.pem": _other_tsa_pems()[0]},
        "checkpoint.tsr: not a valid timestamp of checkpoint by a TSA chaining to tsa/ca.pem",
    ),
    "tsa/tsa.pem of another TSA": (
        lambda b: {"tsa/tsa.pem": _other_tsa_pems()[1]},
        "tsa/tsa.pem: its SHA-256 is",
    ),
}
_OTHER_TSA: list[BuiltinTSA] = []


def _other_tsa_pems() -> tuple[bytes, bytes]:
    return _OTHER_TSA[0].ca_pem, _OTHER_TSA[0].tsa_pem


@pytest.mark.parametrize("part", list(TAMPERING))
def test_tampering_with_each_part_is_named(
    part: str, bundle: BuiltBundle, other_tsa: BuiltinTSA, tmp_path: Path
) -> None:
    _OTHER_TSA[:] = [other_tsa]
    tamper, expected = TAMPERING[part]
    names = {k: _sha_of(bundle, k) for k in "ABCD"}
    signer = bundle.signer
    key = f"{signer.name}+{signer.key_id.hex()}"
    expected = expected.format(**names, vkey=key, name=f"{signer.name} ({signer.key_id.hex()})")
    path = rewrite(bundle, tmp_path / "tampered.zip", replace=tamper(bundle))
    assert verify_bundle(bundle.path).ok  # the original is untouched
    message = failed(verify_bundle(path))
    assert expected in message


def test_given_key_catches_a_replaced_log_vkey(bundle: BuiltBundle, tmp_path: Path) -> None:
    other = NoteSigner.generate(ORIGIN)
    path = rewrite(bundle, tmp_path / "t.zip", replace={"log.vkey": other.vkey().encode()})
    # Without a key of our own the bundle's (replaced) key does not sign the checkpoint ...
    assert failed(verify_bundle(path)).startswith("checkpoint: not signed by log.vkey")
    # ... with ours the checkpoint holds, the difference is noted, and the listed hash fails.
    report = verify_bundle(path, vkey=bundle.vkey)
    assert failed(report).startswith("log.vkey: its SHA-256 is")
    assert any("is not the key given" in note for note in report.notes)


def test_extra_files_are_refused(bundle: BuiltBundle, tmp_path: Path) -> None:
    path = rewrite(bundle, tmp_path / "a.zip", add={"notes.txt": b"hello"})
    assert failed(verify_bundle(path)) == "'notes.txt' is not a file an evidence bundle may hold"
    path = rewrite(bundle, tmp_path / "b.zip", add={"entries/012.json": b"{}"})
    assert "'entries/012.json' is not a file" in failed(verify_bundle(path))
    stray = b"a stray original"
    path = rewrite(bundle, tmp_path / "c.zip", add={f"files/{sha(stray)}": stray})
    assert failed(verify_bundle(path)) == (
        f"files/{sha(stray)} is in the bundle but not listed in manifest.json"
    )


def test_folder_members_are_tolerated(bundle: BuiltBundle, tmp_path: Path) -> None:
    path = tmp_path / "dirs.zip"
    shutil.copy(bundle.path, path)
    with zipfile.ZipFile(path, "a") as zf:
        for folder in ("files/", "entries/"):
            info = zipfile.ZipInfo(folder)
            info.create_system = 3
            info.external_attr = (stat.S_IFDIR | 0o755) << 16
            zf.writestr(info, b"")
    assert verify_bundle(path).ok
    path = rewrite(bundle, tmp_path / "odd.zip", add={"other/": b""})
    assert "'other/' is not a folder" in failed(verify_bundle(path))


def test_export_entry_for_another_manifest(tmp_path: Path, tsa: BuiltinTSA) -> None:
    other = sha(b"some other manifest")
    built = build_bundle(tmp_path, tsa, export_manifest_sha256=other)
    report = verify_bundle(built.path, vkey=built.vkey)
    message = failed(report)
    assert message.startswith("manifest.json: its SHA-256")
    assert f"is not the manifest_sha256 {other} of the export entry entries/13.json" in message
    assert report.checkpoint_size == CHECKPOINT_SIZE  # the signed parts all held
    assert report.export_index == EXPORT_INDEX
    assert report.items == []


def test_broken_hash_chain_between_bundled_entries(tmp_path: Path, tsa: BuiltinTSA) -> None:
    built = build_bundle(tmp_path, tsa, break_chain_at=5)
    message = failed(verify_bundle(built.path, vkey=built.vkey))
    expected = hash_leaf(built.log[4]).hex()
    assert message.startswith("hash chain broken: entries/5.json has prev")
    assert f"expected {expected}, the leaf hash of entries/4.json" in message


def test_bundled_entries_must_be_accounted_for(
    bundle: BuiltBundle, tmp_path: Path, tsa: BuiltinTSA
) -> None:
    leaves = [hash_leaf(e) for e in bundle.log]

    def subtree(level: int, index: int) -> bytes:
        return root_of(leaves[index << level : (index + 1) << level])

    proof = inclusion_proof(3, CHECKPOINT_SIZE, subtree)
    stray = {
        "entries/3.json": bundle.log[3],
        "proofs/3.json": json.dumps(
            {"index": 3, "tree_size": CHECKPOINT_SIZE, "hashes": [h.hex() for h in proof]}
        ).encode(),
    }
    # A genuine entry slipped into the bundle afterwards: proven, chained, but not listed.
    path = rewrite(bundle, tmp_path / "t.zip", add=stray)
    assert failed(verify_bundle(path)) == (
        "entries/3.json is in the bundle but not listed in manifest.json"
    )
    # A bundle that lists an entry no item refers to.
    built = build_bundle(tmp_path, tsa, name="extra.zip", extra_entries=(3,))
    assert failed(verify_bundle(built.path)) == (
        "entries/3.json is neither an item's evidence entry, a listed custody entry nor the "
        "export entry"
    )


def test_attacker_resigned_bundle_is_caught_only_with_given_keys(
    bundle: BuiltBundle, tmp_path: Path, other_tsa: BuiltinTSA, tsa: BuiltinTSA
) -> None:
    """A consistent bundle under another log key and another TSA verifies on its own terms:
    only keys obtained independently (--vkey, --tsa-ca) tell it from the real log's."""
    forged = build_bundle(tmp_path, other_tsa, signer=NoteSigner.generate(ORIGIN))
    alone = verify_bundle(forged.path)
    assert alone.ok, alone.failure
    assert alone.trusted_key_source == "bundle"
    assert len(alone.notes) == 2
    assert failed(verify_bundle(forged.path, vkey=bundle.vkey)).startswith(
        "checkpoint: not signed by the given verifier key"
    )
    message = failed(verify_bundle(forged.path, vkey=forged.vkey, tsa_ca=[tsa.ca_certificate]))
    assert message.startswith("checkpoint.tsr: not a valid timestamp")


# --- ZIP safety ------------------------------------------------------------------------------


def _zip_with(bundle: BuiltBundle, path: Path, extra: zipfile.ZipInfo, data: bytes) -> Path:
    write_zip(path, bundle.members)
    with zipfile.ZipFile(path, "a") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicates
        zf.writestr(extra, data)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../evil", "'../evil' has an empty, '.' or '..' component"),
        ("files/../../evil", "has an empty, '.' or '..' component"),
        ("/etc/passwd", "'/etc/passwd' is an absolute path"),
        ("C:/evil", "'C:/evil' is an absolute path"),
        ("files\\evil", "holds a backslash"),
        ("files//x", "has an empty, '.' or '..' component"),
        ("manifest.json", "the ZIP holds 'manifest.json' twice"),
    ],
)
def test_unsafe_zip_member_names(
    name: str, expected: str, bundle: BuiltBundle, tmp_path: Path
) -> None:
    path = _zip_with(bundle, tmp_path / "evil.zip", zipfile.ZipInfo(name), b"x")
    assert expected in failed(verify_bundle(path))


def test_symlink_member_is_refused(bundle: BuiltBundle, tmp_path: Path) -> None:
    members = dict(bundle.members)
    del members["catalogue.pdf"]
    path = write_zip(tmp_path / "link.zip", members)
    info = zipfile.ZipInfo("catalogue.pdf")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, b"/etc/passwd")
    assert "'catalogue.pdf' is a symbolic link or special file" in failed(verify_bundle(path))


def test_too_many_members(
    bundle: BuiltBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger.bundle, "MAX_ZIP_ENTRIES", 10)
    count = len(bundle.members)
    assert failed(verify_bundle(bundle.path)) == (f"the ZIP has {count} members, more than 10")


def test_truncated_and_non_zip_files(bundle: BuiltBundle, tmp_path: Path) -> None:
    data = bundle.path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        message = failed(verify_bundle(data[:cut]))
        assert message.startswith("the bundle is not a ZIP file, or it is truncated")
    pdf = tmp_path / "bundle.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + b"\x00" * 2000)
    assert failed(verify_bundle(pdf)).startswith(f"{pdf} is not a ZIP file, or it is truncated")
    assert failed(verify_bundle(b"")).startswith("the bundle is not a ZIP file")
    missing = tmp_path / "nowhere.zip"
    assert failed(verify_bundle(missing)).startswith(f"cannot read {missing}")


def test_damaged_member_data_is_reported(bundle: BuiltBundle) -> None:
    """A byte changed inside the ZIP's stored data (not through the ZIP writer) fails its
    CRC while the original is streamed."""
    data = bundle.path.read_bytes()
    original = bundle.originals["B"].data
    at = data.index(original) + 2_000_000
    message = failed(verify_bundle(flip(data, at)))
    assert message.startswith(f"files/{bundle.originals['B'].sha256} cannot be read from the ZIP")


# --- VERIFY.md -------------------------------------------------------------------------------


def _blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def _block(text: str, marker: str, *, without: str | None = None) -> str:
    found = [b for b in _blocks(text) if marker in b and (without is None or without not in b)]
    assert len(found) == 1, f"{len(found)} blocks hold {marker!r}"
    return found[0]


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # python3 as the reader has it; the venv's interpreter stands in for the system one.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _unzip(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(into)
    return into


@pytest.fixture(scope="module")
def unzipped(bundle: BuiltBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _unzip(bundle.path, tmp_path_factory.mktemp("unzipped"))


def test_every_verify_md_block_passes_on_a_valid_bundle(unzipped: Path) -> None:
    text = (unzipped / "VERIFY.md").read_text("utf-8")
    blocks = _blocks(text)
    assert len(blocks) == 9
    for block in blocks:
        done = _run(block, unzipped)
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
        assert "FAILED" not in done.stdout
    sums = _run(_block(text, "sha256sum -c <<"), unzipped).stdout
    assert sums.count(": OK") == len(ITEMS)
    listed = _run(_block(text, 'manifest.json", encoding'), unzipped).stdout
    manifest = json.loads((unzipped / "manifest.json").read_bytes())
    assert listed.count(": OK") == len(manifest["files"])
    proofs = _run(_block(text, "root_from_proof"), unzipped).stdout
    assert proofs.count(": OK") == len(list((unzipped / "entries").iterdir()))
    ts = _run(_block(text, "openssl ts -verify", without="-attime"), unzipped)
    assert "Verification: OK" in ts.stdout
    sig = _run(_block(text, "pkeyutl"), unzipped)
    assert "Signature Verified Successfully" in sig.stdout


@pytest.fixture
def copy(unzipped: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(unzipped, tmp_path / "bundle"))


def test_verify_md_file_checks_fail_on_a_changed_original(copy: Path, bundle: BuiltBundle) -> None:
    text = (copy / "VERIFY.md").read_text("utf-8")
    target = copy / "files" / bundle.originals["A"].sha256
    target.write_bytes(flip(target.read_bytes(), 100))
    for marker in ("sha256sum -c <<", "for f in files/*", "openssl dgst -sm3", "encoding"):
        done = _run(_block(text, marker), copy)
        assert done.returncode != 0, marker
        assert "FAILED" in done.stdout, marker
    assert f"files/{bundle.originals['B'].sha256}: OK" in done.stdout


def test_verify_md_manifest_check_fails_on_a_changed_manifest(copy: Path) -> None:
    text = (copy / "VERIFY.md").read_text("utf-8")
    (copy / "manifest.json").write_bytes((copy / "manifest.json").read_bytes() + b" ")
    done = _run(_block(text, "manifest_sha256"), copy)
    assert done.returncode == 1
    assert "manifest.json: FAILED" in done.stdout


def test_verify_md_timestamp_check_fails_on_another_token(copy: Path, bundle: BuiltBundle) -> None:
    text = (copy / "VERIFY.md").read_text("utf-8")
    other = signed_checkpoint(bundle.signer, 14, hash_leaf(b"other"))
    (copy / "checkpoint.tsr").write_bytes(bundle.tsa.stamp(hashlib.sha256(other).digest()).response)
    done = _run(_block(text, "openssl ts -verify", without="-attime"), copy)
    assert done.returncode != 0
    assert "Verification: FAILED" in done.stdout


def test_verify_md_signature_check_fails_on_a_changed_checkpoint(copy: Path) -> None:
    text = (copy / "VERIFY.md").read_text("utf-8")
    data = (copy / "checkpoint").read_bytes()
    (copy / "checkpoint").write_bytes(data.replace(b"\n15\n", b"\n16\n", 1))
    done = _run(_block(text, "pkeyutl"), copy)
    assert done.returncode != 0
    assert "Signature Verified Successfully" not in done.stdout


def test_verify_md_signature_check_fails_on_another_key(copy: Path) -> None:
    text = (copy / "VERIFY.md").read_text("utf-8")
    (copy / "log.vkey").write_text(NoteSigner.generate(ORIGIN).vkey() + "\n")
    done = _run(_block(text, "pkeyutl"), copy)
    assert done.returncode != 0
    assert "log.vkey: key ID FAILED" in done.stdout


def test_verify_md_proof_script_fails_on_a_changed_entry_or_proof(copy: Path) -> None:
    text = (copy / "VERIFY.md").read_text("utf-8")
    script = _block(text, "root_from_proof")
    entry = copy / "entries" / "2.json"
    entry.write_bytes(entry.read_bytes().replace(b'"view"', b'"veiw"'))
    done = _run(script, copy)
    assert done.returncode == 1
    assert "entries/2.json: FAILED" in done.stdout
    assert "entries/1.json: OK" in done.stdout
    proof = copy / "proofs" / "11.json"
    obj = json.loads(proof.read_bytes())
    obj["hashes"].reverse()
    proof.write_text(json.dumps(obj))
    assert "entries/11.json: FAILED" in _run(script, copy).stdout


def test_verify_md_proof_script_checks_the_chain(tmp_path: Path, tsa: BuiltinTSA) -> None:
    built = build_bundle(tmp_path, tsa, break_chain_at=5)
    where = _unzip(built.path, tmp_path / "x")
    done = _run(_block((where / "VERIFY.md").read_text("utf-8"), "root_from_proof"), where)
    assert done.returncode == 1
    assert "entries/5.json: FAILED" in done.stdout
    assert "entries/4.json: OK" in done.stdout


def test_expired_tsa_certificate_needs_attime(tmp_path: Path) -> None:
    """A token stays valid after its TSA certificate expires: ours checks the chain at genTime;
    openssl needs -attime, as VERIFY.md says."""
    past = datetime.now(UTC) - timedelta(days=3 * 365)
    old = BuiltinTSA.create(tmp_path / "tsa", years=1, clock=lambda: past, key_type="ec")
    built = build_bundle(tmp_path, old)
    report = verify_bundle(built.path, vkey=built.vkey, tsa_ca=[old.ca_certificate])
    assert report.ok, report.failure
    assert report.timestamp is not None and report.timestamp < datetime.now(UTC) - timedelta(
        days=365
    )
    where = _unzip(built.path, tmp_path / "x")
    text = (where / "VERIFY.md").read_text("utf-8")
    now = _run(_block(text, "openssl ts -verify", without="-attime"), where)
    assert now.returncode != 0
    assert "expired" in now.stdout + now.stderr
    then = _run(_block(text, "-attime"), where)
    assert then.returncode == 0, then.stdout + then.stderr
    assert "Verification: OK" in then.stdout


def test_verify_md_lists_the_items_in_both_languages(bundle: BuiltBundle) -> None:
    text = bundle.members["VERIFY.md"].decode("utf-8")
    for original in bundle.originals.values():
        inside = original.case == "C-001"
        assert (original.sha256 in text) is inside
        assert (original.sm3 in text) is inside
    assert "核验" in text and "How to verify" in text
    assert f"log held {LOG_SIZE_AT_EXPORT} entries" in text
    assert "tiezheng bundle verify FILE.zip [--vkey VKEY] [--tsa-ca FILE]" in text
    assert verify_md(ORIGIN, LOG_SIZE_AT_EXPORT, bundle.manifest["items"]) == text


def test_verify_md_refuses_values_that_could_break_its_commands() -> None:
    item = {"no": 1, "index": 3, "sha256": "a" * 64, "sm3": "b" * 64, "kind": "call"}
    with pytest.raises(BundleError, match="sha256 must be 64 lowercase hex"):
        verify_md(ORIGIN, 4, [{**item, "sha256": "a" * 63 + "\nLIST\nrm -rf ~"}])
    with pytest.raises(BundleError, match="sm3 must be 64 lowercase hex"):
        verify_md(ORIGIN, 4, [{**item, "sm3": "B" * 64}])
    with pytest.raises(LedgerError):
        verify_md(ORIGIN, -1, [item])
    text = verify_md(ORIGIN, 4, [{**item, "case": "A|B\nC"}])
    assert "| A\\|B C |" in text
