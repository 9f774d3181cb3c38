"""Imports end to end (SQLite and PostgreSQL): billing exports in UTF-8, UTF-8 with BOM, GBK and
xlsx; the issue's whole-case JSON; re-imports; --update; every kind of bad input importing
nothing; the log holding references and hashes only."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select, text

from cases.importer import events_digest
from cases.models import Arrear, Case, CaseEvent, CaseImport, Owner, OwnerTag, PreservationFiling
from cases.service import details_sha256, spec_from_row
from ledger.entry import decode_entry
from tests.cases.case_data import (
    BILLING_HEADER,
    BILLING_ROWS,
    EXAMPLE,
    PERSONAL,
    billing_csv,
    evidence_at_12,
    example,
    log_bytes,
    table_counts,
    write_json,
)
from tests.conftest import Cli
from web.context import AppContext


def import_json(cli: Cli, path: Path, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli("cases", "import", str(path), "--json", *args, expect=expect)
    return json.loads(out.stdout) if expect == 0 else {"stderr": out.stderr}


def arrears(ctx: AppContext) -> dict[tuple[str, str], tuple[Decimal, dt.date, Decimal]]:
    """(case ref, period) -> (amount, due, paid)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(
                Case.ref, Arrear.period, Arrear.amount, Arrear.due_date, Arrear.paid_amount
            ).join(Case, Case.id == Arrear.case_id)
        ).all()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def owners(ctx: AppContext) -> dict[str, tuple[str, str | None]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(Owner.ref, Owner.name, Owner.phone)).all()
    return {r[0]: (r[1], r[2]) for r in rows}


# --- billing exports -----------------------------------------------------------------------


def test_csv_utf8_then_bom_and_gbk_versions_are_no_ops(
    cli: Cli, instance: AppContext, tmp_path: Path
) -> None:
    utf8 = tmp_path / "bill.csv"
    utf8.write_bytes(billing_csv().encode("utf-8"))
    result = import_json(cli, utf8)
    assert result["changed"] is True
    assert result["encoding"] == "utf-8"
    assert result["records"] == 6
    assert result["counts"] == {
        "properties": 2,
        "units": 3,
        "owners": 3,  # 李四 twice (two units, no owner_ref: two owners), 王五 by ref
        "owners_updated": 0,
        "cases": 3,
        "arrears": 6,
        "arrears_updated": 0,
        "arrears_unchanged": 0,
        "events": 0,
        "preservations": 0,
    }
    stored = arrears(instance)
    assert len(stored) == 6
    values = sorted(stored.values())
    # Exact decimals: "300" and "280.5" are 300.00 and 280.50; a blank paid amount is 0.
    assert (Decimal("280.50"), dt.date(2024, 2, 29), Decimal("0.00")) in values
    assert (Decimal("300.00"), dt.date(2024, 2, 29), Decimal("100.50")) in values
    assert (Decimal("512.00"), dt.date(2024, 1, 31), Decimal("0.00")) in values
    assert all(isinstance(v[0], Decimal) for v in values)
    names = owners(instance)
    assert names["O-W5"] == ("王五", None)
    assert sorted(n for n, _ in names.values()) == ["李四", "李四", "王五"]

    # The import entry: one for six rows, carrying the file's SHA-256 and counts.
    entry = decode_entry(instance.ledger.entry(result["index"]))
    assert entry.type == "import"
    assert entry.payload["sha256"] == hashlib.sha256(utf8.read_bytes()).hexdigest()
    assert entry.payload["counts"] == result["counts"]
    assert entry.payload["format"] == "csv" and entry.payload["records"] == 6
    assert entry.payload["events_sha256"] is None
    assert instance.ledger.size() == 1

    # The same data with a BOM, and in GBK: other bytes, same rows, so nothing new.
    size, counts = instance.ledger.size(), table_counts(instance.engine)
    bom = tmp_path / "bill-bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + billing_csv().encode("utf-8"))
    gbk = tmp_path / "bill-gbk.csv"
    gbk.write_bytes(billing_csv().replace("\n", "\r\n").encode("gbk"))
    for path, encoding in ((bom, "utf-8-sig"), (gbk, "gbk"), (utf8, "utf-8")):
        again = import_json(cli, path)
        assert again["changed"] is False and again["index"] is None
        assert again["encoding"] == encoding
        assert again["counts"]["arrears_unchanged"] == 6
        assert again["counts"]["arrears"] == 0
    assert instance.ledger.size() == size
    assert table_counts(instance.engine) == counts
    out = cli("cases", "import", str(utf8))
    assert "nothing new" in out.stdout


def test_gbk_file_is_decoded(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(billing_csv().encode("gbk"))
    with pytest.raises(UnicodeDecodeError):
        gbk.read_bytes().decode("utf-8")  # really not UTF-8
    assert import_json(cli, gbk)["encoding"] == "gbk"
    assert sorted(n for n, _ in owners(instance).values()) == ["李四", "李四", "王五"]
    listed = json.loads(cli("cases", "list", "--json").stdout)
    assert sorted(r["property"] for r in listed) == ["翠湖苑", "阳光花园", "阳光花园"]


def test_xlsx_with_typed_cells(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(BILLING_HEADER.split(","))
    # Cells as a billing system writes them: numbers, dates and a Jan-2024 date as the period.
    sheet.append(
        [
            "阳光花园",
            1101,
            "李四",
            13900000001,
            dt.datetime(2024, 1, 1),
            300,
            dt.datetime(2024, 1, 31),
            None,
            None,
        ]
    )
    sheet.append(
        [
            "阳光花园",
            1101,
            "李四",
            13900000001,
            "2024-02",
            300.5,
            dt.datetime(2024, 2, 29),
            0.25,
            None,
        ]
    )
    sheet.append([None] * 9)  # a blank row is skipped
    sheet.append(
        ["阳光花园", "1102", "王五", None, "2024-01", "280.00", "2024-01-31", None, "O-W5"]
    )
    path = tmp_path / "bill.xlsx"
    book.save(path)
    result = import_json(cli, path)
    assert result["format"] == "xlsx" and result["records"] == 3
    stored = sorted(arrears(instance).values())
    assert stored == [
        (Decimal("280.00"), dt.date(2024, 1, 31), Decimal("0.00")),
        (Decimal("300.00"), dt.date(2024, 1, 31), Decimal("0.00")),
        (Decimal("300.50"), dt.date(2024, 2, 29), Decimal("0.25")),
    ]
    listed = json.loads(cli("cases", "list", "--json").stdout)
    assert sorted(r["unit"] for r in listed) == ["1101", "1102"]
    assert import_json(cli, path)["changed"] is False
    # Bad workbooks, and files of other kinds, import nothing.
    size, counts = instance.ledger.size(), table_counts(instance.engine)
    sheet.append(
        ["阳光花园", 1103, "赵六", None, "2024-01", -5, dt.datetime(2024, 1, 31), None, None]
    )
    bad = tmp_path / "bad.xlsx"
    book.save(bad)
    err = import_json(cli, bad, expect=2)["stderr"]
    assert "line 6: amount must not be negative" in err
    garbage = tmp_path / "garbage.xlsx"
    garbage.write_bytes(b"PK\x03\x04 not really a workbook")
    assert "not a readable .xlsx workbook" in import_json(cli, garbage, expect=2)["stderr"]
    other = tmp_path / "bill.txt"
    other.write_text(billing_csv(), encoding="utf-8")
    assert "import a .csv, .xlsx or .json file" in import_json(cli, other, expect=2)["stderr"]
    assert (instance.ledger.size(), table_counts(instance.engine)) == (size, counts)


def test_changed_amount_is_refused_unless_update_records_an_event(
    cli: Cli, instance: AppContext, tmp_path: Path
) -> None:
    first = tmp_path / "first.csv"
    first.write_text(billing_csv(), encoding="utf-8")
    import_json(cli, first)
    changed_rows = list(BILLING_ROWS)
    changed_rows[1] = changed_rows[1].replace("300.00", "320.00")  # 2024-02 of 1-1-101
    second = tmp_path / "second.csv"
    second.write_text(billing_csv(changed_rows), encoding="utf-8")
    size, counts, before = instance.ledger.size(), table_counts(instance.engine), arrears(instance)

    refused = import_json(cli, second, expect=2)["stderr"]
    assert "line 3: 阳光花园 1-1-101 period 2024-02: amount 320.00 (recorded: 300.00)" in refused
    assert "--update" in refused
    assert (instance.ledger.size(), table_counts(instance.engine)) == (size, counts)
    assert arrears(instance) == before

    result = import_json(cli, second, "--update")
    assert result["counts"]["arrears_updated"] == 1
    assert result["counts"]["arrears_unchanged"] == 5
    assert result["counts"]["events"] == 1
    assert instance.ledger.size() == size + 1  # one import entry, nothing per row
    after = arrears(instance)
    changed = [k for k in after if after[k] != before[k]]
    assert len(changed) == 1 and after[changed[0]][0] == Decimal("320.00")
    case_ref = changed[0][0]
    with instance.engine.connect() as conn:
        event = conn.execute(select(CaseEvent.__table__)).one()
    assert event.type == "arrears_change"
    assert event.periods == ["2024-02"]
    assert event.data == {
        "old": {"amount": "300.00", "due": "2024-02-29", "paid": "100.50"},
        "new": {"amount": "320.00", "due": "2024-02-29", "paid": "100.50"},
    }
    assert event.entry_index == result["index"]
    # The import entry covers the event by its salted details hash.
    payload = decode_entry(instance.ledger.entry(result["index"])).payload
    digest = details_sha256(case_ref, event.salt, spec_from_row(event).details())
    assert digest == event.details_sha256
    assert payload["events_sha256"] == events_digest([(case_ref, digest)])
    assert instance_service(instance).verify_case(case_ref) == []
    # The changed file again: recorded already, so a no-op.
    assert import_json(cli, second, "--update")["changed"] is False
    assert import_json(cli, second)["changed"] is False


def instance_service(ctx: AppContext) -> Any:
    from web.cli_cases import _service

    return _service(ctx)


BAD_CSV: list[tuple[str, bytes, str]] = [
    (
        "unknown column",
        billing_csv(header=BILLING_HEADER + ",remark").encode(),
        "unknown column(s) 'remark'",
    ),
    (
        "missing column",
        billing_csv(header=BILLING_HEADER.replace("due_date,", "")).encode(),
        "missing column(s) due_date",
    ),
    (
        "bad date",
        billing_csv(
            [BILLING_ROWS[0], BILLING_ROWS[1].replace("2024-02-29", "2024-02-30")]
        ).encode(),
        "line 3: due_date must be a date",
    ),
    (
        "bad period",
        billing_csv([BILLING_ROWS[0].replace("2024-01,", "2024-13,")]).encode(),
        "line 2: period must be a billing period",
    ),
    (
        "negative amount",
        billing_csv([*BILLING_ROWS[:3], BILLING_ROWS[3].replace("280.5", "-280.5")]).encode(),
        "line 5: amount must not be negative",
    ),
    (
        "three decimals",
        billing_csv([BILLING_ROWS[0].replace("300.00", "300.005")]).encode(),
        "line 2: amount must be an amount like 350.00",
    ),
    (
        "separator",
        billing_csv([BILLING_ROWS[0].replace("300.00", '"1,300.00"')]).encode(),
        "line 2: amount must be an amount",
    ),
    (
        "paid over amount",
        billing_csv([BILLING_ROWS[0].replace(",,", ",300.01,", 1)]).encode(),
        "line 2: paid_amount 300.01 exceeds the amount 300.00",
    ),
    (
        "bad phone",
        billing_csv([BILLING_ROWS[0].replace("13900000001", "call me")]).encode(),
        "line 2: owner_phone must be a phone number",
    ),
    (
        "duplicate period",
        billing_csv([BILLING_ROWS[0], BILLING_ROWS[0]]).encode(),
        "line 3: 阳光花园 1-1-101 period 2024-01 is also at line 2",
    ),
    (
        "owner ref with two names",
        billing_csv([BILLING_ROWS[3], BILLING_ROWS[4].replace("王五", "王六")]).encode(),
        "line 3: owner O-W5 is named differently at line 2",
    ),
    (
        "bad owner ref",
        billing_csv([BILLING_ROWS[3].replace("O-W5", "王五的")]).encode(),
        "line 2: owner_ref must be a reference",
    ),
    (
        "extra field",
        billing_csv([BILLING_ROWS[0] + ",x"]).encode(),
        "line 2: 10 fields, the header has 9",
    ),
    ("UTF-16", billing_csv().encode("utf-16"), "the file is UTF-16"),
    ("not text", b"\x80\xff\xfe\x00binary", "neither UTF-8 nor GBK"),
    ("empty", b"", "no header row"),
]


def test_bad_billing_files_import_nothing(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    # A good import first, so "nothing" is checked against real rows, not an empty database.
    good = tmp_path / "good.csv"
    good.write_text(billing_csv([BILLING_ROWS[5]]), encoding="utf-8")
    import_json(cli, good)
    size, counts = instance.ledger.size(), table_counts(instance.engine)
    assert counts["arrears"] == 1
    for name, data, message in BAD_CSV:
        bad = tmp_path / f"{name}.csv"
        bad.write_bytes(data)
        err = import_json(cli, bad, expect=2)["stderr"]
        assert err.startswith("error: "), name
        assert message in err, (name, err)
        assert "nothing was imported" in err, (name, err)
        assert instance.ledger.size() == size, name
        assert table_counts(instance.engine) == counts, name


def test_every_bad_line_is_reported(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    rows = [
        BILLING_ROWS[0],
        BILLING_ROWS[1].replace("300.00", "x"),
        BILLING_ROWS[2],
        BILLING_ROWS[3].replace("2024-01,", "24-1,"),
        BILLING_ROWS[5].replace("2024-01-31", ""),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text(billing_csv(rows), encoding="utf-8")
    err = import_json(cli, bad, expect=2)["stderr"]
    assert "3 problem(s)" in err
    lines = [ln.strip().split(":")[0] for ln in err.splitlines()[1:]]
    assert lines == ["line 3", "line 5", "line 6"]
    assert table_counts(instance.engine)["arrears"] == 0
    assert instance.ledger.size() == 0


# --- whole cases (JSON) --------------------------------------------------------------------


def test_issue_example_imports_exactly(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    evidence_at_12(instance, tmp_path)
    path = write_json(tmp_path / "cases.json", EXAMPLE)
    size = instance.ledger.size()
    result = import_json(cli, path)
    assert result["counts"] == {
        "properties": 1,
        "units": 1,
        "owners": 1,
        "owners_updated": 0,
        "cases": 1,
        "arrears": 3,
        "arrears_updated": 0,
        "arrears_unchanged": 0,
        "events": 8,  # seven events and the preservation's own event
        "preservations": 1,
    }
    assert instance.ledger.size() == size + 1  # ONE import entry
    with instance.engine.connect() as conn:
        case = conn.execute(select(Case.__table__)).one()
        owner = conn.execute(select(Owner.__table__)).one()
        tags = conn.execute(select(OwnerTag.tag)).scalars().all()
        events = conn.execute(select(CaseEvent.__table__).order_by(CaseEvent.id)).all()
        pres = conn.execute(select(PreservationFiling.__table__)).one()
        imp = conn.execute(select(CaseImport.__table__)).one()
    assert (case.ref, case.limitation_mode, case.stage) == ("C-001", "per_period", "judgment")
    assert (owner.ref, owner.name, owner.phone, owner.birth_date) == (
        "O-001",
        "张三",
        "13800000000",
        dt.date(1950, 4, 1),
    )
    assert tags == ["vacant"]
    assert [e.type for e in events] == [
        "demand",
        "payment",
        "acknowledgment",
        "suit_filed",
        "obstacle",
        "service_attempt",
        "judgment",
        "preservation",
    ]
    demand, payment, *_ = events
    assert (demand.method, demand.delivered, demand.periods, demand.evidence) == (
        "direct",
        True,
        ["2023-01"],
        [12],
    )
    assert payment.amount == Decimal("350.00")
    obstacle = events[4]
    assert (obstacle.end_date, obstacle.reason) == (dt.date(2025, 3, 1), "force majeure")
    judgment = events[6]
    assert (judgment.served_date, judgment.performance_due) == (
        dt.date(2025, 6, 5),
        dt.date(2025, 6, 20),
    )
    assert (pres.ref, pres.asset, pres.executed_date, pres.expires, pres.amount) == (
        "PR-1",
        "bank_deposit",
        dt.date(2026, 11, 2),
        None,
        Decimal("4200.00"),
    )
    assert {e.entry_index for e in events} == {imp.entry_index} == {result["index"]}
    # The import entry binds every imported event by its salted details hash, in order.
    payload = decode_entry(instance.ledger.entry(result["index"])).payload
    pairs = [("C-001", details_sha256("C-001", e.salt, spec_from_row(e).details())) for e in events]
    assert payload["events_sha256"] == events_digest(pairs)
    assert [e.details_sha256 for e in events] == [d for _, d in pairs]
    assert instance_service(instance).verify_case("C-001") == []
    # Re-importing the same file, or the same cases with their events in another order:
    # nothing new.
    assert import_json(cli, path)["changed"] is False
    shuffled = copy.deepcopy(EXAMPLE)
    shuffled["cases"][0]["events"].reverse()
    assert import_json(cli, write_json(tmp_path / "again.json", shuffled))["changed"] is False
    assert instance.ledger.size() == size + 1


def test_json_adds_new_events_to_an_existing_case(
    cli: Cli, instance: AppContext, tmp_path: Path
) -> None:
    doc = example(events=[], preservations=[])
    import_json(cli, write_json(tmp_path / "a.json", doc))
    more = example(
        events=[{"type": "complaint", "date": "2024-03-01", "reason": "电梯故障"}],
        preservations=[],
        arrears=[
            *EXAMPLE["cases"][0]["arrears"],
            {"period": "2023-04", "amount": "350.00", "due": "2023-04-30"},
        ],
    )
    result = import_json(cli, write_json(tmp_path / "b.json", more))
    assert result["counts"]["events"] == 1
    assert result["counts"]["arrears"] == 1 and result["counts"]["arrears_unchanged"] == 3
    assert result["counts"]["cases"] == 0
    assert instance_service(instance).verify_case("C-001") == []


def _evidence_note(instance: AppContext) -> int:
    return instance.ledger.append_durable("note", {"text": "not evidence"}, "system").index


BAD_JSON: list[tuple[str, Any, str]] = [
    ("unknown case field", example(stage="suit"), "cases[0]: unknown field(s) 'stage'"),
    (
        "unknown owner field",
        example(owner={**EXAMPLE["cases"][0]["owner"], "id_number": "1"}),
        "cases[0].owner: unknown field(s) 'id_number'",
    ),
    (
        "unknown event field",
        example(
            events=[{"type": "payment", "date": "2024-06-01", "amount": "1", "channel": "wechat"}]
        ),
        "unknown field(s) 'channel'",
    ),
    (
        "field of another type",
        example(
            events=[{"type": "payment", "date": "2024-06-01", "amount": "1", "delivered": True}]
        ),
        "unknown field(s) 'delivered'",
    ),
    (
        "unknown event type",
        example(events=[{"type": "visit", "date": "2024-06-01"}]),
        "event type 'visit'",
    ),
    (
        "unknown method",
        example(
            events=[{"type": "demand", "date": "2024-06-01", "delivered": True, "method": "fax"}]
        ),
        "unknown method 'fax'",
    ),
    (
        "unknown outcome",
        example(
            events=[
                {
                    "type": "service_attempt",
                    "date": "2024-06-01",
                    "document": "summons",
                    "method": "mail",
                    "outcome": "lost",
                }
            ]
        ),
        "unknown outcome 'lost'",
    ),
    (
        "unknown limitation mode",
        example(limitation_mode="yearly"),
        "unknown limitation mode 'yearly'",
    ),
    (
        "unknown preservation asset",
        example(preservations=[{**EXAMPLE["cases"][0]["preservations"][0], "asset": "car"}]),
        "unknown preservation asset 'car'",
    ),
    (
        "unknown preservation stage",
        example(preservations=[{**EXAMPLE["cases"][0]["preservations"][0], "stage": "post"}]),
        "unknown preservation stage 'post'",
    ),
    (
        "unknown tag",
        example(owner={**EXAMPLE["cases"][0]["owner"], "tags": ["vip"]}),
        "unknown owner tag 'vip'",
    ),
    (
        "derived tag",
        example(owner={**EXAMPLE["cases"][0]["owner"], "tags": ["elderly"]}),
        "'elderly' is derived",
    ),
    (
        "bad date",
        example(events=[{"type": "note", "date": "2024-02-30"}]),
        "date must be a date YYYY-MM-DD",
    ),
    (
        "bad due date",
        example(arrears=[{"period": "2023-01", "amount": "1", "due": "31/01/2023"}]),
        "due must be a date",
    ),
    (
        "negative amount",
        example(arrears=[{"period": "2023-01", "amount": "-350.00", "due": "2023-01-31"}]),
        "amount must not be negative",
    ),
    (
        "negative payment",
        example(events=[{"type": "payment", "date": "2024-06-01", "amount": -1}]),
        "amount must not be negative",
    ),
    (
        "missing required field",
        example(events=[{"type": "obstacle", "date": "2024-06-01"}]),
        "missing field(s) 'end'",
    ),
    (
        "obstacle ends before it starts",
        example(events=[{"type": "obstacle", "date": "2024-06-01", "end": "2024-05-01"}]),
        "obstacle ends 2024-05-01, before it starts",
    ),
    (
        "unknown period",
        example(events=[{"type": "acknowledgment", "date": "2024-06-01", "periods": ["2022-12"]}]),
        "names unknown period 2022-12",
    ),
    (
        "renewal of unknown preservation",
        example(events=[{"type": "renewal_filed", "date": "2024-06-01", "preservation": "PR-9"}]),
        "names unknown preservation PR-9",
    ),
    ("evidence that is a note", "NOTE", "is not an evidence entry"),
    (
        "evidence that does not exist",
        example(events=[{"type": "note", "date": "2024-06-01", "evidence": [999]}]),
        "entry 999 is not an evidence entry",
    ),
    ("future event", example(events=[{"type": "note", "date": "2999-01-01"}]), "in the future"),
    (
        "duplicate case",
        {"cases": [EXAMPLE["cases"][0], EXAMPLE["cases"][0]]},
        "are already case C-001 at cases[0]",
    ),
    ("no cases list", {"case": []}, "unknown field(s) 'case'"),
    ("not JSON", "{not json", "not valid JSON"),
    ("NaN", '{"cases": [{"ref": "C-1", "amount": NaN}]}', "NaN is not a number"),
    ("duplicate key", '{"cases": [], "cases": []}', "gives 'cases' twice"),
]


def test_bad_case_files_import_nothing(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    other = copy.deepcopy(EXAMPLE)
    other["cases"][0].update(ref="C-000", unit="9-9-909", events=[], preservations=[])
    other["cases"][0]["owner"] = {"ref": "O-000", "name": "赵六"}
    import_json(cli, write_json(tmp_path / "good.json", other))
    note = _evidence_note(instance)
    size, counts = instance.ledger.size(), table_counts(instance.engine)
    assert counts["cases"] == 1
    for name, doc, message in BAD_JSON:
        if doc == "NOTE":
            doc = example(events=[{"type": "note", "date": "2024-06-01", "evidence": [note]}])
            message = f"entry {note} is not an evidence entry"
        path = tmp_path / f"{name}.json"
        if isinstance(doc, str):
            path.write_text(doc, encoding="utf-8")
        else:
            write_json(path, doc)
        err = import_json(cli, path, expect=2)["stderr"]
        assert message in err, (name, err)
        assert "nothing was imported" in err, (name, err)
        assert instance.ledger.size() == size, name
        assert table_counts(instance.engine) == counts, name


def test_existing_case_described_differently_is_refused(
    cli: Cli, instance: AppContext, tmp_path: Path
) -> None:
    base = example(events=[], preservations=[])
    import_json(cli, write_json(tmp_path / "a.json", base))
    size, counts = instance.ledger.size(), table_counts(instance.engine)
    cases = {
        "mode": (
            example(events=[], preservations=[], limitation_mode="installment"),
            "is clocked per_period, not installment",
        ),
        "owner phone": (
            example(
                events=[],
                preservations=[],
                owner={**EXAMPLE["cases"][0]["owner"], "phone": "13800000009"},
            ),
            "owner O-001: phone differ(s)",
        ),
        "other unit": (
            example(events=[], preservations=[], unit="1-1-101"),
            "case C-001 is recorded for another owner or unit",
        ),
    }
    for name, (doc, message) in cases.items():
        err = import_json(cli, write_json(tmp_path / f"{name}.json", doc), expect=2)["stderr"]
        assert message in err, (name, err)
    assert (instance.ledger.size(), table_counts(instance.engine)) == (size, counts)
    # An owner correction goes through with --update (not logged beyond the import counts).
    fixed = import_json(cli, write_json(tmp_path / "fix.json", cases["owner phone"][0]), "--update")
    assert fixed["counts"]["owners_updated"] == 1
    assert owners(instance)["O-001"] == ("张三", "13800000009")


# --- privacy -------------------------------------------------------------------------------


def test_no_personal_data_in_any_log_entry(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    evidence_at_12(instance, tmp_path)
    import_json(cli, write_json(tmp_path / "cases.json", EXAMPLE))
    bill = tmp_path / "bill.csv"
    bill.write_text(billing_csv(), encoding="utf-8")
    import_json(cli, bill)
    cli("cases", "owner", "O-001", "--id-number", "110101195004010012", "--address", "幸福路1号")
    cli(
        "cases",
        "event",
        "C-001",
        "--type",
        "note",
        "--date",
        "2024-08-01",
        "--reason",
        "张三 13800000000 幸福路",
    )
    cli(
        "cases",
        "event",
        "C-001",
        "--type",
        "service_attempt",
        "--date",
        "2024-08-02",
        "--document",
        "demand_letter",
        "--method",
        "mail",
        "--outcome",
        "returned",
    )
    cli("cases", "stage", "C-001", "enforcement", "--reason", "张三 did not pay")
    entries = log_bytes(instance)
    case_events = [decode_entry(b) for b in entries if decode_entry(b).type == "case_event"]
    assert len(case_events) == 3
    for entry in case_events:
        assert set(entry.payload) <= {
            "case",
            "event",
            "date",
            "periods",
            "evidence",
            "details_sha256",
            "preservation",
            "stage",
            "user",
        }
    blob = b"\n".join(entries).decode()
    for secret in PERSONAL:
        assert secret not in blob, secret
    # ... yet the database holds them, and the service attempt used the confirmed address.
    with instance.engine.connect() as conn:
        address = conn.execute(
            text("SELECT address FROM service_attempts ORDER BY id DESC")
        ).scalar()
        reason = conn.execute(text("SELECT reason FROM case_events WHERE type = 'note'")).scalar()
    assert address == "幸福路1号"
    assert reason == "张三 13800000000 幸福路"


def test_tampered_event_is_detected(cli: Cli, instance: AppContext, tmp_path: Path) -> None:
    import_json(
        cli,
        write_json(
            tmp_path / "a.json", example(preservations=[], events=EXAMPLE["cases"][0]["events"][1:])
        ),
    )
    cli("cases", "event", "C-001", "--type", "payment", "--date", "2024-09-01", "--amount", "100")
    assert json.loads(cli("cases", "verify", "C-001", "--json").stdout)["ok"] is True
    with instance.engine.begin() as conn:
        conn.execute(
            text("UPDATE case_events SET amount = 10 WHERE type = 'payment' AND import_id IS NULL")
        )
        conn.execute(
            text(
                "UPDATE case_events SET date = '2024-06-02' "
                "WHERE type = 'payment' AND import_id IS NOT NULL"
            )
        )
    out = cli("cases", "verify", "C-001", "--json", expect=1)
    problems = json.loads(out.stdout)["problems"]
    assert len(problems) == 3, problems
    assert problems[0].endswith("(payment of 2024-06-02): details altered")
    assert problems[1].endswith("(payment of 2024-09-01): details altered")
    # ... and the import entry no longer matches the events it brought.
    assert problems[2].startswith("the events of import entry")
