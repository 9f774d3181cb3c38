"""Tables of the log. Every one of them is insert-only (database triggers refuse UPDATE/DELETE).

- ``ledger_entries``: the exact canonical bytes of every entry and its leaf hash.
- ``ledger_nodes``: interior hashes of the Merkle tree at levels 8, 16, 24, ... (one row per
  perfect subtree of 256**k leaves, written once when it completes). Together with the leaf
  hashes they make the tlog-tiles of C2SP: any node is at most 255 hashes away from stored rows,
  so a proof at any size costs O(log n) reads and never a rebuild.
- ``ledger_checkpoints``: the exact signed note of each checkpoint.
- ``ledger_timestamps``: RFC 3161 responses for checkpoints, added when granted.

``ledger_leases`` is bookkeeping (who may checkpoint now), not part of the log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

LEDGER_TABLES = ("ledger_entries", "ledger_nodes", "ledger_checkpoints", "ledger_timestamps")


class Entry(Base):
    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32), index=True)
    time: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Node(Base):
    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class StoredCheckpoint(Base):
    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TimestampToken(Base):
    __tablename__ = "ledger_timestamps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_size: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_checkpoints.size"), index=True
    )
    response: Mapped[bytes] = mapped_column(LargeBinary)
    gen_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tsa: Mapped[str] = mapped_column(String(255))
    tsa_pem: Mapped[str] = mapped_column(Text)
    ca_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Lease(Base):
    __tablename__ = "ledger_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires: Mapped[float] = mapped_column(Float)
