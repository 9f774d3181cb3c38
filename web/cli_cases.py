"""``tiezheng cases``: import, deadlines, calendar, events, stages, assignments, preservations,
owners, list, show, verify."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import click

from cases.calendar import deadlines_ics
from cases.deadlines import Deadline
from cases.errors import InvalidCaseData
from cases.importer import import_file
from cases.inputs import (
    EVENT_TYPES,
    PreservationSpec,
    parse_date,
    parse_event,
    parse_preservation,
)
from cases.service import CaseService, RecordedEvent
from web.cli import _by_option, _json_option, cli, emit, with_context
from web.context import AppContext


def _service(ctx: AppContext) -> CaseService:
    return CaseService(engine=ctx.engine, ledger=ctx.ledger, evidence=ctx.evidence, clock=ctx.clock)


def _date(value: str | None, what: str) -> dt.date | None:
    return None if value is None else parse_date(value, what)


def _recorded_text(r: RecordedEvent) -> str:
    ts = r.receipt.timestamp
    stamp = ts.time.isoformat() if ts.time is not None else "pending"
    return (
        f"case {r.case}: {r.type} recorded (event {r.event_id}), entry {r.receipt.index} in "
        f"checkpoint {r.receipt.checkpoint_size}, timestamp {stamp}"
    )


@cli.group()
def cases() -> None:
    """Cases: imports, deadlines and calendar, events, stages, owners."""


# --- import --------------------------------------------------------------------------------


@cases.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--update",
    is_flag=True,
    help="Record changed amounts, due dates and paid amounts (and owner corrections).",
)
@_by_option
@_json_option
@with_context
def cases_import(ctx: AppContext, file: Path, update: bool, by: str | None, as_json: bool) -> None:
    """Import a billing export (.csv, .xlsx) or a case file (.json), all or nothing."""
    actor = ctx.resolve_actor(by)
    result = import_file(_service(ctx), file, actor=actor, update=update)
    data = result.as_dict()
    counts = result.counts
    if result.changed:
        text = (
            f"imported {file.name} ({result.format}"
            + (f", {result.encoding}" if result.encoding else "")
            + f"): {result.records} record(s); new: {counts['properties']} property(ies), "
            f"{counts['units']} unit(s), {counts['owners']} owner(s), {counts['cases']} case(s), "
            f"{counts['arrears']} billing period(s), {counts['events']} event(s), "
            f"{counts['preservations']} preservation(s); updated: {counts['arrears_updated']} "
            f"period(s), {counts['owners_updated']} owner(s); unchanged: "
            f"{counts['arrears_unchanged']} period(s)\nimport entry {result.entry_index}, "
            f"checkpoint {data['checkpoint_size']}"
        )
    else:
        text = (
            f"nothing new in {file.name}: {result.records} record(s) already recorded; "
            "nothing was written or logged"
        )
    emit(data, as_json, text)


# --- deadlines and calendar ----------------------------------------------------------------


def _deadline_text(rows: list[Deadline]) -> str:
    if not rows:
        return "(no deadlines)"
    lines = []
    for r in rows:
        what = r.period or r.preservation or "-"
        mark = " (provisional)" if r.provisional else ""
        cause = (
            f" [interrupted by {r.interrupted_by.type} of {r.interrupted_by.date}]"
            if r.interrupted_by is not None
            else ""
        )
        lines.append(
            f"{r.date}  {r.status.value:<10} {r.kind.value:<24} {r.case:<16} {what:<10} "
            f"{'、'.join(r.basis)}{mark}{cause}"
        )
    return "\n".join(lines)


@cases.command("deadlines")
@click.option("--case", "case", default=None, help="One case (default: every case).")
@click.option("--as-of", default=None, help="The date to compute as of (default: today).")
@click.option("--within", type=int, default=None, help="Only those due within DAYS of --as-of.")
@_json_option
@with_context
def cases_deadlines(
    ctx: AppContext, case: str | None, as_of: str | None, within: int | None, as_json: bool
) -> None:
    """Every deadline with its legal basis, soonest first."""
    rows = _service(ctx).deadlines(_date(as_of, "--as-of"), case=case, within=within)
    emit([r.to_dict() for r in rows], as_json, _deadline_text(rows))


@cases.command("calendar")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--case", "case", default=None, help="One case (default: every case).")
@click.option("--as-of", default=None, help="The date to compute as of (default: today).")
@with_context
def cases_calendar(ctx: AppContext, out: Path, case: str | None, as_of: str | None) -> None:
    """Write the deadlines as an iCalendar file, with reminders 90, 30 and 7 days before."""
    rows = _service(ctx).deadlines(_date(as_of, "--as-of"), case=case)
    domain = ctx.settings.log_origin.split("/")[0] or "tiezheng.local"
    data = deadlines_ics(rows, now=ctx.clock.now(), domain=domain)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    n = data.count(b"BEGIN:VEVENT")
    click.echo(f"wrote {out}: {n} deadline(s)")


# --- recording -----------------------------------------------------------------------------


@cases.command("event")
@click.argument("case")
@click.option("--type", "type_", required=True, type=click.Choice(EVENT_TYPES))
@click.option("--date", "date", required=True, help="YYYY-MM-DD.")
@click.option("--method", default=None, help="direct, left_at_home, electronic, mail, ...")
@click.option("--outcome", default=None, help="served, refused, not_found, returned, ...")
@click.option("--delivered/--not-delivered", default=None, help="Demand: proven delivered?")
@click.option("--period", "periods", multiple=True, help="A billing period (repeat).")
@click.option("--amount", default=None, help="Amount in CNY, e.g. 350.00.")
@click.option("--reason", default=None)
@click.option("--end", default=None, help="Obstacle: its last day.")
@click.option("--document", default=None, help="Service attempt: the document served.")
@click.option("--served-date", default=None, help="Judgment: the day it was served.")
@click.option("--performance-due", default=None, help="Judgment: the last day to perform.")
@click.option("--preservation", default=None, help="Renewal: the preservation's reference.")
@click.option("--evidence", "evidence", multiple=True, type=int, help="Evidence entry (repeat).")
@click.option("--address", default=None, help="Service attempt: the address used.")
@_by_option
@_json_option
@with_context
def cases_event(
    ctx: AppContext,
    case: str,
    type_: str,
    date: str,
    method: str | None,
    outcome: str | None,
    delivered: bool | None,
    periods: tuple[str, ...],
    amount: str | None,
    reason: str | None,
    end: str | None,
    document: str | None,
    served_date: str | None,
    performance_due: str | None,
    preservation: str | None,
    evidence: tuple[int, ...],
    address: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Record one event of CASE; it is logged as a case_event entry (refs and hashes only)."""
    given: dict[str, Any] = {
        "type": type_,
        "date": date,
        "method": method,
        "outcome": outcome,
        "delivered": delivered,
        "periods": list(periods) or None,
        "amount": amount,
        "reason": reason,
        "end": end,
        "document": document,
        "served_date": served_date,
        "performance_due": performance_due,
        "preservation": preservation,
        "evidence": list(evidence) or None,
    }
    spec = parse_event({k: v for k, v in given.items() if v is not None}, f"--type {type_}")
    actor = ctx.resolve_actor(by)
    recorded = _service(ctx).record_event(case, spec, actor=actor, address=address)
    emit(recorded.as_dict(), as_json, _recorded_text(recorded))


@cases.command("stage")
@click.argument("case")
@click.argument("stage")
@click.option("--date", "date", default=None, help="YYYY-MM-DD (default: today).")
@click.option("--reason", default=None)
@_by_option
@_json_option
@with_context
def cases_stage(
    ctx: AppContext,
    case: str,
    stage: str,
    date: str | None,
    reason: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Move CASE to STAGE (reminder, call, visit, lawyer_letter, mediation, suit, judgment,
    enforcement, closed), recorded as a stage_change event."""
    actor = ctx.resolve_actor(by)
    recorded = _service(ctx).change_stage(
        case, stage, actor=actor, on=_date(date, "--date"), reason=reason
    )
    emit(recorded.as_dict(), as_json, _recorded_text(recorded))


@cases.command("assign")
@click.argument("case")
@click.argument("user")
@click.option("--remove", is_flag=True, help="Remove the assignment instead.")
@_by_option
@_json_option
@with_context
def cases_assign(
    ctx: AppContext, case: str, user: str, remove: bool, by: str | None, as_json: bool
) -> None:
    """Assign CASE to the field user USER (or --remove), recorded as an assignment event."""
    actor = ctx.resolve_actor(by)
    recorded = _service(ctx).assign(case, user, actor=actor, remove=remove)
    emit(recorded.as_dict(), as_json, _recorded_text(recorded))


@cases.command("preservation")
@click.argument("case")
@click.option("--ref", required=True, help="The preservation's reference, e.g. PR-1.")
@click.option("--stage", required=True, help="pre_litigation or in_litigation.")
@click.option("--asset", required=True, help="bank_deposit, movable, real_estate, other_right.")
@click.option("--executed", required=True, help="Execution date YYYY-MM-DD.")
@click.option("--ruling", default=None, help="Ruling date YYYY-MM-DD.")
@click.option("--expires", default=None, help="The expiry the ruling states, if any.")
@click.option("--amount", default=None, help="Amount preserved, CNY.")
@_by_option
@_json_option
@with_context
def cases_preservation(
    ctx: AppContext,
    case: str,
    ref: str,
    stage: str,
    asset: str,
    executed: str,
    ruling: str | None,
    expires: str | None,
    amount: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Record a preservation measure (财产保全) of CASE, as a preservation event."""
    given = {
        "ref": ref,
        "stage": stage,
        "asset": asset,
        "executed_date": executed,
        "ruling_date": ruling,
        "expires": expires,
        "amount": amount,
    }
    spec: PreservationSpec = parse_preservation(
        {k: v for k, v in given.items() if v is not None}, "preservation"
    )
    actor = ctx.resolve_actor(by)
    recorded = _service(ctx).add_preservation(case, spec, actor=actor)
    emit(recorded.as_dict(), as_json, _recorded_text(recorded))


@cases.command("owner")
@click.argument("owner_ref")
@click.option("--phone", default=None)
@click.option("--id-number", default=None, help="Stored; shown masked.")
@click.option("--address", default=None, help="The service address the owner confirmed.")
@click.option("--address-confirmed", default=None, help="When it was confirmed (default today).")
@click.option("--birth-date", default=None, help="YYYY-MM-DD.")
@click.option("--age", type=int, default=None, help="Age today, if the birth date is unknown.")
@click.option("--tag", "tags", multiple=True, help="vacant, rented, lost_contact, quality_dispute.")
@click.option("--untag", "untags", multiple=True, help="Remove a stored tag.")
@click.option("--co-owner", default=None, help="Add a co-owner by name.")
@click.option("--co-owner-phone", default=None)
@click.option("--co-owner-id-number", default=None)
@with_context
def cases_owner(
    ctx: AppContext,
    owner_ref: str,
    phone: str | None,
    id_number: str | None,
    address: str | None,
    address_confirmed: str | None,
    birth_date: str | None,
    age: int | None,
    tags: tuple[str, ...],
    untags: tuple[str, ...],
    co_owner: str | None,
    co_owner_phone: str | None,
    co_owner_id_number: str | None,
) -> None:
    """Correct or complete an owner's personal data (kept out of the log)."""
    if co_owner is None and (co_owner_phone or co_owner_id_number):
        raise InvalidCaseData("--co-owner-phone and --co-owner-id-number need --co-owner")
    _service(ctx).update_owner(
        owner_ref,
        phone=phone,
        id_number=id_number,
        service_address=address,
        address_confirmed_on=_date(address_confirmed, "--address-confirmed"),
        birth_date=_date(birth_date, "--birth-date"),
        age=age,
        add_tags=tags,
        remove_tags=untags,
        co_owner=None if co_owner is None else (co_owner, co_owner_phone, co_owner_id_number),
    )
    click.echo(f"updated owner {owner_ref}")


# --- reading -------------------------------------------------------------------------------


@cases.command("list")
@click.option("--property", "property_", default=None, help="Only this property.")
@_json_option
@with_context
def cases_list(ctx: AppContext, property_: str | None, as_json: bool) -> None:
    """List cases: reference, property, unit, owner reference, stage, billed and paid."""
    rows = _service(ctx).list_cases(property=property_)
    text = "\n".join(
        f"{r['ref']:<16} {r['property']:<12} {r['unit']:<12} {r['owner']:<16} {r['stage']:<13} "
        f"{r['periods']:>3} period(s) billed {r['billed']:>10} paid {r['paid']:>10}"
        + (f"  ({', '.join(r['assigned'])})" if r["assigned"] else "")
        for r in rows
    )
    emit(rows, as_json, text or "(no cases)")


def _show_text(d: dict[str, Any]) -> str:
    o = d["owner"]
    lines = [
        f"case {d['ref']}: {d['property']} {d['unit']}, stage {d['stage']}, "
        f"{d['limitation_mode']}; assigned: {', '.join(d['assigned']) or '-'}",
        f"owner {o['ref']}: {o['name']}, phone {o['phone'] or '-'}, "
        f"ID {o['id_number'] or '-'}, age {o['age'] if o['age'] is not None else '-'}, "
        f"tags {', '.join(o['tags']) or '-'}",
    ]
    if o["service_address"]:
        lines.append(
            f"  service address: {o['service_address']} "
            f"(confirmed {o['address_confirmed_on'] or '-'})"
        )
    lines.extend(f"  co-owner {c['name']}, phone {c['phone'] or '-'}" for c in o["co_owners"])
    lines.append(f"arrears: billed {d['billed']}, paid {d['paid']}")
    lines.extend(
        f"  {a['period']}  {a['amount']:>10}  due {a['due']}  paid {a['paid']}"
        for a in d["arrears"]
    )
    lines.append("timeline:")
    for e in d["events"]:
        extra = {
            k: v
            for k, v in e.items()
            if k not in ("id", "index", "type", "date", "imported", "data") and v is not None
        }
        detail = ", ".join(f"{k} {v}" for k, v in extra.items())
        source = "import" if e["imported"] else "entry"
        lines.append(f"  {e['date']}  {e['type']:<16} {detail}  ({source} {e['index']})")
    lines.extend(
        f"preservation {p['ref']}: {p['stage']}, {p['asset']}, executed {p['executed_date']}, "
        f"expires {p['expires'] or '-'}"
        for p in d["preservations"]
    )
    return "\n".join(lines)


@cases.command("show")
@click.argument("case")
@click.option("--as-of", default=None, help="For the owner's age and tags (default: today).")
@_json_option
@with_context
def cases_show(ctx: AppContext, case: str, as_of: str | None, as_json: bool) -> None:
    """Show a case: owner (phone and ID number masked), arrears, timeline, preservations."""
    data = _service(ctx).show(case, as_of=_date(as_of, "--as-of"))
    emit(data, as_json, _show_text(data))


@cases.command("verify")
@click.argument("case")
@_json_option
@with_context
def cases_verify(ctx: AppContext, case: str, as_json: bool) -> None:
    """Check CASE's timeline against the log. Exit 0 if it holds, 1 naming each problem."""
    problems = _service(ctx).verify_case(case)
    emit(
        {"case": case, "ok": not problems, "problems": problems},
        as_json,
        "\n".join(problems) if problems else f"case {case}: every event matches the log",
    )
    if problems:
        raise click.exceptions.Exit(1)
