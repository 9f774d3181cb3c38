"""A test-only builder of valid evidence bundles (docs/bundle.md), made from scratch.

No database: the log is a list of canonical entries made with ``ledger.entry``, the tree and
proofs come from ``ledger.merkle``, the checkpoint is signed with a ``NoteSigner`` and stamped
by a ``BuiltinTSA``. The log it builds (``kind``/``case`` of each evidence entry in brackets)::

    0 note          5 evidence C [document, C-001]   10 custody export A
    1 evidence A    6 custody download B             11 custody export B
      [call, C-001] 7 evidence D [photo, C-002]      12 custody export C
    2 custody view A 8 custody verify A              13 export (this bundle)
    3 note          9 note                           14 note (someone else's, same checkpoint)
    4 evidence B [visit, C-001]

The bundle for case C-001 holds entries 1, 2, 4, 5, 6, 8, 10-13 (adjacent pairs 1-2, 4-5,
5-6, 10-11, 11-12, 12-13 test the hash chain), a first checkpoint of size 10 gives the items'
"first sealed" size and time, and the bundled checkpoint has size 15.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.bundle import verify_md
from ledger.entry import ZERO_HASH, encode_entry
from ledger.merkle import hash_leaf, inclusion_proof, root_of
from ledger.note import Checkpoint, NoteSigner
from ledger.tsa import BuiltinTSA

ORIGIN = "tiezheng.test/log"
CASE = "C-001"
FIRST_CHECKPOINT = 10
LOG_SIZE_AT_EXPORT = 13
EXPORT_INDEX = 13
CHECKPOINT_SIZE = 15
ITEMS = (1, 4, 5)
START = datetime(2026, 11, 26, 10, 15, 0, 123456, tzinfo=UTC)
CSV_HEADER = ("index", "time", "actor", "action", "reason", "request")


def _bytes(seed: str, size: int) -> bytes:
    """Deterministic filler bytes (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass(frozen=True)
class Original:
    """An original file and the evidence fields the exporter logs for it."""

    data: bytes
    media_type: str
    extension: str
    kind: str
    case: str
    purpose: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sm3(self) -> str:
        return hashlib.new("sm3", self.data).hexdigest()


def originals() -> dict[str, Original]:
    """A call recording, a 2.5 MiB visit video (more than one hashing chunk), a document, and
    a photo of another case (never bundled)."""
    return {
        "A": Original(
            b"ID3\x04\x00\x00" + _bytes("call", 40_000),
            "audio/mpeg",
            "mp3",
            "call",
            CASE,
            "证明已于催缴电话中告知欠费金额 (the owner was told the arrears by phone)",
        ),
        "B": Original(
            b"\x00\x00\x00\x18ftypmp42" + _bytes("visit", 5 << 19),
            "video/mp4",
            "mp4",
            "visit",
            CASE,
            "证明上门送达催缴函 (the demand letter was served in person)",
        ),
        "C": Original(
            b"%PDF-1.7\n" + _bytes("doc", 9_000),
            "application/pdf",
            "pdf",
            "document",
            CASE,
            "物业服务合同 (the property service contract)",
        ),
        "D": Original(
            b"\xff\xd8\xff\xe0" + _bytes("photo", 7_000),
            "image/jpeg",
            "jpg",
            "photo",
            "C-002",
            "",
        ),
    }


@dataclass
class BuiltBundle:
    """A bundle written to ``path`` and everything that went into it."""

    path: Path
    members: dict[str, bytes]
    """Every file of the ZIP, in the order written."""
    signer: NoteSigner
    tsa: BuiltinTSA
    log: list[bytes]
    """The whole log, bundled or not: the exact bytes of every entry."""
    originals: dict[str, Original]
    manifest: dict[str, Any]
    export_index: int = EXPORT_INDEX
    checkpoint_size: int = CHECKPOINT_SIZE

    @property
    def vkey(self) -> str:
        return self.signer.vkey()

    def entry(self, index: int) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.log[index])
        return value


def _time(index: int) -> str:
    moment = START + timedelta(seconds=7 * index)
    return moment.isoformat().replace("+00:00", "Z")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_zip(path: Path, members: Mapping[str, bytes]) -> Path:
    """Write ``members`` as a ZIP of regular files (mode 0644, Unix), deflated except originals."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 26, 10, 15, 0))
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            stored = name.startswith("files/")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def rewrite(
    bundle: BuiltBundle,
    path: Path,
    *,
    replace: Mapping[str, bytes | None] | None = None,
    add: Mapping[str, bytes] | None = None,
) -> Path:
    """A copy of ``bundle`` with members replaced (``None`` removes one) and others added."""
    members = dict(bundle.members)
    for name, data in (replace or {}).items():
        assert name in members, f"{name} is not in the bundle"
        if data is None:
            del members[name]
        else:
            members[name] = data
    members.update(add or {})
    return write_zip(path, members)


def _custody_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow([row[key] for key in CSV_HEADER])
    return out.getvalue().encode("utf-8")


def build_bundle(
    directory: Path,
    tsa: BuiltinTSA,
    *,
    signer: NoteSigner | None = None,
    origin: str = ORIGIN,
    name: str = "bundle.zip",
    break_chain_at: int | None = None,
    export_manifest_sha256: str | None = None,
    extra_entries: tuple[int, ...] = (),
) -> BuiltBundle:
    """Build and write a valid bundle for case C-001 (see the module docstring).

    ``break_chain_at``: that entry's ``prev`` is wrong (the log itself is then inconsistent,
    though every proof holds). ``export_manifest_sha256``: the export entry carries this hash
    instead of the manifest's (an export entry for another manifest). ``extra_entries``: also
    bundle (and list in the manifest's files) these entries, which no item refers to.
    """
    signer = signer or NoteSigner.generate(origin)
    files = originals()
    log: list[bytes] = []
    custody: dict[str, list[dict[str, Any]]] = {key: [] for key in files}
    evidence_index: dict[str, int] = {}

    def append(type_: str, actor: str, payload: dict[str, Any]) -> int:
        index = len(log)
        prev = hash_leaf(log[-1]).hex() if log else ZERO_HASH
        if index == break_chain_at:
            prev = hashlib.sha256(b"not the entry before").hexdigest()
        log.append(
            encode_entry(
                index=index, type=type_, time=_time(index), actor=actor, prev=prev, payload=payload
            )
        )
        return index

    def evidence(key: str, actor: str) -> None:
        original = files[key]
        stamp = f"{START + timedelta(seconds=7 * len(log)):%Y%m%dT%H%M%SZ}"
        evidence_index[key] = append(
            "evidence",
            actor,
            {
                "sha256": original.sha256,
                "sm3": original.sm3,
                "size": len(original.data),
                "media_type": original.media_type,
                "filename": f"{original.case}_{original.kind}_{stamp}.{original.extension}",
                "kind": original.kind,
                "case": original.case,
                "purpose": original.purpose,
                "claims": {
                    "captured_at": _time(len(log) - 1),
                    "device": "Android 14 / 物业 App 3.2",
                    "location": {"lat": 31.2304, "lon": 121.4737},
                },
            },
        )

    def access(key: str, action: str, actor: str, reason: str) -> None:
        original = files[key]
        request = f"req-{len(log):04d}"
        index = append(
            "custody",
            actor,
            {
                "action": action,
                "sha256": original.sha256,
                "evidence": [evidence_index[key]],
                "reason": reason,
                "request": request,
            },
        )
        custody[key].append(
            {
                "index": index,
                "time": _time(index),
                "actor": actor,
                "action": action,
                "reason": reason,
                "request": request,
            }
        )

    append("note", "system", {"text": "log created"})  # 0
    evidence("A", "field-07")  # 1
    access("A", "view", "legal-02", "核对录音 (checking the recording)")  # 2
    append("note", "system", {"text": "key rotation scheduled"})  # 3
    evidence("B", "field-07")  # 4
    evidence("C", "legal-02")  # 5
    access("B", "download", "legal-02", "准备起诉材料 (preparing the claim)")  # 6
    evidence("D", "field-09")  # 7
    access("A", "verify", "auditor-1", "季度审计 (quarterly audit)")  # 8
    append("note", "system", {"text": "daily seal"})  # 9
    assert len(log) == FIRST_CHECKPOINT

    leaves = [hash_leaf(e) for e in log]
    first = signer.sign(Checkpoint(origin, len(log), root_of(leaves)).to_text()).encode()
    first_time = tsa.stamp(hashlib.sha256(first).digest()).info.gen_time

    for key in ("A", "B", "C"):  # 10, 11, 12: the exporter logs each original leaving
        access(key, "export", "legal-02", f"{CASE} 起诉 (lawsuit {CASE})")
    assert len(log) == LOG_SIZE_AT_EXPORT

    members: dict[str, bytes] = {}
    items: list[dict[str, Any]] = []
    bundled = sorted(
        [evidence_index[k] for k in ("A", "B", "C")]
        + [row["index"] for k in ("A", "B", "C") for row in custody[k]]
        + list(extra_entries)
    )
    for no, key in enumerate(("A", "B", "C"), start=1):
        original, index = files[key], evidence_index[key]
        payload = json.loads(log[index])["payload"]
        items.append(
            {
                "no": no,
                "index": index,
                "sha256": original.sha256,
                "sm3": original.sm3,
                "size": len(original.data),
                "media_type": original.media_type,
                "kind": original.kind,
                "case": original.case,
                "filename": payload["filename"],
                "purpose": original.purpose,
                "uploaded": _time(index),
                "checkpoint_size": FIRST_CHECKPOINT,
                "timestamp": _rfc3339(first_time),
                "custody": [row["index"] for row in custody[key]],
            }
        )
    members["VERIFY.md"] = verify_md(origin, len(log), items).encode("utf-8")
    members["catalogue.html"] = (
        "<!doctype html><title>证据目录 Evidence catalogue</title><p>placeholder</p>\n".encode()
    )
    members["catalogue.pdf"] = b"%PDF-1.7\n% catalogue placeholder\n%%EOF\n"
    members["log.vkey"] = (signer.vkey() + "\n").encode()
    members["tsa/ca.pem"] = tsa.ca_pem
    members["tsa/tsa.pem"] = tsa.tsa_pem
    for index in bundled:
        members[f"entries/{index}.json"] = log[index]
    for key in ("A", "B", "C"):
        members[f"files/{files[key].sha256}"] = files[key].data
        members[f"custody/{files[key].sha256}.csv"] = _custody_csv(custody[key])
    manifest = {
        "format": "tiezheng-bundle",
        "version": 1,
        "created": _time(len(log)),
        "origin": origin,
        "case": CASE,
        "items": items,
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in members.items()},
    }
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"

    export = append(
        "export",
        "legal-02",
        {
            "manifest_sha256": export_manifest_sha256 or hashlib.sha256(manifest_bytes).hexdigest(),
            "case": CASE,
            "items": [item["index"] for item in items],
            "format": 1,
        },
    )
    assert export == EXPORT_INDEX
    append("note", "field-09", {"text": "another user's entry, sealed with the export"})  # 14
    assert len(log) == CHECKPOINT_SIZE

    leaves = [hash_leaf(e) for e in log]

    def subtree_hash(level: int, index: int) -> bytes:
        return root_of(leaves[index << level : (index + 1) << level])

    checkpoint = signer.sign(Checkpoint(origin, len(log), root_of(leaves)).to_text()).encode()
    stamp = tsa.stamp(hashlib.sha256(checkpoint).digest())
    members = {
        "manifest.json": manifest_bytes,
        "checkpoint": checkpoint,
        "checkpoint.tsr": stamp.response,
        **members,
        f"entries/{export}.json": log[export],
    }
    for index in [*bundled, export]:
        proof = inclusion_proof(index, len(log), subtree_hash)
        members[f"proofs/{index}.json"] = json.dumps(
            {"index": index, "tree_size": len(log), "hashes": [h.hex() for h in proof]}
        ).encode()
    path = write_zip(directory / name, members)
    return BuiltBundle(
        path=path,
        members=members,
        signer=signer,
        tsa=tsa,
        log=log,
        originals=files,
        manifest=manifest,
    )


def signed_checkpoint(signer: NoteSigner, size: int, root: bytes, origin: str = ORIGIN) -> bytes:
    """Another checkpoint by ``signer`` (for a token that stamps the wrong checkpoint)."""
    return signer.sign(Checkpoint(origin, size, root).to_text()).encode()
