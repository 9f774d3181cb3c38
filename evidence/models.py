"""Evidence tables: an index of the log's evidence entries with the personal data the log must
not hold (the name a file was uploaded under), and an index of custody events.

The log is the authority: both tables can be rebuilt from it (``EvidenceService.sync_index``),
except the uploaded names, which are personal data and may be erased on a lawful request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class EvidenceItem(Base):
    __tablename__ = "evidence_items"

    entry_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    sm3: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    case_ref: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    purpose: Mapped[str | None] = mapped_column(Text, nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    original_name: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    uploader: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    media: Mapped[dict[str, Any]] = mapped_column(JSON)


class CustodyEvent(Base):
    __tablename__ = "evidence_custody"

    entry_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    time: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    request: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=1)
