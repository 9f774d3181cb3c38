"""``tiezheng cases letter``, ``cases plan`` and ``cases report``: the work that follows from the
deadlines (demand letters, collection plans, arrears reports)."""

from __future__ import annotations

import datetime as dt
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import click

from cases.deadlines import add_years
from cases.errors import InvalidCaseData
from cases.inputs import parse_date
from cases.letters import (
    CONFIG_FILE,
    IssuedLetter,
    Letter,
    LetterConfig,
    LetterService,
    render_letter_pdf,
)
from cases.plans import plans_of
from cases.reports import Window, case_report
from cases.service import CaseService
from web.cli import _by_option, _json_option, emit, with_context
from web.cli_cases import cases
from web.context import AppContext


def _service(ctx: AppContext) -> CaseService:
    return CaseService(engine=ctx.engine, ledger=ctx.ledger, evidence=ctx.evidence, clock=ctx.clock)


def _date(value: str | None, what: str) -> dt.date | None:
    return None if value is None else parse_date(value, what)


def _write(path: Path, data: bytes) -> Path:
    """Write ``data`` beside ``path`` (``.part``); the caller renames it once it is logged."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    return tmp


# --- letters -------------------------------------------------------------------------------


def _issued_text(issued: IssuedLetter, out: Path) -> str:
    d = issued.letter.to_dict()
    case, index = issued.letter.case, issued.evidence.index
    lines = [
        f"wrote {out}: letter {d['letter']} of case {case}, {len(d['periods'])} period(s) "
        f"({', '.join(issued.letter.periods)}), total {d['total']} CNY, pay by {d['deadline']}"
        + (" (provisional calendar)" if d["deadline_provisional"] else ""),
        f"  evidence entry {index} (sha256 {issued.evidence.sha256}); note event entry "
        f"{issued.event.receipt.index}",
    ]
    if d["expired_periods"]:
        lines.append(
            f"  past limitation (the owner may plead it): {', '.join(d['expired_periods'])}"
        )
    return "\n".join(lines)


def _config(
    ctx: AppContext, issuer: str | None, channels: str | None, contact: str | None
) -> LetterConfig:
    return LetterConfig.load(ctx.settings.home / CONFIG_FILE).with_options(
        issuer=issuer, channels=channels, contact=contact
    )


@cases.command("letter")
@click.argument("case", required=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The PDF to write.")
@click.option("--all", "all_", is_flag=True, help="Every case at --stage (with --out-dir).")
@click.option("--stage", default=None, help="With --all: the stage whose cases get a letter.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --all: the directory for the PDFs (CASE.pdf each).",
)
@click.option(
    "--deadline", default=None, help="Pay by this date (default: 15 days, next working day)."
)
@click.option("--issuer", default=None, help=f"The issuer's name (default: {CONFIG_FILE}).")
@click.option("--channels", default=None, help=f"How to pay (default: {CONFIG_FILE}).")
@click.option("--contact", default=None, help=f"Whom to contact (default: {CONFIG_FILE}).")
@_by_option
@_json_option
@with_context
def cases_letter(
    ctx: AppContext,
    case: str | None,
    out: Path | None,
    all_: bool,
    stage: str | None,
    out_dir: Path | None,
    deadline: str | None,
    issuer: str | None,
    channels: str | None,
    contact: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Issue a demand letter (催缴函) for CASE as a PDF, or for every case at a stage.

    Each letter is stored as evidence (kind document) and recorded on its case as a note
    event citing it; record its delivery later as a demand event.
    """
    if all_:
        if case is not None or out is not None:
            raise click.UsageError("--all takes no CASE and no --out (use --out-dir)")
        if stage is None or out_dir is None:
            raise click.UsageError("--all needs --stage and --out-dir")
    else:
        if case is None or out is None:
            raise click.UsageError("give CASE and --out FILE.pdf, or --all --stage S --out-dir DIR")
        if stage is not None or out_dir is not None:
            raise click.UsageError("--stage and --out-dir go with --all")
    due = _date(deadline, "--deadline")
    config = _config(ctx, issuer, channels, contact)
    actor = ctx.resolve_actor(by)
    letters = LetterService(cases=_service(ctx), config=config)
    if not all_:
        assert case is not None and out is not None
        if not out.parent.is_dir():
            raise InvalidCaseData(f"{out.parent} is not a directory")
        with _letters_lock(ctx):
            letter = letters.prepare(case, deadline=due)
            issued = _issue(letters, letter, render_letter_pdf(letter), out, actor)
        data = {**issued.as_dict(), "out": str(out)}
        text = _issued_text(issued, out)
        if config.default_channels:
            text += f"\nnote: the payment channels are the default text; set them in {CONFIG_FILE}"
        emit(data, as_json, text)
        return
    assert stage is not None and out_dir is not None
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidCaseData(f"{out_dir} is not a directory")
    with _letters_lock(ctx):
        prepared, skipped = letters.prepare_stage(stage, deadline=due)
        for letter in prepared:
            if (out_dir / f"{letter.case}.pdf").is_dir():
                raise InvalidCaseData(f"{out_dir / f'{letter.case}.pdf'} is a directory")
        # Every letter is rendered before the first is written or logged: a failure leaves
        # nothing.
        rendered = [(letter, render_letter_pdf(letter)) for letter in prepared]
        out_dir.mkdir(parents=True, exist_ok=True)
        done: list[tuple[IssuedLetter, Path]] = []
        for letter, pdf in rendered:
            target = out_dir / f"{letter.case}.pdf"
            done.append((_issue(letters, letter, pdf, target, actor), target))
    emit(
        {
            "stage": stage,
            "letters": [{**i.as_dict(), "out": str(p)} for i, p in done],
            "skipped": [{"case": ref, "reason": why} for ref, why in skipped],
        },
        as_json,
        "\n".join(
            [_issued_text(i, p) for i, p in done]
            + [f"skipped {ref}: {why}" for ref, why in skipped]
            + [f"{len(done)} letter(s) for stage {stage} in {out_dir}"]
        ),
    )


def _letters_lock(ctx: AppContext) -> AbstractContextManager[None]:
    """Letter numbers count the letters a case already has: numbering and issuing run under
    one lock across processes, so two commands never give out the same number."""
    from evidence.jobs import named_lock

    return named_lock(ctx.engine, ctx.settings.home, "cases:letters")


def _issue(
    letters: LetterService, letter: Letter, pdf: bytes, out: Path, actor: str
) -> IssuedLetter:
    tmp = _write(out, pdf)
    try:
        issued = letters.issue(letter, pdf, actor=actor)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return issued


# --- plans ---------------------------------------------------------------------------------


def _plans_text(plans: list[dict[str, Any]]) -> str:
    if not plans:
        return "(no open cases)"
    lines: list[str] = []
    for p in plans:
        tags = ", ".join(p["tags"]) or "-"
        lines.append(
            f"{p['case']} ({p['property']} {p['unit']}; stage {p['stage']}; tags {tags}; "
            f"outstanding {p['outstanding']})"
        )
        if not p["steps"]:
            lines.append("  (no steps: closed)")
        for s in p["steps"]:
            due = f" by {s['due']}" if s["due"] else ""
            lines.append(f"  [{s['priority']}]{due} {s['action_zh']}")
            lines.append(f"      {s['action_en']}")
            lines.append(f"      理由 reason: {s['reason_zh']} / {s['reason_en']}")
    return "\n".join(lines)


@cases.command("plan")
@click.argument("case", required=False)
@click.option("--as-of", default=None, help="The date to plan as of (default: today).")
@_json_option
@with_context
def cases_plan(ctx: AppContext, case: str | None, as_of: str | None, as_json: bool) -> None:
    """The next recommended steps of CASE (default: every open case), most pressing first."""
    service = _service(ctx)
    on = _date(as_of, "--as-of") or service.today()
    plans = plans_of(service, on, case=case)
    emit(plans, as_json, _plans_text(plans))


# --- reports -------------------------------------------------------------------------------


def _pct(rate: str | None) -> str:
    return "-" if rate is None else f"{float(rate) * 100:.2f}%"


def _report_text(r: dict[str, Any]) -> str:
    w, c, k = r["window"], r["collection"], r["kpis"]
    lines = [
        f"report {w['from']} .. {w['to']} ({r['property'] or 'all properties'}): "
        f"{r['cases']} case(s)",
        f"collection rate: paid {c['paid']} / billed {c['billed']} = {_pct(c['rate'])} "
        f"({c['periods']} period(s) due in the window)",
        f"aging of outstanding arrears on {w['to']} (total {r['outstanding']}):",
    ]
    lines.extend(
        f"  {b['bucket']:<6} {b['label_zh']:<8} {b['periods']:>6} period(s) {b['amount']:>14}"
        for b in r["aging"]
    )
    lines.append("cases by stage: " + ", ".join(f"{s} {n}" for s, n in r["stages"].items()))
    for key in ("next_30_days", "next_90_days"):
        d = r["deadlines"][key]
        kinds = ", ".join(f"{kind} {n}" for kind, n in d["by_kind"].items() if n)
        lines.append(f"deadlines in the next {d['days']} days: {d['total']}" + (
            f" ({kinds})" if kinds else ""
        ))  # fmt: skip
    rec, tim, com, con = (
        k["recovery_rate"],
        k["timeliness"],
        k["complaint_rate"],
        k["conversion"],
    )
    lines += [
        f"recovery rate: {rec['recovered']} / {rec['under_collection']} = {_pct(rec['rate'])}",
        "timeliness: "
        + (
            f"median {tim['median_days']} day(s) from due date to payment "
            f"({tim['payments']} payment share(s))"
            if tim["median_days"] is not None
            else "no payments in the window"
        ),
        f"complaint rate: {com['per_100_cases'] or '-'} per 100 cases "
        f"({com['complaints']} complaint(s), {com['cases']} case(s))",
        f"conversion: {con['converted']} of {con['owners_in_arrears']} owner(s) in arrears "
        f"paid on time = {_pct(con['rate'])}",
    ]
    return "\n".join(lines)


@cases.command("report")
@click.option("--property", "property_", default=None, help="Only this property.")
@click.option("--from", "from_", default=None, help="First day (default: a year before --to).")
@click.option("--to", default=None, help="Last day (default: today).")
@_json_option
@with_context
def cases_report(
    ctx: AppContext, property_: str | None, from_: str | None, to: str | None, as_json: bool
) -> None:
    """Collection rate, aging, cases by stage, deadlines ahead and KPIs over a window."""
    service = _service(ctx)
    end = _date(to, "--to") or service.today()
    start = _date(from_, "--from") or add_years(end, -1) + dt.timedelta(days=1)
    report = case_report(service, Window(start, end), property=property_)
    emit(report, as_json, _report_text(report))
