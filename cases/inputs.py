"""Validated inputs of the case module: owners, arrears, events, preservations and whole cases,
parsed from JSON values (the case file format of ``docs/import.md``) or command-line options.

Pure: values in, frozen values or ``InvalidCaseData`` out; no database. Every parser names
what was wrong and where, so an import can report every problem at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from cases.deadlines import (
    Acknowledgment,
    Asset,
    CaseFacts,
    CaseStage,
    Complaint,
    Demand,
    Event,
    Judgment,
    LimitationMode,
    Method,
    Note,
    Obstacle,
    Outcome,
    Payment,
    Period,
    Preservation,
    PreservationStage,
    RenewalFiled,
    ServiceAttempt,
    SuitFiled,
    SuitWithdrawn,
)
from cases.errors import InvalidCaseData

__all__ = [
    "DERIVED_TAGS",
    "EVENT_TYPES",
    "INTERNAL_EVENT_TYPES",
    "STORED_TAGS",
    "ArrearSpec",
    "CaseSpec",
    "EventSpec",
    "OwnerSpec",
    "PreservationSpec",
    "check_ref",
    "engine_check",
    "mask_id_number",
    "mask_phone",
    "parse_amount",
    "parse_case",
    "parse_case_file",
    "parse_date",
    "parse_event",
    "parse_name",
    "parse_period",
    "parse_phone",
    "parse_preservation",
]

# Event types of the import format (issue 5) and of ``tiezheng cases event``.
EVENT_TYPES = (
    "demand",
    "payment",
    "acknowledgment",
    "suit_filed",
    "suit_withdrawn",
    "obstacle",
    "service_attempt",
    "judgment",
    "renewal_filed",
    "complaint",
    "note",
)
# Events the service records itself; never accepted from a file or ``cases event``.
INTERNAL_EVENT_TYPES = ("stage_change", "assignment", "arrears_change", "preservation")

STORED_TAGS = ("vacant", "rented", "lost_contact", "quality_dispute")
DERIVED_TAGS = ("elderly", "repeat_arrears")

# Fields any event may carry (all optional), and what each type requires or alone allows.
_COMMON_OPTIONAL = frozenset({"periods", "evidence", "method", "outcome", "amount", "reason"})
_REQUIRED: dict[str, frozenset[str]] = {
    "demand": frozenset({"delivered"}),
    "payment": frozenset({"amount"}),
    "acknowledgment": frozenset(),
    "suit_filed": frozenset(),
    "suit_withdrawn": frozenset(),
    "obstacle": frozenset({"end"}),
    "service_attempt": frozenset({"document", "method"}),
    "judgment": frozenset({"served_date", "performance_due"}),
    "renewal_filed": frozenset({"preservation"}),
    "complaint": frozenset(),
    "note": frozenset(),
}

MAX_AMOUNT_DIGITS = 10  # Numeric(12, 2): ten digits before the point
MAX_TEXT = 2000
MAX_NAME = 128
_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PERIOD_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_AMOUNT_RE = re.compile(r"(\d+)(?:\.(\d{1,2}))?")
_PHONE_RE = re.compile(r"\+?[0-9][0-9 -]{2,30}")
_DOCUMENT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CENT = Decimal("0.01")


# --- scalar parsers ------------------------------------------------------------------------


def check_ref(value: object, what: str) -> str:
    """A reference (case, owner, preservation): 1-64 ASCII letters, digits, ``.``, ``_``,
    ``:`` or ``-``, starting with a letter or digit.

    References are carried by the log, so they are kept to ASCII: a name cannot slip in.
    """
    if not isinstance(value, str) or not _REF_RE.fullmatch(value):
        raise InvalidCaseData(
            f"{what} must be a reference of 1-64 ASCII letters, digits, '.', '_', ':' or '-', "
            f"not {value!r}"
        )
    return value


def parse_name(value: object, what: str, max_len: int = MAX_NAME) -> str:
    """A non-empty printable name (trimmed), at most ``max_len`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidCaseData(f"{what} must be a non-empty text, not {value!r}")
    value = value.strip()
    if len(value) > max_len or not value.isprintable():
        raise InvalidCaseData(f"{what} must be printable text of at most {max_len} characters")
    return value


def parse_text(value: object, what: str) -> str | None:
    """Optional free text (trimmed; empty is None), at most 2000 characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCaseData(f"{what} must be text, not {value!r}")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidCaseData(f"{what} is longer than {MAX_TEXT} characters")
    return value or None


def parse_phone(value: object, what: str = "phone") -> str | None:
    """A phone number (digits, spaces, '-', a leading '+'); empty is None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a spreadsheet may hold it as a number
    if not isinstance(value, str):
        raise InvalidCaseData(f"{what} must be text, not {value!r}")
    value = value.strip()
    if not value:
        return None
    if not _PHONE_RE.fullmatch(value):
        raise InvalidCaseData(f"{what} must be a phone number (digits, spaces, '-', '+')")
    return value


def parse_date(value: object, what: str) -> dt.date:
    """A calendar date: ``YYYY-MM-DD`` (also ``YYYY/MM/DD``), or a date (a spreadsheet cell;
    a datetime cell must be midnight)."""
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0) or value.tzinfo is not None:
            raise InvalidCaseData(f"{what} must be a date, not a time of day: {value!r}")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip().replace("/", "-")
        if _DATE_RE.fullmatch(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                pass
    raise InvalidCaseData(f"{what} must be a date YYYY-MM-DD, not {value!r}")


def parse_optional_date(value: object, what: str) -> dt.date | None:
    """``parse_date``, or None for null or empty."""
    if value is None or value == "":
        return None
    return parse_date(value, what)


def parse_period(value: object, what: str = "period") -> str:
    """A billing period ``YYYY-MM`` (a spreadsheet date cell gives its year and month)."""
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str):
        text = value.strip().replace("/", "-")
        m = _PERIOD_RE.fullmatch(text)
        if m and 1900 <= int(m.group(1)) < 2200:
            return text
    raise InvalidCaseData(f"{what} must be a billing period YYYY-MM, not {value!r}")


def parse_amount(value: object, what: str, *, positive: bool = False) -> Decimal:
    """An amount in CNY as an exact decimal with at most two decimals, not negative.

    Accepted: a string ``"350"``, ``"350.5"``, ``"350.00"``; an int; a JSON or spreadsheet
    number whose shortest decimal form has at most two decimals. Refused: negatives, three or
    more decimals, exponents, thousands separators, NaN and infinities, more than 10 digits
    before the point.
    """
    if isinstance(value, bool):
        raise InvalidCaseData(f"{what} must be an amount, not {value!r}")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)  # the shortest form that reads back as this float
    elif isinstance(value, Decimal):
        text = format(value, "f") if value.is_finite() else str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidCaseData(f"{what} must be an amount, not {value!r}")
    negative = text.startswith("-")
    m = _AMOUNT_RE.fullmatch(text.lstrip("-") if negative else text)
    if m is None:
        raise InvalidCaseData(
            f"{what} must be an amount like 350.00 (at most two decimals, no separators), "
            f"not {value!r}"
        )
    try:
        amount = Decimal(text).quantize(_CENT)
    except InvalidOperation:
        raise InvalidCaseData(f"{what} is not an amount: {value!r}") from None
    if negative and amount != 0:
        raise InvalidCaseData(f"{what} must not be negative: {text}")
    amount = abs(amount)
    if len(m.group(1).lstrip("0")) > MAX_AMOUNT_DIGITS:
        raise InvalidCaseData(f"{what} is too large: {text}")
    if positive and amount == 0:
        raise InvalidCaseData(f"{what} must be more than zero")
    return amount


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidCaseData(f"{what} must be true or false, not {value!r}")
    return value


def _choice(value: object, allowed: Iterable[str], what: str) -> str:
    options = tuple(allowed)
    if isinstance(value, str) and value in options:
        return value
    raise InvalidCaseData(f"unknown {what} {value!r} (expected one of: {', '.join(options)})")


def _periods(value: object, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidCaseData(f"{what} must be a list of billing periods, not {value!r}")
    if not value:
        raise InvalidCaseData(f"{what} is empty: omit it to cover every outstanding period")
    out = tuple(parse_period(p, what) for p in value)
    if len(set(out)) != len(out):
        raise InvalidCaseData(f"{what} lists a period twice: {list(out)}")
    return out


def _evidence(value: object, what: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidCaseData(f"{what} must be a list of evidence entry indexes, not {value!r}")
    for i in value:
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise InvalidCaseData(f"{what} must hold entry indexes (integers >= 0), not {i!r}")
    if len(set(value)) != len(value):
        raise InvalidCaseData(f"{what} cites an entry twice: {list(value)}")
    return tuple(value)


def _check_keys(obj: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise InvalidCaseData(f"{what}: unknown field(s) {', '.join(map(repr, unknown))}")


def _require(obj: Mapping[str, Any], required: Iterable[str], what: str) -> None:
    missing = sorted(k for k in required if obj.get(k) is None)
    if missing:
        raise InvalidCaseData(f"{what}: missing field(s) {', '.join(map(repr, missing))}")


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidCaseData(f"{what} must be an object, not {value!r}")
    return value


def _list(value: object, what: str) -> Sequence[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidCaseData(f"{what} must be a list, not {value!r}")
    return value


# --- masking -------------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str | None:
    """A phone number with all but its first three and last four digits hidden:
    ``13800000000`` -> ``138****0000``."""
    if not phone:
        return phone
    digits = [i for i, c in enumerate(phone) if c.isdigit()]
    hide = set(digits[3:-4]) if len(digits) > 7 else set(digits[1:-1])
    return "".join("*" if i in hide else c for i, c in enumerate(phone))


def mask_id_number(number: str | None) -> str | None:
    """An ID number with all but its first three and last four characters hidden:
    ``110101195004010012`` -> ``110***********0012``."""
    if not number:
        return number
    if len(number) <= 7:
        return number[0] + "*" * (len(number) - 1)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnerSpec:
    """An owner as a file or a command gives it."""

    ref: str | None
    name: str
    phone: str | None = None
    birth_date: dt.date | None = None
    tags: tuple[str, ...] = ()


class ArrearSpec(NamedTuple):
    """One billing period of arrears (a named tuple: a billing export has millions)."""

    period: str
    amount: Decimal
    due: dt.date
    paid: Decimal


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A validated event. ``data`` is set only for the events the service records itself."""

    type: str
    date: dt.date
    method: str | None = None
    outcome: str | None = None
    delivered: bool | None = None
    periods: tuple[str, ...] | None = None
    amount: Decimal | None = None
    reason: str | None = None
    end: dt.date | None = None
    document: str | None = None
    served_date: dt.date | None = None
    performance_due: dt.date | None = None
    preservation: str | None = None
    evidence: tuple[int, ...] = ()
    data: Mapping[str, Any] | None = field(default=None, compare=False)

    def details(self) -> dict[str, Any]:
        """The event's full details as JSON values (dates ISO, amounts as strings), omitting
        what is not set: the object hashed into the event's ``details_sha256``."""
        out: dict[str, Any] = {"type": self.type, "date": self.date.isoformat()}
        for key in ("method", "outcome", "delivered", "reason", "document", "preservation"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for key in ("end", "served_date", "performance_due"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.isoformat()
        if self.periods is not None:
            out["periods"] = list(self.periods)
        if self.amount is not None:
            out["amount"] = f"{self.amount:.2f}"
        if self.evidence:
            out["evidence"] = list(self.evidence)
        if self.data is not None:
            out["data"] = dict(self.data)
        return out

    def to_engine(self) -> Event | None:
        """The deadline engine's event, or None for events that do not concern it."""
        t = self.type
        if t == "demand":
            assert self.delivered is not None
            m = Method(self.method) if self.method else None
            return Demand(self.date, self.delivered, self.periods, m)
        if t == "payment":
            assert self.amount is not None
            return Payment(self.date, self.amount, self.periods)
        if t == "acknowledgment":
            return Acknowledgment(self.date, self.periods)
        if t == "suit_filed":
            return SuitFiled(self.date, self.periods)
        if t == "suit_withdrawn":
            return SuitWithdrawn(self.date, self.periods)
        if t == "obstacle":
            assert self.end is not None
            return Obstacle(self.date, self.end, self.reason or "", self.periods)
        if t == "service_attempt":
            assert self.document is not None and self.method is not None
            outcome = Outcome(self.outcome) if self.outcome else None
            return ServiceAttempt(self.date, self.document, Method(self.method), outcome)
        if t == "judgment":
            return Judgment(self.date, self.served_date, self.performance_due)
        if t == "renewal_filed":
            assert self.preservation is not None
            return RenewalFiled(self.date, self.preservation)
        if t == "complaint":
            return Complaint(self.date)
        if t == "note":
            return Note(self.date)
        return None


@dataclass(frozen=True, slots=True)
class PreservationSpec:
    """A preservation measure as a file or a command gives it."""

    ref: str
    stage: str
    asset: str
    executed_date: dt.date
    ruling_date: dt.date | None = None
    expires: dt.date | None = None
    amount: Decimal | None = None

    def details(self) -> dict[str, Any]:
        """JSON values of every field (null where not set)."""
        return {
            "ref": self.ref,
            "stage": self.stage,
            "asset": self.asset,
            "ruling_date": None if self.ruling_date is None else self.ruling_date.isoformat(),
            "executed_date": self.executed_date.isoformat(),
            "expires": None if self.expires is None else self.expires.isoformat(),
            "amount": None if self.amount is None else f"{self.amount:.2f}",
        }

    def to_engine(self) -> Preservation:
        """The deadline engine's preservation (validates the date order)."""
        return Preservation(
            ref=self.ref,
            stage=PreservationStage(self.stage),
            asset=Asset(self.asset),
            ruling_date=self.ruling_date,
            executed_date=self.executed_date,
            expires=self.expires,
            amount=self.amount,
        )


@dataclass(frozen=True, slots=True)
class CaseSpec:
    """A whole case of a case file."""

    ref: str
    property: str
    unit: str
    owner: OwnerSpec
    limitation_mode: str = LimitationMode.PER_PERIOD.value
    arrears: tuple[ArrearSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()
    preservations: tuple[PreservationSpec, ...] = ()

    def initial_stage(self) -> str:
        """The stage a new case starts at: ``judgment`` if a judgment is recorded, ``suit``
        if a suit is pending (filed and not withdrawn since), else ``reminder``."""
        stage = CaseStage.REMINDER.value
        for ev in sorted(self.events, key=lambda e: e.date):
            if ev.type == "judgment":
                stage = CaseStage.JUDGMENT.value
            elif ev.type == "suit_filed" and stage != CaseStage.JUDGMENT.value:
                stage = CaseStage.SUIT.value
            elif ev.type == "suit_withdrawn" and stage == CaseStage.SUIT.value:
                stage = CaseStage.REMINDER.value
        return stage


# --- parsers of JSON objects ---------------------------------------------------------------

_OWNER_KEYS = ("ref", "name", "phone", "birth_date", "tags")
_ARREAR_KEYS = ("period", "amount", "due")
_PRESERVATION_KEYS = (
    "ref",
    "stage",
    "asset",
    "ruling_date",
    "executed_date",
    "expires",
    "amount",
)
_CASE_KEYS = (
    "ref",
    "property",
    "unit",
    "owner",
    "limitation_mode",
    "arrears",
    "events",
    "preservations",
)


def parse_tags(value: object, what: str) -> tuple[str, ...]:
    """Stored owner tags; the derived ones (elderly, repeat_arrears) are refused."""
    if value is None:
        return ()
    items = _list(value, what)
    for tag in items:
        if tag in DERIVED_TAGS:
            raise InvalidCaseData(
                f"{what}: {tag!r} is derived (from the birth date or age, or from the arrears "
                "history), not entered"
            )
        _choice(tag, STORED_TAGS, "owner tag")
    tags: tuple[str, ...] = tuple(items)
    if len(set(tags)) != len(tags):
        raise InvalidCaseData(f"{what} lists a tag twice: {list(tags)}")
    return tuple(sorted(tags))


def parse_owner(value: object, what: str = "owner") -> OwnerSpec:
    """``{"ref", "name", "phone"?, "birth_date"?, "tags"?}``."""
    obj = _object(value, what)
    _check_keys(obj, _OWNER_KEYS, what)
    _require(obj, ("ref", "name"), what)
    return OwnerSpec(
        ref=check_ref(obj["ref"], f"{what}.ref"),
        name=parse_name(obj["name"], f"{what}.name"),
        phone=parse_phone(obj.get("phone"), f"{what}.phone"),
        birth_date=parse_optional_date(obj.get("birth_date"), f"{what}.birth_date"),
        tags=parse_tags(obj.get("tags"), f"{what}.tags"),
    )


def parse_arrear(value: object, what: str) -> ArrearSpec:
    """``{"period", "amount", "due"}``."""
    obj = _object(value, what)
    _check_keys(obj, _ARREAR_KEYS, what)
    _require(obj, _ARREAR_KEYS, what)
    return ArrearSpec(
        parse_period(obj["period"], f"{what}.period"),
        parse_amount(obj["amount"], f"{what}.amount"),
        parse_date(obj["due"], f"{what}.due"),
        Decimal("0.00"),
    )


def parse_event(value: object, what: str = "event") -> EventSpec:
    """One event of the case file format (see ``docs/import.md``): its ``type`` decides which
    fields it requires; ``periods``, ``evidence``, ``method``, ``outcome``, ``amount`` and
    ``reason`` are optional on any event; null is the same as absent."""
    obj = _object(value, what)
    type_ = _choice(obj.get("type"), EVENT_TYPES, f"{what}.type: event type")
    required = _REQUIRED[type_]
    _check_keys(obj, {"type", "date"} | _COMMON_OPTIONAL | required, f"{what} ({type_})")
    _require(obj, {"date"} | required, f"{what} ({type_})")
    method = obj.get("method")
    outcome = obj.get("outcome")
    amount = obj.get("amount")
    spec = EventSpec(
        type=type_,
        date=parse_date(obj["date"], f"{what}.date"),
        method=None if method is None else _choice(method, Method, "method"),
        outcome=None if outcome is None else _choice(outcome, Outcome, "outcome"),
        delivered=None if "delivered" not in required else _bool(obj["delivered"], "delivered"),
        periods=_periods(obj.get("periods"), f"{what}.periods"),
        amount=(
            None
            if amount is None
            else parse_amount(amount, f"{what}.amount", positive=type_ == "payment")
        ),
        reason=parse_text(obj.get("reason"), f"{what}.reason"),
        end=None if "end" not in required else parse_date(obj["end"], f"{what}.end"),
        document=(
            None if "document" not in required else _document(obj["document"], f"{what}.document")
        ),
        served_date=(
            None
            if "served_date" not in required
            else parse_date(obj["served_date"], f"{what}.served_date")
        ),
        performance_due=(
            None
            if "performance_due" not in required
            else parse_date(obj["performance_due"], f"{what}.performance_due")
        ),
        preservation=(
            None
            if "preservation" not in required
            else check_ref(obj["preservation"], f"{what}.preservation")
        ),
        evidence=_evidence(obj.get("evidence"), f"{what}.evidence"),
    )
    # The engine's own checks: an obstacle ending before it starts, a judgment served before
    # it was given, ...
    spec.to_engine()
    return spec


def _document(value: object, what: str) -> str:
    if not isinstance(value, str) or not _DOCUMENT_RE.fullmatch(value):
        raise InvalidCaseData(
            f"{what} must name the document in 1-64 ASCII letters, digits, '_', '.' or '-' "
            f"(e.g. summons, judgment, demand_letter), not {value!r}"
        )
    return value


def parse_preservation(value: object, what: str = "preservation") -> PreservationSpec:
    """``{"ref", "stage", "asset", "executed_date", "ruling_date"?, "expires"?, "amount"?}``."""
    obj = _object(value, what)
    _check_keys(obj, _PRESERVATION_KEYS, what)
    _require(obj, ("ref", "stage", "asset", "executed_date"), what)
    amount = obj.get("amount")
    spec = PreservationSpec(
        ref=check_ref(obj["ref"], f"{what}.ref"),
        stage=_choice(obj["stage"], PreservationStage, "preservation stage"),
        asset=_choice(obj["asset"], Asset, "preservation asset"),
        executed_date=parse_date(obj["executed_date"], f"{what}.executed_date"),
        ruling_date=parse_optional_date(obj.get("ruling_date"), f"{what}.ruling_date"),
        expires=parse_optional_date(obj.get("expires"), f"{what}.expires"),
        amount=None if amount is None else parse_amount(amount, f"{what}.amount"),
    )
    spec.to_engine()
    return spec


def parse_case(value: object, what: str = "case") -> CaseSpec:
    """One case of a case file. Raises ``InvalidCaseData`` naming the first problem."""
    obj = _object(value, what)
    _check_keys(obj, _CASE_KEYS, what)
    _require(obj, ("ref", "property", "unit", "owner", "arrears"), what)
    ref = check_ref(obj["ref"], f"{what}.ref")
    mode = obj.get("limitation_mode")
    return CaseSpec(
        ref=ref,
        property=parse_name(obj["property"], f"{what}.property"),
        unit=parse_name(obj["unit"], f"{what}.unit", max_len=64),
        owner=parse_owner(obj["owner"], f"{what}.owner"),
        limitation_mode=(
            LimitationMode.PER_PERIOD.value
            if mode is None
            else _choice(mode, LimitationMode, "limitation mode")
        ),
        arrears=tuple(
            parse_arrear(a, f"{what}.arrears[{i}]")
            for i, a in enumerate(_list(obj["arrears"], f"{what}.arrears"))
        ),
        events=tuple(
            parse_event(e, f"{what}.events[{i}]")
            for i, e in enumerate(_list(obj.get("events") or [], f"{what}.events"))
        ),
        preservations=tuple(
            parse_preservation(p, f"{what}.preservations[{i}]")
            for i, p in enumerate(_list(obj.get("preservations") or [], f"{what}.preservations"))
        ),
    )


def parse_case_file(
    document: object,
) -> tuple[list[tuple[str, CaseSpec]], list[tuple[str, str]]]:
    """Parse ``{"cases": [...]}``: ([(where, case), ...] for the cases that parsed,
    [(where, problem), ...]).

    Every case is parsed, so that all problems are reported at once; the caller imports
    nothing unless the problem list is empty.
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(document, Mapping):
        return [], [("file", 'must be a JSON object {"cases": [...]}')]
    unknown = sorted(set(document) - {"cases"})
    if unknown:
        problems.append(("file", f"unknown field(s) {', '.join(map(repr, unknown))}"))
    raw = document.get("cases")
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        problems.append(("file", "'cases' must be a list of cases"))
        return [], problems
    cases: list[tuple[str, CaseSpec]] = []
    for i, item in enumerate(raw):
        where = f"cases[{i}]"
        try:
            spec = parse_case(item, where)
        except InvalidCaseData as e:
            problems.append((where, e.message))
            continue
        cases.append((f"{where} ({spec.ref})", spec))
    return cases, problems


def engine_check(
    ref: str,
    mode: str,
    arrears: Iterable[ArrearSpec],
    events: Iterable[EventSpec],
    preservations: Iterable[PreservationSpec],
    stage: str | None = None,
) -> CaseFacts:
    """The engine's facts of a case. Building them refuses an event naming a period or a
    preservation the case does not have, a period or a preservation listed twice, ..."""
    engine_events = [e for e in (ev.to_engine() for ev in events) if e is not None]
    return CaseFacts(
        ref=ref,
        limitation_mode=LimitationMode(mode),
        periods=tuple(Period(a.period, a.amount, a.due, a.paid) for a in arrears),
        events=tuple(engine_events),
        preservations=tuple(p.to_engine() for p in preservations),
        stage=None if stage is None else CaseStage(stage),
    )
