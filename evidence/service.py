"""Evidence: ingest an original into the write-once store and the log; custody; lookups.

An upload is acknowledged (``add`` returns) only when its original is stored (fsync-ed,
read-only, at its content address) and its ``evidence`` entry is covered by a signed
checkpoint. Bad input changes nothing: the store removes the temporary file and no entry is
appended.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from core.clock import Clock, SystemClock, aware, parse_rfc3339, zulu
from core.errors import InputError
from evidence.errors import BlobAltered, BlobMissing, EvidenceError, UnsupportedMedia
from evidence.hashing import Digests, hash_file
from evidence.media import (
    MEDIA_TYPES,
    MediaInfo,
    StreamScan,
    probe,
    scanned_while_streaming,
    sniff,
)
from evidence.models import CustodyEvent, EvidenceItem
from evidence.names import neutral_name, sanitize_filename
from evidence.store import BlobStore, Source, check_sha256
from ledger.entry import decode_entry
from ledger.errors import EntryNotFound
from ledger.models import Entry
from ledger.service import Ledger, Receipt

log = logging.getLogger(__name__)

KINDS = ("call", "visit", "document", "photo")
# Which media families each kind of evidence may be (a visit is proven by video, a call by
# its recording, ...). Checked from the bytes, never from the name.
KIND_FAMILIES = {
    "call": ("audio",),
    "visit": ("video",),
    "photo": ("image",),
    "document": ("document", "image"),
}
CUSTODY_ACTIONS = ("view", "download", "export", "verify")
MAX_PURPOSE = 2000
MAX_CLAIM = 500
REF_MAX = 64


CUSTODY_FIELDS = ["entry", "time", "actor", "action", "reason", "request"]


def custody_csv(rows: list[dict[str, Any]]) -> str:
    """A custody trail as CSV (UTF-8, one header line, LF line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CUSTODY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r[k] is None else r[k] for k in CUSTODY_FIELDS})
    return buf.getvalue()


class InvalidEvidenceInput(InputError, EvidenceError):
    """A parameter of an upload or a lookup is invalid."""


class EvidenceNotFound(EntryNotFound, EvidenceError):
    """No evidence entry matches."""


@dataclass(frozen=True)
class EvidenceReceipt:
    index: int
    sha256: str
    sm3: str
    size: int
    media_type: str
    receipt: Receipt
    stored_new: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sha256": self.sha256,
            "sm3": self.sm3,
            "size": self.size,
            "media_type": self.media_type,
            "checkpoint_size": self.receipt.checkpoint_size,
            "timestamp": self.receipt.timestamp.as_dict(),
        }


@dataclass(frozen=True)
class Claims:
    """What the client asserts about the capture; recorded as claims, not facts."""

    captured_at: datetime | None = None
    device: str | None = None
    location: str | None = None

    def as_payload(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.captured_at is not None:
            out["captured_at"] = zulu(self.captured_at)
        if self.device:
            out["device"] = self.device
        if self.location:
            out["location"] = self.location
        return out


def parse_claims(
    captured_at: str | None, device: str | None = None, location: str | None = None
) -> Claims:
    when = None
    if captured_at:
        try:
            when = parse_rfc3339(captured_at)
        except ValueError:
            raise InvalidEvidenceInput(
                f"--captured-at must be an RFC 3339 time with a zone, e.g. "
                f"2026-11-26T10:15:00+08:00; got {captured_at!r}"
            ) from None
    for name, value in (("device", device), ("location", location)):
        if value is not None and (len(value) > MAX_CLAIM or not value.isprintable()):
            raise InvalidEvidenceInput(
                f"{name} must be printable text of at most {MAX_CLAIM} characters"
            )
    return Claims(captured_at=when, device=device or None, location=location or None)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidEvidenceInput(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return kind


def check_ref(ref: str | None, what: str = "case") -> str | None:
    if ref is None or ref == "":
        return None
    if len(ref) > REF_MAX or not ref.isprintable() or "/" in ref or "\\" in ref:
        raise InvalidEvidenceInput(
            f"invalid {what} reference {ref!r}: printable, at most {REF_MAX} characters, no slashes"
        )
    return ref


def _stored_item(row: Any) -> EvidenceItem:
    item = EvidenceItem(**{c.key: getattr(row, c.key) for c in EvidenceItem.__table__.columns})
    item.uploaded_at = aware(item.uploaded_at)
    return item


#: Called after an upload is acknowledged with (receipt, kind, actor), e.g. to queue the face
#: check of a visit video. A listener that fails is logged; it never fails the upload.
AddListener = Callable[["EvidenceReceipt", str, str], None]


class EvidenceService:
    def __init__(
        self,
        *,
        engine: Engine,
        ledger: Ledger,
        store: BlobStore,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.store = store
        self.clock = clock or SystemClock()
        self.listeners: list[AddListener] = []

    # -- ingestion ---------------------------------------------------------------------------

    def add(
        self,
        source: Source,
        *,
        kind: str,
        actor: str,
        case: str | None = None,
        purpose: str | None = None,
        original_name: str | None = None,
        claims: Claims | None = None,
    ) -> EvidenceReceipt:
        """Store an original and log it; returns once the entry is acknowledged."""
        check_kind(kind)
        case = check_ref(case)
        if purpose is not None and len(purpose) > MAX_PURPOSE:
            raise InvalidEvidenceInput(f"purpose is longer than {MAX_PURPOSE} characters")
        purpose = purpose.strip() if purpose and purpose.strip() else None
        claims = claims or Claims()
        found: dict[str, Any] = {}

        def inspect_head(head: bytes) -> None:
            media_type = sniff(head)
            if media_type is None:
                raise UnsupportedMedia(
                    "unsupported file type: accepted are audio (mp3, m4a/aac, amr, wav, "
                    "ogg/opus), video (mp4/mov/3gp, webm, mkv, avi), images (jpeg, png, heic) "
                    "and pdf"
                )
            family = MEDIA_TYPES[media_type].kind
            if family not in KIND_FAMILIES[kind]:
                raise InvalidEvidenceInput(
                    f"a {kind} must be {' or '.join(KIND_FAMILIES[kind])}; "
                    f"this file is {media_type}"
                )
            found["media_type"] = media_type

        # Matroska/WebM packets are demuxed as the bytes stream in (media.StreamScan), so the
        # stored file need not be read back; chunks that arrive before the type is known (at
        # most the head and one chunk) wait here.
        early: list[bytes] | None = []
        scan: StreamScan | None = None

        def observe(chunk: bytes) -> None:
            nonlocal early, scan
            if early is None:
                if scan is not None:
                    scan.feed(chunk)
                return
            early.append(bytes(chunk))
            if "media_type" in found:
                if scanned_while_streaming(found["media_type"]):
                    scan = StreamScan(found["media_type"])
                    for c in early:
                        scan.feed(c)
                early = None

        def validate(path: Path) -> None:
            info = probe(path, found["media_type"], streamed=scan)
            if info.kind not in KIND_FAMILIES[kind]:
                raise InvalidEvidenceInput(
                    f"a {kind} must be {' or '.join(KIND_FAMILIES[kind])}; "
                    f"this file is {info.media_type}"
                )
            found["info"] = info

        try:
            blob = self.store.ingest(
                source, inspect_head=inspect_head, validate=validate, observe=observe
            )
        finally:
            if scan is not None:
                scan.close()
        info: MediaInfo = found["info"]
        uploaded = self.clock.now()
        filename = neutral_name(case, kind, uploaded, MEDIA_TYPES[info.media_type].extension)
        payload = {
            "sha256": blob.sha256,
            "sm3": blob.sm3,
            "size": blob.size,
            "media_type": info.media_type,
            "filename": filename,
            "kind": kind,
            "case": case,
            "purpose": purpose,
            "claims": claims.as_payload(),
        }
        appended = self.ledger.append_durable("evidence", payload, actor)
        self._index(
            appended.index,
            payload,
            actor=actor,
            uploaded=parse_rfc3339(appended.time),
            original_name=sanitize_filename(original_name) if original_name else None,
            media=info.as_dict(),
        )
        cp = self.ledger.ensure_checkpoint(appended.index + 1)
        receipt = Receipt(
            index=appended.index,
            leaf_hash=appended.leaf_hash,
            time=appended.time,
            checkpoint_size=cp.size,
            timestamp=self.ledger.wait_timestamp(cp.size),
        )
        result = EvidenceReceipt(
            index=appended.index,
            sha256=blob.sha256,
            sm3=blob.sm3,
            size=blob.size,
            media_type=info.media_type,
            receipt=receipt,
            stored_new=blob.created,
        )
        for listener in self.listeners:
            try:
                listener(result, kind, actor)
            except Exception:  # the upload is acknowledged; follow-up work can be redone
                log.exception("a listener of evidence entry %s failed", result.index)
        return result

    def _index(
        self,
        index: int,
        payload: dict[str, Any],
        *,
        actor: str,
        uploaded: datetime,
        original_name: str | None,
        media: dict[str, Any],
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(EvidenceItem),
                [
                    {
                        "entry_index": index,
                        "sha256": payload["sha256"],
                        "sm3": payload["sm3"],
                        "size": payload["size"],
                        "media_type": payload["media_type"],
                        "kind": payload["kind"],
                        "case_ref": payload["case"],
                        "purpose": payload["purpose"],
                        "filename": payload["filename"],
                        "original_name": original_name,
                        "uploader": actor,
                        "uploaded_at": uploaded,
                        "media": media,
                    }
                ],
            )

    def sync_index(self) -> int:
        """Index evidence and custody entries that a crash left unindexed; returns how many."""
        added = 0
        with self.engine.connect() as conn:
            known = set(conn.execute(select(EvidenceItem.entry_index)).scalars())
            known_custody = set(conn.execute(select(CustodyEvent.entry_index)).scalars())
            rows = conn.execute(
                select(Entry.idx, Entry.data).where(Entry.type.in_(("evidence", "custody")))
            ).all()
        for row in rows:
            idx = int(row.idx)
            if idx in known or idx in known_custody:
                continue
            entry = decode_entry(bytes(row.data), check_canonical=False)
            if entry.type == "evidence":
                self._index(
                    idx,
                    entry.payload,
                    actor=entry.actor,
                    uploaded=parse_rfc3339(entry.time),
                    original_name=None,
                    media={},
                )
            else:
                self._index_custody(idx, entry.payload, entry.actor, entry.time)
            added += 1
        return added

    # -- lookups -----------------------------------------------------------------------------

    def item(self, index: int) -> EvidenceItem:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(EvidenceItem.__table__).where(EvidenceItem.entry_index == index)
            ).first()
        if row is None:
            raise EvidenceNotFound(f"entry {index} is not an evidence entry")
        return _stored_item(row)

    def items_by_sha256(self, sha256: str) -> list[EvidenceItem]:
        check_sha256(sha256)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(EvidenceItem.__table__)
                .where(EvidenceItem.sha256 == sha256)
                .order_by(EvidenceItem.entry_index)
            ).all()
        return [_stored_item(r) for r in rows]

    def items_for_case(self, case: str) -> list[EvidenceItem]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(EvidenceItem.__table__)
                .where(EvidenceItem.case_ref == case)
                .order_by(EvidenceItem.entry_index)
            ).all()
        return [_stored_item(r) for r in rows]

    def items(self, *, case: str | None = None, limit: int = 1000) -> list[EvidenceItem]:
        stmt = select(EvidenceItem.__table__).order_by(EvidenceItem.entry_index.desc())
        if case is not None:
            stmt = stmt.where(EvidenceItem.case_ref == case)
        with self.engine.connect() as conn:
            return [_stored_item(r) for r in conn.execute(stmt.limit(limit)).all()]

    def resolve(self, ref: str) -> list[EvidenceItem]:
        """Items named by an entry index or a SHA-256."""
        ref = ref.strip()
        if ref.isdigit() and len(ref) < 20:  # an index; 64 hex digits may all be decimal
            return [self.item(int(ref))]
        try:
            items = self.items_by_sha256(ref.lower())
        except InputError:
            raise InvalidEvidenceInput(
                f"{ref!r} is neither an entry index nor a SHA-256 (64 hex digits)"
            ) from None
        if not items:
            raise EvidenceNotFound(f"no evidence with SHA-256 {ref.lower()}")
        return items

    def find_file(self, path: Path) -> tuple[Digests, list[EvidenceItem]]:
        """Hash a file (SHA-256 and SM3) and list the evidence entries that hold it."""
        digests = hash_file(path)
        return digests, [i for i in self.items_by_sha256(digests.sha256) if i.sm3 == digests.sm3]

    # -- custody -----------------------------------------------------------------------------

    def record_custody(
        self,
        sha256: str,
        action: str,
        actor: str,
        *,
        reason: str | None = None,
        request: str | None = None,
        acknowledge: bool = True,
    ) -> int:
        """Append a ``custody`` entry: who did what to which original, when and why."""
        if action not in CUSTODY_ACTIONS:
            raise InvalidEvidenceInput(f"unknown custody action {action!r}")
        items = self.items_by_sha256(sha256)
        if not items:
            raise EvidenceNotFound(f"no evidence with SHA-256 {sha256}")
        if reason is not None and len(reason) > MAX_CLAIM:
            raise InvalidEvidenceInput(f"reason is longer than {MAX_CLAIM} characters")
        payload = {
            "action": action,
            "sha256": sha256,
            "evidence": [i.entry_index for i in items],
            "reason": reason or None,
            "request": request or uuid.uuid4().hex,
        }
        appended = self.ledger.append_durable("custody", payload, actor)
        self._index_custody(appended.index, payload, actor, appended.time)
        if acknowledge:
            self.ledger.ensure_checkpoint(appended.index + 1)
        return appended.index

    def _index_custody(self, index: int, payload: dict[str, Any], actor: str, time: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(CustodyEvent),
                [
                    {
                        "entry_index": index,
                        "sha256": payload["sha256"],
                        "action": payload["action"],
                        "actor": actor,
                        "time": time,
                        "reason": payload.get("reason"),
                        "request": payload["request"],
                        "count": 1,
                    }
                ],
            )

    def custody(self, sha256: str) -> list[CustodyEvent]:
        check_sha256(sha256)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CustodyEvent.__table__)
                .where(CustodyEvent.sha256 == sha256)
                .order_by(CustodyEvent.entry_index)
            ).all()
        return [
            CustodyEvent(**{c.key: getattr(r, c.key) for c in CustodyEvent.__table__.columns})
            for r in rows
        ]

    def custody_rows(self, sha256: str) -> list[dict[str, Any]]:
        """The whole trail of an original: its uploads and every custody entry, in log order."""
        rows: list[dict[str, Any]] = [
            {
                "entry": i.entry_index,
                "time": zulu(i.uploaded_at),
                "actor": i.uploader,
                "action": "upload",
                "reason": i.purpose,
                "request": "",
            }
            for i in self.items_by_sha256(sha256)
        ]
        rows += [
            {
                "entry": e.entry_index,
                "time": e.time,
                "actor": e.actor,
                "action": e.action,
                "reason": e.reason,
                "request": e.request,
            }
            for e in self.custody(sha256)
        ]
        return sorted(rows, key=lambda r: int(r["entry"]))

    def open_original(self, sha256: str) -> Iterator[bytes]:
        with self.store.open(sha256) as f:
            while chunk := f.read(1 << 20):
                yield chunk

    # -- audit -------------------------------------------------------------------------------

    def audit_originals(self, indexes: Sequence[int] | None = None) -> list[tuple[int, str, str]]:
        """Re-hash every stored original named by an evidence entry of the log.

        Returns (entry index, sha256, problem) for each original that is missing or altered.
        Reads the log, not the index, so an entry missing from the index is checked too.
        """
        problems: list[tuple[int, str, str]] = []
        checked: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            stmt = select(Entry.idx, Entry.data).where(Entry.type == "evidence")
            if indexes is not None:
                stmt = stmt.where(Entry.idx.in_(list(indexes)))
            rows = conn.execute(stmt.order_by(Entry.idx)).all()
        for row in rows:
            payload = decode_entry(bytes(row.data), check_canonical=False).payload
            sha = payload["sha256"]
            if sha not in checked:
                try:
                    self.store.verify(sha, sm3=payload["sm3"], size=payload["size"])
                    checked[sha] = None
                except BlobMissing:
                    checked[sha] = "original missing from the store"
                except BlobAltered as e:
                    checked[sha] = f"original altered: {e.message}"
            problem = checked[sha]
            if problem is not None:
                problems.append((int(row.idx), sha, problem))
        return problems
