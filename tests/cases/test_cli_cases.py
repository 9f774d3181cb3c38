"""``tiezheng cases`` end to end (SQLite and PostgreSQL): deadlines of the issue's example case
worked by hand, --within, the iCalendar export, recording events, stages, assignments,
preservations, owners, and what ``show`` masks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import icalendar
import pytest
from sqlalchemy import select

from cases.models import CaseEvent, ServiceAttempt
from ledger.entry import decode_entry
from tests.cases import official, weekday, weekend
from tests.cases.case_data import (
    EXAMPLE,
    billing_csv,
    evidence_at_12,
    example,
    log_bytes,
    table_counts,
    write_json,
)
from tests.conftest import Cli
from web.context import AppContext

AS_OF = "2026-11-27"
ROW_KEYS = {
    "case",
    "kind",
    "period",
    "preservation",
    "date",
    "status",
    "basis",
    "provisional",
    "interrupted_by",
}


@pytest.fixture
def example_case(cli: Cli, instance: AppContext, tmp_path: Path) -> AppContext:
    """The issue's example imported (its demand cites evidence entry 12, which exists)."""
    evidence_at_12(instance, tmp_path)
    cli("cases", "import", str(write_json(tmp_path / "cases.json", EXAMPLE)))
    return instance


def deadlines(cli: Cli, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(cli("cases", "deadlines", "--json", *args).stdout)
    return rows


def test_deadlines_of_the_example_case(cli: Cli, example_case: AppContext) -> None:
    rows = deadlines(cli, "--case", "C-001", "--as-of", AS_OF)
    assert all(set(r) == ROW_KEYS for r in rows)
    got = [(r["date"], r["kind"], r["period"] or r["preservation"], r["status"]) for r in rows]
    # Worked by hand, as of 2026-11-27, soonest first:
    # - The summons was published on 2025-01-20: deemed served 30 days later, 2025-02-19
    #   (民诉法第95条; a deemed day is not moved). Passed.
    # - Judgment served 2025-06-05: appeal within 15 days, 2025-06-20, a Friday and a working
    #   day (第171条). The window has closed: overdue.
    # - 2023-03 (due 2023-03-31): three years end 2026-03-31, a Tuesday; suit was filed for it on
    #   2025-01-10, before that, so its clock stopped: suit_filed.
    # - PR-1 (pre-litigation) executed 2026-11-02: suit within 30 days, 2026-12-02, a
    #   Wednesday (第104条); no suit filed since the execution: open.
    # - 2023-01: the delivered demand of 2024-05-10 restarted it (ends 2027-05-10, a Monday);
    #   the payment of 350.00 on 2024-06-01 paid it in full: paid.
    # - Performance due 2025-06-20: enforcement within two years, 2027-06-20, a Sunday, so
    #   Monday 2027-06-21 (第250条); 2027 has no official schedule yet: provisional.
    # - 2023-02: the acknowledgment of 2024-07-01 restarted it: 2027-07-01, a Thursday
    #   (provisional). The obstacle of February 2025 is not in its last six months.
    # - PR-1 is a bank deposit: one year counted from execution, the day of execution included:
    #   2027-11-01 (never moved). Renewal at least 7 days before: 2027-10-25, a Monday.
    assert got == [
        ("2025-02-19", "service_deemed", None, "passed"),
        ("2025-06-20", "appeal", None, "overdue"),
        ("2026-03-31", "limitation", "2023-03", "suit_filed"),
        ("2026-12-02", "suit_after_preservation", "PR-1", "open"),
        ("2027-05-10", "limitation", "2023-01", "paid"),
        ("2027-06-21", "enforcement_application", None, "open"),
        ("2027-07-01", "limitation", "2023-02", "running"),
        ("2027-10-25", "preservation_renewal", "PR-1", "open"),
        ("2027-11-01", "preservation_expiry", "PR-1", "upcoming"),
    ]
    official(dt.date(2025, 6, 20), working=True)
    official(dt.date(2026, 3, 31), working=True)
    official(dt.date(2026, 12, 2), working=True)
    weekend(dt.date(2027, 6, 20))
    weekday(dt.date(2027, 6, 21))
    weekday(dt.date(2027, 7, 1))
    weekday(dt.date(2027, 10, 25))
    by_kind = {(r["kind"], r["period"]): r for r in rows}
    feb = by_kind[("limitation", "2023-02")]
    assert feb["interrupted_by"] == {"type": "acknowledgment", "date": "2024-07-01"}
    assert feb["provisional"] is True
    assert feb["basis"][:2] == ["民法典第188条", "民法典第195条"]
    jan = by_kind[("limitation", "2023-01")]
    assert jan["interrupted_by"] == {"type": "demand", "date": "2024-05-10"}
    assert by_kind[("enforcement_application", None)]["basis"] == [
        "民事诉讼法第250条",
        "民事诉讼法第85条",
    ]
    assert by_kind[("preservation_expiry", None)]["provisional"] is False
    # Text output: one line per row, same order.
    text = cli("cases", "deadlines", "--case", "C-001", "--as-of", AS_OF).stdout.splitlines()
    assert [ln.split()[0] for ln in text] == [r["date"] for r in rows]


def test_within_and_as_of(cli: Cli, example_case: AppContext) -> None:
    soon = deadlines(cli, "--as-of", AS_OF, "--within", "30")
    assert [(r["date"], r["kind"]) for r in soon] == [("2026-12-02", "suit_after_preservation")]
    # 2027-11-01 (the expiry of PR-1) is 339 days after 2026-11-27: the last day of the window
    # counts.
    assert (dt.date(2027, 11, 1) - dt.date(2026, 11, 27)).days == 339
    year = deadlines(cli, "--as-of", AS_OF, "--within", "338")
    assert [r["date"] for r in year] == [
        "2026-12-02",
        "2027-05-10",
        "2027-06-21",
        "2027-07-01",
        "2027-10-25",
    ]
    longer = deadlines(cli, "--as-of", AS_OF, "--within", "339")
    assert [r["date"] for r in longer][-1] == "2027-11-01"
    # Earlier, the payment had not been made: the period was still running.
    before = deadlines(cli, "--as-of", "2024-05-20")
    jan = next(r for r in before if r["period"] == "2023-01")
    assert (jan["date"], jan["status"]) == ("2027-05-10", "running")
    assert cli("cases", "deadlines", "--within", "-1", expect=2).stderr.startswith("error:")
    assert "must be a date" in cli("cases", "deadlines", "--as-of", "soon", expect=2).stderr
    assert "no case 'C-404'" in cli("cases", "deadlines", "--case", "C-404", expect=1).stderr


def test_all_cases_are_listed_soonest_first(
    cli: Cli, example_case: AppContext, tmp_path: Path
) -> None:
    bill = tmp_path / "bill.csv"
    bill.write_text(billing_csv(), encoding="utf-8")
    cli("cases", "import", str(bill))
    rows = deadlines(cli, "--as-of", AS_OF)
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    billing = [r for r in rows if r["case"] != "C-001"]
    assert len(billing) == 6
    # Due 2024-02-29 (a leap day): three years later there is no 29 February, so the period
    # ends on 2027-02-28, a Sunday, and moves to Monday 2027-03-01 (provisional year).
    leap = [r for r in billing if r["period"] == "2024-02"]
    assert {r["date"] for r in leap} == {"2027-03-01"}
    weekend(dt.date(2027, 2, 28))
    assert all(r["status"] == "running" and r["provisional"] for r in leap)


def test_calendar_export(cli: Cli, example_case: AppContext, tmp_path: Path) -> None:
    out = tmp_path / "deadlines.ics"
    result = cli("cases", "calendar", "--out", str(out), "--as-of", AS_OF)
    assert "7 deadline(s)" in result.stdout
    cal = icalendar.Calendar.from_ical(out.read_bytes())
    events = list(cal.walk("VEVENT"))
    # The nine rows less the paid period, the stopped clock and nothing met: seven.
    assert len(events) == 7
    starts = sorted(e.decoded("dtstart") for e in events)
    assert starts[0] == dt.date(2025, 2, 19) and starts[-1] == dt.date(2027, 11, 1)
    for e in events:
        start = e.decoded("dtstart")
        assert type(start) is dt.date  # all-day
        assert e.decoded("dtend") == start + dt.timedelta(days=1)
        alarms = list(e.walk("VALARM"))
        assert len(alarms) == 3
        assert sorted(a.decoded("trigger") for a in alarms) == [
            dt.timedelta(days=-90),
            dt.timedelta(days=-30),
            dt.timedelta(days=-7),
        ]
        assert all(str(a["action"]) == "DISPLAY" for a in alarms)
        assert "C-001" in str(e["summary"])
    assert "张三" not in out.read_text(encoding="utf-8")
    # UIDs are stable: a second export, as of another day, keeps them.
    first = {str(e["uid"]) for e in events}
    assert len(first) == 7
    cli("cases", "calendar", "--out", str(out), "--as-of", "2026-11-28")
    again = {str(e["uid"]) for e in icalendar.Calendar.from_ical(out.read_bytes()).walk("VEVENT")}
    assert again == first


def test_record_events_and_their_entries(cli: Cli, example_case: AppContext) -> None:
    ctx = example_case
    size = ctx.ledger.size()
    out = cli(
        "cases", "event", "C-001", "--type", "demand", "--date", "2026-01-05",
        "--method", "mail", "--delivered", "--period", "2023-02", "--evidence", "12", "--json",
    )  # fmt: skip
    rec = json.loads(out.stdout)
    assert rec["index"] == size and rec["event"] == "demand"
    assert rec["timestamp"]["status"] == "granted"
    entry = decode_entry(ctx.ledger.entry(rec["index"]))
    assert entry.type == "case_event"
    assert entry.payload == {
        "case": "C-001",
        "event": "demand",
        "date": "2026-01-05",
        "periods": ["2023-02"],
        "evidence": [12],
        "details_sha256": entry.payload["details_sha256"],
    }
    with ctx.engine.connect() as conn:
        row = conn.execute(select(CaseEvent.__table__).where(CaseEvent.id == rec["id"])).one()
    assert row.entry_index == rec["index"] and row.import_id is None
    assert row.details_sha256 == entry.payload["details_sha256"]
    # The delivered demand of 2026-01-05 restarts 2023-02: 2029-01-05 (a Friday, provisional).
    feb = next(r for r in deadlines(cli, "--as-of", AS_OF) if r["period"] == "2023-02")
    assert (feb["date"], feb["interrupted_by"]) == (
        "2029-01-05",
        {"type": "demand", "date": "2026-01-05"},
    )
    weekday(dt.date(2029, 1, 5))
    # Renewal of PR-1 meets its renewal deadline.
    cli(
        "cases",
        "event",
        "C-001",
        "--type",
        "renewal_filed",
        "--date",
        "2026-11-20",
        "--preservation",
        "PR-1",
    )
    renewal = next(
        r for r in deadlines(cli, "--as-of", AS_OF) if r["kind"] == "preservation_renewal"
    )
    assert renewal["status"] == "met"
    # A service attempt gets its service-attempt row with the address used.
    cli(
        "cases", "event", "C-001", "--type", "service_attempt", "--date", "2026-11-21",
        "--document", "enforcement_notice", "--method", "left_at_home", "--outcome", "served",
        "--address", "3-2-1101",
    )  # fmt: skip
    with ctx.engine.connect() as conn:
        attempt = conn.execute(
            select(ServiceAttempt.__table__).order_by(ServiceAttempt.id.desc())
        ).first()
    assert attempt is not None
    assert (attempt.document, attempt.method, attempt.outcome, attempt.address) == (
        "enforcement_notice",
        "left_at_home",
        "served",
        "3-2-1101",
    )
    assert json.loads(cli("cases", "verify", "C-001", "--json").stdout)["ok"] is True


def test_bad_events_are_refused_and_change_nothing(cli: Cli, example_case: AppContext) -> None:
    ctx = example_case
    note = ctx.ledger.append_durable("note", {"text": "a note"}, "system").index
    size, counts = ctx.ledger.size(), table_counts(ctx.engine)
    refused = {
        "an entry that is not evidence": (
            ["--type", "note", "--date", "2025-01-01", "--evidence", str(note)],
            f"entry {note} is not an evidence entry",
        ),
        "an entry that does not exist": (
            ["--type", "note", "--date", "2025-01-01", "--evidence", "9999"],
            "entry 9999 is not an evidence entry",
        ),
        "an unknown period": (
            ["--type", "acknowledgment", "--date", "2025-01-01", "--period", "2020-01"],
            "names unknown period 2020-01",
        ),
        "an unknown preservation": (
            ["--type", "renewal_filed", "--date", "2025-01-01", "--preservation", "PR-2"],
            "names unknown preservation PR-2",
        ),
        "a demand without delivery status": (
            ["--type", "demand", "--date", "2025-01-01"],
            "missing field(s) 'delivered'",
        ),
        "a negative amount": (
            ["--type", "payment", "--date", "2025-01-01", "--amount", "-3"],
            "must not be negative",
        ),
        "an unknown method": (
            ["--type", "demand", "--date", "2025-01-01", "--delivered", "--method", "pigeon"],
            "unknown method 'pigeon'",
        ),
        "a future date": (["--type", "note", "--date", "2999-01-01"], "in the future"),
        "a bad date": (["--type", "note", "--date", "2025-02-29"], "must be a date"),
        "an address on a note": (
            ["--type", "note", "--date", "2025-01-01", "--address", "x"],
            "only with a service attempt",
        ),
    }
    for name, (args, message) in refused.items():
        err = cli("cases", "event", "C-001", *args, expect=2).stderr
        assert message in err, (name, err)
    assert (
        "no case 'C-404'"
        in cli("cases", "event", "C-404", "--type", "note", "--date", "2025-01-01", expect=1).stderr
    )
    assert (ctx.ledger.size(), table_counts(ctx.engine)) == (size, counts)


def test_stage_assign_preservation_owner_and_show(cli: Cli, example_case: AppContext) -> None:
    ctx = example_case
    cli("user", "add", "li", "--role", "field", "--password-stdin", input="password-1\n")
    cli("user", "add", "wang", "--role", "legal", "--password-stdin", input="password-2\n")
    stage = json.loads(
        cli("cases", "stage", "C-001", "enforcement", "--by", "wang", "--json").stdout
    )
    entry = decode_entry(ctx.ledger.entry(stage["index"]))
    assert (entry.actor, entry.payload["event"], entry.payload["stage"]) == (
        "wang",
        "stage_change",
        "enforcement",
    )
    # At enforcement the application for enforcement counts as made.
    enforcement = next(
        r for r in deadlines(cli, "--as-of", AS_OF) if r["kind"] == "enforcement_application"
    )
    assert enforcement["status"] == "met"
    assert (
        "already at stage enforcement"
        in cli("cases", "stage", "C-001", "enforcement", expect=2).stderr
    )
    assert "unknown stage 'won'" in cli("cases", "stage", "C-001", "won", expect=2).stderr
    assigned = json.loads(cli("cases", "assign", "C-001", "li", "--json").stdout)
    assert decode_entry(ctx.ledger.entry(assigned["index"])).payload["user"] == "li"
    assert "not an active field user" in cli("cases", "assign", "C-001", "wang", expect=2).stderr
    assert "already assigned" in cli("cases", "assign", "C-001", "li", expect=2).stderr
    cli(
        "cases", "preservation", "C-001", "--ref", "PR-2", "--stage", "in_litigation",
        "--asset", "real_estate", "--executed", "2026-11-10", "--expires", "2029-11-09",
    )  # fmt: skip
    rows = deadlines(cli, "--case", "C-001", "--as-of", AS_OF)
    expiry = next(
        r for r in rows if r["kind"] == "preservation_expiry" and r["preservation"] == "PR-2"
    )
    assert expiry["date"] == "2029-11-09"
    assert "already has preservation PR-1" in cli(
        "cases", "preservation", "C-001", "--ref", "PR-1", "--stage", "in_litigation",
        "--asset", "movable", "--executed", "2026-11-10", expect=2,
    ).stderr  # fmt: skip
    cli(
        "cases", "owner", "O-001", "--id-number", "110101195004010012", "--address", "幸福路1号",
        "--tag", "rented", "--untag", "vacant",
        "--co-owner", "李梅", "--co-owner-phone", "13911112222",
    )  # fmt: skip
    assert (
        "'elderly' is derived"
        in cli("cases", "owner", "O-001", "--tag", "elderly", expect=2).stderr
    )
    shown = json.loads(cli("cases", "show", "C-001", "--as-of", AS_OF, "--json").stdout)
    owner = shown["owner"]
    assert owner["phone"] == "138****0000"
    assert owner["id_number"] == "110***********0012"
    assert owner["name"] == "张三" and owner["age"] == 76
    # Born 1950-04-01: 76 on 2026-11-27, so elderly (derived); rented stored, vacant removed.
    assert owner["tags"] == ["elderly", "rented"]
    assert owner["co_owners"] == [{"name": "李梅", "phone": "139****2222", "id_number": None}]
    assert shown["stage"] == "enforcement" and shown["assigned"] == ["li"]
    assert [p["ref"] for p in shown["preservations"]] == ["PR-1", "PR-2"]
    assert [e["type"] for e in shown["events"]][-3:] == [
        "stage_change",
        "assignment",
        "preservation",
    ]
    text = cli("cases", "show", "C-001").stdout
    assert "138****0000" in text and "13800000000" not in text
    assert "110101195004010012" not in text
    listed = json.loads(cli("cases", "list", "--json").stdout)
    assert listed == [
        {
            "ref": "C-001",
            "property": "P1",
            "unit": "3-2-1101",
            "owner": "O-001",
            "stage": "enforcement",
            "periods": 3,
            "billed": "1050.00",
            "paid": "0.00",
            "assigned": ["li"],
        }
    ]
    blob = b"".join(log_bytes(ctx)).decode()
    for secret in ("张三", "李梅", "13800000000", "13911112222", "110101195004010012", "幸福路"):
        assert secret not in blob


def test_repeat_arrears_is_derived_from_separate_spells(
    cli: Cli, instance: AppContext, tmp_path: Path
) -> None:
    # Two spells of monthly arrears (Jan-Feb, then May) for one owner: repeat_arrears.
    doc = example(events=[], preservations=[])
    doc["cases"][0]["arrears"] = [
        {"period": "2024-01", "amount": "100", "due": "2024-01-31"},
        {"period": "2024-02", "amount": "100", "due": "2024-02-29"},
        {"period": "2024-05", "amount": "100", "due": "2024-05-31"},
    ]
    doc["cases"][0]["owner"] = {"ref": "O-001", "name": "张三", "birth_date": "1980-01-01"}
    cli("cases", "import", str(write_json(tmp_path / "a.json", doc)))
    shown = json.loads(cli("cases", "show", "C-001", "--as-of", AS_OF, "--json").stdout)
    assert shown["owner"]["tags"] == ["repeat_arrears"]
    assert shown["owner"]["age"] == 46
    # One unbroken spell (quarterly bills: the cadence is three months): not repeat.
    doc["cases"][0].update(ref="C-002", unit="1-1-1")
    doc["cases"][0]["owner"] = {"ref": "O-002", "name": "李四", "birth_date": "1966-11-27"}
    doc["cases"][0]["arrears"] = [
        {"period": "2024-01", "amount": "100", "due": "2024-01-31"},
        {"period": "2024-04", "amount": "100", "due": "2024-04-30"},
        {"period": "2024-07", "amount": "100", "due": "2024-07-31"},
    ]
    cli("cases", "import", str(write_json(tmp_path / "b.json", doc)))
    shown = json.loads(cli("cases", "show", "C-002", "--as-of", AS_OF, "--json").stdout)
    # Born 1966-11-27: 60 on 2026-11-27 exactly, so elderly that day and not the day before.
    assert shown["owner"]["tags"] == ["elderly"]
    before = json.loads(cli("cases", "show", "C-002", "--as-of", "2026-11-26", "--json").stdout)
    assert before["owner"]["tags"] == [] and before["owner"]["age"] == 59
