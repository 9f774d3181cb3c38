"""The case service: record events into a case's tamper-evident timeline, build the deadline
engine's facts from the database, compute deadlines, read cases.

Every recorded event appends one ``case_event`` entry to the log, carrying references and a
hash only (DESIGN.md: no personal data in the log)::

    {"case": "C-001", "event": "demand", "date": "2024-05-10", "periods": ["2023-01"],
     "evidence": [12], "details_sha256": "<hex>"}

plus ``"preservation"`` (renewal_filed, preservation), ``"stage"`` (stage_change) or ``"user"``
(assignment) where the event names one. ``details_sha256`` is SHA-256 of the RFC 8785
canonical JSON of ``{"case": ref, "salt": salt, "details": details}`` where ``details`` is the
event's full record (``EventSpec.details()``: amounts, reasons, methods, ...) and ``salt`` 16
random bytes (hex) kept in the event's row: without the salt the hash cannot be tested against
guesses of what an event said, and erasing the row leaves nothing in the log to link.

An event is acknowledged like any append: its entry is committed first, then the event row
(which records the entry index), then a signed checkpoint covers the entry. Bad input is
refused before anything is written.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import itertools
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import rfc8785
from sqlalchemy import Connection, Engine, Row, and_, delete, insert, select, update

from cases.deadlines import (
    CaseFacts,
    CaseStage,
    Deadline,
    LimitationMode,
    Period,
    compute_deadlines,
    compute_many,
)
from cases.errors import CaseNotFound, InvalidCaseData, UnknownReference
from cases.inputs import (
    DERIVED_TAGS,
    EVENT_TYPES,
    STORED_TAGS,
    ArrearSpec,
    EventSpec,
    PreservationSpec,
    engine_check,
    mask_id_number,
    mask_phone,
    parse_name,
    parse_phone,
    parse_text,
)
from cases.models import (
    Arrear,
    Case,
    CaseAssignee,
    CaseEvent,
    CaseImport,
    CoOwner,
    Owner,
    OwnerTag,
    PreservationFiling,
    Property,
    ServiceAttempt,
    Unit,
)
from core.accounts import User
from core.clock import Clock, SystemClock
from core.db import in_batches, write_engine
from evidence.models import EvidenceItem
from evidence.service import EvidenceService
from ledger.entry import decode_entry
from ledger.errors import EntryNotFound
from ledger.service import Ledger, Receipt

__all__ = [
    "SHANGHAI",
    "CaseService",
    "RecordedEvent",
    "age_on",
    "case_event_payload",
    "details_sha256",
    "existing_evidence",
    "new_salt",
    "paused_gc",
    "today",
]

# Legal dates are calendar days in Asia/Shanghai (UTC+8 all year: no daylight saving since 1991).
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
ELDERLY_AGE = 60
_CASES = Case.__table__
_OWNERS = Owner.__table__
_UNITS = Unit.__table__
_PROPS = Property.__table__
_ARREARS = Arrear.__table__
_EVENTS = CaseEvent.__table__
_PRES = PreservationFiling.__table__


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for bulk work (an import, the deadlines of every case).

    Such work allocates millions of small objects that form no reference cycles; as the heap
    grows, the collector's full passes over all of them would cost about a third of the time.
    Reference counting still frees everything; the collector runs again afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def today(clock: Clock) -> dt.date:
    """Today's date in Asia/Shanghai."""
    return clock.now().astimezone(SHANGHAI).date()


def new_salt() -> str:
    """16 random bytes, hex: the salt of an event's details hash."""
    return secrets.token_hex(16)


def details_sha256(case_ref: str, salt: str, details: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON (RFC 8785) of ``{"case", "salt", "details"}``."""
    body: dict[str, Any] = {"case": case_ref, "salt": salt, "details": dict(details)}
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def case_event_payload(case_ref: str, spec: EventSpec, digest: str) -> dict[str, Any]:
    """The ``case_event`` entry payload of an event: references and a hash, nothing personal."""
    payload: dict[str, Any] = {
        "case": case_ref,
        "event": spec.type,
        "date": spec.date.isoformat(),
        "periods": None if spec.periods is None else list(spec.periods),
        "evidence": list(spec.evidence),
        "details_sha256": digest,
    }
    if spec.preservation is not None:
        payload["preservation"] = spec.preservation
    if spec.type == "stage_change" and spec.data is not None:
        payload["stage"] = spec.data["to"]
    if spec.type == "assignment" and spec.data is not None:
        payload["user"] = spec.data["user"]
    return payload


def existing_evidence(conn: Connection, indexes: Iterable[int]) -> set[int]:
    """Which of ``indexes`` are evidence entries."""
    wanted = sorted(set(indexes))
    found: set[int] = set()
    for chunk in in_batches(wanted):
        found.update(
            conn.execute(
                select(EvidenceItem.entry_index).where(EvidenceItem.entry_index.in_(chunk))
            ).scalars()
        )
    return found


def spec_from_row(row: Any) -> EventSpec:
    """An event row back as an ``EventSpec`` (the inverse of how it was stored)."""
    periods = row.periods
    return EventSpec(
        type=row.type,
        date=row.date,
        method=row.method,
        outcome=row.outcome,
        delivered=row.delivered,
        periods=None if periods is None else tuple(periods),
        amount=row.amount,
        reason=row.reason,
        end=row.end_date,
        document=row.document,
        served_date=row.served_date,
        performance_due=row.performance_due,
        preservation=row.preservation,
        evidence=tuple(row.evidence or ()),
        data=row.data,
    )


def event_row(
    spec: EventSpec,
    *,
    case_id: int,
    salt: str,
    digest: str,
    entry_index: int,
    import_id: int | None,
    actor: str,
    at: dt.datetime,
) -> dict[str, Any]:
    """The ``case_events`` row of an event."""
    return {
        "case_id": case_id,
        "type": spec.type,
        "date": spec.date,
        "method": spec.method,
        "outcome": spec.outcome,
        "delivered": spec.delivered,
        "periods": None if spec.periods is None else list(spec.periods),
        "amount": spec.amount,
        "reason": spec.reason,
        "end_date": spec.end,
        "document": spec.document,
        "served_date": spec.served_date,
        "performance_due": spec.performance_due,
        "preservation": spec.preservation,
        "evidence": list(spec.evidence),
        "data": None if spec.data is None else dict(spec.data),
        "salt": salt,
        "details_sha256": digest,
        "entry_index": entry_index,
        "import_id": import_id,
        "recorded_by": actor,
        "recorded_at": at,
    }


def preservation_row(spec: PreservationSpec, case_id: int, event_id: int) -> dict[str, Any]:
    """The ``preservations`` row of a preservation."""
    return {
        "case_id": case_id,
        "ref": spec.ref,
        "stage": spec.stage,
        "asset": spec.asset,
        "ruling_date": spec.ruling_date,
        "executed_date": spec.executed_date,
        "expires": spec.expires,
        "amount": spec.amount,
        "event_id": event_id,
    }


def preservation_event(spec: PreservationSpec, on: dt.date) -> EventSpec:
    """The ``preservation`` event that records a preservation measure."""
    return EventSpec(
        type="preservation",
        date=on,
        preservation=spec.ref,
        data=spec.details(),
    )


def _spec_from_preservation(row: Any) -> PreservationSpec:
    return PreservationSpec(
        ref=row.ref,
        stage=row.stage,
        asset=row.asset,
        executed_date=row.executed_date,
        ruling_date=row.ruling_date,
        expires=row.expires,
        amount=row.amount,
    )


def arrear_spec(row: Any) -> ArrearSpec:
    """An arrears row as an ``ArrearSpec``."""
    return ArrearSpec(row.period, row.amount, row.due_date, row.paid_amount)


@dataclass(frozen=True)
class RecordedEvent:
    """What recording an event returns: the row, its log entry, the acknowledgement."""

    case: str
    type: str
    event_id: int
    receipt: Receipt

    def as_dict(self) -> dict[str, Any]:
        """``{"case", "event", "id", "index", "checkpoint_size", "timestamp"}``."""
        return {
            "case": self.case,
            "event": self.type,
            "id": self.event_id,
            "index": self.receipt.index,
            "checkpoint_size": self.receipt.checkpoint_size,
            "timestamp": self.receipt.timestamp.as_dict(),
        }


def _runs(periods: Sequence[str]) -> int:
    """Separate spells of arrears in a sorted list of billing periods.

    The billing cadence is the smallest gap between two periods (1 month for monthly bills, 3
    for quarterly); a larger gap means the periods between were paid on time, so a new spell
    began after it.
    """
    months = sorted({int(p[:4]) * 12 + int(p[5:7]) for p in periods})
    if len(months) < 2:
        return len(months)
    gaps = [b - a for a, b in itertools.pairwise(months)]
    cadence = min(gaps)
    return 1 + sum(1 for g in gaps if g > cadence)


def age_on(
    on: dt.date, birth_date: dt.date | None, age: int | None, recorded: dt.date | None
) -> int | None:
    """An owner's age on ``on``: from the birth date, else from an age recorded on a date."""
    if birth_date is not None:
        years = on.year - birth_date.year
        if (on.month, on.day) < (birth_date.month, birth_date.day):
            years -= 1
        return years
    if age is not None:
        if recorded is None:
            return age
        elapsed = on.year - recorded.year
        if (on.month, on.day) < (recorded.month, recorded.day):
            elapsed -= 1
        return age + max(0, elapsed)
    return None


class CaseService:
    """Cases, their timelines and deadlines. The engine, the ledger, the evidence service and a
    clock are given; each public method runs its own transactions."""

    def __init__(
        self,
        *,
        engine: Engine,
        ledger: Ledger,
        evidence: EvidenceService,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.evidence = evidence
        self.clock = clock or SystemClock()

    def today(self) -> dt.date:
        """Today in Asia/Shanghai, by the service's clock."""
        return today(self.clock)

    # -- lookups -----------------------------------------------------------------------------

    def _case(self, conn: Connection, ref: str) -> Row[Any]:
        row = conn.execute(select(_CASES).where(_CASES.c.ref == ref)).first()
        if row is None:
            raise CaseNotFound(f"no case {ref!r}")
        return row

    def _case_facts(
        self, conn: Connection, case: Row[Any]
    ) -> tuple[list[ArrearSpec], list[EventSpec], list[PreservationSpec]]:
        arrears = [
            arrear_spec(r)
            for r in conn.execute(
                select(_ARREARS)
                .where(_ARREARS.c.case_id == case.id)
                .order_by(_ARREARS.c.due_date, _ARREARS.c.period)
            )
        ]
        events = [
            spec_from_row(r)
            for r in conn.execute(
                select(_EVENTS).where(_EVENTS.c.case_id == case.id).order_by(_EVENTS.c.id)
            )
        ]
        preservations = [
            _spec_from_preservation(r)
            for r in conn.execute(
                select(_PRES).where(_PRES.c.case_id == case.id).order_by(_PRES.c.id)
            )
        ]
        return arrears, events, preservations

    def facts(self, ref: str) -> CaseFacts:
        """The deadline engine's facts of case ``ref``, from the database."""
        with self.engine.connect() as conn:
            case = self._case(conn, ref)
            arrears, events, preservations = self._case_facts(conn, case)
        return engine_check(
            case.ref, case.limitation_mode, arrears, events, preservations, case.stage
        )

    def all_facts(self) -> list[CaseFacts]:
        """The facts of every case, in case-reference order, read in one query per table
        (not one per case)."""
        with self.engine.connect() as conn:
            cases = conn.execute(
                select(
                    _CASES.c.id, _CASES.c.ref, _CASES.c.limitation_mode, _CASES.c.stage
                ).order_by(_CASES.c.ref)
            ).all()
            periods = _load_periods(conn)
            events: dict[int, list[EventSpec]] = defaultdict(list)
            for r in conn.execute(
                select(_EVENTS).where(_EVENTS.c.type.in_(EVENT_TYPES)).order_by(_EVENTS.c.id)
            ):
                events[r.case_id].append(spec_from_row(r))
            preservations: dict[int, list[PreservationSpec]] = defaultdict(list)
            for r in conn.execute(select(_PRES).order_by(_PRES.c.id)):
                preservations[r.case_id].append(_spec_from_preservation(r))
        out = []
        for c in cases:
            evs = events.get(c.id, ())
            engine_events = tuple(e for e in (ev.to_engine() for ev in evs) if e is not None)
            out.append(
                CaseFacts(
                    ref=c.ref,
                    limitation_mode=LimitationMode(c.limitation_mode),
                    periods=tuple(periods.get(c.id, ())),
                    events=engine_events,
                    preservations=tuple(p.to_engine() for p in preservations.get(c.id, ())),
                    stage=CaseStage(c.stage),
                )
            )
        return out

    def deadlines(
        self,
        as_of: dt.date | None = None,
        *,
        case: str | None = None,
        within: int | None = None,
    ) -> list[Deadline]:
        """Every deadline of every case (or of ``case``) as of ``as_of`` (default today),
        soonest first; ``within`` keeps those dated from ``as_of`` to ``as_of + within`` days."""
        as_of = as_of or self.today()
        if within is not None and within < 0:
            raise InvalidCaseData("--within must not be negative")
        if case is not None:
            rows = compute_deadlines(self.facts(case), as_of)
        else:
            with paused_gc():
                rows = compute_many(self.all_facts(), as_of)
        if within is not None:
            last = as_of + dt.timedelta(days=within)
            rows = [r for r in rows if as_of <= r.date <= last]
        return rows

    # -- recording ---------------------------------------------------------------------------

    def record_event(
        self,
        case_ref: str,
        spec: EventSpec,
        *,
        actor: str,
        address: str | None = None,
    ) -> RecordedEvent:
        """Validate and record an event of the import format's types (demand, payment, ...).

        Its periods and preservation must be the case's, its evidence entries must exist, its
        date must not be in the future. A ``service_attempt`` also gets a service-attempt row
        with ``address`` (default: the owner's confirmed service address).
        """
        if spec.type not in EVENT_TYPES:
            raise InvalidCaseData(
                f"unknown event type {spec.type!r} (expected one of: {', '.join(EVENT_TYPES)})"
            )
        if spec.date > self.today():
            raise InvalidCaseData(f"the event is dated {spec.date}, in the future")
        if address is not None and spec.type != "service_attempt":
            raise InvalidCaseData("an address is recorded only with a service attempt")
        address = parse_text(address, "address")
        with self.engine.connect() as conn:
            case = self._case(conn, case_ref)
            arrears, events, preservations = self._case_facts(conn, case)
            engine_check(
                case.ref,
                case.limitation_mode,
                arrears,
                [*events, spec],
                preservations,
                case.stage,
            )
            self._check_evidence(conn, spec.evidence)
            if spec.type == "service_attempt" and address is None:
                address = conn.execute(
                    select(_OWNERS.c.service_address).where(_OWNERS.c.id == case.owner_id)
                ).scalar()
        return self._record(case, spec, actor, address=address)

    def _check_evidence(self, conn: Connection, indexes: Sequence[int]) -> None:
        if not indexes:
            return
        missing = sorted(set(indexes) - existing_evidence(conn, indexes))
        if missing:
            raise UnknownReference(
                f"entry {missing[0]} is not an evidence entry (an event may cite only evidence)"
            )

    def _record(
        self,
        case: Row[Any],
        spec: EventSpec,
        actor: str,
        *,
        address: str | None = None,
        preservation: PreservationSpec | None = None,
        stage: str | None = None,
        assignee: tuple[int, bool] | None = None,
    ) -> RecordedEvent:
        salt = new_salt()
        digest = details_sha256(case.ref, salt, spec.details())
        appended = self.ledger.append_durable(
            "case_event", case_event_payload(case.ref, spec, digest), actor
        )
        now = self.clock.now()
        with write_engine(self.engine).begin() as conn:
            event_id = conn.execute(
                insert(CaseEvent).returning(_EVENTS.c.id),
                [
                    event_row(
                        spec,
                        case_id=case.id,
                        salt=salt,
                        digest=digest,
                        entry_index=appended.index,
                        import_id=None,
                        actor=actor,
                        at=now,
                    )
                ],
            ).scalar_one()
            if spec.type == "service_attempt":
                assert spec.document is not None and spec.method is not None
                conn.execute(
                    insert(ServiceAttempt),
                    [
                        {
                            "event_id": event_id,
                            "case_id": case.id,
                            "date": spec.date,
                            "document": spec.document,
                            "method": spec.method,
                            "outcome": spec.outcome,
                            "address": address,
                        }
                    ],
                )
            if preservation is not None:
                conn.execute(
                    insert(PreservationFiling),
                    [preservation_row(preservation, case.id, event_id)],
                )
            if stage is not None:
                conn.execute(update(Case).where(_CASES.c.id == case.id).values(stage=stage))
            if assignee is not None:
                user_id, remove = assignee
                table = CaseAssignee.__table__
                if remove:
                    conn.execute(
                        delete(CaseAssignee).where(
                            and_(table.c.case_id == case.id, table.c.user_id == user_id)
                        )
                    )
                else:
                    conn.execute(insert(CaseAssignee), [{"case_id": case.id, "user_id": user_id}])
        cp = self.ledger.ensure_checkpoint(appended.index + 1)
        receipt = Receipt(
            index=appended.index,
            leaf_hash=appended.leaf_hash,
            time=appended.time,
            checkpoint_size=cp.size,
            timestamp=self.ledger.wait_timestamp(cp.size),
        )
        return RecordedEvent(case=case.ref, type=spec.type, event_id=event_id, receipt=receipt)

    def change_stage(
        self,
        case_ref: str,
        stage: str,
        *,
        actor: str,
        on: dt.date | None = None,
        reason: str | None = None,
    ) -> RecordedEvent:
        """Move a case to ``stage``, recorded as a ``stage_change`` event."""
        try:
            new = CaseStage(stage).value
        except ValueError:
            allowed = ", ".join(s.value for s in CaseStage)
            raise InvalidCaseData(f"unknown stage {stage!r} (expected one of: {allowed})") from None
        on = on or self.today()
        if on > self.today():
            raise InvalidCaseData(f"the stage change is dated {on}, in the future")
        with self.engine.connect() as conn:
            case = self._case(conn, case_ref)
        if case.stage == new:
            raise InvalidCaseData(f"case {case_ref} is already at stage {new}")
        spec = EventSpec(
            type="stage_change",
            date=on,
            reason=parse_text(reason, "reason"),
            data={"from": case.stage, "to": new},
        )
        return self._record(case, spec, actor, stage=new)

    def assign(
        self, case_ref: str, user: str, *, actor: str, remove: bool = False
    ) -> RecordedEvent:
        """Assign a case to an active field user (or remove the assignment), recorded as an
        ``assignment`` event naming the user."""
        with self.engine.connect() as conn:
            case = self._case(conn, case_ref)
            row = conn.execute(
                select(User.id, User.role, User.active).where(User.name == user)
            ).first()
            if row is None:
                raise UnknownReference(f"no user named {user!r}")
            assigned = conn.execute(
                select(CaseAssignee.user_id).where(
                    CaseAssignee.case_id == case.id, CaseAssignee.user_id == row.id
                )
            ).first()
        if remove and assigned is None:
            raise InvalidCaseData(f"case {case_ref} is not assigned to {user}")
        if not remove:
            if assigned is not None:
                raise InvalidCaseData(f"case {case_ref} is already assigned to {user}")
            if row.role != "field" or not row.active:
                raise InvalidCaseData(f"{user} is not an active field user")
        spec = EventSpec(
            type="assignment",
            date=self.today(),
            data={"user": user, "action": "remove" if remove else "add"},
        )
        return self._record(case, spec, actor, assignee=(row.id, remove))

    def add_preservation(
        self, case_ref: str, spec: PreservationSpec, *, actor: str
    ) -> RecordedEvent:
        """Record a preservation measure of a case (a ``preservation`` event)."""
        with self.engine.connect() as conn:
            case = self._case(conn, case_ref)
            arrears, events, preservations = self._case_facts(conn, case)
        if spec.executed_date > self.today():
            raise InvalidCaseData(f"{spec.ref} is executed {spec.executed_date}, in the future")
        if any(p.ref == spec.ref for p in preservations):
            raise InvalidCaseData(
                f"case {case_ref} already has preservation {spec.ref}; enter a renewed ruling "
                "as a new preservation"
            )
        engine_check(
            case.ref, case.limitation_mode, arrears, events, [*preservations, spec], case.stage
        )
        # The event is dated the day the measure took effect.
        return self._record(
            case, preservation_event(spec, spec.executed_date), actor, preservation=spec
        )

    # -- owners ------------------------------------------------------------------------------

    def update_owner(
        self,
        owner_ref: str,
        *,
        phone: str | None = None,
        id_number: str | None = None,
        service_address: str | None = None,
        address_confirmed_on: dt.date | None = None,
        birth_date: dt.date | None = None,
        age: int | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
        co_owner: tuple[str, str | None, str | None] | None = None,
    ) -> None:
        """Correct or complete an owner's personal data (ordinary tables; not logged).

        ``co_owner`` adds a co-owner (name, phone, ID number).
        """
        values: dict[str, Any] = {}
        if phone is not None:
            values["phone"] = parse_phone(phone)
        if id_number is not None:
            number = id_number.strip().upper()
            if not number or len(number) > 32 or not number.isalnum() or not number.isascii():
                raise InvalidCaseData("the ID number must be 1-32 ASCII letters and digits")
            values["id_number"] = number
        if service_address is not None:
            values["service_address"] = parse_text(service_address, "service address")
            values["address_confirmed_on"] = address_confirmed_on or self.today()
        elif address_confirmed_on is not None:
            raise InvalidCaseData("a confirmation date needs the service address")
        if birth_date is not None:
            if birth_date > self.today():
                raise InvalidCaseData("the birth date is in the future")
            values["birth_date"] = birth_date
        if age is not None:
            if not 0 <= age <= 150:
                raise InvalidCaseData("the age must be between 0 and 150")
            values["age"] = age
            values["age_recorded_on"] = self.today()
        for tag in (*add_tags, *remove_tags):
            if tag in DERIVED_TAGS:
                raise InvalidCaseData(f"{tag!r} is derived, not entered")
            if tag not in STORED_TAGS:
                raise InvalidCaseData(
                    f"unknown owner tag {tag!r} (expected one of: {', '.join(STORED_TAGS)})"
                )
        co: dict[str, Any] | None = None
        if co_owner is not None:
            name, co_phone, co_id = co_owner
            co = {
                "name": parse_name(name, "co-owner name"),
                "phone": parse_phone(co_phone, "co-owner phone"),
                "id_number": co_id.strip().upper() if co_id else None,
            }
        with write_engine(self.engine).begin() as conn:
            owner_id = conn.execute(select(_OWNERS.c.id).where(_OWNERS.c.ref == owner_ref)).scalar()
            if owner_id is None:
                raise CaseNotFound(f"no owner {owner_ref!r}")
            if values:
                conn.execute(update(Owner).where(_OWNERS.c.id == owner_id).values(**values))
            tags = OwnerTag.__table__
            have = set(
                conn.execute(select(tags.c.tag).where(tags.c.owner_id == owner_id)).scalars()
            )
            new_tags = [t for t in dict.fromkeys(add_tags) if t not in have]
            if new_tags:
                conn.execute(insert(OwnerTag), [{"owner_id": owner_id, "tag": t} for t in new_tags])
            if remove_tags:
                conn.execute(
                    delete(OwnerTag).where(
                        tags.c.owner_id == owner_id, tags.c.tag.in_(list(remove_tags))
                    )
                )
            if co is not None:
                conn.execute(insert(CoOwner), [{"owner_id": owner_id, **co}])

    # -- reading -----------------------------------------------------------------------------

    def owner_tags(self, conn: Connection, owner: Row[Any], on: dt.date) -> list[str]:
        """Stored and derived tags of an owner on ``on``, sorted."""
        return self.owner_tags_many(conn, [owner], on)[owner.id]

    def owner_tags_many(
        self, conn: Connection, owners: Sequence[Row[Any]], on: dt.date
    ) -> dict[int, list[str]]:
        """Tags of many owners in two queries (a report over 100,000 owners must not ask per
        owner): owner id -> stored and derived tags on ``on``, sorted."""
        ids = [o.id for o in owners]
        tags = OwnerTag.__table__
        stored: dict[int, set[str]] = {i: set() for i in ids}
        for owner_id, tag in conn.execute(
            select(tags.c.owner_id, tags.c.tag).where(tags.c.owner_id.in_(ids))
        ):
            stored[owner_id].add(tag)
        periods: dict[tuple[int, int], list[str]] = {}
        for owner_id, case_id, period in conn.execute(
            select(_CASES.c.owner_id, _ARREARS.c.case_id, _ARREARS.c.period)
            .join(_ARREARS, _ARREARS.c.case_id == _CASES.c.id)
            .where(_CASES.c.owner_id.in_(ids))
        ):
            periods.setdefault((owner_id, case_id), []).append(period)
        spells: dict[int, int] = {}
        for (owner_id, _case), case_periods in periods.items():
            spells[owner_id] = spells.get(owner_id, 0) + _runs(case_periods)
        out: dict[int, list[str]] = {}
        for owner in owners:
            found = stored[owner.id]
            age = age_on(on, owner.birth_date, owner.age, owner.age_recorded_on)
            if age is not None and age >= ELDERLY_AGE:
                found.add("elderly")
            if spells.get(owner.id, 0) >= 2:
                found.add("repeat_arrears")
            out[owner.id] = sorted(found)
        return out

    def show(self, ref: str, *, as_of: dt.date | None = None) -> dict[str, Any]:
        """A case for people: owner (phone and ID number masked), arrears, timeline,
        preservations, assignees."""
        as_of = as_of or self.today()
        with self.engine.connect() as conn:
            case = self._case(conn, ref)
            owner = conn.execute(select(_OWNERS).where(_OWNERS.c.id == case.owner_id)).one()
            unit = conn.execute(select(_UNITS).where(_UNITS.c.id == case.unit_id)).one()
            property_name = conn.execute(
                select(_PROPS.c.name).where(_PROPS.c.id == unit.property_id)
            ).scalar_one()
            co_owners = conn.execute(
                select(CoOwner.__table__)
                .where(CoOwner.__table__.c.owner_id == owner.id)
                .order_by(CoOwner.__table__.c.id)
            ).all()
            assignees = list(
                conn.execute(
                    select(User.name)
                    .join(CaseAssignee, CaseAssignee.user_id == User.id)
                    .where(CaseAssignee.case_id == case.id)
                    .order_by(User.name)
                ).scalars()
            )
            arrears = conn.execute(
                select(_ARREARS)
                .where(_ARREARS.c.case_id == case.id)
                .order_by(_ARREARS.c.due_date, _ARREARS.c.period)
            ).all()
            events = conn.execute(
                select(_EVENTS).where(_EVENTS.c.case_id == case.id).order_by(_EVENTS.c.id)
            ).all()
            pres = conn.execute(
                select(_PRES).where(_PRES.c.case_id == case.id).order_by(_PRES.c.id)
            ).all()
            tags = self.owner_tags(conn, owner, as_of)
        billed = sum((a.amount for a in arrears), Decimal("0.00"))
        paid = sum((a.paid_amount for a in arrears), Decimal("0.00"))
        return {
            "ref": case.ref,
            "property": property_name,
            "unit": unit.code,
            "stage": case.stage,
            "limitation_mode": case.limitation_mode,
            "assigned": assignees,
            "owner": {
                "ref": owner.ref,
                "name": owner.name,
                "phone": mask_phone(owner.phone),
                "id_number": mask_id_number(owner.id_number),
                "service_address": owner.service_address,
                "address_confirmed_on": _iso(owner.address_confirmed_on),
                "birth_date": _iso(owner.birth_date),
                "age": age_on(as_of, owner.birth_date, owner.age, owner.age_recorded_on),
                "tags": tags,
                "co_owners": [
                    {
                        "name": c.name,
                        "phone": mask_phone(c.phone),
                        "id_number": mask_id_number(c.id_number),
                    }
                    for c in co_owners
                ],
            },
            "arrears": [
                {
                    "period": a.period,
                    "amount": f"{a.amount:.2f}",
                    "due": a.due_date.isoformat(),
                    "paid": f"{a.paid_amount:.2f}",
                }
                for a in arrears
            ],
            "billed": f"{billed:.2f}",
            "paid": f"{paid:.2f}",
            "events": [
                {
                    "id": e.id,
                    "index": e.entry_index,
                    **spec_from_row(e).details(),
                    "imported": e.import_id is not None,
                }
                for e in events
            ],
            "preservations": [_spec_from_preservation(p).details() for p in pres],
        }

    def list_cases(self, *, property: str | None = None) -> list[dict[str, Any]]:
        """Every case (or a property's): ref, property, unit, owner ref, stage, periods in the
        billing data, billed and paid (without dated payment events), assignees."""
        stmt = (
            select(
                _CASES.c.id,
                _CASES.c.ref,
                _CASES.c.stage,
                _PROPS.c.name.label("property"),
                _UNITS.c.code.label("unit"),
                _OWNERS.c.ref.label("owner"),
            )
            .join(_UNITS, _UNITS.c.id == _CASES.c.unit_id)
            .join(_PROPS, _PROPS.c.id == _UNITS.c.property_id)
            .join(_OWNERS, _OWNERS.c.id == _CASES.c.owner_id)
            .order_by(_CASES.c.ref)
        )
        if property is not None:
            stmt = stmt.where(_PROPS.c.name == property)
        with self.engine.connect() as conn:
            cases = conn.execute(stmt).all()
            totals: dict[int, list[Any]] = {}
            for case_id, amount, paid in conn.execute(
                select(_ARREARS.c.case_id, _ARREARS.c.amount, _ARREARS.c.paid_amount)
            ):
                t = totals.setdefault(case_id, [0, Decimal("0.00"), Decimal("0.00")])
                t[0] += 1
                t[1] += amount
                t[2] += paid
            assigned: dict[int, list[str]] = defaultdict(list)
            for case_id, name in conn.execute(
                select(CaseAssignee.case_id, User.name)
                .join(User, User.id == CaseAssignee.user_id)
                .order_by(User.name)
            ):
                assigned[case_id].append(name)
        out = []
        for c in cases:
            n, billed, paid = totals.get(c.id, [0, Decimal("0.00"), Decimal("0.00")])
            out.append(
                {
                    "ref": c.ref,
                    "property": c.property,
                    "unit": c.unit,
                    "owner": c.owner,
                    "stage": c.stage,
                    "periods": n,
                    "billed": f"{billed:.2f}",
                    "paid": f"{paid:.2f}",
                    "assigned": assigned.get(c.id, []),
                }
            )
        return out

    # -- verification ------------------------------------------------------------------------

    def verify_case(self, ref: str) -> list[str]:
        """Check a case's timeline against the log; returns the problems (empty: all holds).

        Each event's details are hashed again with its salt and compared with the hash its
        ``case_event`` entry carries; imported events are compared, as a whole, with the
        ``events_sha256`` of their ``import`` entry (over every case of that import).
        """
        problems: list[str] = []
        with self.engine.connect() as conn:
            case = self._case(conn, ref)
            events = conn.execute(
                select(_EVENTS).where(_EVENTS.c.case_id == case.id).order_by(_EVENTS.c.id)
            ).all()
            imports = sorted({e.import_id for e in events if e.import_id is not None})
        for e in events:
            digest = details_sha256(ref, e.salt, spec_from_row(e).details())
            if digest != e.details_sha256:
                problems.append(f"event {e.id} ({e.type} of {e.date}): details altered")
                continue
            if e.import_id is not None:
                continue
            try:
                entry = decode_entry(self.ledger.entry(e.entry_index), check_canonical=False)
            except EntryNotFound:
                problems.append(f"event {e.id}: its entry {e.entry_index} is not in the log")
                continue
            if (
                entry.type != "case_event"
                or entry.payload.get("case") != ref
                or entry.payload.get("details_sha256") != digest
            ):
                problems.append(
                    f"event {e.id} ({e.type} of {e.date}) does not match entry {e.entry_index}"
                )
        for import_id in imports:
            problems.extend(self._verify_import(import_id))
        return problems

    def _verify_import(self, import_id: int) -> list[str]:
        from cases.importer import events_digest

        with self.engine.connect() as conn:
            imp = conn.execute(
                select(CaseImport.__table__).where(CaseImport.__table__.c.id == import_id)
            ).one()
            rows = conn.execute(
                select(_CASES.c.ref, _EVENTS)
                .join(_CASES, _CASES.c.id == _EVENTS.c.case_id)
                .where(_EVENTS.c.import_id == import_id)
                .order_by(_EVENTS.c.id)
            ).all()
        pairs = [(r.ref, details_sha256(r.ref, r.salt, spec_from_row(r).details())) for r in rows]
        try:
            entry = decode_entry(self.ledger.entry(imp.entry_index), check_canonical=False)
        except EntryNotFound:
            return [f"import {import_id}: its entry {imp.entry_index} is not in the log"]
        if entry.type != "import" or entry.payload.get("events_sha256") != events_digest(pairs):
            return [f"the events of import entry {imp.entry_index} do not match it"]
        return []


def _load_periods(conn: Connection) -> dict[int, list[Period]]:
    """Every billing period, by case id.

    The bulk path: the driver's own cursor, without SQLAlchemy's per-value processing, in table
    order (no sort: the engine orders each case's periods itself). SQLite hands back REAL or
    INTEGER amounts and ISO text dates; the few distinct values are converted once each.
    """
    periods: dict[int, list[Period]] = defaultdict(list)
    money: dict[object, Decimal] = {}
    days: dict[object, dt.date] = {}
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute("SELECT case_id, period, amount, due_date, paid_amount FROM arrears")
        while batch := cur.fetchmany(50_000):
            for case_id, period, amount, due, paid in batch:
                a = money.get(amount)
                if a is None:
                    a = money[amount] = _money(amount)
                pd = money.get(paid)
                if pd is None:
                    pd = money[paid] = _money(paid)
                d = days.get(due)
                if d is None:
                    d = days[due] = due if isinstance(due, dt.date) else dt.date.fromisoformat(due)
                periods[case_id].append(Period(period, a, d, pd))
    finally:
        cur.close()
    return periods


def _money(value: object) -> Decimal:
    """A raw database amount (Decimal, or SQLite's int or float) as an exact 2-place Decimal."""
    if isinstance(value, Decimal):
        return value.quantize(_CENT)
    if isinstance(value, int | float):
        return Decimal(f"{value:.2f}")  # exact below 10^13: the column's scale is two places
    raise InvalidCaseData(f"not an amount in the database: {value!r}")


_CENT = Decimal("0.01")


def _iso(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()
