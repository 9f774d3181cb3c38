"""Imports: billing-system exports (CSV, xlsx) and whole-case files (JSON). See docs/import.md.

An import is all or nothing. The file is read and checked completely, and compared with the
database, before anything is written; any problem is reported with its line (or its place
in the JSON document) and nothing is imported. Re-importing what is already recorded is a
no-op: nothing is written and nothing is logged. A changed amount, due date or paid amount of
a billing period already recorded is refused unless ``update`` is given, which records each
change as an ``arrears_change`` event.

An import that changes something appends ONE ``import`` entry to the log, before its rows are
written (so a row never exists without the entry that covers it)::

    {"format": "csv", "sha256": "<hex of the file>", "size": 1234, "records": 72,
     "counts": {"properties": 1, "units": 3, "owners": 3, "owners_updated": 0, "cases": 3,
                "arrears": 72, "arrears_updated": 0, "arrears_unchanged": 0,
                "events": 0, "preservations": 0},
     "arrears_sha256": "<hex>", "events_sha256": "<hex>" | null}

``arrears_sha256`` is SHA-256 over one line per billing period written (new or changed), in
order: ``case<TAB>period<TAB>amount<TAB>due<TAB>paid<LF>`` (amounts with two decimals, ISO
dates). ``events_sha256`` is SHA-256 over one line per event the import recorded, in order:
``case<TAB>details_sha256<LF>``, where ``details_sha256`` is the event's salted details hash
(``cases.service.details_sha256``). Imported events get no ``case_event`` entry of their own:
the import entry covers them, and each row records that entry's index. References only:
no name, phone number or address enters the log.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from cases.deadlines import CaseStage, LimitationMode
from cases.errors import ImportRejected, InvalidCaseData
from cases.inputs import (
    ArrearSpec,
    EventSpec,
    OwnerSpec,
    PreservationSpec,
    check_ref,
    engine_check,
    parse_amount,
    parse_case_file,
    parse_date,
    parse_name,
    parse_period,
    parse_phone,
)
from cases.models import (
    Arrear,
    Case,
    CaseEvent,
    CaseImport,
    Owner,
    OwnerTag,
    PreservationFiling,
    Property,
    ServiceAttempt,
    Unit,
)
from cases.service import (
    CaseService,
    arrear_spec,
    details_sha256,
    event_row,
    existing_evidence,
    new_salt,
    paused_gc,
    preservation_event,
    preservation_row,
    spec_from_row,
)
from core.db import in_batches, write_engine
from ledger.service import Receipt

__all__ = [
    "CSV_COLUMNS",
    "OPTIONAL_COLUMNS",
    "ImportResult",
    "events_digest",
    "import_file",
]

CSV_COLUMNS = ("property", "unit", "owner_name", "owner_phone", "period", "amount", "due_date")
OPTIONAL_COLUMNS = ("owner_ref", "case_ref", "paid_amount")
MAX_REPORTED = 100  # problems listed in the error message (all are on the exception)
_CHUNK = 20_000
_ZERO = Decimal("0.00")

_PROPS = Property.__table__
_UNITS = Unit.__table__
_OWNERS = Owner.__table__
_CASES = Case.__table__
_ARREARS = Arrear.__table__
_EVENTS = CaseEvent.__table__
_PRES = PreservationFiling.__table__
_TAGS = OwnerTag.__table__


def events_digest(pairs: Iterable[tuple[str, str]]) -> str | None:
    """SHA-256 over ``case<TAB>details_sha256<LF>`` lines; None when there are none."""
    h = hashlib.sha256()
    n = 0
    for case_ref, digest in pairs:
        h.update(f"{case_ref}\t{digest}\n".encode())
        n += 1
    return h.hexdigest() if n else None


@dataclass(frozen=True)
class ImportResult:
    """What an import did. ``entry_index`` and ``receipt`` are None for a no-op."""

    format: str
    sha256: str
    records: int
    counts: dict[str, int]
    entry_index: int | None = None
    receipt: Receipt | None = None
    encoding: str | None = None

    @property
    def changed(self) -> bool:
        """True when the import wrote something."""
        return self.entry_index is not None

    def as_dict(self) -> dict[str, Any]:
        """``{"format", "encoding", "sha256", "records", "counts", "changed", "index",
        "checkpoint_size", "timestamp"}``."""
        r = self.receipt
        return {
            "format": self.format,
            "encoding": self.encoding,
            "sha256": self.sha256,
            "records": self.records,
            "counts": dict(self.counts),
            "changed": self.changed,
            "index": self.entry_index,
            "checkpoint_size": None if r is None else r.checkpoint_size,
            "timestamp": None if r is None else r.timestamp.as_dict(),
        }


# --- the batch: what a file says, before it is compared with the database ------------------


OwnerKey = tuple[str, ...]  # ("ref", ref) or ("name", property, unit, name)
CaseKey = tuple[OwnerKey, str, str]  # (owner, property, unit)


@dataclass
class _OwnerIn:
    key: OwnerKey
    spec: OwnerSpec
    where: str
    full: bool  # a JSON owner: birth date and tags are given too, and compared


@dataclass
class _CaseIn:
    key: CaseKey
    ref: str | None
    property: str
    unit: str
    where: str
    mode: str | None = None  # None: a billing row (new cases get per_period)
    stage: str | None = None
    arrears: list[tuple[ArrearSpec, str]] = field(default_factory=list)
    events: list[tuple[EventSpec, str]] = field(default_factory=list)
    preservations: list[tuple[PreservationSpec, str]] = field(default_factory=list)


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, message: str) -> None:
        self.items.append((where, message))

    def raise_if_any(self, source: str) -> None:
        if not self.items:
            return

        # Report in file order: lines numerically; JSON places as found (a stable sort).
        def order(item: tuple[str, str]) -> int:
            where = item[0]
            return int(where.split()[1]) if where.startswith("line ") else 0

        items = sorted(self.items, key=order)
        shown = [
            f"  {message}" if message.startswith(where) else f"  {where}: {message}"
            for where, message in items[:MAX_REPORTED]
        ]
        if len(items) > MAX_REPORTED:
            shown.append(f"  ... and {len(items) - MAX_REPORTED} more")
        raise ImportRejected(
            f"{source}: {len(items)} problem(s); nothing was imported:\n" + "\n".join(shown),
            items,
        )


class _Batch:
    def __init__(self) -> None:
        self.owners: dict[OwnerKey, _OwnerIn] = {}
        self.cases: dict[CaseKey, _CaseIn] = {}
        self.case_refs: dict[str, CaseKey] = {}
        # (property, unit) -> period -> where: a unit's period is billed once.
        self.unit_periods: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        self.records = 0

    def owner(self, spec: OwnerSpec, key: OwnerKey, where: str, full: bool, p: _Problems) -> bool:
        known = self.owners.get(key)
        if known is None:
            self.owners[key] = _OwnerIn(key, spec, where, full)
            return True
        a, b = known.spec, spec
        if a.name != b.name:
            p.add(where, f"owner {key[-1]} is named differently at {known.where}")
            return False
        if a.phone != b.phone:
            if full or (a.phone is not None and b.phone is not None):
                p.add(where, f"owner {key[-1]} has another phone number at {known.where}")
                return False
            if a.phone is None:  # billing rows may leave the phone blank on some lines
                known.spec = OwnerSpec(a.ref, a.name, b.phone, a.birth_date, a.tags)
        if full and (a.birth_date, a.tags) != (b.birth_date, b.tags):
            p.add(where, f"owner {key[-1]} is described differently at {known.where}")
            return False
        return True

    def case(
        self, key: CaseKey, ref: str | None, prop: str, unit: str, where: str, p: _Problems
    ) -> _CaseIn | None:
        c = self.cases.get(key)
        if c is None:
            if ref is not None and ref in self.case_refs:
                p.add(
                    where,
                    f"case {ref} is given for another owner or unit at "
                    f"{self.cases[self.case_refs[ref]].where}",
                )
                return None
            c = self.cases[key] = _CaseIn(key, ref, prop, unit, where)
            if ref is not None:
                self.case_refs[ref] = key
            return c
        if ref is not None and c.ref is None:
            if ref in self.case_refs:
                p.add(where, f"case {ref} is given for another owner or unit")
                return None
            c.ref = ref
            self.case_refs[ref] = key
        elif ref is not None and ref != c.ref:
            p.add(where, f"this owner and unit are case {c.ref} at {c.where}, not {ref}")
            return None
        return c

    def arrear(self, c: _CaseIn, a: ArrearSpec, where: str, p: _Problems) -> None:
        seen = self.unit_periods[(c.property, c.unit)]
        other = seen.get(a.period)
        if other is not None:
            p.add(where, f"{c.property} {c.unit} period {a.period} is also at {other}")
            return
        seen[a.period] = where
        c.arrears.append((a, where))


# --- reading files -------------------------------------------------------------------------


def _decode(raw: bytes) -> tuple[str, str]:
    """The text of a CSV file and its encoding: UTF-8 (with or without BOM) or GBK."""
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as e:
            raise InvalidCaseData(f"the file starts with a UTF-8 BOM but is not UTF-8: {e}") from e
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidCaseData("the file is UTF-16: save it as CSV UTF-8 (or GBK)")
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK that decodes every GBK file the same way.
        return raw.decode("gb18030"), "gbk"
    except UnicodeDecodeError:
        raise InvalidCaseData("the file is neither UTF-8 nor GBK text") from None


def _cell(value: object) -> object:
    """A spreadsheet cell as the parsers take it: text trimmed, whole floats as integers."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_rows(text: str) -> Iterator[tuple[int, list[object]]]:
    if "\x00" in text:
        raise InvalidCaseData("the file holds NUL bytes: it is not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            yield reader.line_num, list(row)
    except csv.Error as e:
        raise InvalidCaseData(f"line {reader.line_num}: not valid CSV: {e}") from e


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[object]]]:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as e:
        raise InvalidCaseData(f"not a readable .xlsx workbook: {e}") from e
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell(v) for v in row]
    finally:
        book.close()


def _tabular(rows: Iterator[tuple[int, list[object]]], batch: _Batch, p: _Problems) -> None:
    """Billing rows into the batch, checking each line."""
    header: dict[str, int] | None = None
    memo: _Memo = {}
    last_raw: tuple[object, ...] | None = None
    last_case: _CaseIn | None = None
    width = 0
    for line, values in rows:
        if header is None:
            if all(_text(v) == "" for v in values):
                continue
            header = _header(values, f"line {line}")
            width = len(header)
            i_prop, i_unit, i_name, i_phone, i_period, i_amount, i_due = (
                header[c] for c in CSV_COLUMNS
            )
            i_oref, i_cref, i_paid = (header.get(c, width) for c in OPTIONAL_COLUMNS)
            continue
        n = len(values)
        if n < width + 1:
            values = [*values, *([None] * (width + 1 - n))]  # index ``width``: column absent
        elif n > width:
            if any(_text(v) for v in values[width:]):
                batch.records += 1
                p.add(f"line {line}", f"{n} fields, the header has {width}")
                continue
            values = [*values[:width], None]
        if not any(values) and all(v is None or v == "" for v in values):
            continue  # a blank line
        batch.records += 1
        where = f"line {line}"
        try:
            # Rows of one owner usually follow each other: parse who and where once.
            raw = (
                values[i_prop],
                values[i_unit],
                values[i_name],
                values[i_phone],
                values[i_oref],
                values[i_cref],
            )
            if raw != last_raw or last_case is None:
                last_raw, last_case = raw, None
                prop = parse_name(_text(raw[0]), "property")
                unit = parse_name(_text(raw[1]), "unit", max_len=64)
                name = parse_name(_text(raw[2]), "owner_name")
                phone = parse_phone(_text(raw[3]), "owner_phone")
                owner_ref = _text(raw[4]) or None
                if owner_ref is not None:
                    check_ref(owner_ref, "owner_ref")
                case_ref = _text(raw[5]) or None
                if case_ref is not None:
                    check_ref(case_ref, "case_ref")
                okey: OwnerKey = ("ref", owner_ref) if owner_ref else ("name", prop, unit, name)
                if not batch.owner(OwnerSpec(owner_ref, name, phone), okey, where, False, p):
                    continue
                last_case = batch.case((okey, prop, unit), case_ref, prop, unit, where, p)
                if last_case is None:
                    continue
            period = _memo(memo, values[i_period], "period", parse_period)
            amount = _memo(memo, values[i_amount], "amount", parse_amount)
            raw_paid = values[i_paid]
            paid = (
                _ZERO
                if raw_paid is None or raw_paid == ""
                else _memo(memo, raw_paid, "paid_amount", parse_amount)
            )
            due = _memo(memo, values[i_due], "due_date", parse_date)
            if paid > amount:
                raise InvalidCaseData(f"paid_amount {paid} exceeds the amount {amount}")
        except InvalidCaseData as e:
            p.add(where, e.message)
            continue
        batch.arrear(last_case, ArrearSpec(period, amount, due, paid), where, p)
    if header is None:
        p.add("line 1", "no header row: expected columns " + ", ".join(CSV_COLUMNS))


_Memo = dict[tuple[str, type, object], Any]


def _memo(memo: _Memo, raw: object, what: str, parse: Any) -> Any:
    # Billing exports repeat a few amounts, dates and periods millions of times. The type is
    # part of the key: True == 1, but True is no amount.
    key = (what, type(raw), raw)
    try:
        return memo[key]
    except KeyError:
        value = parse(raw, what)
        memo[key] = value
        return value


def _header(values: Sequence[object], where: str) -> dict[str, int]:
    names = [_text(v).lower() for v in values]
    while names and names[-1] == "":
        names.pop()
    allowed = set(CSV_COLUMNS) | set(OPTIONAL_COLUMNS)
    unknown = [n for n in names if n not in allowed]
    missing = [c for c in CSV_COLUMNS if c not in names]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    problems = []
    if unknown:
        problems.append("unknown column(s) " + ", ".join(map(repr, unknown)))
    if missing:
        problems.append("missing column(s) " + ", ".join(missing))
    if dupes:
        problems.append("column(s) given twice: " + ", ".join(dupes))
    if problems:
        raise ImportRejected(
            f"{where}: "
            + "; ".join(problems)
            + "; nothing was imported (expected "
            + ", ".join(CSV_COLUMNS)
            + ", optionally "
            + ", ".join(OPTIONAL_COLUMNS)
            + ")",
            [(where, "; ".join(problems))],
        )
    return {n: i for i, n in enumerate(names)}


def _json_batch(raw: bytes, batch: _Batch, p: _Problems) -> None:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        dupes = sorted(k for k, n in Counter(keys).items() if n > 1)
        if dupes:
            raise InvalidCaseData(f"a JSON object gives {dupes[0]!r} twice")
        return dict(items)

    def constant(name: str) -> Any:
        raise InvalidCaseData(f"{name} is not a number")

    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        document = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=pairs,
            parse_float=Decimal,
            parse_constant=constant,
        )
    except UnicodeDecodeError as e:
        raise InvalidCaseData(f"a JSON file must be UTF-8: {e}") from e
    except json.JSONDecodeError as e:
        raise InvalidCaseData(f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") from e
    specs, problems = parse_case_file(document)
    for where, message in problems:
        p.add(where, message)
    if isinstance(document, dict) and isinstance(document.get("cases"), list):
        batch.records = len(document["cases"])
    for where, spec in specs:
        okey: OwnerKey = ("ref", spec.owner.ref or "")
        if not batch.owner(spec.owner, okey, where, True, p):
            continue
        key: CaseKey = (okey, spec.property, spec.unit)
        if key in batch.cases:
            p.add(
                where,
                f"owner {spec.owner.ref} and unit {spec.unit} are already case "
                f"{batch.cases[key].ref} at {batch.cases[key].where}",
            )
            continue
        c = batch.case(key, spec.ref, spec.property, spec.unit, where, p)
        if c is None:
            continue
        c.mode = spec.limitation_mode
        c.stage = spec.initial_stage()
        for j, a in enumerate(spec.arrears):
            batch.arrear(c, a, f"{where}.arrears[{j}]", p)
        c.events = [(e, f"{where}.events[{j}]") for j, e in enumerate(spec.events)]
        c.preservations = [
            (s, f"{where}.preservations[{j}]") for j, s in enumerate(spec.preservations)
        ]
        refs = Counter(s.ref for s in spec.preservations)
        for ref, n in refs.items():
            if n > 1:
                p.add(where, f"preservation {ref} is given {n} times")


# --- comparing with the database -----------------------------------------------------------


@dataclass
class _NewCase:
    ref: str
    owner: OwnerKey
    property: str
    unit: str
    mode: str
    stage: str


@dataclass
class _Plan:
    new_properties: list[str] = field(default_factory=list)
    new_units: list[tuple[str, str]] = field(default_factory=list)
    new_owners: list[tuple[OwnerKey, OwnerSpec]] = field(default_factory=list)
    owner_updates: list[tuple[int, dict[str, Any], tuple[str, ...] | None]] = field(
        default_factory=list
    )
    new_cases: list[_NewCase] = field(default_factory=list)
    # (case ref, property, unit, arrear)
    new_arrears: list[tuple[str, str, str, ArrearSpec]] = field(default_factory=list)
    # (arrears id, case ref, new arrear)
    changed_arrears: list[tuple[int, str, ArrearSpec]] = field(default_factory=list)
    unchanged: int = 0
    # (case ref, spec, salt, digest)
    events: list[tuple[str, EventSpec, str, str]] = field(default_factory=list)
    # (case ref, preservation, index into events of its preservation event)
    preservations: list[tuple[str, PreservationSpec, int]] = field(default_factory=list)
    owner_refs: dict[OwnerKey, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "properties": len(self.new_properties),
            "units": len(self.new_units),
            "owners": len(self.new_owners),
            "owners_updated": len(self.owner_updates),
            "cases": len(self.new_cases),
            "arrears": len(self.new_arrears),
            "arrears_updated": len(self.changed_arrears),
            "arrears_unchanged": self.unchanged,
            "events": len(self.events),
            "preservations": len(self.preservations),
        }

    def changes(self) -> bool:
        c = self.counts()
        del c["arrears_unchanged"]
        return any(c.values())


def _new_ref(prefix: str, taken: set[str]) -> str:
    while True:
        ref = f"{prefix}-{secrets.token_hex(6).upper()}"
        if ref not in taken:
            taken.add(ref)
            return ref


class _Planner:
    def __init__(
        self, conn: Connection, service: CaseService, update: bool, batch: _Batch, p: _Problems
    ) -> None:
        self.conn = conn
        self.service = service
        self.update = update
        self.batch = batch
        self.p = p
        self.plan = _Plan()
        self.today = service.today()

    def run(self) -> _Plan:
        conn, batch, p, plan = self.conn, self.batch, self.p, self.plan
        r: Any
        named: Any
        props = {r.name: r.id for r in conn.execute(select(_PROPS.c.id, _PROPS.c.name))}
        touched = sorted({c.property for c in batch.cases.values()})
        prop_ids = [props[name] for name in touched if name in props]
        units: dict[tuple[str, str], int] = {}
        names = {v: k for k, v in props.items()}
        for chunk in in_batches(prop_ids):
            for r in conn.execute(
                select(_UNITS.c.id, _UNITS.c.property_id, _UNITS.c.code).where(
                    _UNITS.c.property_id.in_(chunk)
                )
            ):
                units[(names[r.property_id], r.code)] = r.id
        # Cases (with their owners) on the touched properties, and cases named by the file.
        case_cols = (
            _CASES.c.id,
            _CASES.c.ref,
            _CASES.c.owner_id,
            _CASES.c.unit_id,
            _CASES.c.limitation_mode,
            _CASES.c.stage,
        )
        by_unit: dict[int, list[Any]] = defaultdict(list)
        cases_by_ref: dict[str, Any] = {}
        for chunk in in_batches(prop_ids):
            for r in conn.execute(
                select(*case_cols, _OWNERS.c.name.label("owner_name"))
                .join(_UNITS, _UNITS.c.id == _CASES.c.unit_id)
                .join(_OWNERS, _OWNERS.c.id == _CASES.c.owner_id)
                .where(_UNITS.c.property_id.in_(chunk))
            ):
                by_unit[r.unit_id].append(r)
                cases_by_ref[r.ref] = r
        wanted_refs = [c.ref for c in batch.cases.values() if c.ref and c.ref not in cases_by_ref]
        for chunk in in_batches(wanted_refs):
            for named in conn.execute(
                select(*case_cols, _OWNERS.c.name.label("owner_name"))
                .join(_OWNERS, _OWNERS.c.id == _CASES.c.owner_id)
                .where(_CASES.c.ref.in_(chunk))
            ):
                cases_by_ref[named.ref] = named
        owner_ids = {r.owner_id for rows in by_unit.values() for r in rows}
        owner_ids |= {r.owner_id for r in cases_by_ref.values()}
        owner_refs = [k[1] for k in batch.owners if k[0] == "ref"]
        owners_by_id: dict[int, Any] = {}
        for chunk in in_batches(owner_refs):
            for r in conn.execute(select(_OWNERS).where(_OWNERS.c.ref.in_(chunk))):
                owners_by_id[r.id] = r
        for chunk in in_batches(sorted(owner_ids - set(owners_by_id))):
            for r in conn.execute(select(_OWNERS).where(_OWNERS.c.id.in_(chunk))):
                owners_by_id[r.id] = r
        owners_by_ref = {r.ref: r for r in owners_by_id.values()}
        tags: dict[int, tuple[str, ...]] = defaultdict(tuple)
        if any(o.full for o in batch.owners.values()):
            for chunk in in_batches(sorted(owners_by_id)):
                rows = conn.execute(
                    select(_TAGS.c.owner_id, _TAGS.c.tag)
                    .where(_TAGS.c.owner_id.in_(chunk))
                    .order_by(_TAGS.c.owner_id, _TAGS.c.tag)
                )
                for owner_id, tag in rows:
                    tags[owner_id] = (*tags[owner_id], tag)

        # Refs generated for new owners and cases must not collide with any existing one.
        taken_owner_refs = set(owners_by_ref) | {k[1] for k in batch.owners if k[0] == "ref"}
        taken_case_refs = set(cases_by_ref) | set(batch.case_refs)

        # -- owners
        owner_ids_by_key: dict[OwnerKey, int | None] = {}
        for key, o in batch.owners.items():
            existing = None
            if key[0] == "ref":
                existing = owners_by_ref.get(key[1])
            else:
                _, prop, unit, name = key
                unit_id = units.get((prop, unit))
                matches = (
                    [r for r in by_unit.get(unit_id, []) if r.owner_name == name]
                    if unit_id is not None
                    else []
                )
                if len(matches) > 1:
                    p.add(
                        o.where,
                        f"{prop} {unit} has several owners named like this one: give owner_ref",
                    )
                    continue
                if matches:
                    existing = owners_by_id[matches[0].owner_id]
            if existing is None:
                ref = o.spec.ref or _new_ref("O", taken_owner_refs)
                plan.new_owners.append((key, o.spec))
                plan.owner_refs[key] = ref
                owner_ids_by_key[key] = None
                continue
            plan.owner_refs[key] = existing.ref
            owner_ids_by_key[key] = existing.id
            self._compare_owner(existing, tags.get(existing.id, ()), o)

        # -- cases, arrears, events, preservations
        arrears_by_unit = self._load_arrears(units, batch)
        for c in batch.cases.values():
            okey = c.key[0]
            if okey not in owner_ids_by_key:
                continue  # the owner was refused
            owner_id = owner_ids_by_key[okey]
            unit_id = units.get((c.property, c.unit))
            existing = None
            if owner_id is not None and unit_id is not None:
                existing = next(
                    (r for r in by_unit.get(unit_id, []) if r.owner_id == owner_id), None
                )
            if c.ref is not None:
                named = cases_by_ref.get(c.ref)
                if named is not None and (existing is None or named.id != existing.id):
                    p.add(c.where, f"case {c.ref} is recorded for another owner or unit")
                    continue
                if existing is not None and existing.ref != c.ref:
                    p.add(c.where, f"this owner and unit are already case {existing.ref}")
                    continue
            if existing is None:
                ref = c.ref or _new_ref("C", taken_case_refs)
                mode = c.mode or LimitationMode.PER_PERIOD.value
                stage = c.stage or CaseStage.REMINDER.value
                plan.new_cases.append(_NewCase(ref, okey, c.property, c.unit, mode, stage))
                for a, _ in c.arrears:
                    plan.new_arrears.append((ref, c.property, c.unit, a))
                self._case_events(ref, mode, None, c, [], [], [], [a for a, _ in c.arrears])
                continue
            if c.mode is not None and c.mode != existing.limitation_mode:
                p.add(
                    c.where,
                    f"case {existing.ref} is clocked {existing.limitation_mode}, not {c.mode}",
                )
                continue
            self._existing_case(existing, c, arrears_by_unit.get(unit_id or -1, {}))
        self._check_evidence()
        self._check_generated(taken_owner_refs - owners_by_ref.keys(), _OWNERS)
        self._check_generated(taken_case_refs - cases_by_ref.keys(), _CASES)
        return plan

    def _check_generated(self, refs: set[str], table: Any) -> None:
        # A generated reference (48 random bits) that some other owner or case already has:
        # all but impossible, but it must fail here, before anything is logged or written.
        wanted = sorted(refs)
        for chunk in in_batches(wanted):
            clash = self.conn.execute(
                select(table.c.ref).where(table.c.ref.in_(chunk)).limit(1)
            ).scalar()
            if clash is not None:
                raise InvalidCaseData(
                    f"reference {clash} is already taken; nothing was imported: run the "
                    "import again"
                )

    def _compare_owner(self, row: Any, tags: tuple[str, ...], o: _OwnerIn) -> None:
        spec = o.spec
        changes: dict[str, Any] = {}
        if spec.name != row.name:
            changes["name"] = spec.name
        # What a file leaves out (a blank phone, no birth date, no tags) is not asserted.
        if spec.phone is not None and spec.phone != row.phone:
            changes["phone"] = spec.phone
        if spec.birth_date is not None and spec.birth_date != row.birth_date:
            changes["birth_date"] = spec.birth_date
        new_tags: tuple[str, ...] | None = None
        if o.full and spec.tags and tuple(sorted(tags)) != spec.tags:
            new_tags = spec.tags
        if not changes and new_tags is None:
            return
        if not self.update:
            what = ", ".join([*changes, *(["tags"] if new_tags is not None else [])])
            self.p.add(
                o.where,
                f"owner {row.ref}: {what} differ(s) from what is recorded "
                "(use --update to correct the owner)",
            )
            return
        self.plan.owner_updates.append((row.id, changes, new_tags))

    def _load_arrears(
        self, units: dict[tuple[str, str], int], batch: _Batch
    ) -> dict[int, dict[str, Any]]:
        unit_ids = sorted(
            {
                units[(c.property, c.unit)]
                for c in batch.cases.values()
                if (c.property, c.unit) in units
            }
        )
        out: dict[int, dict[str, Any]] = defaultdict(dict)
        for chunk in in_batches(unit_ids):
            for r in self.conn.execute(select(_ARREARS).where(_ARREARS.c.unit_id.in_(chunk))):
                out[r.unit_id][r.period] = r
        return out

    def _existing_case(self, case: Any, c: _CaseIn, arrears: dict[str, Any]) -> None:
        p, plan = self.p, self.plan
        for a, where in c.arrears:
            row = arrears.get(a.period)
            if row is None:
                plan.new_arrears.append((case.ref, c.property, c.unit, a))
                continue
            if row.case_id != case.id:
                p.add(where, f"{c.property} {c.unit} period {a.period} is billed to another case")
                continue
            old = arrear_spec(row)
            if old == a:
                plan.unchanged += 1
                continue
            diffs = [
                f"{name} {new} (recorded: {was})"
                for name, new, was in (
                    ("amount", a.amount, old.amount),
                    ("due_date", a.due, old.due),
                    ("paid_amount", a.paid, old.paid),
                )
                if new != was
            ]
            if not self.update:
                p.add(
                    where,
                    f"{c.property} {c.unit} period {a.period}: "
                    + ", ".join(diffs)
                    + " (use --update to record the change)",
                )
                continue
            plan.changed_arrears.append((row.id, case.ref, a))
            c.events.append(
                (
                    EventSpec(
                        type="arrears_change",
                        date=self.today,
                        periods=(a.period,),
                        amount=a.amount,
                        data={
                            "old": _arrear_json(old),
                            "new": _arrear_json(a),
                        },
                    ),
                    where,
                )
            )
        rows = (
            self.conn.execute(select(_ARREARS).where(_ARREARS.c.case_id == case.id)).all()
            if c.events or c.preservations
            else []
        )
        events = (
            [
                spec_from_row(r)
                for r in self.conn.execute(
                    select(_EVENTS).where(_EVENTS.c.case_id == case.id).order_by(_EVENTS.c.id)
                )
            ]
            if c.events or c.preservations
            else []
        )
        pres = (
            [
                PreservationSpec(
                    ref=r.ref,
                    stage=r.stage,
                    asset=r.asset,
                    executed_date=r.executed_date,
                    ruling_date=r.ruling_date,
                    expires=r.expires,
                    amount=r.amount,
                )
                for r in self.conn.execute(select(_PRES).where(_PRES.c.case_id == case.id))
            ]
            if c.preservations or c.events
            else []
        )
        self._case_events(
            case.ref,
            case.limitation_mode,
            case.stage,
            c,
            [arrear_spec(r) for r in rows],
            events,
            pres,
            [a for a, _ in c.arrears],
        )

    def _case_events(
        self,
        ref: str,
        mode: str,
        stage: str | None,
        c: _CaseIn,
        old_arrears: list[ArrearSpec],
        old_events: list[EventSpec],
        old_pres: list[PreservationSpec],
        file_arrears: list[ArrearSpec],
    ) -> None:
        p, plan = self.p, self.plan
        if not c.events and not c.preservations:
            return
        # Events already recorded are matched by their details (a multiset: two equal
        # payments on one day are two events).
        recorded = Counter(_details_key(e) for e in old_events)
        new_events: list[tuple[EventSpec, str]] = []
        for e, where in c.events:
            key = _details_key(e)
            if recorded[key] > 0 and e.type != "arrears_change":
                recorded[key] -= 1
                continue
            if e.type != "arrears_change" and e.date > self.today:
                p.add(where, f"the event is dated {e.date}, in the future")
                continue
            new_events.append((e, where))
        known = {x.ref: x for x in old_pres}
        new_pres: list[tuple[PreservationSpec, str]] = []
        for s, where in c.preservations:
            have = known.get(s.ref)
            if have is None:
                if s.executed_date > self.today:
                    p.add(where, f"{s.ref} is executed {s.executed_date}, in the future")
                    continue
                new_pres.append((s, where))
            elif have != s:
                p.add(
                    where,
                    f"case {ref} records preservation {s.ref} differently; enter a "
                    "renewed ruling as a new preservation",
                )
        # The whole case as it would be, checked by the engine (periods and preservations
        # named by events must be the case's).
        merged = {a.period: a for a in old_arrears}
        merged.update({a.period: a for a in file_arrears})
        try:
            engine_check(
                ref,
                mode,
                list(merged.values()),
                [*old_events, *(e for e, _ in new_events)],
                [*old_pres, *(s for s, _ in new_pres)],
                stage,
            )
        except InvalidCaseData as e:
            p.add(c.where, e.message)
            return
        for ev, _ in new_events:
            salt = new_salt()
            plan.events.append((ref, ev, salt, details_sha256(ref, salt, ev.details())))
        for s, _ in new_pres:
            pev = preservation_event(s, s.executed_date)
            salt = new_salt()
            plan.events.append((ref, pev, salt, details_sha256(ref, salt, pev.details())))
            plan.preservations.append((ref, s, len(plan.events) - 1))

    def _check_evidence(self) -> None:
        cited = {i for _, e, _, _ in self.plan.events for i in e.evidence}
        if not cited:
            return
        missing = cited - existing_evidence(self.conn, cited)
        if not missing:
            return
        for c in self.batch.cases.values():
            for e, where in c.events:
                for i in e.evidence:
                    if i in missing:
                        self.p.add(where, f"entry {i} is not an evidence entry")


def _details_key(e: EventSpec) -> str:
    return json.dumps(e.details(), sort_keys=True, ensure_ascii=False)


def _arrear_json(a: ArrearSpec) -> dict[str, str]:
    return {
        "amount": f"{a.amount:.2f}",
        "due": a.due.isoformat(),
        "paid": f"{a.paid:.2f}",
    }


# --- writing -------------------------------------------------------------------------------


def _arrears_digest(plan: _Plan) -> str | None:
    h = hashlib.sha256()
    lines: list[str] = []
    n = 0
    for ref, _, _, a in plan.new_arrears:
        # Amounts are quantized to two places, so str() gives "350.00".
        lines.append(f"{ref}\t{a.period}\t{a.amount}\t{a.due}\t{a.paid}\n")
        n += 1
        if len(lines) >= _CHUNK:
            h.update("".join(lines).encode())
            lines.clear()
    for _, ref, a in plan.changed_arrears:
        lines.append(f"{ref}\t{a.period}\t{a.amount}\t{a.due}\t{a.paid}\n")
        n += 1
    h.update("".join(lines).encode())
    return h.hexdigest() if n else None


def _apply(
    conn: Connection,
    plan: _Plan,
    *,
    entry_index: int,
    fmt: str,
    sha256: str,
    actor: str,
    now: dt.datetime,
) -> None:
    props = {r.name: r.id for r in conn.execute(select(_PROPS.c.id, _PROPS.c.name))}
    if plan.new_properties:
        for r in conn.execute(
            insert(Property).returning(_PROPS.c.id, _PROPS.c.name, sort_by_parameter_order=True),
            [{"name": n} for n in plan.new_properties],
        ):
            props[r.name] = r.id
    units: dict[tuple[str, str], int] = {}
    needed = {(c.property, c.unit) for c in plan.new_cases} | {
        (prop, unit) for _, prop, unit, _ in plan.new_arrears
    }
    by_prop: dict[str, list[str]] = defaultdict(list)
    for prop, unit in needed:
        by_prop[prop].append(unit)
    for prop, codes in by_prop.items():
        for chunk in in_batches(codes):
            for r in conn.execute(
                select(_UNITS.c.id, _UNITS.c.code).where(
                    _UNITS.c.property_id == props[prop], _UNITS.c.code.in_(chunk)
                )
            ):
                units[(prop, r.code)] = r.id
    if plan.new_units:
        for batch_units in in_batches(plan.new_units, _CHUNK):
            rows = conn.execute(
                insert(Unit).returning(_UNITS.c.id, sort_by_parameter_order=True),
                [{"property_id": props[prop], "code": code} for prop, code in batch_units],
            ).scalars()
            for (prop, code), unit_id in zip(batch_units, rows, strict=True):
                units[(prop, code)] = unit_id
    owner_ids: dict[OwnerKey, int] = {}
    if plan.new_owners:
        for batch_owners in in_batches(plan.new_owners, _CHUNK):
            ids = conn.execute(
                insert(Owner).returning(_OWNERS.c.id, sort_by_parameter_order=True),
                [
                    {
                        "ref": plan.owner_refs[key],
                        "name": spec.name,
                        "phone": spec.phone,
                        "birth_date": spec.birth_date,
                    }
                    for key, spec in batch_owners
                ],
            ).scalars()
            for (key, _), owner_id in zip(batch_owners, ids, strict=True):
                owner_ids[key] = owner_id
        tag_rows = [
            {"owner_id": owner_ids[key], "tag": t}
            for key, spec in plan.new_owners
            for t in spec.tags
        ]
        if tag_rows:
            conn.execute(insert(OwnerTag), tag_rows)
    for owner_id, changes, tags in plan.owner_updates:
        if changes:
            conn.execute(update(Owner).where(_OWNERS.c.id == owner_id).values(**changes))
        if tags is not None:
            conn.execute(delete(OwnerTag).where(_TAGS.c.owner_id == owner_id))
            if tags:
                conn.execute(insert(OwnerTag), [{"owner_id": owner_id, "tag": t} for t in tags])
    # Owners found in the database, by the key the file gives them.
    missing_keys = {c.owner for c in plan.new_cases} - set(owner_ids)
    refs = {plan.owner_refs[k]: k for k in missing_keys}
    for chunk in in_batches(sorted(refs)):
        for r in conn.execute(select(_OWNERS.c.id, _OWNERS.c.ref).where(_OWNERS.c.ref.in_(chunk))):
            owner_ids[refs[r.ref]] = r.id
    case_ids: dict[str, int] = {}
    if plan.new_cases:
        for batch_cases in in_batches(plan.new_cases, _CHUNK):
            ids = conn.execute(
                insert(Case).returning(_CASES.c.id, sort_by_parameter_order=True),
                [
                    {
                        "ref": c.ref,
                        "owner_id": owner_ids[c.owner],
                        "unit_id": units[(c.property, c.unit)],
                        "stage": c.stage,
                        "limitation_mode": c.mode,
                        "created_at": now,
                    }
                    for c in batch_cases
                ],
            ).scalars()
            for c, case_id in zip(batch_cases, ids, strict=True):
                case_ids[c.ref] = case_id
    other_refs = sorted(
        ({ref for ref, _, _, _ in plan.new_arrears} | {ref for ref, _, _, _ in plan.events})
        - set(case_ids)
    )
    for chunk in in_batches(other_refs):
        for r in conn.execute(select(_CASES.c.id, _CASES.c.ref).where(_CASES.c.ref.in_(chunk))):
            case_ids[r.ref] = r.id
    import_id = conn.execute(
        insert(CaseImport).returning(CaseImport.__table__.c.id),
        [
            {
                "entry_index": entry_index,
                "format": fmt,
                "sha256": sha256,
                "counts": plan.counts(),
                "actor": actor,
                "imported_at": now,
            }
        ],
    ).scalar_one()
    # The bulk path: the driver's executemany in chunks, without SQLAlchemy's per-row
    # compilation and type processing. SQLite takes amounts as REAL and dates as ISO text (as
    # SQLAlchemy itself stores them); PostgreSQL takes Decimal and date.
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        "INSERT INTO arrears (case_id, unit_id, period, amount, due_date, paid_amount, "
        f"import_id) VALUES ({', '.join([mark] * 7)})"
    )
    money: dict[Decimal, Any] = {}
    days: dict[dt.date, Any] = {}
    for batch_arrears in in_batches(plan.new_arrears, _CHUNK):
        params: list[tuple[Any, ...]] = []
        for ref, prop, unit, a in batch_arrears:
            amount: Any = a.amount
            paid: Any = a.paid
            due: Any = a.due
            if sqlite:
                amount = (
                    money[amount] if amount in money else money.setdefault(amount, float(amount))
                )
                paid = money[paid] if paid in money else money.setdefault(paid, float(paid))
                due = days[due] if due in days else days.setdefault(due, due.isoformat())
            params.append(
                (case_ids[ref], units[(prop, unit)], a.period, amount, due, paid, import_id)
            )
        conn.exec_driver_sql(sql, params)
    if plan.changed_arrears:
        conn.execute(
            update(Arrear)
            .where(_ARREARS.c.id == bindparam("b_id"))
            .values(
                amount=bindparam("b_amount"),
                due_date=bindparam("b_due"),
                paid_amount=bindparam("b_paid"),
            ),
            [
                {"b_id": i, "b_amount": a.amount, "b_due": a.due, "b_paid": a.paid}
                for i, _, a in plan.changed_arrears
            ],
        )
    if plan.events:
        event_ids = list(
            conn.execute(
                insert(CaseEvent).returning(_EVENTS.c.id, sort_by_parameter_order=True),
                [
                    event_row(
                        spec,
                        case_id=case_ids[ref],
                        salt=salt,
                        digest=digest,
                        entry_index=entry_index,
                        import_id=import_id,
                        actor=actor,
                        at=now,
                    )
                    for ref, spec, salt, digest in plan.events
                ],
            ).scalars()
        )
        attempts = [
            {
                "event_id": event_ids[i],
                "case_id": case_ids[ref],
                "date": spec.date,
                "document": spec.document,
                "method": spec.method,
                "outcome": spec.outcome,
                "address": None,
            }
            for i, (ref, spec, _, _) in enumerate(plan.events)
            if spec.type == "service_attempt"
        ]
        if attempts:
            conn.execute(insert(ServiceAttempt), attempts)
        if plan.preservations:
            conn.execute(
                insert(PreservationFiling),
                [
                    preservation_row(s, case_ids[ref], event_ids[i])
                    for ref, s, i in plan.preservations
                ],
            )


# --- entry point ---------------------------------------------------------------------------


def import_file(
    service: CaseService, path: Path, *, actor: str, update: bool = False
) -> ImportResult:
    """Import ``path`` (.csv, .xlsx or .json) all or nothing; see the module docstring."""
    with paused_gc():
        return _import(service, path, actor=actor, update=update)


def _import(service: CaseService, path: Path, *, actor: str, update: bool) -> ImportResult:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx", ".json"):
        raise InvalidCaseData(f"{path.name}: import a .csv, .xlsx or .json file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidCaseData(f"cannot read {path.name}: {e.strerror}") from e
    sha256 = hashlib.sha256(raw).hexdigest()
    fmt = suffix[1:]
    batch = _Batch()
    p = _Problems()
    encoding = None
    try:
        if fmt == "csv":
            text, encoding = _decode(raw)
            del raw
            _tabular(_csv_rows(text), batch, p)
            del text
        elif fmt == "xlsx":
            _tabular(_xlsx_rows(path), batch, p)
        else:
            _json_batch(raw, batch, p)
    except ImportRejected:
        raise
    except InvalidCaseData as e:
        # A file that cannot be read at all (encoding, format): one problem, nothing imported.
        raise ImportRejected(
            f"{path.name}: {e.message}; nothing was imported", [("file", e.message)]
        ) from e
    p.raise_if_any(path.name)
    engine = service.engine
    with engine.connect() as conn:
        plan = _Planner(conn, service, update, batch, p).run()
    p.raise_if_any(path.name)
    _new_places(plan, batch, engine)
    counts = plan.counts()
    if not plan.changes():
        return ImportResult(fmt, sha256, batch.records, counts, encoding=encoding)
    payload = {
        "format": fmt,
        "sha256": sha256,
        "size": path.stat().st_size,
        "records": batch.records,
        "counts": counts,
        "arrears_sha256": _arrears_digest(plan),
        "events_sha256": events_digest((ref, digest) for ref, _, _, digest in plan.events),
    }
    appended = service.ledger.append_durable("import", payload, actor)
    now = service.clock.now()
    with write_engine(engine).begin() as conn:
        _apply(conn, plan, entry_index=appended.index, fmt=fmt, sha256=sha256, actor=actor, now=now)
    cp = service.ledger.ensure_checkpoint(appended.index + 1)
    receipt = Receipt(
        index=appended.index,
        leaf_hash=appended.leaf_hash,
        time=appended.time,
        checkpoint_size=cp.size,
        timestamp=service.ledger.wait_timestamp(cp.size),
    )
    return ImportResult(
        fmt, sha256, batch.records, counts, appended.index, receipt, encoding=encoding
    )


def _new_places(plan: _Plan, batch: _Batch, engine: Any) -> None:
    """Fill in the properties and units the plan must create."""
    with engine.connect() as conn:
        props = {r.name: r.id for r in conn.execute(select(_PROPS.c.id, _PROPS.c.name))}
        needed: dict[str, set[str]] = defaultdict(set)
        for c in batch.cases.values():
            needed[c.property].add(c.unit)
        for prop in sorted(needed):
            if prop not in props:
                plan.new_properties.append(prop)
                plan.new_units.extend((prop, u) for u in sorted(needed[prop]))
                continue
            have: set[str] = set()
            codes = sorted(needed[prop])
            for chunk in in_batches(codes):
                have.update(
                    conn.execute(
                        select(_UNITS.c.code).where(
                            _UNITS.c.property_id == props[prop], _UNITS.c.code.in_(chunk)
                        )
                    ).scalars()
                )
            plan.new_units.extend((prop, u) for u in codes if u not in have)
