"""Demand letters (催缴函): a lawful letter in Chinese, rendered to PDF and kept as evidence.

A letter names the owner (and co-owners), the unit, every billing period due and still unpaid on
the letter's date with its amount, what was paid and what is outstanding, the total (in figures
and in Chinese capitals), the legal basis (民法典第九百四十四条 and the property service
contract), a payment deadline, the payment channels, and how to dispute the arrears or ask for
a payment plan. Periods under suit are left out (the court decides them).

What a letter never says: threats to cut water, power, heating or gas (民法典第944条第3款
forbids cutting them to force payment), nor anything about naming the owner publicly (a lift
notice with a name has cost a company a privacy suit). ``FORBIDDEN_TERMS`` lists the words
refused in the operator's own texts; the template contains none of them (tested).

Issuing a letter stores its PDF as evidence (kind ``document``) and records a ``note`` event on
the case citing that evidence entry, with the letter's number, periods, total and deadline in
its details. A letter issued is not a demand delivered: only a demand proven to have reached the
owner interrupts limitation (诉讼时效规定第8条), so the delivery is recorded later as a
``demand`` event (method, ``delivered``) citing the letter's evidence entry and the proof of
delivery. See ``docs/letters.md``.

The PDF is made by WeasyPrint from the HTML template with the evidence catalogue's local-only
URL fetcher: rendering loads nothing from the network or the file system.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from cases.deadlines import (
    CaseFacts,
    CaseStage,
    DeadlineKind,
    DeadlineStatus,
    Payment,
    compute_deadlines,
)
from cases.errors import InvalidCaseData
from cases.inputs import EventSpec
from cases.reports import allocate
from cases.workdays import next_working_day, provisional_between
from core.errors import ConfigError
from evidence.catalogue import local_only_fetcher, template_environment

if TYPE_CHECKING:
    from cases.service import CaseService, RecordedEvent
    from evidence.service import EvidenceReceipt

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_CHANNELS",
    "DEFAULT_DAYS",
    "DEFAULT_ISSUER",
    "FORBIDDEN_TERMS",
    "IssuedLetter",
    "Letter",
    "LetterConfig",
    "LetterLine",
    "LetterService",
    "NothingToDemand",
    "build_letter",
    "check_lawful",
    "default_deadline",
    "lawful_problems",
    "render_letter_html",
    "render_letter_pdf",
    "rmb_uppercase",
]

#: The letters' settings file in the instance home (JSON; every key optional).
CONFIG_FILE = "letters.json"
#: Days from the letter's date to the payment deadline (then moved to a working day).
DEFAULT_DAYS = 15
DEFAULT_ISSUER = "物业服务中心"
DEFAULT_CHANNELS = (
    "请至本小区物业服务中心缴纳（现金、银行卡或扫码支付），或通过银行转账支付；"
    "转账的开户名称、开户银行及账号请向物业服务中心核实，转账时请注明房号。"
)
#: Words a letter must not contain: threats to cut utilities (民法典第944条第3款) or to name
#: the owner publicly, and pressure that is not a lawful remedy.
FORBIDDEN_TERMS = (
    "停水",
    "停电",
    "停暖",
    "停气",
    "停热",
    "断水",
    "断电",
    "断暖",
    "断气",
    "断热",
    "限水",
    "限电",
    "停供",
    "断供",
    "停止供水",
    "停止供电",
    "停止供暖",
    "停止供热",
    "停止供气",
    "停止供燃气",
    "曝光",
    "公示",
    "公告",
    "张贴",
    "黑名单",
    "征信",
    "失信",
)
MAX_TEXT = 500
_TEMPLATES = Path(__file__).with_name("templates")
_CONFIG_KEYS = ("issuer", "channels", "contact", "days")


class NothingToDemand(InvalidCaseData):
    """The case has no billing period due and unpaid that a letter could demand."""


# --- wording -------------------------------------------------------------------------------


def lawful_problems(text: str) -> list[str]:
    """The forbidden terms ``text`` contains (empty: none), in ``FORBIDDEN_TERMS`` order."""
    return [term for term in FORBIDDEN_TERMS if term in text]


def check_lawful(text: str, what: str) -> None:
    """Raise ``InvalidCaseData`` if ``text`` holds a forbidden term."""
    found = lawful_problems(text)
    if found:
        raise InvalidCaseData(
            f"{what} contains {'、'.join(found)}: a demand letter must not threaten to cut "
            "water, power, heating or gas (民法典第944条第3款) nor to name the owner publicly"
        )


def _text(value: object, what: str, error: type[Exception]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error(f"{what} must be a non-empty text")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise error(f"{what} is longer than {MAX_TEXT} characters")
    if not all(c.isprintable() or c == "\n" for c in value):
        raise error(f"{what} must be printable text (line breaks allowed)")
    if lawful_problems(value):
        try:
            check_lawful(value, what)
        except InvalidCaseData as e:
            raise error(e.message) from None
    return value


@dataclass(frozen=True, slots=True)
class LetterConfig:
    """The operator's settings of letters: the issuer's name (出函单位), the payment channels
    and a contact (free text each), and the days from the letter's date to its deadline."""

    issuer: str = DEFAULT_ISSUER
    channels: str = DEFAULT_CHANNELS
    contact: str | None = None
    days: int = DEFAULT_DAYS

    @property
    def default_channels(self) -> bool:
        """True while the payment channels are the generic default text."""
        return self.channels == DEFAULT_CHANNELS

    @classmethod
    def load(cls, path: Path) -> LetterConfig:
        """Read ``path`` (JSON ``{"issuer", "channels", "contact", "days"}``, every key
        optional); a missing file gives the defaults. A bad file raises ``ConfigError``."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        try:
            doc = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path.name} is not UTF-8 JSON: {e}") from e
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{path.name} must hold a JSON object")
        unknown = sorted(set(doc) - set(_CONFIG_KEYS))
        if unknown:
            raise ConfigError(
                f"{path.name}: unknown key(s) {', '.join(map(repr, unknown))} "
                f"(expected: {', '.join(_CONFIG_KEYS)})"
            )
        texts = {
            key: _text(doc[key], f"{path.name}: {key}", ConfigError)
            for key in ("issuer", "channels", "contact")
            if doc.get(key) is not None
        }
        config = cls(
            issuer=texts.get("issuer", DEFAULT_ISSUER),
            channels=texts.get("channels", DEFAULT_CHANNELS),
            contact=texts.get("contact"),
        )
        if doc.get("days") is not None:
            days = doc["days"]
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
                raise ConfigError(f"{path.name}: days must be a whole number from 1 to 365")
            config = replace(config, days=days)
        return config

    def with_options(
        self,
        *,
        issuer: str | None = None,
        channels: str | None = None,
        contact: str | None = None,
    ) -> LetterConfig:
        """These settings with the given texts replaced (checked like the file's)."""
        return replace(
            self,
            issuer=self.issuer if issuer is None else _text(issuer, "--issuer", InvalidCaseData),
            channels=(
                self.channels
                if channels is None
                else _text(channels, "--channels", InvalidCaseData)
            ),
            contact=self.contact
            if contact is None
            else _text(contact, "--contact", InvalidCaseData),
        )


# --- amounts and dates ---------------------------------------------------------------------

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_GROUP_UNITS = ("", "万", "亿", "万亿")


def _group_upper(n: int) -> str:
    # Four digits: 零 once between non-zero digits, never trailing or leading.
    out = ""
    zero = False
    for place, unit in ((1000, "仟"), (100, "佰"), (10, "拾"), (1, "")):
        d = n // place % 10
        if d == 0:
            zero = bool(out)
        else:
            if zero:
                out += "零"
            out += _DIGITS[d] + unit
            zero = False
    return out


def _integer_upper(n: int) -> str:
    groups: list[int] = []
    while n:
        n, g = divmod(n, 10000)
        groups.append(g)
    out = ""
    gap = False
    for i in reversed(range(len(groups))):
        g = groups[i]
        if g == 0:
            gap = bool(out)
            continue
        if out and (gap or g < 1000):
            out += "零"
        out += _group_upper(g) + _GROUP_UNITS[i]
        gap = False
    return out


def rmb_uppercase(amount: Decimal) -> str:
    """An amount in CNY in Chinese capitals (大写), as payment documents write it.

    ``1050.00`` -> ``壹仟零伍拾元整``; ``350.05`` -> ``叁佰伍拾元零伍分``; ``0.50`` ->
    ``伍角整``. 整 follows 元 or 角, never 分 (支付结算办法附件一). At most 16 integer digits.
    """
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
        raise InvalidCaseData(f"not an amount: {amount!r}")
    if amount.quantize(Decimal("0.01")) != amount:
        raise InvalidCaseData(f"an amount has at most two decimals: {amount}")
    cents = int(amount * 100)
    yuan, rest = divmod(cents, 100)
    jiao, fen = divmod(rest, 10)
    if yuan >= 10**16:
        raise InvalidCaseData(f"amount too large: {amount}")
    if cents == 0:
        return "零元整"
    out = _integer_upper(yuan) + "元" if yuan else ""
    if jiao == 0 and fen == 0:
        return out + "整"
    if jiao:
        out += _DIGITS[jiao] + "角"
    elif yuan:
        out += "零"
    return out + (_DIGITS[fen] + "分" if fen else "整")


def money(amount: Decimal) -> str:
    """``1,050.00``: two decimals with thousands separators."""
    return f"{amount:,.2f}"


def chinese_date(d: dt.date) -> str:
    """``2026年11月27日``."""
    return f"{d.year}年{d.month}月{d.day}日"


def default_deadline(letter_date: dt.date, days: int = DEFAULT_DAYS) -> tuple[dt.date, bool]:
    """The payment deadline ``days`` after the letter's date (that day not counted, 民法典第201
    条), moved to the next working day if it is not one (第203条); and whether that used a
    year without an official working-day schedule (provisional)."""
    if days < 1:
        raise InvalidCaseData("the deadline must be at least one day after the letter")
    unadjusted = letter_date + dt.timedelta(days=days)
    deadline = next_working_day(unadjusted)
    return deadline, provisional_between(unadjusted, deadline)


# --- the letter ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LetterLine:
    """One billing period demanded: billed, paid by the letter's date, outstanding."""

    period: str
    due: dt.date
    amount: Decimal
    paid: Decimal
    outstanding: Decimal

    def to_dict(self) -> dict[str, str]:
        """JSON values (amounts with two decimals)."""
        return {
            "period": self.period,
            "due": self.due.isoformat(),
            "amount": f"{self.amount:.2f}",
            "paid": f"{self.paid:.2f}",
            "outstanding": f"{self.outstanding:.2f}",
        }


@dataclass(frozen=True, slots=True)
class Letter:
    """Everything a letter says. ``owner`` and ``co_owners`` are personal data: they appear in
    the PDF (sent to the owner alone), never in the log or in ``to_dict``."""

    case: str
    number: str
    date: dt.date
    deadline: dt.date
    deadline_provisional: bool
    owner: str
    co_owners: tuple[str, ...]
    property_name: str
    unit: str
    lines: tuple[LetterLine, ...]
    config: LetterConfig
    expired: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        """The sum of the outstanding amounts."""
        return sum((line.outstanding for line in self.lines), Decimal("0.00"))

    @property
    def periods(self) -> tuple[str, ...]:
        """The billing periods demanded, oldest first."""
        return tuple(line.period for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        """References, dates and amounts (no names): what the command prints."""
        return {
            "case": self.case,
            "letter": self.number,
            "date": self.date.isoformat(),
            "deadline": self.deadline.isoformat(),
            "deadline_provisional": self.deadline_provisional,
            "periods": [line.to_dict() for line in self.lines],
            "total": f"{self.total:.2f}",
            "expired_periods": list(self.expired),
            "default_channels": self.config.default_channels,
        }


def build_letter(
    facts: CaseFacts,
    *,
    number: str,
    on: dt.date,
    owner: str,
    co_owners: Sequence[str] = (),
    property: str,
    unit: str,
    config: LetterConfig,
    deadline: dt.date | None = None,
) -> Letter:
    """The letter of a case dated ``on``: every billing period due before ``on`` that is still
    unpaid after the payments dated up to ``on`` (allocated as the deadline engine allocates
    them), except periods under suit. Periods past limitation are demanded too (the debt
    stands; the owner may plead limitation) and listed in ``expired``.

    ``deadline`` defaults to ``default_deadline(on, config.days)``; one given must be after
    ``on``. Raises ``NothingToDemand`` when no period qualifies.
    """
    if deadline is None:
        deadline, provisional = default_deadline(on, config.days)
    else:
        if deadline <= on:
            raise InvalidCaseData(
                f"the payment deadline {deadline.isoformat()} must be after the letter's date "
                f"{on.isoformat()}"
            )
        provisional = provisional_between(on, deadline)
    status: dict[str, DeadlineStatus] = {
        row.period: row.status
        for row in compute_deadlines(facts, on)
        if row.kind is DeadlineKind.LIMITATION and row.period is not None
    }
    payments = [ev for ev in facts.events if isinstance(ev, Payment)]
    lines = []
    for b in allocate(facts.periods, payments, on):
        owed = b.outstanding(on)
        if b.due >= on or owed <= 0 or status.get(b.period) is DeadlineStatus.SUIT_FILED:
            continue
        lines.append(LetterLine(b.period, b.due, b.amount, b.paid_by(on), owed))
    if not lines:
        raise NothingToDemand(
            f"case {facts.ref} has no billing period due before {on.isoformat()} and unpaid "
            "(periods under suit are left to the court): no letter"
        )
    expired = tuple(
        line.period for line in lines if status.get(line.period) is DeadlineStatus.EXPIRED
    )
    return Letter(
        case=facts.ref,
        number=number,
        date=on,
        deadline=deadline,
        deadline_provisional=provisional,
        owner=owner,
        co_owners=tuple(co_owners),
        property_name=property,
        unit=unit,
        lines=tuple(lines),
        config=config,
        expired=expired,
    )


# --- rendering -----------------------------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    return template_environment(_TEMPLATES)


def render_letter_html(letter: Letter) -> str:
    """The letter as a self-contained HTML document (styles inline, no external resource)."""
    c = letter.config
    context = {
        "number": letter.number,
        "created": letter.date.isoformat(),
        "date_zh": chinese_date(letter.date),
        "deadline_zh": chinese_date(letter.deadline),
        "owner": letter.owner,
        "co_owners": list(letter.co_owners),
        "property": letter.property_name,
        "unit": letter.unit,
        "lines": [
            {
                "period": line.period,
                "due": chinese_date(line.due),
                "amount": money(line.amount),
                "paid": money(line.paid),
                "outstanding": money(line.outstanding),
            }
            for line in letter.lines
        ],
        "total": money(letter.total),
        "total_upper": rmb_uppercase(letter.total),
        "issuer": c.issuer,
        "channels": c.channels,
        "contact": c.contact,
    }
    return _environment().get_template("demand_letter.html").render(context)


def render_letter_pdf(letter: Letter) -> bytes:
    """The letter as an A4 PDF (WeasyPrint; Noto CJK embedded as a subset). The PDF's title
    is the letter's number and its creation date the letter's date: the same letter gives
    the same bytes."""
    import weasyprint  # loads Pango and fontconfig: only when a PDF is made

    document = weasyprint.HTML(
        string=render_letter_html(letter), url_fetcher=local_only_fetcher(), media_type="print"
    )
    pdf: bytes = document.write_pdf(pdf_identifier=False)
    return pdf


# --- issuing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedLetter:
    """A letter stored as evidence and recorded on its case."""

    letter: Letter
    evidence: EvidenceReceipt
    event: RecordedEvent

    def as_dict(self) -> dict[str, Any]:
        """The letter's ``to_dict`` with ``{"evidence": {...}, "event": {...}}``."""
        return {
            **self.letter.to_dict(),
            "evidence": {
                "index": self.evidence.index,
                "sha256": self.evidence.sha256,
                "size": self.evidence.size,
            },
            "event": {
                "id": self.event.event_id,
                "index": self.event.receipt.index,
                "checkpoint_size": self.event.receipt.checkpoint_size,
                "timestamp": self.event.receipt.timestamp.as_dict(),
            },
        }


LETTER_KIND = "demand_letter"


class LetterService:
    """Prepares letters from the database and issues them (evidence + case event)."""

    def __init__(self, *, cases: CaseService, config: LetterConfig | None = None) -> None:
        self.cases = cases
        self.config = config or LetterConfig()

    def prepare(self, ref: str, *, deadline: dt.date | None = None) -> Letter:
        """The letter case ``ref`` would get today (nothing is written). Raises
        ``CaseNotFound``, ``NothingToDemand``, or ``InvalidCaseData`` (a closed case, a
        deadline not after today)."""
        on = self.cases.today()
        shown = self.cases.show(ref, as_of=on)
        if shown["stage"] == CaseStage.CLOSED.value:
            raise InvalidCaseData(f"case {ref} is closed: no letter")
        issued = sum(
            1
            for e in shown["events"]
            if e["type"] == "note" and (e.get("data") or {}).get("kind") == LETTER_KIND
        )
        owner = shown["owner"]
        return build_letter(
            self.cases.facts(ref),
            number=f"CJ-{ref}-{issued + 1:03d}",
            on=on,
            owner=owner["name"],
            co_owners=[c["name"] for c in owner["co_owners"]],
            property=shown["property"],
            unit=shown["unit"],
            config=self.config,
            deadline=deadline,
        )

    def prepare_stage(
        self, stage: str, *, deadline: dt.date | None = None
    ) -> tuple[list[Letter], list[tuple[str, str]]]:
        """The letters of every case at ``stage``, and the cases skipped with the reason
        (nothing to demand). Raises ``InvalidCaseData`` for an unknown or closed stage, no
        case at it, or no case with anything to demand."""
        stages = [s.value for s in CaseStage]
        if stage not in stages:
            raise InvalidCaseData(f"unknown stage {stage!r} (expected one of: {', '.join(stages)})")
        if stage == CaseStage.CLOSED.value:
            raise InvalidCaseData("closed cases get no letter")
        refs = [c["ref"] for c in self.cases.list_cases() if c["stage"] == stage]
        if not refs:
            raise InvalidCaseData(f"no case is at stage {stage}")
        letters: list[Letter] = []
        skipped: list[tuple[str, str]] = []
        for ref in refs:
            try:
                letters.append(self.prepare(ref, deadline=deadline))
            except NothingToDemand as e:
                skipped.append((ref, e.message))
        if not letters:
            raise NothingToDemand(f"no case at stage {stage} has anything to demand")
        return letters, skipped

    def issue(self, letter: Letter, pdf: bytes, *, actor: str) -> IssuedLetter:
        """Store ``pdf`` (the rendered ``letter``) as evidence of its case and record a
        ``note`` event citing it. The note's details carry the letter's number, deadline and
        PDF hash; its periods and amount are the letter's. Returns once both are logged."""
        receipt = self.cases.evidence.add(
            pdf,
            kind="document",
            actor=actor,
            case=letter.case,
            purpose=f"催缴函 demand letter {letter.number}",
            original_name=f"催缴函-{letter.number}.pdf",
        )
        spec = EventSpec(
            type="note",
            date=letter.date,
            periods=letter.periods,
            amount=letter.total,
            reason=(
                f"催缴函 {letter.number} 已出具，缴费期限 {letter.deadline.isoformat()}，尚未送达 "
                "(demand letter issued; its delivery is recorded as a demand event)"
            ),
            evidence=(receipt.index,),
            data={
                "kind": LETTER_KIND,
                "letter": letter.number,
                "deadline": letter.deadline.isoformat(),
                "sha256": receipt.sha256,
            },
        )
        event = self.cases.record_event(letter.case, spec, actor=actor)
        return IssuedLetter(letter, receipt, event)
