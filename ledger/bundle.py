"""Offline verification of evidence bundles, and the text of their ``VERIFY.md``.

The bundle format is the public contract in ``docs/bundle.md``. :func:`verify_bundle` needs no
database and no network: it checks a bundle from its own bytes against a log verifier key and a
TSA trust anchor that the caller supplies (or, saying so in the report, the bundle's own), in
the order of that document's "What tiezheng bundle verify checks", and stops at the first
failure with a message naming the file, entry or item at fault.

Originals may be gigabytes: they are hashed from the ZIP in chunks, never read whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Literal

from cryptography import x509

from core.clock import zulu
from ledger.entry import ZERO_HASH, Entry, decode_entry
from ledger.errors import BundleError, LedgerError
from ledger.merkle import hash_leaf, verify_inclusion
from ledger.note import Checkpoint, NoteVerifier, open_note
from ledger.tsa import load_pem_certificates, verify_response

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "EXPORT_FORMAT",
    "MAX_ZIP_ENTRIES",
    "BundleReport",
    "verify_bundle",
    "verify_md",
]

BUNDLE_FORMAT = "tiezheng-bundle"
"""``manifest.json`` field ``format``."""

BUNDLE_VERSION = 1
"""``manifest.json`` field ``version``."""

EXPORT_FORMAT = 1
"""``format`` of an ``export`` entry's payload."""

MAX_ZIP_ENTRIES = 100_000
"""Bundles with more ZIP members are refused before anything is read."""

MAX_SMALL_FILE = 64 << 20
"""Cap on a file read whole (manifest, entry, proof, checkpoint, keys, certificates)."""

_CHUNK = 1 << 20

# Files a bundle must hold, besides the per-entry, per-original and per-custody ones.
REQUIRED_FILES = (
    "manifest.json",
    "checkpoint",
    "checkpoint.tsr",
    "log.vkey",
    "tsa/ca.pem",
    "tsa/tsa.pem",
    "catalogue.html",
    "catalogue.pdf",
    "VERIFY.md",
)
# Directory members some ZIP tools add; they carry nothing and are ignored.
_DIRECTORIES = frozenset({"tsa/", "entries/", "proofs/", "files/", "custody/"})

_DECIMAL = r"(?:0|[1-9][0-9]{0,19})"
_ENTRY_NAME = re.compile(rf"entries/({_DECIMAL})\.json", re.ASCII)
_PROOF_NAME = re.compile(rf"proofs/({_DECIMAL})\.json", re.ASCII)
_FILE_NAME = re.compile(r"files/([0-9a-f]{64})", re.ASCII)
_CUSTODY_NAME = re.compile(r"custody/([0-9a-f]{64})\.csv", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_DRIVE = re.compile(r"[A-Za-z]:")

# What a damaged or hostile ZIP member can raise while it is read.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)

KeySource = Literal["given", "bundle"]


@dataclass(frozen=True)
class BundleReport:
    """The outcome of :func:`verify_bundle`: ``ok`` and, when not, the first ``failure``.

    Fields the verification did not reach before failing are ``None`` (or empty).
    """

    ok: bool
    failure: str | None
    """What failed, naming the file, entry index or item; ``None`` when ``ok``."""
    origin: str | None = None
    checkpoint_size: int | None = None
    checkpoint_root: str | None = None
    """Hex of the checkpoint's root hash."""
    timestamp: datetime | None = None
    """genTime of the verified RFC 3161 token on the checkpoint (UTC)."""
    export_index: int | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    """One per manifest item, from its signed evidence entry: no, index, sha256, sm3, size,
    kind, case."""
    trusted_key_source: KeySource | None = None
    """``given``: the checkpoint was checked against the caller's key; ``bundle``: only against
    the bundle's own ``log.vkey``."""
    trusted_tsa_source: KeySource | None = None
    """``given``: the token chains to the caller's CA; ``bundle``: to ``tsa/ca.pem``."""
    notes: list[str] = field(default_factory=list)
    """Warnings that do not fail the bundle (above all: which trust came from the bundle)."""
    checks: list[str] = field(default_factory=list)
    """The checks that passed, in order, one line each."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (timestamp in RFC 3339)."""
        return {
            "ok": self.ok,
            "failure": self.failure,
            "origin": self.origin,
            "checkpoint_size": self.checkpoint_size,
            "checkpoint_root": self.checkpoint_root,
            "timestamp": None if self.timestamp is None else _rfc3339(self.timestamp),
            "export_index": self.export_index,
            "items": [dict(item) for item in self.items],
            "trusted_key_source": self.trusted_key_source,
            "trusted_tsa_source": self.trusted_tsa_source,
            "notes": list(self.notes),
            "checks": list(self.checks),
        }

    def text(self) -> str:
        """A human-readable summary: the checks passed, the notes and the verdict."""
        lines = [f"ok: {line}" for line in self.checks]
        lines += [f"note: {note}" for note in self.notes]
        if self.failure is not None:
            lines.append(f"FAILED: {self.failure}")
        else:
            lines.append(
                f"bundle verified: {len(self.items)} item(s), checkpoint {self.origin} size "
                f"{self.checkpoint_size}, timestamp {_rfc3339(self.timestamp)}"
            )
        return "\n".join(lines) + "\n"


def _rfc3339(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return zulu(moment)


@dataclass(frozen=True)
class _Item:
    no: Any
    index: int
    sha256: str
    sm3: str
    size: int
    kind: Any
    case: Any
    custody: tuple[int, ...]


class _Verification:
    """One run of the checks; keeps what it learnt so that a failure still reports it."""

    def __init__(self, vkey: str | None, tsa_ca: Sequence[x509.Certificate] | None) -> None:
        self.vkey = vkey
        self.tsa_ca = tsa_ca
        self.origin: str | None = None
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_bytes = b""
        self.timestamp: datetime | None = None
        self.export_index: int | None = None
        self.key_source: KeySource | None = None
        self.tsa_source: KeySource | None = None
        self.notes: list[str] = []
        self.checks: list[str] = []
        self.items: list[dict[str, Any]] = []
        # Filled by the structural check.
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.entry_indexes: list[int] = []
        self.originals: set[str] = set()
        self.custody_files: set[str] = set()
        # Filled as entries and files are checked.
        self.entries: dict[int, Entry] = {}
        self.leaves: dict[int, bytes] = {}
        self.manifest: dict[str, Any] = {}
        self.hashed: dict[str, tuple[str, str | None, int]] = {}

    def report(self, failure: str | None) -> BundleReport:
        cp = self.checkpoint
        return BundleReport(
            ok=failure is None,
            failure=failure,
            origin=self.origin,
            checkpoint_size=None if cp is None else cp.size,
            checkpoint_root=None if cp is None else cp.root.hex(),
            timestamp=self.timestamp,
            export_index=self.export_index,
            items=self.items if failure is None else [],
            trusted_key_source=self.key_source,
            trusted_tsa_source=self.tsa_source,
            notes=self.notes,
            checks=self.checks,
        )

    # --- reading members ---------------------------------------------------------------------

    def read_small(self, zf: zipfile.ZipFile, name: str) -> bytes:
        info = self.members[name]
        if info.file_size > MAX_SMALL_FILE:
            raise BundleError(
                f"{name} is {info.file_size} bytes, more than the {MAX_SMALL_FILE} a bundle "
                "allows for it"
            )
        try:
            with zf.open(info) as f:
                return f.read(MAX_SMALL_FILE + 1)
        except _ZIP_ERRORS as exc:
            raise BundleError(f"{name} cannot be read from the ZIP (damaged?): {exc}") from None

    def hash_member(
        self, zf: zipfile.ZipFile, name: str, *, with_sm3: bool
    ) -> tuple[str, str | None, int]:
        """SHA-256 (and SM3) hex and size of a member, streamed in chunks."""
        sha = hashlib.sha256()
        sm3 = hashlib.new("sm3") if with_sm3 else None
        size = 0
        try:
            with zf.open(self.members[name]) as f:
                while chunk := f.read(_CHUNK):
                    sha.update(chunk)
                    if sm3 is not None:
                        sm3.update(chunk)
                    size += len(chunk)
        except _ZIP_ERRORS as exc:
            raise BundleError(f"{name} cannot be read from the ZIP (damaged?): {exc}") from None
        return sha.hexdigest(), None if sm3 is None else sm3.hexdigest(), size

    # --- the checks, in the order of docs/bundle.md -----------------------------------------

    def run(self, zf: zipfile.ZipFile) -> None:
        self.check_structure(zf)
        self.check_checkpoint(zf)
        self.check_timestamp(zf)
        self.check_entries(zf)
        self.check_chain()
        self.check_export(zf)
        self.check_files(zf)
        self.check_items()

    def check_structure(self, zf: zipfile.ZipFile) -> None:
        """1. Only safe, known, unique paths; every entry has its proof and the reverse."""
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise BundleError(f"the ZIP has {len(infos)} members, more than {MAX_ZIP_ENTRIES}")
        proofs: set[int] = set()
        entries: set[int] = set()
        for info in infos:
            name = _safe_name(info)
            if name in self.members:
                raise BundleError(f"the ZIP holds {name!r} twice")
            if info.flag_bits & 0x1:
                raise BundleError(f"{name} is encrypted")
            if info.is_dir():
                if name not in _DIRECTORIES or info.file_size:
                    raise BundleError(f"{name!r} is not a folder an evidence bundle may hold")
                self.members[name] = info
                continue
            self.members[name] = info
            if name in REQUIRED_FILES:
                continue
            if m := _ENTRY_NAME.fullmatch(name):
                entries.add(int(m[1]))
            elif m := _PROOF_NAME.fullmatch(name):
                proofs.add(int(m[1]))
            elif m := _FILE_NAME.fullmatch(name):
                self.originals.add(m[1])
            elif m := _CUSTODY_NAME.fullmatch(name):
                self.custody_files.add(m[1])
            else:
                raise BundleError(f"{name!r} is not a file an evidence bundle may hold")
        for required in REQUIRED_FILES:
            if required not in self.members:
                raise BundleError(f"{required} is missing from the bundle")
        if unproven := sorted(entries - proofs):
            i = unproven[0]
            raise BundleError(f"entries/{i}.json has no inclusion proof proofs/{i}.json")
        if orphans := sorted(proofs - entries):
            i = orphans[0]
            raise BundleError(f"proofs/{i}.json has no entry entries/{i}.json")
        if not entries:
            raise BundleError("the bundle holds no entries")
        self.entry_indexes = sorted(entries)
        files = sum(1 for info in infos if not info.is_dir())
        self.checks.append(f"ZIP well-formed: {files} files, all of them allowed")

    def check_checkpoint(self, zf: zipfile.ZipFile) -> None:
        """2. The checkpoint is a signed note by the given key, else by the bundle's own."""
        self.checkpoint_bytes = self.read_small(zf, "checkpoint")
        bundle_vkey = _text(self.read_small(zf, "log.vkey"), "log.vkey").strip()
        if self.vkey is None:
            self.key_source = "bundle"
            vkey, what = bundle_vkey, "log.vkey"
            self.notes.append(
                "trusting the bundle's own log key (log.vkey): pass --vkey with the log's key, "
                "obtained independently of this bundle, to check it"
            )
        else:
            self.key_source = "given"
            vkey, what = self.vkey.strip(), "the given verifier key"
            if bundle_vkey != vkey:
                self.notes.append(
                    f"the bundle's log.vkey ({bundle_vkey}) is not the key given; the checkpoint "
                    "was checked against the key given"
                )
        try:
            verifier = NoteVerifier.from_vkey(vkey)
        except LedgerError as exc:
            raise BundleError(f"{what} is not a valid verifier key: {exc.message}") from None
        try:
            note = open_note(self.checkpoint_bytes, [verifier])
            checkpoint = Checkpoint.from_text(note.text)
        except LedgerError as exc:
            raise BundleError(
                f"checkpoint: not signed by {what} {verifier.name}+{verifier.key_id.hex()}: "
                f"{exc.message}"
            ) from None
        if checkpoint.size == 0:
            raise BundleError("checkpoint: the tree it signs is empty")
        self.checkpoint = checkpoint
        self.origin = checkpoint.origin
        self.checks.append(
            f"checkpoint {checkpoint.origin} size {checkpoint.size} signed by "
            f"{verifier.name}+{verifier.key_id.hex()} ({self.key_source} key)"
        )

    def check_timestamp(self, zf: zipfile.ZipFile) -> None:
        """3. checkpoint.tsr stamps SHA-256 of the checkpoint and chains to the TSA anchor."""
        tsr = self.read_small(zf, "checkpoint.tsr")
        try:
            untrusted = load_pem_certificates(self.read_small(zf, "tsa/tsa.pem"))
        except LedgerError as exc:
            raise BundleError(f"tsa/tsa.pem: {exc.message}") from None
        if self.tsa_ca is None:
            self.tsa_source = "bundle"
            try:
                anchors = load_pem_certificates(self.read_small(zf, "tsa/ca.pem"))
            except LedgerError as exc:
                raise BundleError(f"tsa/ca.pem: {exc.message}") from None
            self.notes.append(
                "trusting the bundle's own TSA certificate (tsa/ca.pem): pass --tsa-ca with the "
                "TSA's CA certificate, obtained independently of this bundle, to check it"
            )
        else:
            self.tsa_source = "given"
            anchors = list(self.tsa_ca)
            if not anchors:
                raise BundleError("no TSA CA certificate given to check checkpoint.tsr against")
        what = "tsa/ca.pem" if self.tsa_source == "bundle" else "the given TSA CA"
        try:
            info = verify_response(
                tsr,
                digest=hashlib.sha256(self.checkpoint_bytes).digest(),
                trust_anchors=anchors,
                untrusted=untrusted,
            )
        except LedgerError as exc:
            raise BundleError(
                f"checkpoint.tsr: not a valid timestamp of checkpoint by a TSA chaining to "
                f"{what}: {exc.message}"
            ) from None
        self.timestamp = info.gen_time
        self.checks.append(
            f"checkpoint.tsr: timestamp {_rfc3339(info.gen_time)} by {info.tsa_name} "
            f"({self.tsa_source} TSA CA)"
        )

    def check_entries(self, zf: zipfile.ZipFile) -> None:
        """4. Canonical entries at the index of their name, each proven into the checkpoint."""
        assert self.checkpoint is not None
        size, root = self.checkpoint.size, self.checkpoint.root
        for index in self.entry_indexes:
            name = f"entries/{index}.json"
            data = self.read_small(zf, name)
            try:
                entry = decode_entry(data)
            except LedgerError as exc:
                raise BundleError(f"{name}: {exc.message}") from None
            except RecursionError:  # hostile nesting: the JSON parser gives up
                raise BundleError(f"{name}: entry is nested too deeply") from None
            if entry.index != index:
                raise BundleError(f"{name} holds entry index {entry.index}, not {index}")
            proof = _read_proof(self.read_small(zf, f"proofs/{index}.json"), index, size)
            leaf = hash_leaf(data)
            try:
                verify_inclusion(leaf, index, size, proof, root)
            except LedgerError as exc:
                raise BundleError(
                    f"proofs/{index}.json: the inclusion proof of {name} does not lead to the "
                    f"checkpoint's root: {exc.message}"
                ) from None
            self.entries[index] = entry
            self.leaves[index] = leaf
        self.checks.append(
            f"{len(self.entries)} entries canonical and included in the checkpoint "
            "(RFC 9162 inclusion proofs)"
        )

    def check_chain(self) -> None:
        """5. Entries with adjacent indexes are chained (prev = leaf hash of the one before)."""
        links = 0
        for index in self.entry_indexes:
            prev = self.entries[index].prev
            if index == 0:
                expected = ZERO_HASH
            elif index - 1 in self.leaves:
                expected = self.leaves[index - 1].hex()
            else:
                continue
            if prev != expected:
                before = (
                    "64 zeros (it is entry 0)"
                    if index == 0
                    else (f"{expected}, the leaf hash of entries/{index - 1}.json")
                )
                raise BundleError(
                    f"hash chain broken: entries/{index}.json has prev {prev}, expected {before}"
                )
            links += 1
        self.checks.append(f"hash chain holds between adjacent bundled entries ({links} links)")

    def check_export(self, zf: zipfile.ZipFile) -> None:
        """6. One export entry carries the manifest's SHA-256 and lists exactly its items."""
        exports = [i for i in self.entry_indexes if self.entries[i].type == "export"]
        if not exports:
            raise BundleError("no export entry: no entries/<index>.json is of type export")
        if len(exports) > 1:
            names = ", ".join(f"entries/{i}.json" for i in exports)
            raise BundleError(f"more than one export entry: {names}")
        index = exports[0]
        self.export_index = index
        name = f"entries/{index}.json"
        payload = self.entries[index].payload
        if set(payload) != {"manifest_sha256", "case", "items", "format"}:
            raise BundleError(
                f"{name}: an export payload has exactly manifest_sha256, case, items, format"
            )
        if payload["format"] != EXPORT_FORMAT:
            raise BundleError(f"{name}: export format {payload['format']!r} is not supported")
        manifest_bytes = self.read_small(zf, "manifest.json")
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        if payload["manifest_sha256"] != digest:
            raise BundleError(
                f"manifest.json: its SHA-256 {digest} is not the manifest_sha256 "
                f"{payload['manifest_sha256']} of the export entry {name}"
            )
        manifest = _parse_manifest(manifest_bytes)
        if manifest["origin"] != self.origin:
            raise BundleError(
                f"manifest.json: origin {manifest['origin']!r} is not the checkpoint's "
                f"{self.origin!r}"
            )
        if payload["case"] != manifest["case"]:
            raise BundleError(
                f"{name}: export case {payload['case']!r} is not the manifest's "
                f"{manifest['case']!r}"
            )
        listed = [item.index for item in manifest["items"]]
        exported = payload["items"]
        if (
            not isinstance(exported, list)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in exported)
            or sorted(exported) != sorted(listed)
            or len(set(exported)) != len(exported)
        ):
            raise BundleError(
                f"{name}: export items {exported!r} are not the manifest's item indexes {listed}"
            )
        self.manifest = manifest
        self.checks.append(
            f"export entry {index} carries the SHA-256 of manifest.json and its {len(listed)} "
            "item(s)"
        )

    def check_files(self, zf: zipfile.ZipFile) -> None:
        """7. Every other file is listed in the manifest with its SHA-256; none missing/extra."""
        assert self.export_index is not None
        unlisted = {"manifest.json", "checkpoint", "checkpoint.tsr"}
        unlisted.add(f"entries/{self.export_index}.json")
        unlisted.update(f"proofs/{i}.json" for i in self.entry_indexes)
        files: dict[str, str] = self.manifest["files"]
        for path in sorted(files):
            if path in unlisted:
                raise BundleError(
                    f"manifest.json lists {path}, which can only exist after the export entry "
                    "and must not be listed"
                )
        present = {n for n, info in self.members.items() if not info.is_dir()} - unlisted
        if missing := sorted(set(files) - present):
            raise BundleError(
                f"{missing[0]} is listed in manifest.json but missing from the bundle"
            )
        if extra := sorted(present - set(files)):
            raise BundleError(f"{extra[0]} is in the bundle but not listed in manifest.json")
        # Small files first: a tampered catalogue fails before gigabytes of video are hashed.
        for path in sorted(files, key=lambda p: (p.startswith("files/"), p)):
            digest = self.hash_member(zf, path, with_sm3=path.startswith("files/"))
            self.hashed[path] = digest
            if digest[0] != files[path]:
                raise BundleError(
                    f"{path}: its SHA-256 is {digest[0]}, manifest.json lists {files[path]}"
                )
        self.checks.append(f"{len(files)} files match the SHA-256 listed in manifest.json")

    def check_items(self) -> None:
        """8. Each item's evidence entry and original agree on SHA-256, SM3, size, kind, case."""
        referenced = {self.export_index}
        items: list[_Item] = self.manifest["items"]
        for item in items:
            what = f"item no. {item.no} (entry {item.index})"
            entry = self.entries.get(item.index)
            if entry is None:
                raise BundleError(f"{what}: entries/{item.index}.json is not in the bundle")
            if entry.type != "evidence":
                raise BundleError(
                    f"{what}: entries/{item.index}.json is a {entry.type} entry, not evidence"
                )
            referenced.add(item.index)
            payload = entry.payload
            for key in ("sha256", "sm3", "size", "kind", "case"):
                listed, signed = getattr(item, key), payload.get(key)
                if listed != signed or type(listed) is not type(signed):
                    raise BundleError(
                        f"{what}: manifest.json gives {key} {listed!r}, its evidence entry "
                        f"entries/{item.index}.json {signed!r}"
                    )
            path = f"files/{item.sha256}"
            if path not in self.hashed:
                raise BundleError(f"{what}: its original {path} is not in the bundle")
            sha256, sm3, size = self.hashed[path]
            for key, actual, expected in (
                ("SHA-256", sha256, item.sha256),
                ("SM3", sm3, item.sm3),
                ("size", size, item.size),
            ):
                if actual != expected:
                    raise BundleError(
                        f"{path}: its {key} is {actual}, the evidence entry "
                        f"entries/{item.index}.json says {expected}"
                    )
            if f"custody/{item.sha256}.csv" not in self.members:
                raise BundleError(f"{what}: custody/{item.sha256}.csv is missing")
            for index in item.custody:
                custody = self.entries.get(index)
                if custody is None:
                    raise BundleError(
                        f"{what}: its custody entry entries/{index}.json is not in the bundle"
                    )
                if custody.type != "custody" or custody.payload.get("sha256") != item.sha256:
                    raise BundleError(
                        f"{what}: entries/{index}.json is not a custody entry about {path}"
                    )
                referenced.add(index)
            self.items.append(
                {
                    "no": item.no,
                    "index": item.index,
                    "sha256": sha256,
                    "sm3": sm3,
                    "size": size,
                    "kind": payload.get("kind"),
                    "case": payload.get("case"),
                }
            )
        shas = {item.sha256 for item in items}
        if stray := sorted(self.originals - shas):
            raise BundleError(f"files/{stray[0]} is not the original of any item")
        if stray := sorted(self.custody_files - shas):
            raise BundleError(f"custody/{stray[0]}.csv is not the custody trail of any item")
        if stray_entries := [i for i in self.entry_indexes if i not in referenced]:
            raise BundleError(
                f"entries/{stray_entries[0]}.json is neither an item's evidence entry, a listed "
                "custody entry nor the export entry"
            )
        self.checks.append(
            f"{len(items)} item(s): each original has its evidence entry's SHA-256, SM3 and size"
        )


def _safe_name(info: zipfile.ZipInfo) -> str:
    """The member's name, or BundleError for anything that could escape or confuse a folder."""
    name = info.filename
    if info.orig_filename != name:
        # zipfile cuts names at NUL (and would turn os.sep into '/' elsewhere).
        raise BundleError(f"ZIP member name {info.orig_filename!r} holds a NUL character")
    if "\\" in name:
        raise BundleError(f"ZIP member name {name!r} holds a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise BundleError(f"ZIP member name {name!r} is an absolute path")
    parts = name.split("/")
    if name.endswith("/"):
        parts = parts[:-1]
    if any(part in ("", ".", "..") for part in parts):
        raise BundleError(f"ZIP member name {name!r} has an empty, '.' or '..' component")
    if info.create_system == 3:  # Unix: the mode is in the high 16 bits (APPNOTE 4.4.15)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleError(f"ZIP member {name!r} is a symbolic link or special file")
    return name


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{what} is not UTF-8 text") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BundleError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(_text(data, what), object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BundleError(f"{what} is nested too deeply") from None
    except BundleError as exc:
        raise BundleError(f"{what}: {exc.message}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_proof(data: bytes, index: int, size: int) -> list[bytes]:
    """Parse proofs/<index>.json: exactly index, tree_size (= the checkpoint's) and hashes."""
    name = f"proofs/{index}.json"
    proof = _json(data, name)
    if not isinstance(proof, dict) or set(proof) != {"index", "tree_size", "hashes"}:
        raise BundleError(f"{name} must be an object with exactly index, tree_size and hashes")
    if proof["index"] != index or not _is_int(proof["index"]):
        raise BundleError(f"{name} proves index {proof['index']!r}, not {index}")
    if proof["tree_size"] != size or not _is_int(proof["tree_size"]):
        raise BundleError(
            f"{name}: tree_size {proof['tree_size']!r} is not the checkpoint's size {size}"
        )
    hashes = proof["hashes"]
    if not isinstance(hashes, list) or not all(
        isinstance(h, str) and _HEX64.fullmatch(h) for h in hashes
    ):
        raise BundleError(f"{name}: hashes must be a list of 64 lowercase hex digits each")
    return [bytes.fromhex(h) for h in hashes]


def _parse_manifest(data: bytes) -> dict[str, Any]:
    """manifest.json, strictly enough that every later check reads well-typed values."""
    manifest = _json(data, "manifest.json")
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json is not a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"manifest.json: format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r} is not {BUNDLE_FORMAT} version {BUNDLE_VERSION}"
        )
    for key in ("origin", "case", "items", "files"):
        if key not in manifest:
            raise BundleError(f"manifest.json has no {key!r}")
    if not isinstance(manifest["origin"], str):
        raise BundleError("manifest.json: origin is not a string")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(
        isinstance(v, str) and _HEX64.fullmatch(v) for v in files.values()
    ):
        raise BundleError("manifest.json: files must map paths to 64 lowercase hex digits")
    raw_items = manifest["items"]
    if not isinstance(raw_items, list) or not raw_items:
        raise BundleError("manifest.json: items must be a non-empty list")
    items: list[_Item] = []
    for number, raw in enumerate(raw_items, start=1):
        items.append(_parse_item(raw, number))
    if len({item.index for item in items}) != len(items):
        raise BundleError("manifest.json lists an entry index as two items")
    return {**manifest, "items": items}


def _parse_item(raw: Any, number: int) -> _Item:
    what = f"manifest.json item {number}"
    if not isinstance(raw, dict):
        raise BundleError(f"{what} is not an object")
    for key in ("index", "sha256", "sm3", "size", "kind", "case"):
        if key not in raw:
            raise BundleError(f"{what} has no {key!r}")
    if not _is_int(raw["index"]) or not _is_int(raw["size"]):
        raise BundleError(f"{what}: index and size must be non-negative integers")
    for key in ("sha256", "sm3"):
        if not isinstance(raw[key], str) or not _HEX64.fullmatch(raw[key]):
            raise BundleError(f"{what}: {key} must be 64 lowercase hex digits")
    custody = raw.get("custody", [])
    if not isinstance(custody, list) or not all(_is_int(i) for i in custody):
        raise BundleError(f"{what}: custody must be a list of entry indexes")
    return _Item(
        no=raw.get("no", number),
        index=raw["index"],
        sha256=raw["sha256"],
        sm3=raw["sm3"],
        size=raw["size"],
        kind=raw["kind"],
        case=raw["case"],
        custody=tuple(custody),
    )


def _open_zip(source: str | os.PathLike[str] | bytes) -> zipfile.ZipFile:
    what = "the bundle" if isinstance(source, bytes) else os.fspath(source)
    fileobj: BinaryIO | str
    try:
        fileobj = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        return zipfile.ZipFile(fileobj)
    except OSError as exc:
        raise BundleError(f"cannot read {what}: {exc.strerror or exc}") from None
    except (*_ZIP_ERRORS, TypeError) as exc:
        raise BundleError(f"{what} is not a ZIP file, or it is truncated: {exc}") from None


def verify_bundle(
    source: str | os.PathLike[str] | bytes,
    *,
    vkey: str | None = None,
    tsa_ca: Sequence[x509.Certificate] | None = None,
) -> BundleReport:
    """Verify an evidence bundle (a path or the ZIP's bytes) offline; never raises for its content.

    ``vkey`` is the log's verifier key (``name+keyid+base64``) and ``tsa_ca`` the TSA trust
    anchors, both obtained independently of the bundle; when either is ``None`` the bundle's own
    ``log.vkey`` / ``tsa/ca.pem`` is trusted and the report's ``notes`` say so. The report has
    ``ok`` and, on the first failed check, ``failure`` naming what failed.
    """
    run = _Verification(vkey, tsa_ca)
    try:
        with _open_zip(source) as zf:
            run.run(zf)
    except BundleError as exc:
        return run.report(exc.message)
    return run.report(None)


# --- VERIFY.md -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A Markdown table cell: no line breaks, pipes escaped."""
    text = "—" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _checked_hex(item: Mapping[str, Any], key: str) -> str:
    # These values go into shell here-documents: anything but hex could end one early.
    value = item.get(key)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise BundleError(f"item {item.get('no')!r}: {key} must be 64 lowercase hex digits")
    return value


_PROOF_SCRIPT = r'''python3 - <<'PY'
import base64, hashlib, json, pathlib, sys

def root_from_proof(leaf, index, size, proof):
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        raise ValueError("index out of range")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("proof too short")
    return r

lines = pathlib.Path("checkpoint").read_text("utf-8").split("\n")
size, root = int(lines[1]), base64.b64decode(lines[2])
failed = False
for path in sorted(pathlib.Path("entries").glob("*.json"), key=lambda p: int(p.stem)):
    index, data = int(path.stem), path.read_bytes()
    leaf = hashlib.sha256(b"\x00" + data).digest()
    before = pathlib.Path("entries", f"{index - 1}.json")
    try:
        proof = json.loads(pathlib.Path("proofs", path.name).read_text())
        ok = (proof["index"] == index and proof["tree_size"] == size and root_from_proof(
            leaf, index, size, [bytes.fromhex(h) for h in proof["hashes"]]) == root)
        if before.exists():  # hash chain: prev = leaf hash of the entry before
            ok = ok and json.loads(data)["prev"] == hashlib.sha256(
                b"\x00" + before.read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    print(f"{path}: {'OK' if ok else 'FAILED'}")
    failed = failed or not ok
sys.exit(1 if failed else 0)
PY'''

# The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 section 4), in octal for printf.
_ED25519_SPKI_PREFIX = r"\060\052\060\005\006\003\053\145\160\003\041\000"


def verify_md(origin: str, checkpoint_size: int, items: Sequence[Mapping[str, Any]]) -> str:
    """The text of a bundle's ``VERIFY.md``, in Chinese with English beside it.

    ``checkpoint_size`` is the log's size when the bundle was made, before its ``export`` entry
    was appended: VERIFY.md is listed in the manifest, so it is written before that entry and
    the bundled checkpoint (whose size is therefore larger) exist. ``items`` are the manifest's
    items (``no``, ``index``, ``sha256``, ``sm3``, ``kind``, ``case``). Every shell block runs as
    it stands in the unpacked bundle and fails (non-zero exit) when its check fails.
    """
    if not isinstance(checkpoint_size, int) or checkpoint_size < 0:
        raise BundleError("checkpoint_size must be a non-negative integer")
    rows: list[str] = []
    sha_lines: list[str] = []
    sm3_lines: list[str] = []
    for number, item in enumerate(items, start=1):
        sha, sm3 = _checked_hex(item, "sha256"), _checked_hex(item, "sm3")
        rows.append(
            f"| {_cell(item.get('no', number))} | {_cell(item.get('index'))} | "
            f"{_cell(item.get('kind'))} | {_cell(item.get('case'))} | `{sha}` | `{sm3}` |"
        )
        if f"{sha}  files/{sha}" not in sha_lines:
            sha_lines.append(f"{sha}  files/{sha}")
            sm3_lines.append(f"{sm3} files/{sha}")
    nl = "\n"
    return f"""# 证据包核验说明 / How to verify this evidence bundle

本证据包导出自铁证（Tiezheng）日志 `{_cell(origin)}`。核验无需联网，也无需铁证系统：
`sha256sum`、`openssl`（3.0 或更高版本）和 `python3` 即可。请先解压本证据包，然后在解压后的
目录中依次运行下列命令；每条命令在核验失败时会报告 FAILED 或以非零状态退出。

This bundle was exported from the Tiezheng log `{_cell(origin)}`. Verifying it needs no network
and no Tiezheng: `sha256sum`, `openssl` (3.0 or later) and `python3` are enough. Unzip the
bundle and run the commands below, in order, inside the unzipped folder; each reports FAILED or
exits with a non-zero status when its check fails.

导出时日志共有 {checkpoint_size} 条记录。随附的检查点 `checkpoint` 还涵盖此后追加的导出记录，
因此其树大小（第二行）大于 {checkpoint_size}。

When the bundle was made the log held {checkpoint_size} entries. The bundled `checkpoint` also
covers the export entry appended after them, so its tree size (second line) is larger than
{checkpoint_size}.

## 证据清单 / Items

| 序号 No. | 记录 Entry | 类型 Kind | 案件 Case | SHA-256 | SM3 |
|---|---|---|---|---|---|
{nl.join(rows)}

## 1. 原件 / The originals

每个原件以其 SHA-256 命名，位于 `files/` 目录。以下命令重新计算每个原件的 SHA-256，
每行应显示 `OK`：

Each original is in `files/`, named by its SHA-256. This recomputes the SHA-256 of each; every
line must say `OK`:

```sh
sha256sum -c <<'LIST'
{nl.join(sha_lines)}
LIST
```

不依赖本说明的写法：检查 `files/` 下每个文件的内容与其文件名一致。

The same without relying on this text: every file in `files/` against its own name.

```sh
for f in files/*; do printf '%s  %s\\n' "${{f#files/}}" "$f"; done | sha256sum -c
```

SM3（GB/T 32905，国内司法存证平台使用的杂凑算法）：

SM3 (GB/T 32905, the hash Chinese judicial evidence platforms use):

```sh
(
while read -r sm3 f; do
  if [ "$(openssl dgst -sm3 -r "$f" | cut -d' ' -f1)" = "$sm3" ]; then echo "$f: SM3 OK"
  else echo "$f: SM3 FAILED"; exit 1; fi
done <<'LIST'
{nl.join(sm3_lines)}
LIST
)
```

## 2. 清单与导出记录 / The manifest and the export entry

`manifest.json` 列出本包中其他每个文件的 SHA-256（`checkpoint`、`checkpoint.tsr`、
`proofs/*.json` 和导出记录本身除外：它们在导出记录之后才产生，且各自可独立核验）。
逐一核对：

`manifest.json` lists the SHA-256 of every other file in the bundle (except `checkpoint`,
`checkpoint.tsr`, `proofs/*.json` and the export entry itself, which only exist after the
export entry and verify by themselves). Check them all:

```sh
python3 -c 'import json
for path, digest in json.load(open("manifest.json", encoding="utf-8"))["files"].items():
    print(f"{{digest}}  {{path}}")' | sha256sum -c
```

导出记录（`entries/` 中类型为 `export` 的记录）载有 `manifest.json` 的 SHA-256；检查点涵盖
该记录，因此清单及其列出的每个文件都受签名保护：

The export entry (the one in `entries/` of type `export`) carries the SHA-256 of
`manifest.json`; the checkpoint covers that entry, so the manifest and every file it lists are
under the log's signature:

```sh
(
e=$(grep -l '"type":"export"' entries/*.json)
m=$(sha256sum manifest.json | cut -d' ' -f1)
if grep -q "\\"manifest_sha256\\":\\"$m\\"" $e; then echo "manifest.json: OK ($e)"
else echo "manifest.json: FAILED"; exit 1; fi
)
```

## 3. 时间戳 / The timestamp (RFC 3161)

`checkpoint.tsr` 是对 `checkpoint` 文件原样字节的 SHA-256 所做的 RFC 3161 时间戳，应显示
`Verification: OK`：

`checkpoint.tsr` is an RFC 3161 timestamp over the SHA-256 of the exact bytes of `checkpoint`;
this must print `Verification: OK`:

```sh
openssl ts -verify -data checkpoint -in checkpoint.tsr -CAfile tsa/ca.pem -untrusted tsa/tsa.pem
```

时间戳时间：`openssl ts -reply -in checkpoint.tsr -text`（`Time stamp:` 一行）。若时间戳服务
（TSA）的证书此后已过期，请按盖戳时间核验（`-attime`，此处用 GNU `date` 换算）：

The time of the stamp: `openssl ts -reply -in checkpoint.tsr -text` (the `Time stamp:` line).
If the TSA's certificate has expired since, verify as of the time of the stamp (`-attime`,
converted here with GNU `date`):

```sh
t=$(openssl ts -reply -in checkpoint.tsr -text | sed -n 's/^Time stamp: //p')
openssl ts -verify -data checkpoint -in checkpoint.tsr -CAfile tsa/ca.pem \\
  -untrusted tsa/tsa.pem -attime "$(date -u -d "$t" +%s)"
```

`tsa/ca.pem` 随证据包提供，只能说明包内自洽。请改用从时间戳服务机构处独立获得的根证书作为
`-CAfile`。内置时间戳服务的时间并不独立于系统运营方；用于诉讼时应使用有资质的第三方时间戳服务。

`tsa/ca.pem` comes with the bundle and only shows that the bundle is consistent. Use instead,
as `-CAfile`, the CA certificate obtained from the TSA itself. The built-in TSA gives no time
independent of the operator; for court use a licensed third-party TSA.

## 4. 检查点签名 / The checkpoint signature (Ed25519)

`checkpoint` 是 C2SP 签名注记（signed note）：正文为日志标识（origin）、树大小、Base64 根哈希
各占一行，随后是一个空行和签名行 `— <密钥名> <Base64(4 字节密钥 ID ‖ 64 字节 Ed25519 签名)>`。
签名覆盖正文（含末尾换行符）。`log.vkey` 为 `<密钥名>+<密钥 ID 十六进制>+<Base64(0x01 ‖ 32
字节公钥)>`，密钥 ID 为 SHA-256(密钥名 ‖ 换行 ‖ 0x01 ‖ 公钥) 的前 4 字节。

`checkpoint` is a C2SP signed note: its text is the log's origin, the tree size and the base64
root hash, one per line; then an empty line and the signature line
`— <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>`. The signature covers the
text including its final newline. `log.vkey` is
`<key name>+<hex key ID>+<base64(0x01 || 32-byte public key)>`; the key ID is the first 4 bytes
of SHA-256(key name || newline || 0x01 || public key).

以下命令核对密钥 ID，并用 `openssl pkeyutl` 验证签名，应显示 `Signature Verified Successfully`：

This checks the key ID and verifies the signature with `openssl pkeyutl`; it must print
`Signature Verified Successfully`:

```sh
(
set -e
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
name=$(cut -d+ -f1 log.vkey)
cut -d+ -f3- log.vkey | base64 -d > "$t/vkey.raw"
id=$({{ printf '%s\\n' "$name"; cat "$t/vkey.raw"; }} | sha256sum | cut -c1-8)
sed '1,/^$/d' checkpoint | grep -F -- "— $name " | head -n 1 | cut -d' ' -f3 | base64 -d \\
  > "$t/sig.raw"
sig_id=$(head -c 4 "$t/sig.raw" | od -An -tx1 | tr -d ' \\n')
if [ "$id" != "$(cut -d+ -f2 log.vkey)" ] || [ "$id" != "$sig_id" ]; then
  echo "log.vkey: key ID FAILED"; exit 1; fi
{{ printf '{_ED25519_SPKI_PREFIX}'; tail -c 32 "$t/vkey.raw"; }} > "$t/key.der"
tail -c 64 "$t/sig.raw" > "$t/sig.bin"
sed '/^$/,$d' checkpoint > "$t/note.txt"
openssl pkeyutl -verify -pubin -keyform DER -inkey "$t/key.der" -rawin -in "$t/note.txt" \\
  -sigfile "$t/sig.bin"
)
```

`log.vkey` 同样随证据包提供。请与日志运营方公布的验证密钥逐字比对，或将其交给
`tiezheng bundle verify --vkey`。

`log.vkey` too comes with the bundle. Compare it character by character with the verifier key
the log's operator publishes, or give that key to `tiezheng bundle verify --vkey`.

## 5. 包含证明与哈希链 / Inclusion proofs and the hash chain (RFC 9162)

`entries/<序号>.json` 是日志记录的原样字节；叶哈希为 SHA-256(0x00 ‖ 记录字节)，内部节点为
SHA-256(0x01 ‖ 左 ‖ 右)。`proofs/<序号>.json` 是该记录到检查点根哈希的包含证明（RFC 9162
第 2.1.3.2 节）。序号相邻的记录还应互相链接：后一条的 `prev` 等于前一条的叶哈希
（`{{ printf '\\000'; cat entries/N.json; }} | sha256sum`）。以下脚本逐条核验，应全部显示 `OK`：

`entries/<index>.json` are the exact bytes of log entries; a leaf hash is
SHA-256(0x00 || entry bytes), an interior node SHA-256(0x01 || left || right).
`proofs/<index>.json` is the entry's inclusion proof to the checkpoint's root hash (RFC 9162
section 2.1.3.2). Entries with adjacent indexes must also be chained: the later one's `prev` is
the earlier one's leaf hash (`{{ printf '\\000'; cat entries/N.json; }} | sha256sum`). This
checks every entry; each line must say `OK`:

```sh
{_PROOF_SCRIPT}
```

## 6. 用铁证核验 / With Tiezheng

```text
tiezheng bundle verify FILE.zip [--vkey VKEY] [--tsa-ca FILE]
```

一条命令完成以上全部检查，并核对每个证据记录与原件的 SHA-256、SM3 和大小。未给出 `--vkey`
或 `--tsa-ca` 时，它只能信任证据包自带的 `log.vkey` 或 `tsa/ca.pem`，并会明确提示。

One command does all of the above, and checks each evidence entry against its original's
SHA-256, SM3 and size. Without `--vkey` or `--tsa-ca` it can only trust the bundle's own
`log.vkey` or `tsa/ca.pem`, and says so.
"""
