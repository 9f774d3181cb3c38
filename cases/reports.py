"""Arrears reports: collection rate, aging, cases by stage, deadlines ahead and four KPIs.

The computations are pure functions over plain values (billing periods, dated payments,
complaint dates, deadlines), so each number can be worked by hand; ``load_records`` and
``case_report`` read the database. The definitions (also in ``docs/letters.md``):

* Window: ``start`` to ``end``, both days included (calendar dates, Asia/Shanghai).
* Payments are allocated to billing periods exactly as the deadline engine allocates them
  (``allocate``): in date order, to the periods a payment lists, else to the oldest
  outstanding periods first (due date, then period name); an excess is a credit that is not
  used. A billing export's ``paid`` amount of a period is undated: it counts as paid before
  any dated payment, and never as paid on time or within a window.
* Collection rate = paid / billed over the periods due in the window (start <= due <= end);
  paid = undated paid amounts + payments allocated to those periods dated on or before ``end``.
* Aging: each period due before ``end`` with an amount outstanding on ``end`` (after payments
  dated on or before it), by days past due = ``end - due`` (1-90 days: 0-3 months, 91-180:
  3-6 months, 181-365: 6-12 months, 366-730: 1-2 years, 731-1095: 2-3 years, 1096 and more:
  over 3 years).
* Recovery rate = amount recovered in the window / amount under collection at its start. Under
  collection at the start: what was outstanding on ``start - 1 day`` of the periods due before
  ``start``. Recovered: the payments dated in the window allocated to those same periods.
* Timeliness = the median, over each (payment, period) allocation dated in the window, of the
  payment date minus the period's due date in days (negative: paid early); an even count takes
  the mean of the two middle values.
* Complaint rate = complaint events dated in the window x 100 / cases in the report.
* Conversion = owners who paid every period due in the window on time / owners in arrears
  before the window who have a period due in it. In arrears before the window: some period due
  before ``start`` was outstanding on ``start - 1 day``. On time: dated payments on or before
  the period's due date cover its whole amount.
* Rates are exact quotients rounded half up to four places (per 100 cases: two places); the
  numerator and denominator are given beside each, amounts with two decimals.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from cases.deadlines import (
    CaseFacts,
    CaseStage,
    Complaint,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
    Payment,
    Period,
    compute_many,
)
from cases.errors import InvalidCaseData, UnknownReference
from cases.models import Case, CaseEvent, Owner, Property, Unit
from core.db import in_batches

if TYPE_CHECKING:
    from cases.service import CaseService

__all__ = [
    "ACTIONABLE",
    "AGING_BUCKETS",
    "Allocation",
    "CaseRecord",
    "PeriodBalance",
    "Ratio",
    "ReportCase",
    "Window",
    "aging",
    "allocate",
    "build_report",
    "case_report",
    "collection_rate",
    "complaint_rate",
    "conversion",
    "deadlines_ahead",
    "load_records",
    "recovery_rate",
    "report_case",
    "stage_counts",
    "timeliness",
]

ZERO = Decimal("0.00")
_ONE_DAY = dt.timedelta(days=1)

#: Aging buckets: (key, Chinese label, first day past due, last day or None).
AGING_BUCKETS: tuple[tuple[str, str, int, int | None], ...] = (
    ("0-3m", "3个月以内", 1, 90),
    ("3-6m", "3至6个月", 91, 180),
    ("6-12m", "6至12个月", 181, 365),
    ("1-2y", "1至2年", 366, 730),
    ("2-3y", "2至3年", 731, 1095),
    ("3y+", "3年以上", 1096, None),
)

#: Deadline statuses that still call for action (counted in "deadlines ahead").
ACTIONABLE = frozenset({DeadlineStatus.RUNNING, DeadlineStatus.OPEN, DeadlineStatus.UPCOMING})


# --- allocation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allocation:
    """The share of one dated payment applied to one billing period."""

    date: dt.date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PeriodBalance:
    """A billing period with the payments allocated to it.

    ``paid_undated`` is the billing export's paid amount (no date); ``allocations`` the dated
    payment shares, oldest first.
    """

    period: str
    due: dt.date
    amount: Decimal
    paid_undated: Decimal
    allocations: tuple[Allocation, ...]

    def paid_by(self, day: dt.date | None = None) -> Decimal:
        """Undated paid amount plus dated payments on or before ``day`` (None: all)."""
        dated = sum((a.amount for a in self.allocations if day is None or a.date <= day), ZERO)
        return self.paid_undated + dated

    def outstanding(self, day: dt.date | None = None) -> Decimal:
        """What was still unpaid at the end of ``day`` (None: after every allocation)."""
        return self.amount - self.paid_by(day)

    def paid_between(self, start: dt.date, end: dt.date) -> Decimal:
        """Dated payments allocated to this period from ``start`` to ``end`` inclusive."""
        return sum((a.amount for a in self.allocations if start <= a.date <= end), ZERO)

    def paid_on_time(self) -> bool:
        """True when dated payments on or before the due date cover the whole amount."""
        on_time = sum((a.amount for a in self.allocations if a.date <= self.due), ZERO)
        return on_time >= self.amount


def allocate(
    periods: Iterable[Period], payments: Iterable[Payment], as_of: dt.date | None = None
) -> list[PeriodBalance]:
    """Allocate dated payments to billing periods as the deadline engine does.

    Payments are taken in date order (equal dates: in the order given), those after ``as_of``
    ignored. A payment listing periods pays them oldest first; one without pays the oldest
    outstanding periods first (due date, then period name), whether due yet or not. What is
    left over is a credit and is not used. Returns the periods oldest first.
    """
    ordered = sorted(periods, key=lambda p: (p.due, p.period))
    balance = {p.period: p.amount - p.paid for p in ordered}
    shares: dict[str, list[Allocation]] = {p.period: [] for p in ordered}
    due = {p.period: p.due for p in ordered}
    dated = sorted(
        (pay for pay in payments if as_of is None or pay.date <= as_of), key=lambda pay: pay.date
    )
    for pay in dated:
        if pay.periods is not None:
            names = sorted(pay.periods, key=lambda n: (due[n], n))
        else:
            names = [p.period for p in ordered]
        left = pay.amount
        for name in names:
            if left <= 0:
                break
            if balance[name] <= 0:
                continue
            share = min(left, balance[name])
            balance[name] -= share
            left -= share
            shares[name].append(Allocation(pay.date, share))
    return [
        PeriodBalance(p.period, p.due, p.amount, p.paid, tuple(shares[p.period])) for p in ordered
    ]


# --- values of a report --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A report window: ``start`` to ``end``, both days included."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InvalidCaseData(
                f"the window starts {self.start.isoformat()}, after it ends {self.end.isoformat()}"
            )

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator / denominator`` (times ``scale``), kept exact; ``value`` rounds it."""

    numerator: Decimal
    denominator: Decimal
    scale: int = 1
    places: int = 4

    @property
    def value(self) -> Decimal | None:
        """The quotient rounded half up to ``places`` decimals; None when nothing to divide."""
        if self.denominator == 0:
            return None
        exact = self.numerator * self.scale / self.denominator
        return exact.quantize(Decimal(1).scaleb(-self.places), rounding=ROUND_HALF_UP)

    def text(self) -> str | None:
        """``value`` as a string (None stays None)."""
        v = self.value
        return None if v is None else str(v)


@dataclass(frozen=True, slots=True)
class ReportCase:
    """What a report needs of one case: who owes, where, its stage, its billing periods with
    their payments, and the dates of its complaints."""

    ref: str
    owner: str
    property: str
    stage: str
    balances: tuple[PeriodBalance, ...]
    complaints: tuple[dt.date, ...] = ()


def report_case(
    ref: str, owner: str, property: str, stage: str, facts: CaseFacts, end: dt.date
) -> ReportCase:
    """A ``ReportCase`` from the deadline engine's facts, with payments up to ``end``."""
    payments = [ev for ev in facts.events if isinstance(ev, Payment)]
    complaints = tuple(
        sorted(ev.date for ev in facts.events if isinstance(ev, Complaint) and ev.date <= end)
    )
    return ReportCase(
        ref, owner, property, stage, tuple(allocate(facts.periods, payments, end)), complaints
    )


# --- the computations ----------------------------------------------------------------------


def collection_rate(cases: Iterable[ReportCase], window: Window) -> tuple[Ratio, int]:
    """Paid / billed over the periods due in the window (paid by its end); and their count."""
    billed = paid = ZERO
    count = 0
    for c in cases:
        for b in c.balances:
            if b.due in window:
                count += 1
                billed += b.amount
                paid += b.paid_by(window.end)
    return Ratio(paid, billed), count


@dataclass(frozen=True, slots=True)
class AgingBucket:
    """Outstanding arrears of one age bracket."""

    key: str
    label_zh: str
    first_day: int
    last_day: int | None
    periods: int
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        """JSON values (amount with two decimals)."""
        return {
            "bucket": self.key,
            "label_zh": self.label_zh,
            "days": [self.first_day, self.last_day],
            "periods": self.periods,
            "amount": f"{self.amount:.2f}",
        }


def aging(cases: Iterable[ReportCase], end: dt.date) -> list[AgingBucket]:
    """Outstanding amounts on ``end`` of the periods due before it, by days past due."""
    counts = [0] * len(AGING_BUCKETS)
    amounts = [ZERO] * len(AGING_BUCKETS)
    for c in cases:
        for b in c.balances:
            days = (end - b.due).days
            if days < 1:
                continue  # not yet past due
            owed = b.outstanding(end)
            if owed <= 0:
                continue
            for i, (_key, _zh, first, last) in enumerate(AGING_BUCKETS):
                if days >= first and (last is None or days <= last):
                    counts[i] += 1
                    amounts[i] += owed
                    break
    return [
        AgingBucket(key, zh, first, last, counts[i], amounts[i])
        for i, (key, zh, first, last) in enumerate(AGING_BUCKETS)
    ]


def stage_counts(cases: Iterable[ReportCase]) -> dict[str, int]:
    """Cases by their stage, every stage listed (in the order a case moves through them)."""
    counted = Counter(c.stage for c in cases)
    return {s.value: counted.get(s.value, 0) for s in CaseStage}


def deadlines_ahead(deadlines: Iterable[Deadline], as_of: dt.date, days: int) -> dict[str, Any]:
    """Deadlines still to act on (running, open, upcoming) dated from ``as_of`` to ``days``
    later inclusive: ``{"days", "total", "by_kind": {kind: n}}`` (every kind listed)."""
    last = as_of + dt.timedelta(days=days)
    counted = Counter(
        d.kind for d in deadlines if d.status in ACTIONABLE and as_of <= d.date <= last
    )
    return {
        "days": days,
        "total": sum(counted.values()),
        "by_kind": {k.value: counted.get(k, 0) for k in DeadlineKind},
    }


def _before(window: Window) -> dt.date:
    return window.start - _ONE_DAY


def recovery_rate(cases: Iterable[ReportCase], window: Window) -> Ratio:
    """Recovered in the window / under collection at its start (see the module docstring)."""
    day_before = _before(window)
    owed = recovered = ZERO
    for c in cases:
        for b in c.balances:
            if b.due < window.start:
                owed += b.outstanding(day_before)
                recovered += b.paid_between(window.start, window.end)
    return Ratio(recovered, owed)


def timeliness(cases: Iterable[ReportCase], window: Window) -> tuple[Decimal | None, int]:
    """The median days from due date to payment over the allocations dated in the window
    (None when there are none), and how many allocations there were."""
    days = sorted(
        (a.date - b.due).days
        for c in cases
        for b in c.balances
        for a in b.allocations
        if a.date in window
    )
    n = len(days)
    if n == 0:
        return None, 0
    mid = n // 2
    if n % 2:
        return Decimal(days[mid]), n
    return Decimal(days[mid - 1] + days[mid]) / 2, n


def complaint_rate(cases: Sequence[ReportCase], window: Window) -> Ratio:
    """Complaint events dated in the window per 100 cases of the report."""
    complaints = sum(1 for c in cases for d in c.complaints if d in window)
    return Ratio(Decimal(complaints), Decimal(len(cases)), scale=100, places=2)


def conversion(cases: Iterable[ReportCase], window: Window) -> Ratio:
    """Owners in arrears before the window who paid every period due in it on time, over
    those owners who have a period due in it (owners, not cases: an owner's cases together)."""
    day_before = _before(window)
    in_arrears: set[str] = set()
    due_in: dict[str, list[PeriodBalance]] = defaultdict(list)
    for c in cases:
        for b in c.balances:
            if b.due < window.start and b.outstanding(day_before) > 0:
                in_arrears.add(c.owner)
            elif b.due in window:
                due_in[c.owner].append(b)
    considered = [o for o in sorted(in_arrears) if due_in.get(o)]
    converted = [o for o in considered if all(b.paid_on_time() for b in due_in[o])]
    return Ratio(Decimal(len(converted)), Decimal(len(considered)))


def build_report(
    cases: Sequence[ReportCase],
    deadlines: Iterable[Deadline],
    window: Window,
    *,
    property: str | None = None,
) -> dict[str, Any]:
    """The whole report as JSON values; ``deadlines`` are those of ``cases`` as of the window's
    end. Amounts and rates are strings (exact decimals); a rate with nothing to divide is null."""
    deadlines = list(deadlines)
    collected, due_count = collection_rate(cases, window)
    buckets = aging(cases, window.end)
    recovery = recovery_rate(cases, window)
    median, payments = timeliness(cases, window)
    complaints = complaint_rate(cases, window)
    converted = conversion(cases, window)
    return {
        "window": {"from": window.start.isoformat(), "to": window.end.isoformat()},
        "property": property,
        "cases": len(cases),
        "collection": {
            "periods": due_count,
            "billed": f"{collected.denominator:.2f}",
            "paid": f"{collected.numerator:.2f}",
            "rate": collected.text(),
        },
        "aging": [b.to_dict() for b in buckets],
        "outstanding": f"{sum((b.amount for b in buckets), ZERO):.2f}",
        "stages": stage_counts(cases),
        "deadlines": {
            "as_of": window.end.isoformat(),
            "next_30_days": deadlines_ahead(deadlines, window.end, 30),
            "next_90_days": deadlines_ahead(deadlines, window.end, 90),
        },
        "kpis": {
            "recovery_rate": {
                "recovered": f"{recovery.numerator:.2f}",
                "under_collection": f"{recovery.denominator:.2f}",
                "rate": recovery.text(),
            },
            "timeliness": {
                "median_days": None if median is None else str(median),
                "payments": payments,
            },
            "complaint_rate": {
                "complaints": int(complaints.numerator),
                "cases": int(complaints.denominator),
                "per_100_cases": complaints.text(),
            },
            "conversion": {
                "owners_in_arrears": int(converted.denominator),
                "converted": int(converted.numerator),
                "rate": converted.text(),
            },
        },
    }


# --- loading from the database -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A case as the plans and reports read it: references, place, stage, the owner's tags
    (stored and derived, when asked for) and the deadline engine's facts."""

    ref: str
    owner: str
    property: str
    unit: str
    stage: str
    address_confirmed: bool
    tags: tuple[str, ...]
    facts: CaseFacts


def load_records(
    service: CaseService,
    *,
    case: str | None = None,
    property: str | None = None,
    tags_on: dt.date | None = None,
    stage_on: dt.date | None = None,
) -> list[CaseRecord]:
    """The cases (one, a property's, or all) in reference order, with their facts.

    ``tags_on`` also reads each owner's tags as of that date (``elderly`` is derived from the
    age on it). ``stage_on`` gives each case the stage it had at the end of that date (see
    :func:`stage_as_of`) instead of its current one. An unknown case raises ``CaseNotFound``,
    an unknown property ``UnknownReference``.
    """
    cases, units, props, owners = (
        Case.__table__,
        Unit.__table__,
        Property.__table__,
        Owner.__table__,
    )
    stmt = (
        select(
            cases.c.id.label("case_id"),
            cases.c.ref,
            cases.c.stage,
            cases.c.owner_id,
            props.c.name.label("property"),
            units.c.code.label("unit"),
            owners.c.ref.label("owner"),
            owners.c.service_address,
        )
        .join(units, units.c.id == cases.c.unit_id)
        .join(props, props.c.id == units.c.property_id)
        .join(owners, owners.c.id == cases.c.owner_id)
        .order_by(cases.c.ref)
    )
    if case is not None:
        stmt = stmt.where(cases.c.ref == case)
    if property is not None:
        stmt = stmt.where(props.c.name == property)
    with service.engine.connect() as conn:
        if property is not None and (
            conn.execute(select(props.c.id).where(props.c.name == property)).first() is None
        ):
            raise UnknownReference(f"no property named {property!r}")
        rows = conn.execute(stmt).all()
        stages = {r.ref: r.stage for r in rows}
        if stage_on is not None:
            changes = _stage_changes(conn, [r.case_id for r in rows])
            stages = {
                r.ref: stage_as_of(r.stage, changes.get(r.case_id, []), stage_on) for r in rows
            }
        tags: dict[int, list[str]] = {}
        if tags_on is not None:
            for chunk in in_batches(sorted({r.owner_id for r in rows})):
                found = conn.execute(select(owners).where(owners.c.id.in_(chunk))).all()
                tags.update(service.owner_tags_many(conn, found, tags_on))
    if case is not None:
        facts = {case: service.facts(case)}  # raises CaseNotFound for an unknown case
    else:
        wanted = {r.ref for r in rows}
        facts = {f.ref: f for f in service.all_facts() if f.ref in wanted}
    return [
        CaseRecord(
            ref=r.ref,
            owner=r.owner,
            property=r.property,
            unit=r.unit,
            stage=stages[r.ref],
            address_confirmed=bool(r.service_address),
            tags=tuple(tags.get(r.owner_id, ())),
            facts=facts[r.ref],
        )
        for r in rows
    ]


def stage_as_of(current: str, changes: Sequence[tuple[dt.date, str, str]], on: dt.date) -> str:
    """The stage a case had at the end of ``on``.

    ``changes`` are its ``stage_change`` events as (date, from, to), in the order they were
    recorded. Taken by date (recorded order within a day), the last one dated on or before
    ``on`` says where the case stood; if all are dated later, the first one's ``from`` does;
    with none, the case has not moved from ``current``.
    """
    ordered = sorted(changes, key=lambda c: c[0])  # stable: recorded order within a day
    before = [to for date, _from, to in ordered if date <= on]
    if before:
        return before[-1]
    return ordered[0][1] if ordered else current


def _stage_changes(
    conn: Connection, case_ids: Sequence[int]
) -> dict[int, list[tuple[dt.date, str, str]]]:
    """The stage_change events of ``case_ids`` as (date, from, to), in recorded order."""
    events = CaseEvent.__table__
    found: dict[int, list[tuple[dt.date, str, str]]] = defaultdict(list)
    for chunk in in_batches(sorted(set(case_ids))):
        rows = conn.execute(
            select(events.c.case_id, events.c.date, events.c.data)
            .where(events.c.type == "stage_change", events.c.case_id.in_(chunk))
            .order_by(events.c.case_id, events.c.id)
        ).all()
        for r in rows:
            found[r.case_id].append((r.date, r.data["from"], r.data["to"]))
    return found


def case_report(
    service: CaseService, window: Window, *, property: str | None = None
) -> dict[str, Any]:
    """The report of every case (or of one property's) over ``window``; deadlines are those
    as of the window's end, and so are the cases' stages."""
    records = load_records(service, property=property, stage_on=window.end)
    cases = [report_case(r.ref, r.owner, r.property, r.stage, r.facts, window.end) for r in records]
    deadlines = compute_many((r.facts for r in records), window.end)
    return build_report(cases, deadlines, window, property=property)
