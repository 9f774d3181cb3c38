"""The full audit of the log: every entry, the tree at every checkpoint, every signature,
the consistency between consecutive checkpoints, every stored interior hash and every token.

It reads the database and trusts nothing in it: leaf hashes are recomputed from the stored
bytes, roots from the leaves, and stored interior nodes are compared against recomputed ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from sqlalchemy import Engine, func, select

from ledger import merkle
from ledger.entry import ZERO_HASH, EntryError, decode_entry
from ledger.errors import NoteError, ProofError, TimestampError
from ledger.models import Entry, Node, StoredCheckpoint, TimestampToken
from ledger.note import Checkpoint, NoteVerifier, open_note
from ledger.tree import TILE_HEIGHT, TreeReader
from ledger.tsa import verify_response

CHUNK = 5000


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``where`` is e.g. "entry 12" or "checkpoint 300"."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class AuditReport:
    entries: int = 0
    checkpoints: int = 0
    tokens: int = 0
    nodes: int = 0
    pending: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _CompactRange:
    """Perfect subtrees covering [0, n), for the root of every prefix in one pass."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.levels: list[int] = []
        self.size = 0
        self.completed: dict[tuple[int, int], bytes] = {}

    def append(self, leaf: bytes) -> None:
        h, level = leaf, 0
        hc = merkle.hash_children
        while self.levels and self.levels[-1] == level:
            h = hc(self.hashes.pop(), h)
            self.levels.pop()
            level += 1
            if level % TILE_HEIGHT == 0:
                self.completed[(level, (self.size + 1 - (1 << level)) >> level)] = h
        self.hashes.append(h)
        self.levels.append(level)
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return merkle.EMPTY_ROOT
        h = self.hashes[-1]
        for s in reversed(self.hashes[:-1]):
            h = merkle.hash_children(s, h)
        return h


def audit_log(
    engine: Engine,
    *,
    verifier: NoteVerifier,
    origin: str,
    trust_anchors: Sequence[x509.Certificate],
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    report = AuditReport()
    problems = report.problems
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Entry)).scalar() or 0
        checkpoints = conn.execute(
            select(StoredCheckpoint.__table__).order_by(StoredCheckpoint.size)
        ).all()
        cps_by_size = {int(c.size): c for c in checkpoints}
        cr = _CompactRange()
        roots: dict[int, bytes] = {}
        if 0 in cps_by_size:
            roots[0] = merkle.EMPTY_ROOT
        prev = ZERO_HASH
        expected = 0
        last_time = ""
        while True:
            rows = conn.execute(
                select(Entry.idx, Entry.type, Entry.time, Entry.actor, Entry.leaf_hash, Entry.data)
                .where(Entry.idx >= expected)
                .order_by(Entry.idx)
                .limit(CHUNK)
            ).all()
            if not rows:
                break
            for row in rows:
                idx = int(row.idx)
                where = f"entry {idx}"
                if idx != expected:
                    problems.append(Problem(f"entry {expected}", "missing (gap in the log)"))
                    return report
                data = bytes(row.data)
                leaf = merkle.hash_leaf(data)
                try:
                    entry = decode_entry(data)
                except EntryError as e:
                    problems.append(Problem(where, e.message))
                    return report
                if entry.index != idx:
                    problems.append(Problem(where, f"its bytes say index {entry.index}"))
                    return report
                if entry.prev != prev:
                    problems.append(
                        Problem(
                            where,
                            "hash chain broken: prev does not match "
                            "the leaf hash of the entry before",
                        )
                    )
                    return report
                if bytes(row.leaf_hash) != leaf:
                    problems.append(Problem(where, "stored leaf hash does not match its bytes"))
                    return report
                if (row.type, row.time, row.actor) != (entry.type, entry.time, entry.actor):
                    problems.append(Problem(where, "index columns disagree with the entry bytes"))
                    return report
                if entry.time < last_time:
                    problems.append(Problem(where, "time goes backwards"))
                    return report
                last_time = entry.time
                prev = leaf.hex()
                cr.append(leaf)
                expected += 1
                if expected in cps_by_size:
                    roots[expected] = cr.root()
            report.entries = expected
            if progress is not None:
                progress(expected, total)

        # Checkpoints: root recomputed from the entries, note signed and well-formed.
        tree = TreeReader(conn, expected)
        previous: tuple[int, bytes] | None = None
        for cp in checkpoints:
            size = int(cp.size)
            where = f"checkpoint {size}"
            if size > expected:
                problems.append(Problem(where, f"covers {size} entries but the log has {expected}"))
                return report
            if bytes(cp.root) != roots[size]:
                problems.append(Problem(where, "root does not match the tree of the entries"))
                return report
            try:
                note = open_note(bytes(cp.note), [verifier])
                body = Checkpoint.from_text(note.text)
            except NoteError as e:
                problems.append(Problem(where, f"signed note invalid: {e.message}"))
                return report
            if (body.origin, body.size, body.root) != (origin, size, roots[size]):
                problems.append(Problem(where, "signed text does not match origin, size or root"))
                return report
            if previous is not None and previous[0] > 0:
                try:
                    merkle.verify_consistency(
                        previous[0],
                        size,
                        tree.consistency_proof(previous[0], size),
                        previous[1],
                        roots[size],
                    )
                except (ProofError, RuntimeError) as e:
                    problems.append(
                        Problem(where, f"not consistent with checkpoint {previous[0]}: {e}")
                    )
                    return report
            previous = (size, roots[size])
            report.checkpoints += 1

        # Stored interior nodes: every row must equal the recomputed subtree, none missing.
        stored = {
            (int(r.level), int(r.idx)): bytes(r.hash)
            for r in conn.execute(select(Node.level, Node.idx, Node.hash))
        }
        report.nodes = len(stored)
        for key, value in stored.items():
            if cr.completed.get(key) != value:
                problems.append(
                    Problem(
                        f"tree node {key[0]}/{key[1]}", "stored hash does not match the entries"
                    )
                )
                return report
        missing = set(cr.completed) - set(stored)
        if missing:
            level, idx = min(missing)
            problems.append(Problem(f"tree node {level}/{idx}", "missing"))
            return report

        # Timestamps: each token must verify against its checkpoint's exact bytes.
        stamped: set[int] = set()
        for tok in conn.execute(select(TimestampToken.__table__).order_by(TimestampToken.id)):
            size = int(tok.checkpoint_size)
            note_bytes = bytes(cps_by_size[size].note)
            try:
                info = verify_response(
                    bytes(tok.response),
                    digest=hashlib.sha256(note_bytes).digest(),
                    trust_anchors=trust_anchors,
                    untrusted=_pem_certs(tok.tsa_pem),
                )
            except TimestampError as e:
                problems.append(Problem(f"timestamp of checkpoint {size}", e.message))
                return report
            del info
            stamped.add(size)
            report.tokens += 1
        report.pending = [int(c.size) for c in checkpoints if int(c.size) not in stamped]
    return report


def _pem_certs(pem: str) -> list[x509.Certificate]:
    return list(x509.load_pem_x509_certificates(pem.encode())) if pem.strip() else []
