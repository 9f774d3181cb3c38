"""The PRC deadline engine: case facts and an as-of date in, deadlines with their legal basis out.

Pure functions over frozen values: no database, no web. Every computed date names the articles it
rests on (``Deadline.basis``) and says whether it used a year without an official working-day
schedule (``Deadline.provisional``). The rules and their sources are written out in
``docs/deadlines.md``; the short version:

* Limitation (诉讼时效): three years (民法典第188条) per unpaid billing period, or one clock from
  the last period's due date in ``installment`` mode (民法典第189条). The start day is not counted
  (第201条); the period ends on the same calendar date, or the month-end if there is none (第202条);
  a last day that is not a working day moves to the next working day (第203条).
* Interruption (中断, 民法典第195条): a delivered demand (诉讼时效规定第8条), an acknowledgment or a
  payment that leaves a period partly unpaid (第14条), or filing suit (第10条) starts a new period.
* Suspension (中止, 民法典第194条): an obstacle during the last six months ends the period six
  months after the obstacle ends.
* Preservation (财产保全, 民事诉讼法第103-104条), public notice (第95条), appeal (第171条) and
  enforcement (第250条).

Facts dated after ``as_of`` have not happened yet as of that date and are ignored.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, TypeVar

from cases.errors import InvalidCaseData, UnknownReference
from cases.workdays import (
    day_description,
    next_working_day,
    previous_working_day,
    provisional_between,
)

__all__ = [
    "Acknowledgment",
    "Asset",
    "CaseFacts",
    "CaseStage",
    "Complaint",
    "Deadline",
    "DeadlineKind",
    "DeadlineStatus",
    "Demand",
    "Event",
    "Interruption",
    "Judgment",
    "LimitationMode",
    "Method",
    "Note",
    "Obstacle",
    "Outcome",
    "Payment",
    "Period",
    "PeriodEnd",
    "Preservation",
    "PreservationStage",
    "RenewalFiled",
    "ServiceAttempt",
    "SuitFiled",
    "SuitWithdrawn",
    "add_months",
    "add_years",
    "compute_deadlines",
    "compute_many",
    "limitation_end",
    "preservation_max_expiry",
]

# --- legal bases ---------------------------------------------------------------------------
# Article numbers: Civil Code (2020); Civil Procedure Law as amended in 2023; the SPC limitation
# provisions as revised in 2020 (法释〔2020〕17号); the CPL interpretation as amended in 2022.

CC188 = "民法典第188条"
CC189 = "民法典第189条"
CC192 = "民法典第192条"
CC194 = "民法典第194条"
CC195 = "民法典第195条"
CC201 = "民法典第201条"
CC202 = "民法典第202条"
CC203 = "民法典第203条"
_SPC_LIMITATION = "《最高人民法院关于审理民事案件适用诉讼时效制度若干问题的规定》"
SPC_LIMITATION_8 = _SPC_LIMITATION + "第8条"
SPC_LIMITATION_9 = _SPC_LIMITATION + "第9条"
SPC_LIMITATION_10 = _SPC_LIMITATION + "第10条"
SPC_LIMITATION_14 = _SPC_LIMITATION + "第14条"
CPL85 = "民事诉讼法第85条"
CPL95 = "民事诉讼法第95条"
CPL103 = "民事诉讼法第103条"
CPL104 = "民事诉讼法第104条"
CPL171 = "民事诉讼法第171条"
CPL250 = "民事诉讼法第250条"
SPC_PRESERVATION_18 = "《最高人民法院关于人民法院办理财产保全案件若干问题的规定》第18条"
CPL_INTERPRETATION_485 = "《最高人民法院关于适用〈中华人民共和国民事诉讼法〉的解释》第485条"

# --- enumerations --------------------------------------------------------------------------


class LimitationMode(StrEnum):
    """How a case's billing periods are clocked."""

    PER_PERIOD = "per_period"  # each period is its own debt (majority practice)
    INSTALLMENT = "installment"  # one debt in instalments: 民法典第189条


class Method(StrEnum):
    """How a demand was made or a document was served."""

    DIRECT = "direct"
    LEFT_AT_HOME = "left_at_home"
    ELECTRONIC = "electronic"
    ENTRUSTED = "entrusted"
    MAIL = "mail"
    PUBLIC_NOTICE = "public_notice"
    SMS = "sms"
    WECHAT = "wechat"
    PHONE = "phone"
    VISIT = "visit"


class Outcome(StrEnum):
    """The outcome of a service attempt."""

    SERVED = "served"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    RETURNED = "returned"
    PUBLISHED = "published"
    UNANSWERED = "unanswered"


class PreservationStage(StrEnum):
    """Ordered before the suit (民事诉讼法第104条) or during it (第103条)."""

    PRE_LITIGATION = "pre_litigation"
    IN_LITIGATION = "in_litigation"


class Asset(StrEnum):
    """What a preservation measure holds; it sets the maximum term."""

    BANK_DEPOSIT = "bank_deposit"
    MOVABLE = "movable"
    REAL_ESTATE = "real_estate"
    OTHER_RIGHT = "other_right"


class CaseStage(StrEnum):
    """The stage of a case."""

    REMINDER = "reminder"
    CALL = "call"
    VISIT = "visit"
    LAWYER_LETTER = "lawyer_letter"
    MEDIATION = "mediation"
    SUIT = "suit"
    JUDGMENT = "judgment"
    ENFORCEMENT = "enforcement"
    CLOSED = "closed"


class DeadlineKind(StrEnum):
    """What a deadline is for."""

    LIMITATION = "limitation"
    SUIT_AFTER_PRESERVATION = "suit_after_preservation"
    PRESERVATION_RENEWAL = "preservation_renewal"
    PRESERVATION_EXPIRY = "preservation_expiry"
    SERVICE_DEEMED = "service_deemed"
    APPEAL = "appeal"
    ENFORCEMENT_APPLICATION = "enforcement_application"


class DeadlineStatus(StrEnum):
    """Status of a deadline as of a date.

    Limitation rows: running, expired, paid, suit_filed. Preservation expiry and deemed service:
    upcoming, passed. Every other row: open, met, overdue.
    """

    RUNNING = "running"
    EXPIRED = "expired"
    PAID = "paid"
    SUIT_FILED = "suit_filed"
    OPEN = "open"
    MET = "met"
    OVERDUE = "overdue"
    UPCOMING = "upcoming"
    PASSED = "passed"


# Maximum terms counted from execution (民诉法解释第485条): bank deposits 1 year, movables 2 years,
# real estate and other property rights 3 years.
MAX_TERM_YEARS: dict[Asset, int] = {
    Asset.BANK_DEPOSIT: 1,
    Asset.MOVABLE: 2,
    Asset.REAL_ESTATE: 3,
    Asset.OTHER_RIGHT: 3,
}

# --- validation helpers --------------------------------------------------------------------

_PERIOD_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_E = TypeVar("_E", bound=StrEnum)


def _check_date(value: object, what: str) -> None:
    # datetime is a subclass of date; a legal date is a calendar day in Asia/Shanghai.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidCaseData(f"{what} must be a date, not {value!r}")


def _optional_date(value: object, what: str) -> None:
    if value is not None:
        _check_date(value, what)


def _amount(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvalidCaseData(f"{what} must be an exact decimal amount, not {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidCaseData(f"{what} must be a finite amount, not {value!r}")
    if amount < 0:
        raise InvalidCaseData(f"{what} must not be negative: {amount}")
    return amount


def _enum(cls: type[_E], value: object, what: str) -> _E:
    if type(value) is cls:
        return value
    if isinstance(value, str):
        try:
            return cls(value)
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in cls)
    raise InvalidCaseData(f"unknown {what} {value!r} (expected one of: {allowed})")


def _check_period_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not _PERIOD_RE.fullmatch(value):
        raise InvalidCaseData(f"{what} must be a billing period 'YYYY-MM', not {value!r}")


@functools.cache
def _valid_period_names() -> frozenset[str]:
    return frozenset(f"{y:04d}-{m:02d}" for y in range(1900, 2200) for m in range(1, 13))


def _periods(value: object, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidCaseData(f"{what} must be a list of billing periods, not {value!r}")
    for p in value:
        _check_period_name(p, what)
    if not value:
        raise InvalidCaseData(f"{what} is empty: omit it to cover every outstanding period")
    if len(set(value)) != len(value):
        raise InvalidCaseData(f"{what} lists a period twice: {list(value)}")
    return tuple(value)


def _set(obj: object, name: str, value: object) -> None:
    # Normalisation inside __post_init__ of a frozen dataclass.
    object.__setattr__(obj, name, value)


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """One billing period of arrears.

    ``paid`` is what was paid for the period without a dated ``Payment`` event (e.g. as the
    billing export reports it); ``Payment`` events are applied on top of it. Being undated, it
    never interrupts a clock.
    """

    period: str
    amount: Decimal
    due: dt.date
    paid: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        amount, paid = self.amount, self.paid
        # Fast path for the common, well-typed row (millions of rows in a benchmark).
        if not (
            type(amount) is Decimal
            and type(paid) is Decimal
            and type(self.due) is dt.date
            and self.period in _valid_period_names()
            and amount.is_finite()
            and 0 <= paid <= amount
        ):
            _check_period_name(self.period, "period")
            amount = _amount(amount, f"amount of period {self.period}")
            paid = _amount(paid, f"paid amount of period {self.period}")
            _check_date(self.due, f"due date of period {self.period}")
            if paid > amount:
                raise InvalidCaseData(
                    f"period {self.period}: paid {paid} exceeds the amount {amount}"
                )
            _set(self, "amount", amount)
            _set(self, "paid", paid)


@dataclass(frozen=True, slots=True)
class Demand:
    """A demand for payment (催告); only one proven delivered interrupts (诉讼时效规定第8条)."""

    type: ClassVar[str] = "demand"
    date: dt.date
    delivered: bool
    periods: tuple[str, ...] | None = None
    method: Method | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "demand date")
        if not isinstance(self.delivered, bool):
            raise InvalidCaseData(f"demand 'delivered' must be true or false: {self.delivered!r}")
        _set(self, "periods", _periods(self.periods, "demand periods"))
        if self.method is not None:
            _set(self, "method", _enum(Method, self.method, "method"))


@dataclass(frozen=True, slots=True)
class Payment:
    """A dated payment; without ``periods`` it pays the oldest outstanding periods first."""

    type: ClassVar[str] = "payment"
    date: dt.date
    amount: Decimal
    periods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "payment date")
        amount = _amount(self.amount, "payment amount")
        if amount == 0:
            raise InvalidCaseData("payment amount must be positive")
        _set(self, "amount", amount)
        _set(self, "periods", _periods(self.periods, "payment periods"))


@dataclass(frozen=True, slots=True)
class Acknowledgment:
    """The owner agreed to pay: a payment plan, a request for time (诉讼时效规定第14条)."""

    type: ClassVar[str] = "acknowledgment"
    date: dt.date
    periods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "acknowledgment date")
        _set(self, "periods", _periods(self.periods, "acknowledgment periods"))


@dataclass(frozen=True, slots=True)
class SuitFiled:
    """Suit filed for the listed periods (else all outstanding): their clocks stop."""

    type: ClassVar[str] = "suit_filed"
    date: dt.date
    periods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "suit date")
        _set(self, "periods", _periods(self.periods, "suit periods"))


@dataclass(frozen=True, slots=True)
class SuitWithdrawn:
    """Suit withdrawn for the listed periods (else all under suit): a new period runs."""

    type: ClassVar[str] = "suit_withdrawn"
    date: dt.date
    periods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "withdrawal date")
        _set(self, "periods", _periods(self.periods, "withdrawal periods"))


@dataclass(frozen=True, slots=True)
class Obstacle:
    """An obstacle to claiming (民法典第194条) from ``date`` to ``end`` inclusive."""

    type: ClassVar[str] = "obstacle"
    date: dt.date
    end: dt.date
    reason: str = ""
    periods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "obstacle date")
        _check_date(self.end, "obstacle end")
        if self.end < self.date:
            raise InvalidCaseData(f"obstacle ends {self.end}, before it starts {self.date}")
        _set(self, "periods", _periods(self.periods, "obstacle periods"))


@dataclass(frozen=True, slots=True)
class ServiceAttempt:
    """An attempt to serve a court document; a published public notice is deemed served later."""

    type: ClassVar[str] = "service_attempt"
    date: dt.date
    document: str
    method: Method
    outcome: Outcome | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "service date")
        if not isinstance(self.document, str) or not self.document:
            raise InvalidCaseData("a service attempt must name its document")
        _set(self, "method", _enum(Method, self.method, "method"))
        if self.outcome is not None:
            _set(self, "outcome", _enum(Outcome, self.outcome, "outcome"))


@dataclass(frozen=True, slots=True)
class Judgment:
    """A judgment: served on ``served_date``; to be performed by ``performance_due``."""

    type: ClassVar[str] = "judgment"
    date: dt.date
    served_date: dt.date | None = None
    performance_due: dt.date | None = None

    def __post_init__(self) -> None:
        _check_date(self.date, "judgment date")
        _optional_date(self.served_date, "judgment served date")
        _optional_date(self.performance_due, "judgment performance due date")
        if self.served_date is not None and self.served_date < self.date:
            raise InvalidCaseData(
                f"judgment served {self.served_date}, before it was given {self.date}"
            )
        if self.performance_due is not None and self.performance_due < self.date:
            raise InvalidCaseData(
                f"judgment performance due {self.performance_due}, before it was given {self.date}"
            )


@dataclass(frozen=True, slots=True)
class RenewalFiled:
    """An application to renew (续行) the preservation ``preservation``."""

    type: ClassVar[str] = "renewal_filed"
    date: dt.date
    preservation: str

    def __post_init__(self) -> None:
        _check_date(self.date, "renewal date")
        if not isinstance(self.preservation, str) or not self.preservation:
            raise InvalidCaseData("a renewal must name its preservation")


@dataclass(frozen=True, slots=True)
class Complaint:
    """An owner's complaint; recorded for reports, no effect on deadlines."""

    type: ClassVar[str] = "complaint"
    date: dt.date

    def __post_init__(self) -> None:
        _check_date(self.date, "complaint date")


@dataclass(frozen=True, slots=True)
class Note:
    """A free note on the timeline; no effect on deadlines."""

    type: ClassVar[str] = "note"
    date: dt.date

    def __post_init__(self) -> None:
        _check_date(self.date, "note date")


Event = (
    Demand
    | Payment
    | Acknowledgment
    | SuitFiled
    | SuitWithdrawn
    | Obstacle
    | ServiceAttempt
    | Judgment
    | RenewalFiled
    | Complaint
    | Note
)
_EVENT_CLASSES = (
    Demand,
    Payment,
    Acknowledgment,
    SuitFiled,
    SuitWithdrawn,
    Obstacle,
    ServiceAttempt,
    Judgment,
    RenewalFiled,
    Complaint,
    Note,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Preservation:
    """A preservation measure (财产保全) as ruled and executed.

    ``expires`` is the expiry the ruling states, if it states one; it is used as given.
    """

    ref: str
    stage: PreservationStage
    asset: Asset
    ruling_date: dt.date | None = None
    executed_date: dt.date | None = None
    expires: dt.date | None = None
    amount: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ref, str) or not self.ref:
            raise InvalidCaseData("a preservation needs a reference")
        _set(self, "stage", _enum(PreservationStage, self.stage, "preservation stage"))
        _set(self, "asset", _enum(Asset, self.asset, "preservation asset"))
        _optional_date(self.ruling_date, f"ruling date of {self.ref}")
        _optional_date(self.executed_date, f"execution date of {self.ref}")
        _optional_date(self.expires, f"expiry of {self.ref}")
        if self.amount is not None:
            _set(self, "amount", _amount(self.amount, f"amount of {self.ref}"))
        ruled, executed, expires = self.ruling_date, self.executed_date, self.expires
        if ruled is not None and executed is not None and executed < ruled:
            raise InvalidCaseData(f"{self.ref} executed {executed}, before its ruling {ruled}")
        if executed is not None and expires is not None and expires < executed:
            raise InvalidCaseData(f"{self.ref} expires {expires}, before its execution {executed}")
        if ruled is not None and expires is not None and expires < ruled:
            raise InvalidCaseData(f"{self.ref} expires {expires}, before its ruling {ruled}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseFacts:
    """Everything the engine needs to know about one case.

    ``stage`` is optional; a case at ``enforcement`` or ``closed`` counts its enforcement
    application as made. Events may come in any order.
    """

    ref: str
    limitation_mode: LimitationMode = LimitationMode.PER_PERIOD
    periods: tuple[Period, ...] = ()
    events: tuple[Event, ...] = ()
    preservations: tuple[Preservation, ...] = ()
    stage: CaseStage | None = None
    # The periods oldest first (due date, then name): the order clocks and payments use.
    ordered_periods: tuple[Period, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.ref, str) or not self.ref:
            raise InvalidCaseData("a case needs a reference")
        where = f"case {self.ref}"
        mode = _enum(LimitationMode, self.limitation_mode, "limitation mode")
        _set(self, "limitation_mode", mode)
        if self.stage is not None:
            _set(self, "stage", _enum(CaseStage, self.stage, "case stage"))
        periods = tuple(self.periods)
        events = tuple(self.events)
        preservations = tuple(self.preservations)
        for p in periods:
            if not isinstance(p, Period):
                raise InvalidCaseData(f"{where}: not a billing period: {p!r}")
        names = {p.period for p in periods}
        if len(names) != len(periods):
            seen: set[str] = set()
            for p in periods:
                if p.period in seen:
                    raise InvalidCaseData(f"{where}: period {p.period} appears twice")
                seen.add(p.period)
        refs: set[str] = set()
        for pr in preservations:
            if not isinstance(pr, Preservation):
                raise InvalidCaseData(f"{where}: not a preservation: {pr!r}")
            if pr.ref in refs:
                raise InvalidCaseData(f"{where}: preservation {pr.ref} appears twice")
            refs.add(pr.ref)
        for ev in events:
            if not isinstance(ev, _EVENT_CLASSES):
                raise InvalidCaseData(f"{where}: unknown event {ev!r}")
            listed = getattr(ev, "periods", None)
            if listed is not None:
                for name in listed:
                    if name not in names:
                        raise UnknownReference(
                            f"{where}: {ev.type} of {ev.date} names unknown period {name}"
                        )
            if isinstance(ev, RenewalFiled) and ev.preservation not in refs:
                raise UnknownReference(
                    f"{where}: renewal of {ev.date} names unknown preservation {ev.preservation}"
                )
        _set(self, "periods", periods)
        _set(self, "events", events)
        _set(self, "preservations", preservations)
        ordered = periods
        for a, b in itertools.pairwise(periods):
            if b.due < a.due or (b.due == a.due and b.period < a.period):
                ordered = tuple(sorted(periods, key=_period_order))
                break
        _set(self, "ordered_periods", ordered)


def _period_order(p: Period) -> tuple[dt.date, str]:
    return (p.due, p.period)


# --- outputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interruption:
    """The event that started the current limitation period."""

    type: str
    date: dt.date

    def to_dict(self) -> dict[str, str]:
        """``{"type", "date"}`` with an ISO date."""
        return {"type": self.type, "date": self.date.isoformat()}


class Deadline(NamedTuple):
    """One computed deadline (an immutable record).

    ``date`` is the last day (or, for ``service_deemed`` and ``preservation_expiry``, the day
    service is deemed done or the measure lapses). ``start`` is the day the computation starts
    from and ``unadjusted`` the date before any working-day adjustment; with ``note`` and
    ``warnings`` they explain the date (see ``reason``) but are not part of ``to_dict()``, whose
    keys are fixed. A named tuple rather than a frozen dataclass because a benchmark builds
    millions of rows and a frozen dataclass costs five times as much to construct.
    """

    case: str
    kind: DeadlineKind
    period: str | None
    preservation: str | None
    date: dt.date
    status: DeadlineStatus
    basis: tuple[str, ...]
    provisional: bool
    interrupted_by: Interruption | None = None
    start: dt.date | None = None
    unadjusted: dt.date | None = None
    note: str = ""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: exactly the keys case, kind, period, preservation, date, status, basis,
        provisional, interrupted_by (ISO dates)."""
        return {
            "case": self.case,
            "kind": self.kind.value,
            "period": self.period,
            "preservation": self.preservation,
            "date": self.date.isoformat(),
            "status": self.status.value,
            "basis": list(self.basis),
            "provisional": self.provisional,
            "interrupted_by": (
                None if self.interrupted_by is None else self.interrupted_by.to_dict()
            ),
        }

    @property
    def reason(self) -> str:
        """A short English explanation of how the date was reached."""
        parts: list[str] = []
        if self.start is not None:
            parts.append(_START_PHRASES[self.kind].format(self.start.isoformat()))
        if self.unadjusted is not None and self.unadjusted != self.date:
            parts.append(
                f"{self.unadjusted.isoformat()} is a {day_description(self.unadjusted)}, "
                f"so the deadline is {self.date.isoformat()}"
            )
        if self.provisional:
            parts.append("provisional: uses a year without an official working-day schedule")
        if self.note:
            parts.append(self.note)
        parts.extend(self.warnings)
        return "; ".join(parts)


_START_PHRASES: dict[DeadlineKind, str] = {
    DeadlineKind.LIMITATION: "three years counted from {} (that day not counted)",
    DeadlineKind.SUIT_AFTER_PRESERVATION: "30 days after the measure was executed on {}",
    DeadlineKind.PRESERVATION_EXPIRY: "term counted from execution on {} (that day included)",
    DeadlineKind.PRESERVATION_RENEWAL: "at least 7 days before the expiry on {}",
    DeadlineKind.SERVICE_DEEMED: "30 days after publication on {}",
    DeadlineKind.APPEAL: "15 days after service on {}",
    DeadlineKind.ENFORCEMENT_APPLICATION: "two years after the performance period ended on {}",
}


# --- date arithmetic -----------------------------------------------------------------------

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def add_months(d: date, months: int) -> date:
    """The corresponding date ``months`` later, or that month's last day if none (民法典第202条)."""
    year, month0 = divmod(d.month - 1 + months, 12)
    year += d.year
    if not 1 <= year <= 9999:
        raise InvalidCaseData(f"{d.isoformat()} plus {months} months is outside the calendar")
    month = month0 + 1
    return date(year, month, min(d.day, _days_in_month(year, month)))


def add_years(d: date, years: int) -> date:
    """The corresponding date ``years`` later; 29 February becomes 28 February in a common year."""
    return add_months(d, 12 * years)


def _add_days(d: date, days: int) -> date:
    try:
        return d + timedelta(days=days)
    except OverflowError:
        raise InvalidCaseData(f"{d.isoformat()} plus {days} days is outside the calendar") from None


@dataclass(frozen=True, slots=True)
class PeriodEnd:
    """The last day of a period: ``date`` after moving off rest days, ``unadjusted`` before."""

    date: dt.date
    unadjusted: dt.date
    provisional: bool

    @property
    def moved(self) -> bool:
        """True when the unadjusted last day was not a working day."""
        return self.date != self.unadjusted


def _forward(unadjusted: date) -> PeriodEnd:
    end = next_working_day(unadjusted)
    return PeriodEnd(end, unadjusted, provisional_between(unadjusted, end))


@functools.cache
def limitation_end(start: date) -> PeriodEnd:
    """The last day of a three-year limitation period counted from ``start`` (not counted).

    Same calendar date three years later, the month-end if none (民法典第188、201、202条); moved
    to the next working day if it is not one (第203条). Cached: clocks share few start dates.
    """
    return _forward(add_years(start, 3))


@functools.cache
def _plain_limitation(due: date) -> tuple[date, date, bool, tuple[str, ...]]:
    # An uninterrupted, unsuspended per-period clock: (date, unadjusted, provisional, basis).
    end = limitation_end(due)
    basis = _limitation_basis(False, (), end.moved, False)
    return end.date, end.unadjusted, end.provisional, basis


@functools.cache
def _six_months_after(d: date) -> PeriodEnd:
    return _forward(add_months(d, 6))


def preservation_max_expiry(executed: date, asset: Asset) -> date:
    """The last day of the maximum term of a measure executed on ``executed`` (that day counted).

    One, two or three years by asset (民诉法解释第485条): the day before the same calendar date
    that many years later (executed 2026-11-02, one year: 2027-11-01). A measure executed on 29
    February ends on 28 February of a common year (its month-end, 民法典第202条 by analogy).
    """
    years = MAX_TERM_YEARS[_enum(Asset, asset, "preservation asset")]
    same_date = add_years(executed, years)
    if executed.month == 2 and executed.day == 29 and same_date.day == 28:
        return same_date
    return _add_days(same_date, -1)


# --- limitation ----------------------------------------------------------------------------

_CAUSE_BASIS: dict[str, tuple[str, ...]] = {
    Demand.type: (CC195, SPC_LIMITATION_8),
    Acknowledgment.type: (CC195, SPC_LIMITATION_14),
    Payment.type: (CC195, SPC_LIMITATION_14),
    SuitFiled.type: (CC195, SPC_LIMITATION_10),
    SuitWithdrawn.type: (CC195,),
}


@functools.cache
def _limitation_basis(
    installment: bool, cause: tuple[str, ...], moved: bool, suspended: bool
) -> tuple[str, ...]:
    parts: list[str] = [CC189, CC188] if installment else [CC188]
    parts.extend(cause)
    if suspended:
        parts.append(CC194)
    parts.extend((CC201, CC202))
    if moved:
        parts.append(CC203)
    return tuple(dict.fromkeys(parts))


class _Clock:
    """A running limitation clock: the day it counts from and the event that started it."""

    __slots__ = (
        "_end",
        "_end_start",
        "_suspended_by",
        "cause",
        "cause_basis",
        "notes",
        "obstacles",
        "start",
    )

    def __init__(self, start: date, obstacles: Sequence[Obstacle]) -> None:
        self.start = start
        self.cause: Interruption | None = None
        self.cause_basis: tuple[str, ...] = ()
        self.obstacles = obstacles
        self.notes: list[str] | None = None
        self._end: PeriodEnd | None = None
        self._end_start: date | None = None
        self._suspended_by: Obstacle | None = None

    def end(self) -> PeriodEnd:
        """The current period's last day, after suspension."""
        if self._end_start != self.start or self._end is None:
            if self.obstacles:
                self._end, self._suspended_by = _suspended_end(self.start, self.obstacles)
            else:
                self._end = limitation_end(self.start)
            self._end_start = self.start
        return self._end

    def note(self, text: str) -> None:
        """Remember an explanation for the row (once, however many periods share the clock)."""
        if self.notes is None:
            self.notes = [text]
        elif text not in self.notes:
            self.notes.append(text)

    def restart(self, cause: Interruption, basis: tuple[str, ...]) -> None:
        """A new period runs from the cause's date (never moves the start back)."""
        if cause.date > self.start:
            self.start = cause.date
            self.cause = cause
            self.cause_basis = basis

    def interrupt(self, cause: Interruption, basis: tuple[str, ...]) -> None:
        """Start a new period on the cause's date if the current one is still running then."""
        kind, when = cause.type, cause.date
        if when <= self.start:
            return  # before the clock starts (or on its first day): nothing to restart
        end = self.end()
        if when > end.date:
            text = f"{kind} on {when.isoformat()} came after the period ended on {end.date}"
            if kind in (Acknowledgment.type, Payment.type):
                text += f": no interruption, but the owner may not plead limitation ({CC192})"
            else:
                text += ": no interruption"
            self.note(text)
            return
        self.start = when
        self.cause = cause
        self.cause_basis = basis


def _suspended_end(start: date, obstacles: Sequence[Obstacle]) -> tuple[PeriodEnd, Obstacle | None]:
    """The period's end after suspension (民法典第194条).

    An obstacle that exists during the last six months (it starts on or before the last day and
    ends less than six months before it) moves the end to six months after the obstacle ends,
    then to the next working day. A later end can bring another obstacle into the last six months,
    so this repeats until nothing changes.
    """
    end = limitation_end(start)
    by: Obstacle | None = None
    changed = bool(obstacles)
    while changed:
        changed = False
        for ob in obstacles:
            if ob.date <= end.date:
                later = _six_months_after(ob.end)
                if later.date > end.date:
                    end, by, changed = later, ob, True
    return end, by


class _Track:
    """One billing period's state while the timeline is replayed."""

    __slots__ = ("balance", "clock", "due", "name", "suit", "suit_end", "suit_start")

    def __init__(self, name: str, due: date, balance: Decimal, clock: _Clock) -> None:
        self.name = name
        self.due = due
        self.balance = balance
        self.clock = clock
        self.suit: date | None = None
        self.suit_end: PeriodEnd | None = None
        self.suit_start: date | None = None


_LIMITATION_EVENTS = (Demand, Acknowledgment, Payment, SuitFiled, SuitWithdrawn)
_NO_OBSTACLES: tuple[Obstacle, ...] = ()


def _limitation_rows(
    case: CaseFacts, events: Sequence[Event], as_of: date, out: list[Deadline]
) -> bool:
    """Append one limitation row per billing period; True if they came out sorted."""
    ref = case.ref
    installment = case.limitation_mode is LimitationMode.INSTALLMENT
    timeline = [ev for ev in events if isinstance(ev, _LIMITATION_EVENTS)]
    obstacles = sorted(
        (ev for ev in events if isinstance(ev, Obstacle)), key=lambda ob: (ob.date, ob.end)
    )
    kind = DeadlineKind.LIMITATION
    running, expired, paid = DeadlineStatus.RUNNING, DeadlineStatus.EXPIRED, DeadlineStatus.PAID
    if not timeline and not obstacles and not installment:
        # Fast path (most periods of most cases): a plain clock from each due date. Periods come
        # oldest first and the end date grows with the due date, so rows come out sorted unless
        # two ends coincide with their period names out of order.
        in_order = True
        last: tuple[dt.date, str] | None = None
        for p in case.ordered_periods:
            when, unadjusted, provisional, basis = _plain_limitation(p.due)
            if p.paid >= p.amount:
                status = paid
            elif when < as_of:
                status = expired
            else:
                status = running
            out.append(
                Deadline(
                    ref, kind, p.period, None, when, status, basis, provisional, None, p.due,
                    unadjusted,
                )
            )  # fmt: skip
            if last is not None and last[0] == when and p.period < last[1]:
                in_order = False
            last = (when, p.period)
        return in_order

    tracks = _replay(case, timeline, obstacles, installment)
    for t in tracks:
        clock = t.clock
        cause = clock.cause
        note = "; ".join(clock.notes) if clock.notes else ""
        if t.suit is not None and t.balance > 0:
            assert t.suit_end is not None
            end = t.suit_end
            status = DeadlineStatus.SUIT_FILED
            cause = Interruption(SuitFiled.type, t.suit)
            suit_note = (
                f"suit filed on {t.suit.isoformat()}, before the period ended on "
                f"{end.date.isoformat()}: the clock stops while the suit is pending"
            )
            note = f"{suit_note}; {note}" if note else suit_note
            basis = _limitation_basis(installment, _CAUSE_BASIS[SuitFiled.type], end.moved, False)
            start = t.suit_start
        else:
            end = clock.end()
            suspended_by = clock._suspended_by if clock.obstacles else None
            if t.balance <= 0:
                status = paid
            elif end.date < as_of:
                status = expired
            else:
                status = running
            if suspended_by is not None:
                why = f" ({suspended_by.reason})" if suspended_by.reason else ""
                suspension = (
                    f"suspended: obstacle {suspended_by.date.isoformat()} to "
                    f"{suspended_by.end.isoformat()}{why} in the last six months; the period ends "
                    f"six months after it"
                )
                note = f"{suspension}; {note}" if note else suspension
            basis = _limitation_basis(
                installment, clock.cause_basis, end.date != end.unadjusted, suspended_by is not None
            )
            start = clock.start
        out.append(
            Deadline(
                ref, kind, t.name, None, end.date, status, basis, end.provisional, cause, start,
                end.unadjusted, note,
            )
        )  # fmt: skip
    return False


def _replay(
    case: CaseFacts,
    timeline: Sequence[Event],
    obstacles: Sequence[Obstacle],
    installment: bool,
) -> list[_Track]:
    """Replay the limitation events in date order over one track per period, oldest first."""
    tracks: list[_Track] = []
    if installment:
        # 民法典第189条: one debt; its clock runs from the last instalment's due date.
        if case.ordered_periods:
            shared = _Clock(max(p.due for p in case.ordered_periods), obstacles)
            tracks = [
                _Track(p.period, p.due, p.amount - p.paid, shared) for p in case.ordered_periods
            ]
    else:
        for p in case.ordered_periods:
            own: Sequence[Obstacle] = _NO_OBSTACLES
            if obstacles:
                own = [ob for ob in obstacles if ob.periods is None or p.period in ob.periods]
            tracks.append(_Track(p.period, p.due, p.amount - p.paid, _Clock(p.due, own)))
    by_name = {t.name: t for t in tracks}

    def listed_or_outstanding(names: tuple[str, ...] | None, when: date) -> list[_Track]:
        if names is not None:
            return [by_name[n] for n in names]
        return [t for t in tracks if t.balance > 0 and t.due <= when and t.suit is None]

    for ev in timeline:
        when = ev.date
        cause = Interruption(ev.type, when)  # one per event, shared by the periods it restarts
        if isinstance(ev, Demand | Acknowledgment):
            targets = listed_or_outstanding(ev.periods, when)
            if isinstance(ev, Demand) and not ev.delivered:
                # 诉讼时效规定第8条: a demand interrupts only once it reached the owner.
                text = f"demand of {when.isoformat()} not proven delivered: no interruption"
                for t in targets:
                    t.clock.note(text)
                continue
            basis = _CAUSE_BASIS[ev.type]
            if installment:
                if ev.periods is not None:
                    basis = (*basis, SPC_LIMITATION_9)  # part of one debt interrupts the whole
                if targets and any(t.balance > 0 for t in tracks):
                    tracks[0].clock.interrupt(cause, basis)
            else:
                for t in targets:
                    if t.balance > 0 and t.suit is None:
                        t.clock.interrupt(cause, basis)
        elif isinstance(ev, Payment):
            _apply_payment(ev, cause, tracks, by_name, installment)
        elif isinstance(ev, SuitFiled):
            targets = listed_or_outstanding(ev.periods, when)
            sued = False
            for t in targets:
                if t.balance <= 0 or t.suit is not None:
                    continue
                end = t.clock.end()
                if when > end.date:
                    t.clock.note(
                        f"suit filed on {when.isoformat()}, after the period ended on {end.date}"
                    )
                    continue
                t.suit, t.suit_end, t.suit_start = when, end, t.clock.start
                sued = True
            if installment and sued:
                # The rest of the one debt is interrupted by the claim for part of it (第9条);
                # counted from filing, which is never later than the end of the proceedings.
                tracks[0].clock.interrupt(cause, (*_CAUSE_BASIS[ev.type], SPC_LIMITATION_9))
        elif isinstance(ev, SuitWithdrawn):
            if ev.periods is not None:
                targets = [by_name[n] for n in ev.periods]
            else:
                targets = [t for t in tracks if t.suit is not None]
            for t in targets:
                if t.suit is None:
                    continue
                t.suit = t.suit_end = t.suit_start = None
                # 民法典第195条: the period runs anew when the proceedings end by withdrawal.
                t.clock.restart(cause, _CAUSE_BASIS[ev.type])
    return tracks


def _apply_payment(
    ev: Payment,
    cause: Interruption,
    tracks: list[_Track],
    by_name: dict[str, _Track],
    installment: bool,
) -> None:
    """Allocate a payment (listed periods, else oldest first) and interrupt what it leaves unpaid.

    A payment that leaves a period partly unpaid is part performance (诉讼时效规定第14条): that
    period is interrupted. In installment mode the periods are one debt, so a payment that leaves
    any of it unpaid interrupts the one clock. Any excess beyond the periods is a credit the
    engine does not use.
    """
    if ev.periods is not None:
        candidates = sorted((by_name[n] for n in ev.periods), key=lambda t: (t.due, t.name))
    else:
        candidates = tracks  # already oldest first
    left = ev.amount
    touched: list[_Track] = []
    for t in candidates:
        if left <= 0:
            break
        if t.balance <= 0:
            continue
        share = min(left, t.balance)
        t.balance -= share
        left -= share
        touched.append(t)
    basis = _CAUSE_BASIS[Payment.type]
    if installment:
        if touched and any(t.balance > 0 for t in tracks):
            tracks[0].clock.interrupt(cause, basis)
        return
    for t in touched:
        if t.balance > 0 and t.suit is None:
            t.clock.interrupt(cause, basis)


# --- preservation, service, judgments ------------------------------------------------------


def _dated_status(when: date, as_of: date, met: bool) -> DeadlineStatus:
    if met:
        return DeadlineStatus.MET
    return DeadlineStatus.OVERDUE if when < as_of else DeadlineStatus.OPEN


def _preservation_rows(
    case: CaseFacts, events: Sequence[Event], as_of: date, out: list[Deadline]
) -> None:
    suits = [ev.date for ev in events if isinstance(ev, SuitFiled)]
    renewals: dict[str, list[date]] = {}
    for ev in events:
        if isinstance(ev, RenewalFiled):
            renewals.setdefault(ev.preservation, []).append(ev.date)
    for pr in case.preservations:
        executed = pr.executed_date
        stage_basis = CPL104 if pr.stage is PreservationStage.PRE_LITIGATION else CPL103
        if executed is not None and pr.stage is PreservationStage.PRE_LITIGATION:
            # 民事诉讼法第104条: sue within 30 days after the measure was taken, or it is lifted.
            # The execution day is not counted (第85条); a rest day moves to the next working day.
            end = _forward(_add_days(executed, 30))
            filed = [d for d in suits if d >= executed]
            note = ""
            if filed and min(filed) > end.date:
                note = f"suit filed on {min(filed).isoformat()}, after the 30-day period"
            out.append(
                Deadline(
                    case.ref,
                    DeadlineKind.SUIT_AFTER_PRESERVATION,
                    None,
                    pr.ref,
                    end.date,
                    _dated_status(end.date, as_of, bool(filed)),
                    (CPL104, CPL85),
                    end.provisional,
                    None,
                    executed,
                    end.unadjusted,
                    note,
                )
            )
        warnings: tuple[str, ...] = ()
        if pr.expires is not None:
            # The court's date stands as given, never moved (the court must state it in
            # writing: 财产保全规定第18条).
            expiry = pr.expires
            basis: tuple[str, ...] = (stage_basis, SPC_PRESERVATION_18)
            if executed is not None:
                maximum = preservation_max_expiry(executed, pr.asset)
                if expiry > maximum:
                    years = MAX_TERM_YEARS[pr.asset]
                    warnings = (
                        f"the ruling's expiry {expiry.isoformat()} is beyond the {years}-year "
                        f"maximum for {pr.asset.value} ({maximum.isoformat()}, "
                        f"{CPL_INTERPRETATION_485}): check the ruling",
                    )
                    basis = (stage_basis, SPC_PRESERVATION_18, CPL_INTERPRETATION_485)
        elif executed is not None:
            expiry = preservation_max_expiry(executed, pr.asset)
            basis = (stage_basis, CPL_INTERPRETATION_485)
        else:
            continue  # neither executed nor an expiry: nothing to count yet
        out.append(
            Deadline(
                case.ref,
                DeadlineKind.PRESERVATION_EXPIRY,
                None,
                pr.ref,
                expiry,
                DeadlineStatus.PASSED if expiry < as_of else DeadlineStatus.UPCOMING,
                basis,
                False,
                None,
                executed,
                expiry,
                "" if pr.expires is None else "expiry as stated in the ruling",
                warnings,
            )
        )
        # 财产保全规定第18条: apply at least seven days before expiry. A warning errs early, so
        # a rest day moves the deadline back to the previous working day.
        unadjusted = _add_days(expiry, -7)
        renewal = previous_working_day(unadjusted)
        filed_renewals = renewals.get(pr.ref, [])
        note = ""
        if filed_renewals and min(filed_renewals) > renewal:
            note = f"renewal applied for on {min(filed_renewals).isoformat()}, after the deadline"
        out.append(
            Deadline(
                case.ref,
                DeadlineKind.PRESERVATION_RENEWAL,
                None,
                pr.ref,
                renewal,
                _dated_status(renewal, as_of, bool(filed_renewals)),
                (SPC_PRESERVATION_18,),
                provisional_between(renewal, unadjusted),
                None,
                expiry,
                unadjusted,
                note,
                warnings,
            )
        )


def _court_rows(case: CaseFacts, events: Sequence[Event], as_of: date, out: list[Deadline]) -> None:
    for ev in events:
        if isinstance(ev, ServiceAttempt):
            if ev.method is Method.PUBLIC_NOTICE and ev.outcome is Outcome.PUBLISHED:
                # 民事诉讼法第95条: deemed served when 30 days have passed from publication.
                deemed = _add_days(ev.date, 30)
                out.append(
                    Deadline(
                        case.ref,
                        DeadlineKind.SERVICE_DEEMED,
                        None,
                        None,
                        deemed,
                        DeadlineStatus.PASSED if deemed < as_of else DeadlineStatus.UPCOMING,
                        (CPL95,),
                        False,
                        None,
                        ev.date,
                        deemed,
                        f"{ev.document} published by public notice on {ev.date.isoformat()}",
                    )
                )
        elif isinstance(ev, Judgment):
            if ev.served_date is not None:
                # 民事诉讼法第171条: appeal within 15 days of service; day of service not counted.
                end = _forward(_add_days(ev.served_date, 15))
                out.append(
                    Deadline(
                        case.ref,
                        DeadlineKind.APPEAL,
                        None,
                        None,
                        end.date,
                        _dated_status(end.date, as_of, False),
                        (CPL171, CPL85),
                        end.provisional,
                        None,
                        ev.served_date,
                        end.unadjusted,
                        f"judgment of {ev.date.isoformat()}, served {ev.served_date.isoformat()}",
                    )
                )
            if ev.performance_due is not None:
                # 民事诉讼法第250条: two years from the last day of the performance period.
                end = _forward(add_years(ev.performance_due, 2))
                applied = case.stage in (CaseStage.ENFORCEMENT, CaseStage.CLOSED)
                out.append(
                    Deadline(
                        case.ref,
                        DeadlineKind.ENFORCEMENT_APPLICATION,
                        None,
                        None,
                        end.date,
                        _dated_status(end.date, as_of, applied),
                        (CPL250, CPL85),
                        end.provisional,
                        None,
                        ev.performance_due,
                        end.unadjusted,
                        f"judgment of {ev.date.isoformat()}",
                    )
                )


# --- entry point ---------------------------------------------------------------------------

_KIND_RANK = {kind: i for i, kind in enumerate(DeadlineKind)}


def _sort_key(row: Deadline) -> tuple[date, int, str, str]:
    return (row.date, _KIND_RANK[row.kind], row.period or "", row.preservation or "")


_limitation_order = operator.attrgetter("date", "period")


def _event_date(ev: Event) -> date:
    return ev.date


def compute_deadlines(case: CaseFacts, as_of: date) -> list[Deadline]:
    """Every deadline of ``case`` as of ``as_of``, soonest first.

    Events dated after ``as_of`` are ignored (they had not happened yet). Raises
    ``InvalidCaseData`` for a non-date ``as_of`` or a computation outside the calendar.
    """
    _check_date(as_of, "as_of")
    if not isinstance(case, CaseFacts):
        raise InvalidCaseData(f"not case facts: {case!r}")
    if case.events:
        events: list[Event] = sorted(
            (ev for ev in case.events if ev.date <= as_of), key=_event_date
        )
    else:
        events = []
    out: list[Deadline] = []
    in_order = _limitation_rows(case, events, as_of, out)
    more: list[Deadline] = []
    if case.preservations:
        _preservation_rows(case, events, as_of, more)
    if events:
        _court_rows(case, events, as_of, more)
    if more:
        out += more
        out.sort(key=_sort_key)
    elif not in_order:
        out.sort(key=_limitation_order)  # limitation rows only: same kind, no preservation
    return out


def compute_many(cases: Iterable[CaseFacts], as_of: date) -> list[Deadline]:
    """Deadlines of many cases, soonest first (cases in the order given for equal keys)."""
    out: list[Deadline] = []
    for case in cases:
        out.extend(compute_deadlines(case, as_of))
    out.sort(key=_sort_key)
    return out
