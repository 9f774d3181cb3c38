"""Case tables: properties (小区), units, owners, arrears by billing period, cases, events,
service attempts, preservation filings and imports.

Personal data (names, phone numbers, ID numbers, addresses, birth dates) lives here, in ordinary
tables that can be corrected or erased on a lawful request (PIPL); the log holds only references
and hashes of it (DESIGN.md). Events and imports are append-only in spirit: the service never
updates or deletes one, and a correction is a new event. ``case_imports`` mirrors log entries
and is insert-only in the database itself.

Amounts are exact decimals (``Numeric(12, 2)``). SQLite stores them as REAL, which is exact for
two decimals below 10^13 once rounded back to the column's scale, as SQLAlchemy does on reading;
sums are taken in Python with ``Decimal``, never in SQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

Money = Numeric(12, 2)


class Property(Base):
    """A residential compound (小区), named as the billing system names it."""

    __tablename__ = "properties"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)


class Unit(Base):
    """A unit of a property, e.g. ``3-2-1101`` (building, entrance, room)."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("property_id", "code", name="uq_units_property_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id"))
    code: Mapped[str] = mapped_column(String(64))


class Owner(Base):
    """An owner (业主). ``ref`` is what the log and other systems may carry; the rest is
    personal data.

    The age is either derived from ``birth_date`` or from ``age`` as recorded on
    ``age_recorded_on``. ``service_address`` is the address the owner confirmed for service of
    documents (送达地址确认书), with the date it was confirmed.
    """

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    id_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    service_address: Mapped[str | None] = mapped_column(Text, nullable=True)
    address_confirmed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    birth_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    age_recorded_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class OwnerTag(Base):
    """A stored tag of an owner: vacant, rented, lost_contact, quality_dispute.

    ``elderly`` and ``repeat_arrears`` are derived when read, never stored.
    """

    __tablename__ = "owner_tags"

    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)


class CoOwner(Base):
    """A co-owner (共有人) named on the title with the owner."""

    __tablename__ = "co_owners"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    id_number: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Case(Base):
    """A collection case: one per owner and unit."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("owner_id", "unit_id", name="uq_cases_owner_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    limitation_mode: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CaseAssignee(Base):
    """A field user the case is assigned to."""

    __tablename__ = "case_assignees"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


class CaseImport(Base):
    """One import of a billing export or a case file; mirrors its ``import`` log entry."""

    __tablename__ = "case_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    format: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Arrear(Base):
    """One billing period in arrears: what was billed, when it fell due, what the billing
    system reports as paid (without a dated payment event).

    A unit's period is billed once: (unit, period) is unique across cases.
    """

    __tablename__ = "arrears"
    __table_args__ = (UniqueConstraint("unit_id", "period", name="uq_arrears_unit_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    period: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(Money)
    due_date: Mapped[dt.date] = mapped_column(Date)
    paid_amount: Mapped[Decimal] = mapped_column(Money)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("case_imports.id"), nullable=True)


class CaseEvent(Base):
    """An event of a case's timeline.

    ``type`` is one of the event types of the import format (demand, payment, ...) or one the
    service records itself (stage_change, assignment, arrears_change, preservation). ``data``
    holds what only those carry. ``entry_index`` is the log entry that covers the event: its
    own ``case_event`` entry, or the ``import`` entry of the import that brought it
    (``import_id`` set). ``details_sha256`` is the salted hash of the event's full details
    (see ``cases.service.details_sha256``); the salt stays here, never in the log.
    """

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    type: Mapped[str] = mapped_column(String(24))
    date: Mapped[dt.date] = mapped_column(Date)
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    delivered: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    periods: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    amount: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    end_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    document: Mapped[str | None] = mapped_column(String(64), nullable=True)
    served_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    performance_due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    preservation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[list[int]] = mapped_column(JSON)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    salt: Mapped[str] = mapped_column(String(32))
    details_sha256: Mapped[str] = mapped_column(String(64))
    entry_index: Mapped[int] = mapped_column(BigInteger, index=True)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("case_imports.id"), nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ServiceAttempt(Base):
    """An attempt to serve a document (送达): the ``service_attempt`` event, with the address
    used (by default the owner's confirmed service address at the time)."""

    __tablename__ = "service_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("case_events.id"), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    document: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)


class PreservationFiling(Base):
    """A preservation measure (财产保全) as ruled and executed; recorded by a ``preservation``
    event (``event_id``)."""

    __tablename__ = "preservations"
    __table_args__ = (UniqueConstraint("case_id", "ref", name="uq_preservations_case_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    ref: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(16))
    ruling_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    executed_date: Mapped[dt.date] = mapped_column(Date)
    expires: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    amount: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("case_events.id"), unique=True)


CASE_TABLES = (
    "properties",
    "units",
    "owners",
    "owner_tags",
    "co_owners",
    "cases",
    "case_assignees",
    "case_imports",
    "arrears",
    "case_events",
    "service_attempts",
    "preservations",
)
