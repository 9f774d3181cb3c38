"""The ledger service: append, checkpoint, timestamp, prove. No update, no delete.

An append is *acknowledged* once its entry is committed and covered by a signed checkpoint;
``append`` returns only then. Checkpoints are made by one process at a time (a lease row in
the database), at most one per ``checkpoint_interval`` seconds, and each is timestamped
(RFC 3161) right after it is made. A TSA that is slow or down never blocks an append for more
than ``timestamp_wait`` seconds: the checkpoint stays *pending* until a later process, or
``stamp_pending``, obtains its token.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time as _time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from core.clock import Clock, SystemClock, aware, zulu
from core.db import write_engine
from ledger import merkle
from ledger.errors import CheckpointNotFound, EntryNotFound, LedgerError, TimestampError
from ledger.models import Entry, StoredCheckpoint, TimestampToken
from ledger.note import Checkpoint, NoteSigner
from ledger.sequencer import Appended, Sequencer, log_size
from ledger.tree import TileCache, TreeReader
from ledger.tsa import StampResult, TimestampAuthority

log = logging.getLogger(__name__)

_CP = StoredCheckpoint.__table__
_TS = TimestampToken.__table__
LEASE_NAME = "checkpointer"
LEASE_TTL = 30.0


@dataclass(frozen=True)
class TimestampStatus:
    status: str  # "granted" | "pending"
    time: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "time": None if self.time is None else zulu(self.time),
        }


@dataclass(frozen=True)
class Receipt:
    """What an acknowledged append returns."""

    index: int
    leaf_hash: bytes
    time: str
    checkpoint_size: int
    timestamp: TimestampStatus


class Ledger:
    """The log of one instance. Thread-safe; share one per process."""

    def __init__(
        self,
        *,
        engine: Engine,
        signer: NoteSigner,
        origin: str,
        tsa: TimestampAuthority,
        tsa_label: str,
        clock: Clock | None = None,
        checkpoint_interval: float = 1.0,
        timestamp_wait: float = 10.0,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.origin = origin
        self.tsa = tsa
        self.tsa_label = tsa_label
        self.clock = clock or SystemClock()
        self.checkpoint_interval = checkpoint_interval
        self.timestamp_wait = timestamp_wait
        self.sequencer = Sequencer(engine, self.clock)
        self.tiles = TileCache()
        self._holder = f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._local = threading.Lock()

    # -- appending ---------------------------------------------------------------------------

    def append_durable(self, type: str, payload: dict[str, Any], actor: str) -> Appended:
        """Commit one entry (durable) without waiting for a checkpoint."""
        return self.sequencer.append(type, actor, payload)

    def append(self, type: str, payload: dict[str, Any], actor: str) -> Receipt:
        """Append and return once a signed checkpoint covers the entry (acknowledged)."""
        appended = self.append_durable(type, payload, actor)
        cp = self.ensure_checkpoint(appended.index + 1)
        stamp = self.wait_timestamp(cp.size)
        return Receipt(
            index=appended.index,
            leaf_hash=appended.leaf_hash,
            time=appended.time,
            checkpoint_size=cp.size,
            timestamp=stamp,
        )

    # -- reading -----------------------------------------------------------------------------

    def size(self) -> int:
        with self.engine.connect() as conn:
            return log_size(conn)

    def entry(self, index: int) -> bytes:
        with self.engine.connect() as conn:
            data = conn.execute(select(Entry.data).where(Entry.idx == index)).scalar()
        if data is None:
            raise EntryNotFound(f"no entry {index} in the log")
        return bytes(data)

    def leaf_hash(self, index: int) -> bytes:
        with self.engine.connect() as conn:
            leaf = conn.execute(select(Entry.leaf_hash).where(Entry.idx == index)).scalar()
        if leaf is None:
            raise EntryNotFound(f"no entry {index} in the log")
        return bytes(leaf)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_CP).order_by(StoredCheckpoint.size.desc()).limit(1)).first()
        return None if row is None else _cp(row)

    def checkpoint_at(self, size: int | None = None) -> StoredCheckpoint:
        """The stored checkpoint of ``size`` (default: the latest)."""
        if size is None:
            cp = self.latest_checkpoint()
            if cp is None:
                raise CheckpointNotFound("the log has no checkpoint yet")
            return cp
        with self.engine.connect() as conn:
            row = conn.execute(select(_CP).where(StoredCheckpoint.size == size)).first()
        if row is None:
            raise CheckpointNotFound(f"no stored checkpoint of size {size}")
        return _cp(row)

    def covering_checkpoint(self, index: int) -> StoredCheckpoint | None:
        """The first stored checkpoint that covers entry ``index`` (when it was first sealed)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_CP).where(_CP.c.size > index).order_by(_CP.c.size).limit(1)
            ).first()
        return None if row is None else _cp(row)

    def checkpoints(self) -> list[StoredCheckpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_CP).order_by(StoredCheckpoint.size)).all()
        return [_cp(r) for r in rows]

    def prove_inclusion(self, index: int, size: int | None = None) -> tuple[int, list[bytes]]:
        """(tree size, proof) of entry ``index`` against the stored checkpoint of ``size``."""
        with self.engine.connect() as conn:
            cp = self._checkpoint_size(conn, size)
            if not 0 <= index < cp:
                raise EntryNotFound(f"entry {index} is not in the checkpoint of size {cp}")
            return cp, TreeReader(conn, cp, self.tiles).inclusion_proof(index)

    def _checkpoint_size(self, conn: Connection, size: int | None) -> int:
        stmt = select(StoredCheckpoint.size)
        if size is None:
            found = conn.execute(stmt.order_by(StoredCheckpoint.size.desc()).limit(1)).scalar()
            if found is None:
                raise CheckpointNotFound("the log has no checkpoint yet")
        else:
            found = conn.execute(stmt.where(StoredCheckpoint.size == size)).scalar()
            if found is None:
                raise CheckpointNotFound(f"no stored checkpoint of size {size}")
        return int(found)

    def prove_consistency(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof between two stored checkpoints."""
        with self.engine.connect() as conn:
            self._checkpoint_size(conn, old)
            self._checkpoint_size(conn, new)
            if not 0 < old <= new:
                raise LedgerError("a consistency proof needs 0 < OLD <= NEW")
            return TreeReader(conn, new, self.tiles).consistency_proof(old, new)

    def root(self, size: int) -> bytes:
        with self.engine.connect() as conn:
            current = log_size(conn)
            if size > current:
                raise LedgerError(f"the log has only {current} entries")
            return TreeReader(conn, size, self.tiles).root()

    # -- checkpoints -------------------------------------------------------------------------

    def ensure_checkpoint(self, min_size: int, *, timeout: float | None = None) -> StoredCheckpoint:
        """Wait until a checkpoint of at least ``min_size`` exists, making it if we may."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        while True:
            cp = self.latest_checkpoint()
            if cp is not None and cp.size >= min_size:
                return cp
            made = self._try_checkpoint(min_size)
            if made is not None and made.size >= min_size:
                return made
            if deadline is not None and _time.monotonic() > deadline:
                raise LedgerError(f"no checkpoint covering size {min_size} within {timeout} s")
            _time.sleep(0.01)

    def checkpoint(self) -> StoredCheckpoint:
        """Make a checkpoint of the current size now (or return the one that exists)."""
        size = self.size()
        if size == 0:
            return self._checkpoint_empty()
        return self.ensure_checkpoint(size)

    def _checkpoint_empty(self) -> StoredCheckpoint:
        cp = self.latest_checkpoint()
        if cp is not None:
            return cp
        made = None
        while made is None:
            made = self._try_checkpoint(0, force=True)
            if made is None:
                _time.sleep(0.01)
        return made

    def _try_checkpoint(self, min_size: int, force: bool = False) -> StoredCheckpoint | None:
        if not self._local.acquire(blocking=False):
            return None
        try:
            if not self._acquire_lease():
                return None
            try:
                made = self._make_checkpoint(min_size, force=force)
            finally:
                self._release_lease()
        finally:
            self._local.release()
        if made is not None:
            self._stamp_after_checkpoint(made)
        return made

    def _acquire_lease(self) -> bool:
        now = _time.time()
        with write_engine(self.engine).begin() as conn:
            current = conn.execute(
                text("SELECT holder FROM ledger_leases WHERE name = :n"), {"n": LEASE_NAME}
            ).scalar()
            if current and current != self._holder and _dead_local_holder(current):
                # Its process died holding the lease (e.g. SIGKILL): do not wait for expiry.
                conn.execute(
                    text("UPDATE ledger_leases SET expires = 0 WHERE name = :n AND holder = :h"),
                    {"n": LEASE_NAME, "h": current},
                )
            conn.execute(
                text(
                    "INSERT INTO ledger_leases (name, holder, expires) VALUES (:n, :h, :e) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                    "expires = excluded.expires "
                    "WHERE ledger_leases.expires < :now OR ledger_leases.holder = :h"
                ),
                {"n": LEASE_NAME, "h": self._holder, "e": now + LEASE_TTL, "now": now},
            )
            holder = conn.execute(
                text("SELECT holder FROM ledger_leases WHERE name = :n"), {"n": LEASE_NAME}
            ).scalar()
        return bool(holder == self._holder)

    def _release_lease(self) -> None:
        with write_engine(self.engine).begin() as conn:
            conn.execute(
                text("UPDATE ledger_leases SET expires = 0 WHERE name = :n AND holder = :h"),
                {"n": LEASE_NAME, "h": self._holder},
            )

    def _make_checkpoint(self, min_size: int, *, force: bool) -> StoredCheckpoint | None:
        latest = self.latest_checkpoint()
        if latest is not None and latest.size >= min_size and not force:
            return latest
        if latest is not None:
            # At most one checkpoint per interval: wait out the rest, so that the appends
            # arriving meanwhile share the next checkpoint.
            elapsed = (self.clock.now() - latest.created_at).total_seconds()
            if 0 <= elapsed < self.checkpoint_interval:
                _time.sleep(self.checkpoint_interval - elapsed)
        with self.engine.connect() as conn:
            size = log_size(conn)
            if latest is not None and size == latest.size:
                return latest
            tree = TreeReader(conn, size, self.tiles)
            root = tree.root()
            if latest is not None and latest.size > 0:
                # Never sign a checkpoint inconsistent with the previous one (C2SP).
                merkle.verify_consistency(
                    latest.size, size, tree.consistency_proof(latest.size), latest.root, root
                )
        note = self.signer.sign(Checkpoint(origin=self.origin, size=size, root=root).to_text())
        cp = StoredCheckpoint(
            size=size,
            root=root,
            note=note.encode(),
            key_id=self.signer.key_id.hex(),
            created_at=self.clock.now(),
        )
        with self.engine.begin() as conn:
            conn.execute(
                insert(StoredCheckpoint),
                [
                    {
                        "size": cp.size,
                        "root": cp.root,
                        "note": cp.note,
                        "key_id": cp.key_id,
                        "created_at": cp.created_at,
                    }
                ],
            )
        return cp

    # -- timestamps --------------------------------------------------------------------------

    def token(self, size: int) -> TimestampToken | None:
        """The first token granted for the checkpoint of ``size``, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_TS).where(_TS.c.checkpoint_size == size).order_by(_TS.c.id).limit(1)
            ).first()
        return None if row is None else _token(row)

    def latest_token(self) -> TimestampToken | None:
        """The token of the latest checkpoint that has one."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_TS).order_by(_TS.c.checkpoint_size.desc(), _TS.c.id).limit(1)
            ).first()
        return None if row is None else _token(row)

    def timestamp_status(self, size: int) -> TimestampStatus:
        """Granted (with its time) or pending, for the checkpoint of ``size``."""
        token = self.token(size)
        if token is None:
            return TimestampStatus("pending", None)
        return TimestampStatus("granted", token.gen_time)

    def stamp(self, size: int) -> TimestampToken:
        """Obtain and store an RFC 3161 token for the checkpoint of ``size``."""
        cp = self.checkpoint_at(size)
        result: StampResult = self.tsa.stamp(hashlib.sha256(cp.note).digest())
        row = {
            "checkpoint_size": size,
            "response": result.response,
            "gen_time": result.info.gen_time,
            "tsa": self.tsa_label[:255],
            "tsa_pem": result.tsa_pem.decode(),
            "ca_pem": result.ca_pem.decode(),
            "created_at": self.clock.now(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(TimestampToken), [row])
        token = self.token(size)
        assert token is not None
        return token

    def _stamp_after_checkpoint(self, cp: StoredCheckpoint) -> None:
        try:
            self.stamp(cp.size)
        except TimestampError as e:
            log.warning("checkpoint %d left pending: %s", cp.size, e.message)
            return
        # The TSA answers again: stamp a few older pending checkpoints too.
        for size in self.pending_sizes()[:8]:
            try:
                self.stamp(size)
            except TimestampError:
                break

    def wait_timestamp(self, size: int) -> TimestampStatus:
        deadline = _time.monotonic() + self.timestamp_wait
        while True:
            token = self.token(size)
            if token is not None:
                return TimestampStatus("granted", token.gen_time)
            if _time.monotonic() >= deadline:
                return TimestampStatus("pending", None)
            _time.sleep(0.02)

    def pending_sizes(self) -> list[int]:
        with self.engine.connect() as conn:
            stamped = select(TimestampToken.checkpoint_size)
            return [
                int(s)
                for s in conn.execute(
                    select(StoredCheckpoint.size)
                    .where(StoredCheckpoint.size.not_in(stamped))
                    .order_by(StoredCheckpoint.size)
                ).scalars()
            ]

    def stamp_pending(
        self,
        *,
        attempts: int = 5,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = _time.sleep,
    ) -> tuple[list[int], list[int]]:
        """Stamp every pending checkpoint, retrying with exponential backoff.

        Returns (stamped sizes, still pending sizes).
        """
        stamped: list[int] = []
        pending = self.pending_sizes()
        delay = backoff
        for attempt in range(attempts):
            still: list[int] = []
            for size in pending:
                try:
                    self.stamp(size)
                    stamped.append(size)
                except TimestampError as e:
                    log.warning("stamping checkpoint %d failed: %s", size, e.message)
                    still.append(size)
            pending = still
            if not pending or attempt == attempts - 1:
                break
            sleep(delay)
            delay *= 2
        return stamped, pending


def _dead_local_holder(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname()[:24] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _cp(obj: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        size=int(obj.size),
        root=bytes(obj.root),
        note=bytes(obj.note),
        key_id=obj.key_id,
        created_at=aware(obj.created_at),
    )


def _token(obj: Any) -> TimestampToken:
    return TimestampToken(
        id=obj.id,
        checkpoint_size=int(obj.checkpoint_size),
        response=bytes(obj.response),
        gen_time=aware(obj.gen_time),
        tsa=obj.tsa,
        tsa_pem=obj.tsa_pem,
        ca_pem=obj.ca_pem,
        created_at=aware(obj.created_at),
    )
