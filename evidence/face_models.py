"""Face tables: enrolled people, their encrypted templates, enrolments, and an index of checks.

These are ordinary tables, not the log: a template is biometric data (PIPL arts. 28-29) and
must be deletable when consent is withdrawn, so it lives here, encrypted, while the log keeps
only its hash. ``face_checks`` mirrors the log's ``face_check`` entries and can be rebuilt from
them (``FaceService.sync_index``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class FacePerson(Base):
    """A person who is or was enrolled: a reference and a role, never a name."""

    __tablename__ = "face_persons"

    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    #: enrolled | withdrawing (templates deleted, withdrawal not yet logged) | withdrawn
    status: Mapped[str] = mapped_column(String(12))
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawal_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class FaceEnrolment(Base):
    """One logged enrolment: which consent document, which template hashes."""

    __tablename__ = "face_enrolments"

    entry_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    person_ref: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(8))
    consent_index: Mapped[int] = mapped_column(BigInteger)
    template_hashes: Mapped[list[str]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FaceTemplate(Base):
    """A 128-d face template, AES-256-GCM encrypted with the instance key (evidence.facekeys)."""

    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_ref: Mapped[str] = mapped_column(String(64), index=True)
    enrolment_index: Mapped[int] = mapped_column(BigInteger)
    template_hash: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FaceCheck(Base):
    """Index of the log's ``face_check`` entries."""

    __tablename__ = "face_checks"

    entry_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    evidence_index: Mapped[int] = mapped_column(BigInteger, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    supersedes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    automatic: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(64))
    time: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
