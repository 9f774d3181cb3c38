"""The sequencer: gives entries their index and chain link, without gaps, duplicates or forks.

Appends from many threads of one process are grouped (group commit): one thread, the leader,
writes every waiting append in one transaction and one fsync, then hands leadership to the next
waiter. Appends from several processes serialise on the database's write lock (SQLite
``BEGIN IMMEDIATE``; a PostgreSQL transaction-level advisory lock), and each transaction reads
the log head after taking it, so the chain cannot fork.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from core.clock import Clock, rfc3339
from core.db import write_engine
from ledger import merkle
from ledger.entry import ZERO_HASH, check_entry, encode_entry
from ledger.models import Entry
from ledger.tree import store_completed_nodes

# pg_advisory_xact_lock key: "tzlog" as an integer; any constant unique to the log works.
PG_LOCK_KEY = 0x747A6C6F67


@dataclass(frozen=True)
class Appended:
    """An entry as committed."""

    index: int
    leaf_hash: bytes
    data: bytes
    time: str


class _Request:
    __slots__ = ("actor", "done", "error", "lead", "payload", "result", "type")

    def __init__(self, type: str, actor: str, payload: dict[str, Any]) -> None:
        self.type = type
        self.actor = actor
        self.payload = payload
        self.done = threading.Event()
        self.lead = False
        self.result: Appended | None = None
        self.error: BaseException | None = None


def lock_log(conn: Connection) -> None:
    """Take the log's write lock for this transaction (SQLite took it at BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})


def log_size(conn: Connection) -> int:
    last = conn.execute(select(Entry.idx).order_by(Entry.idx.desc()).limit(1)).scalar()
    return 0 if last is None else int(last) + 1


class Sequencer:
    def __init__(self, engine: Engine, clock: Clock, *, max_batch: int = 1000) -> None:
        self.engine = write_engine(engine)
        self.clock = clock
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._leader_active = False
        self._last_batch = 0

    def _gather(self, *, quiet: float = 0.0003, limit: float = 0.002) -> None:
        """Wait until the group stops growing (``quiet``), at most ``limit`` seconds; at once
        when every thread of the last group is back, since no one else is expected."""
        deadline = time.monotonic() + limit
        full = min(self._last_batch, self.max_batch)
        seen = -1
        while time.monotonic() < deadline:
            with self._lock:
                n = len(self._pending)
            if n == seen or n >= full:
                return
            seen = n
            time.sleep(quiet)

    def append(self, type: str, actor: str, payload: dict[str, Any]) -> Appended:
        """Append one entry durably; returns once its transaction has committed."""
        # Refuse a bad entry here, in the caller's thread, so it never fails someone's batch.
        check_entry(type, payload)
        req = _Request(type, actor, payload)
        with self._lock:
            self._pending.append(req)
            if not self._leader_active:
                self._leader_active = True
                req.lead = True
        if not req.lead:
            req.done.wait()
        # Still without an outcome: this thread leads (from the start, or handed over).
        while req.result is None and req.error is None:
            self._lead()
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result

    def append_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[Appended]:
        """Append (type, actor, payload) items in order, in transactions of ``max_batch``.

        For bulk work (imports, benchmarks); concurrent ``append`` calls still interleave only
        between transactions.
        """
        out: list[Appended] = []
        for start in range(0, len(items), self.max_batch):
            chunk = [_Request(t, a, p) for t, a, p in items[start : start + self.max_batch]]
            for req in chunk:
                check_entry(req.type, req.payload)
            out.extend(self._commit(chunk))
        return out

    def _lead(self) -> None:
        if self._last_batch > 1:
            # Under load, the threads released by the previous group come back within
            # microseconds: wait briefly so they join this group instead of the next.
            self._gather()
        with self._lock:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
        try:
            results = self._commit(batch)
            self._last_batch = len(batch)
        except BaseException as e:
            for req in batch:
                req.error = e
        else:
            for req, res in zip(batch, results, strict=True):
                req.result = res
        finally:
            with self._lock:
                if self._pending:
                    # Hand over: the oldest waiter leads the next group.
                    nxt = self._pending[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._leader_active = False
            for req in batch:
                req.done.set()

    def _commit(self, batch: list[_Request]) -> list[Appended]:
        with self.engine.begin() as conn:
            lock_log(conn)
            head = conn.execute(
                select(Entry.idx, Entry.leaf_hash, Entry.time).order_by(Entry.idx.desc()).limit(1)
            ).first()
            if head is None:
                index, prev, last_time = 0, ZERO_HASH, ""
            else:
                index, prev, last_time = int(head.idx) + 1, bytes(head.leaf_hash).hex(), head.time
            old_size = index
            # Entry times never go backwards, even if a host clock does.
            stamp = max(rfc3339(self.clock.now()), last_time)
            rows = []
            out = []
            for req in batch:
                data = encode_entry(
                    index=index,
                    type=req.type,
                    time=stamp,
                    actor=req.actor,
                    prev=prev,
                    payload=req.payload,
                )
                leaf = merkle.hash_leaf(data)
                rows.append(
                    {
                        "idx": index,
                        "type": req.type,
                        "time": stamp,
                        "actor": req.actor,
                        "leaf_hash": leaf,
                        "data": data,
                    }
                )
                out.append(Appended(index=index, leaf_hash=leaf, data=data, time=stamp))
                prev = leaf.hex()
                index += 1
            conn.execute(insert(Entry), rows)
            store_completed_nodes(conn, old_size, index)
        return out
