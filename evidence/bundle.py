"""Exporting evidence bundles (the format is docs/bundle.md; the verifier is ledger.bundle).

Order matters, because everything in the bundle must be covered by the log's signature:
1. one ``custody`` entry (action ``export``) per original, so each trail shows this export;
2. the listed files (entries, originals, custody trails, catalogue, VERIFY.md, keys and TSA
   certificates) and ``manifest.json`` with their SHA-256;
3. the ``export`` entry carrying SHA-256(manifest.json);
4. a checkpoint covering it, and its RFC 3161 token (the bundle needs a granted one);
5. inclusion proofs of every bundled entry to that checkpoint, and the ZIP, written to a
   temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.clock import rfc3339, zulu
from evidence.catalogue import CatalogueInfo, CatalogueItem, render_html, render_pdf
from evidence.errors import EvidenceError
from evidence.models import EvidenceItem
from evidence.service import EvidenceService, InvalidEvidenceInput, check_ref, custody_csv
from ledger.bundle import verify_md
from ledger.models import StoredCheckpoint
from ledger.service import Ledger

FORMAT = "tiezheng-bundle"
VERSION = 1
_CHUNK = 1 << 20


class ExportError(EvidenceError):
    """A bundle could not be made (nothing was written)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    case: str | None
    items: list[int]
    export_index: int
    checkpoint_size: int
    manifest_sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "case": self.case,
            "items": self.items,
            "export_index": self.export_index,
            "checkpoint_size": self.checkpoint_size,
            "manifest_sha256": self.manifest_sha256,
            "bytes": self.size,
        }


@dataclass(frozen=True)
class _Original:
    """An original to stream from the store into the ZIP (never held in memory)."""

    sha256: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_name(case: str) -> str:
    """A safe file name for a case's bundle (case references are printable, no slashes)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case).strip("._") or "case"
    return f"{safe}.zip"


class BundleExporter:
    def __init__(
        self,
        *,
        evidence: EvidenceService,
        ledger: Ledger,
        origin: str,
        vkey: str,
        builtin_tsa_dir: Path,
    ) -> None:
        self.evidence = evidence
        self.ledger = ledger
        self.origin = origin
        self.vkey = vkey
        self.builtin_tsa_dir = builtin_tsa_dir

    # -- selection ---------------------------------------------------------------------------

    def select(self, *, case: str | None, indexes: Sequence[int] | None) -> list[EvidenceItem]:
        if (case is None) == (not indexes):
            raise InvalidEvidenceInput("name either a case or one or more entry indexes")
        if case is not None:
            check_ref(case)
            items = self.evidence.items_for_case(case)
            if not items:
                raise InvalidEvidenceInput(f"case {case!r} has no evidence")
            return items
        assert indexes is not None
        return [self.evidence.item(i) for i in sorted(set(indexes))]

    # -- export ------------------------------------------------------------------------------

    def export(
        self,
        out: Path,
        *,
        actor: str,
        case: str | None = None,
        indexes: Sequence[int] | None = None,
        reason: str | None = None,
    ) -> ExportResult:
        items = self.select(case=case, indexes=indexes)
        if out.exists():
            raise InvalidEvidenceInput(f"{out} exists; refusing to overwrite it")
        if not out.parent.is_dir():
            raise InvalidEvidenceInput(f"{out.parent} is not a directory")
        request = uuid.uuid4().hex
        why = reason or (f"evidence bundle for case {case}" if case else "evidence bundle")
        for sha in sorted({i.sha256 for i in items}):
            self.evidence.record_custody(
                sha, "export", actor, reason=why, request=request, acknowledge=False
            )
        ca_pem, tsa_pem = self._expected_tsa_certs()
        for _attempt in range(3):
            built = self._build(items, case=case, actor=actor, ca_pem=ca_pem, tsa_pem=tsa_pem)
            manifest_bytes, listed = built
            manifest_sha = _sha256(manifest_bytes)
            export = self.ledger.append_durable(
                "export",
                {
                    "manifest_sha256": manifest_sha,
                    "case": case,
                    "items": [i.entry_index for i in items],
                    "format": VERSION,
                },
                actor,
            )
            cp = self.ledger.ensure_checkpoint(export.index + 1)
            self.ledger.wait_timestamp(cp.size)
            token = self.ledger.token(cp.size)
            if token is None:
                raise ExportError(
                    "the checkpoint covering this export has no RFC 3161 timestamp yet (the "
                    "timestamp authority did not answer); no bundle was written. Try again, "
                    "or run `tiezheng ledger stamp-pending` first"
                )
            if (token.ca_pem.strip(), token.tsa_pem.strip()) == (ca_pem.strip(), tsa_pem.strip()):
                break
            # Another TSA (a fail-over) stamped it: rebuild with its certificates.
            ca_pem, tsa_pem = token.ca_pem, token.tsa_pem
        else:
            raise ExportError("the timestamp authority's certificates keep changing; retry")
        size = self._write_zip(
            out, listed, manifest_bytes, export.index, export.data, cp, token.response, items
        )
        return ExportResult(
            path=out,
            case=case,
            items=[i.entry_index for i in items],
            export_index=export.index,
            checkpoint_size=cp.size,
            manifest_sha256=manifest_sha,
            size=size,
        )

    def _expected_tsa_certs(self) -> tuple[str, str]:
        """The certificates of the TSA most likely to stamp the next checkpoint."""
        token = self.ledger.latest_token()
        if token is not None and token.tsa == self.ledger.tsa_label:
            return token.ca_pem, token.tsa_pem
        ca = self.builtin_tsa_dir / "ca.pem"
        tsa = self.builtin_tsa_dir / "tsa.pem"
        if ca.exists() and tsa.exists():
            return ca.read_text(), tsa.read_text()
        return "", ""

    def _build(
        self,
        items: list[EvidenceItem],
        *,
        case: str | None,
        actor: str,
        ca_pem: str,
        tsa_pem: str,
    ) -> tuple[bytes, dict[str, bytes | _Original]]:
        """The listed files (path -> bytes, or Path of an original) and manifest.json."""
        listed: dict[str, bytes | _Original] = {}
        created = rfc3339(self.ledger.clock.now())
        manifest_items = []
        catalogue_items = []
        entry_indexes: set[int] = set()
        for no, item in enumerate(items, start=1):
            first = self.ledger.covering_checkpoint(item.entry_index)
            token = self.ledger.token(first.size) if first is not None else None
            stamp = zulu(token.gen_time) if token is not None else None
            custody = [e.entry_index for e in self.evidence.custody(item.sha256)]
            entry_indexes.add(item.entry_index)
            entry_indexes.update(custody)
            manifest_items.append(
                {
                    "no": no,
                    "index": item.entry_index,
                    "sha256": item.sha256,
                    "sm3": item.sm3,
                    "size": item.size,
                    "media_type": item.media_type,
                    "kind": item.kind,
                    "case": item.case_ref,
                    "filename": item.filename,
                    "purpose": item.purpose,
                    "uploaded": zulu(item.uploaded_at),
                    "checkpoint_size": first.size if first is not None else None,
                    "timestamp": stamp,
                    "custody": custody,
                }
            )
            duration = item.media.get("duration_s") if item.media else None
            catalogue_items.append(
                CatalogueItem(
                    no=no,
                    index=item.entry_index,
                    kind=item.kind,
                    case=item.case_ref,
                    uploaded=zulu(item.uploaded_at),
                    sha256=item.sha256,
                    sm3=item.sm3,
                    size=item.size,
                    media_type=item.media_type,
                    filename=item.filename,
                    purpose=item.purpose,
                    checkpoint_size=first.size if first is not None else None,
                    timestamp=stamp,
                    actor=item.uploader,
                    duration_s=float(duration) if isinstance(duration, int | float) else None,
                )
            )
            listed[f"files/{item.sha256}"] = _Original(item.sha256)
            listed[f"custody/{item.sha256}.csv"] = custody_csv(
                self.evidence.custody_rows(item.sha256)
            ).encode()
        for index in sorted(entry_indexes):
            listed[f"entries/{index}.json"] = self.ledger.entry(index)
        latest = self.ledger.latest_token()
        latest_stamp = zulu(latest.gen_time) if latest is not None else None
        info = CatalogueInfo(
            case=case,
            origin=self.origin,
            created=created,
            bundle_checkpoint_size=self.ledger.size(),
            bundle_timestamp=latest_stamp,
            exported_by=actor,
        )
        listed["catalogue.html"] = render_html(info, catalogue_items).encode()
        listed["catalogue.pdf"] = render_pdf(info, catalogue_items)
        listed["VERIFY.md"] = verify_md(self.origin, self.ledger.size(), manifest_items).encode()
        listed["log.vkey"] = (self.vkey + "\n").encode()
        listed["tsa/ca.pem"] = ca_pem.encode()
        listed["tsa/tsa.pem"] = tsa_pem.encode()
        hashes = {}
        for path, content in sorted(listed.items()):
            hashes[path] = content.sha256 if isinstance(content, _Original) else _sha256(content)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": created,
            "origin": self.origin,
            "case": case,
            "items": manifest_items,
            "files": hashes,
        }
        data = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
        return data.encode(), listed

    def _write_zip(
        self,
        out: Path,
        listed: dict[str, bytes | _Original],
        manifest: bytes,
        export_index: int,
        export_data: bytes,
        cp: StoredCheckpoint,
        tsr: bytes,
        items: list[EvidenceItem],
    ) -> int:
        entries = sorted(
            {int(p.split("/")[1].removesuffix(".json")) for p in listed if p.startswith("entries/")}
            | {export_index}
        )
        proofs: dict[str, bytes] = {}
        for index in entries:
            size, hashes = self.ledger.prove_inclusion(index, cp.size)
            proofs[f"proofs/{index}.json"] = (
                json.dumps({"index": index, "tree_size": size, "hashes": [h.hex() for h in hashes]})
                + "\n"
            ).encode()
        tmp = out.with_name(out.name + ".part")
        try:
            with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
                self._put(zf, "manifest.json", manifest)
                self._put(zf, "checkpoint", cp.note)
                self._put(zf, "checkpoint.tsr", tsr)
                self._put(zf, f"entries/{export_index}.json", export_data)
                for path, content in sorted(listed.items()):
                    if isinstance(content, _Original):
                        self._put_original(zf, path, content.sha256)
                    else:
                        self._put(zf, path, content)
                for path, content in sorted(proofs.items()):
                    self._put(zf, path, content)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            tmp.rename(out)
        finally:
            tmp.unlink(missing_ok=True)
        return out.stat().st_size

    @staticmethod
    def _info(path: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o444 << 16
        return info

    def _put(self, zf: zipfile.ZipFile, path: str, data: bytes) -> None:
        zf.writestr(self._info(path, compress=True), data)

    def _put_original(self, zf: zipfile.ZipFile, path: str, sha256: str) -> None:
        # Originals are mostly compressed media: store them as they are, streamed.
        with (
            self.evidence.store.open(sha256) as src,
            zf.open(self._info(path, compress=False), "w", force_zip64=True) as dst,
        ):
            while chunk := src.read(_CHUNK):
                dst.write(chunk)


def export_cases(
    exporter: BundleExporter, cases: Iterable[str], out_dir: Path, *, actor: str
) -> list[ExportResult]:
    """One bundle per case in ``out_dir`` (for a batch of lawsuits)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for case in cases:
        results.append(exporter.export(out_dir / bundle_name(case), actor=actor, case=case))
    return results
