"""Benchmark: cases — importing a billing export of 100,000 owners with 24 billing periods each
(2,400,000 rows) and computing every deadline of them.

Every row is measured against a naive baseline in the same run (the machine may be shared and
noisy, so no figure is hard-coded):

- Import (``tiezheng cases import FILE.csv``, i.e. ``cases.importer.import_file``: read, check
  every line, compare with the database, one ``import`` log entry, bulk inserts). Baseline: the
  obvious loop, row by row through the ORM: each row parsed with the same parsers, property,
  unit, owner and case looked up (or added) through the session, one ``Arrear`` object per row,
  one commit per owner. It is measured on a sample of owners in a fresh instance and scaled to
  the full count (it is linear: every owner costs the same queries). Target: under 60 s.
- Deadlines of every case. Ours: ``cases.deadlines.compute_many`` over the facts of all cases
  (the engine, as ``tiezheng cases deadlines`` runs it), and the whole command path
  (``CaseService.deadlines``: reading the facts from the database, then the engine). Baseline:
  a naive per-period loop without any caching: for every period, add three years, then step day
  by day asking the calendar package whether it is a working day, as a spreadsheet macro would.
  Its dates are checked equal to ours on every period. Target: under 10 s.

"Speed-up" is baseline time / our time; above 1 means ours is faster.

Run: ``python benchmarks/bench_cases.py`` (``make bench``); ``--quick`` for a smoke run;
``--database-url`` for PostgreSQL. The table is printed and written to docs/performance.md
under the heading "Cases" (other sections of that file are kept).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
import shutil
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import chinese_calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.deadlines import compute_many
from cases.importer import import_file
from cases.inputs import parse_amount, parse_date, parse_name, parse_period, parse_phone
from cases.models import Arrear, Case, Owner, Property, Unit
from cases.service import CaseService, paused_gc
from core.settings import Settings
from ledger.instance import init_instance
from web.context import AppContext

DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
HEADING = "## Cases"
PERIODS = 24
AS_OF = dt.date(2026, 11, 27)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国志强海燕"


def log(message: str) -> None:
    """Progress on stderr; the table alone goes to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- data ----------------------------------------------------------------------------------


def month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def write_export(path: Path, owners: int, rng: random.Random) -> int:
    """A billing export: ``owners`` owners in 200 properties, 24 monthly periods each (2023-01
    to 2024-12, due at month end), amounts by unit area, one period in ten partly paid."""
    periods = [(2023 + m // 12, m % 12 + 1) for m in range(PERIODS)]
    dues = [month_end(y, mo).isoformat() for y, mo in periods]
    names = [f"{y:04d}-{mo:02d}" for y, mo in periods]
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("property,unit,owner_name,owner_phone,period,amount,due_date,paid_amount\n")
        buf = io.StringIO()
        for i in range(owners):
            prop = f"小区{i % 200:03d}"
            unit = f"{i // 200 % 40 + 1}-{i // 8000 + 1}-{i % 200 + 101}"
            owner = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            phone = f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
            amount = Decimal(rng.randrange(60, 180)) * Decimal("2.80")  # area x 2.80 CNY/m2
            head = f"{prop},{unit},{owner},{phone},"
            for k in range(PERIODS):
                paid = f"{amount / 2:.2f}" if rng.random() < 0.1 else ""
                buf.write(f"{head}{names[k]},{amount:.2f},{dues[k]},{paid}\n")
            rows += PERIODS
            if i % 1000 == 999:
                f.write(buf.getvalue())
                buf = io.StringIO()
        f.write(buf.getvalue())
    return rows


def make_instance(home: Path, database_url: str | None, tsa: Path) -> AppContext:
    settings = Settings(
        home=home, database_url=database_url, timestamp_wait=5.0, checkpoint_interval=0.0
    )
    shutil.copytree(tsa, settings.tsa_dir)
    init_instance(settings)
    return AppContext(settings)


def service(ctx: AppContext) -> CaseService:
    return CaseService(engine=ctx.engine, ledger=ctx.ledger, evidence=ctx.evidence, clock=ctx.clock)


# --- baselines -----------------------------------------------------------------------------


def naive_import(ctx: AppContext, path: Path, owners: int) -> float:
    """Row by row through the ORM, one commit per owner, for the first ``owners`` owners of
    ``path``; returns the seconds taken (reading and parsing included)."""
    began = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f, Session(ctx.engine) as session:
        reader = csv.DictReader(f)
        current: tuple[str, str, str] | None = None
        case: Case | None = None
        seen = 0
        for row in reader:
            prop = parse_name(row["property"], "property")
            unit_code = parse_name(row["unit"], "unit", max_len=64)
            name = parse_name(row["owner_name"], "owner_name")
            phone = parse_phone(row["owner_phone"])
            key = (prop, unit_code, name)
            if key != current:
                if current is not None:
                    session.commit()
                    seen += 1
                    if seen == owners:
                        break
                current = key
                p = session.scalar(select(Property).where(Property.name == prop))
                if p is None:
                    p = Property(name=prop)
                    session.add(p)
                    session.flush()
                unit = session.scalar(
                    select(Unit).where(Unit.property_id == p.id, Unit.code == unit_code)
                )
                if unit is None:
                    unit = Unit(property_id=p.id, code=unit_code)
                    session.add(unit)
                    session.flush()
                owner = Owner(ref=f"O-{seen:08d}", name=name, phone=phone)
                session.add(owner)
                session.flush()
                case = Case(
                    ref=f"C-{seen:08d}",
                    owner_id=owner.id,
                    unit_id=unit.id,
                    stage="reminder",
                    limitation_mode="per_period",
                    created_at=dt.datetime.now(dt.UTC),
                )
                session.add(case)
                session.flush()
            assert case is not None
            session.add(
                Arrear(
                    case_id=case.id,
                    unit_id=case.unit_id,
                    period=parse_period(row["period"]),
                    amount=parse_amount(row["amount"], "amount"),
                    due_date=parse_date(row["due_date"], "due_date"),
                    paid_amount=parse_amount(row["paid_amount"] or "0", "paid_amount"),
                )
            )
        session.commit()
    return time.perf_counter() - began


def _is_workday(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # no official schedule for that year: weekends only
        return day.weekday() < 5


def naive_deadlines(facts: list[Any]) -> tuple[float, list[dt.date]]:
    """Per period, no caching: three years on (month-end if no such day), then day by day to
    the next working day; returns (seconds, the dates in our order)."""
    began = time.perf_counter()
    out: list[tuple[dt.date, str, str]] = []
    for case in facts:
        for p in case.periods:
            due = p.due
            year = due.year + 3
            day = due.day
            while True:
                try:
                    end = dt.date(year, due.month, day)
                    break
                except ValueError:
                    day -= 1
            while not _is_workday(end):
                end += dt.timedelta(days=1)
            out.append((end, case.ref, p.period))
    out.sort()
    return time.perf_counter() - began, [d for d, _, _ in out]


# --- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    ours: float
    baseline: float
    target: float | None
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        head = ["Measure", "Ours (s)", "Baseline (s)", "Speed-up", "Target", "Met"]
        body = []
        for r in self.rows:
            body.append(
                [
                    r.measure,
                    f"{r.ours:,.1f}",
                    f"{r.baseline:,.1f}{r.note}",
                    f"{r.baseline / r.ours:,.1f}x",
                    "" if r.target is None else f"< {r.target:.0f} s",
                    "" if r.target is None else ("yes" if r.ours < r.target else "NO"),
                ]
            )
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(head), sep, *(line(b) for b in body)])


def wrap(section: str, width: int = 100) -> str:
    """Wrap the prose lines of a Markdown section (tables and headings stay as they are)."""
    out = []
    for line in section.splitlines():
        if len(line) <= width or line.startswith(("|", "#")):
            out.append(line)
            continue
        stripped = line.lstrip(" ")
        indent = " " * (len(line) - len(stripped))
        if stripped.startswith("- "):
            out.append(
                textwrap.fill(
                    stripped,
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent + "  ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
        else:
            out.append(
                textwrap.fill(
                    stripped,
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent,
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
    return "\n".join(out)


def write_docs(section: str) -> None:
    """Replace (or add) the "## Cases" section of docs/performance.md, keeping the others."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Performance\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == HEADING), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        keep_after = "\n".join(lines[end:])
        new = "\n".join(lines[:start]).rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
        if keep_after:
            new += "\n" + keep_after + "\n"
    DOCS.write_text(new, encoding="utf-8")


@dataclass
class Timer:
    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._began = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._began


def run(args: argparse.Namespace) -> Results:
    owners = args.owners or (2_000 if args.quick else 100_000)
    sample = min(owners, args.sample or (200 if args.quick else 2_000))
    rng = random.Random(args.seed)
    results = Results()
    scratch = Path(tempfile.mkdtemp(prefix="tzbench-cases-", dir=args.workdir))
    try:
        from ledger.tsa import BuiltinTSA

        tsa = scratch / "tsa-template"
        BuiltinTSA.create(tsa)
        export = scratch / "export.csv"
        log(f"writing a billing export of {owners:,} owners x {PERIODS} periods")
        rows = write_export(export, owners, rng)
        size_mb = export.stat().st_size / 1e6
        db = "PostgreSQL" if args.database_url else "SQLite"

        log(f"import ({db})")
        ours_ctx = make_instance(scratch / "ours", args.database_url, tsa)
        svc = service(ours_ctx)
        with Timer() as t_import:
            result = import_file(svc, export, actor="system")
        assert result.counts["arrears"] == rows and result.counts["cases"] == owners, result
        log(f"  {t_import.seconds:.1f} s")

        log(f"baseline import: {sample:,} owners row by row")
        base_ctx = make_instance(scratch / "baseline", args.baseline_database_url, tsa)
        base_s = naive_import(base_ctx, export, sample) * owners / sample
        base_ctx.close()
        results.rows.append(
            Row(
                f"import {rows:,} rows ({owners:,} owners x {PERIODS}), {db}",
                t_import.seconds,
                base_s,
                60.0,
                f" (est. from {sample:,} owners)",
            )
        )

        # Bulk work runs with the cyclic collector paused, as the service runs it.
        log("deadlines: reading the facts")
        with Timer() as t_facts, paused_gc():
            facts = svc.all_facts()
        log("deadlines: the engine")
        with Timer() as t_engine, paused_gc():
            computed = compute_many(facts, AS_OF)
        assert len(computed) == rows
        ours_dates = [r.date for r in computed]  # already soonest first
        del computed
        log("deadlines: the engine with the cyclic collector on (for comparison)")
        with Timer() as t_gc:
            assert len(compute_many(facts, AS_OF)) == rows
        log("deadlines: the command path (database and engine)")
        with Timer() as t_full:
            full = svc.deadlines(AS_OF)
        assert len(full) == rows
        del full
        log("baseline deadlines: naive per-period loop")
        with paused_gc():
            naive_s, naive_dates = naive_deadlines(facts)
        assert naive_dates == ours_dates, "the naive loop and the engine disagree"
        results.rows.append(
            Row(f"deadlines of {owners:,} cases ({rows:,} periods), engine", t_engine.seconds,
                naive_s, 10.0)
        )  # fmt: skip
        results.rows.append(
            Row(f"deadlines from the database ({db}), read + engine", t_full.seconds,
                naive_s + t_facts.seconds, None, " (naive + same read)")
        )  # fmt: skip
        results.notes.append(
            f"Export: {size_mb:,.0f} MB of CSV (UTF-8). Imported: "
            + ", ".join(f"{n:,} {k}" for k, n in result.counts.items() if n)
            + ". "
            f"Reading the facts of all cases alone took {t_facts.seconds:.1f} s. With "
            f"Python's cyclic garbage collector on, the engine took {t_gc.seconds:.1f} s "
            f"instead of {t_engine.seconds:.1f} s."
        )
        results.notes.append(
            f"The naive deadline loop's {rows:,} dates equal the engine's. "
            f"Python {sys.version.split()[0]}, {db}."
        )
        ours_ctx.close()
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the measurements, print the table, write docs/performance.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 owners, for a smoke run")
    parser.add_argument("--owners", type=int, help="owners in the export (100,000)")
    parser.add_argument("--sample", type=int, help="owners of the naive import (2,000)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument("--baseline-database-url", default=None, help="a second PostgreSQL db")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--no-docs", action="store_true", help="do not write performance.md")
    args = parser.parse_args(argv)
    if args.database_url and not args.baseline_database_url:
        parser.error("--database-url needs --baseline-database-url (an empty second database)")
    began = time.perf_counter()
    results = run(args)
    table = results.table()
    print(table)
    for note in results.notes:
        print(f"- {note}")
    if not args.no_docs and not args.quick:
        import os
        import sqlite3

        section = "\n".join(
            [
                HEADING,
                "",
                f"Measured with `benchmarks/bench_cases.py` (`--quick` for a smoke run) on "
                f"{dt.date.today().isoformat()}, on {os.cpu_count()} CPU cores of a virtual "
                f"machine shared with other jobs; Python {sys.version.split()[0]}, SQLite "
                f"{sqlite3.sqlite_version}. The full run took "
                f"{time.perf_counter() - began:,.0f} s. Each baseline was measured in the same "
                'run. "Speed-up" is the baseline\'s time divided by ours: above 1 means ours is '
                "faster.",
                "",
                table,
                "",
                "Context from the same run:",
                "",
                *(f"- {n}" for n in results.notes),
                "",
                "### What each row measures",
                "",
                "- **Import**: `tiezheng cases import FILE.csv` as the command runs it "
                "(`cases.importer.import_file`) on a fresh instance: a billing export of "
                "100,000 owners in 200 properties, 24 monthly periods each, one period in ten "
                "partly paid, no owner or case references (so all are generated). It reads and "
                "checks every line, compares with the database, appends one `import` entry, "
                "and writes with the driver's `executemany` in chunks of 20,000 rows.",
                "  - *Baseline*: the obvious loop, row by row through the ORM. Each row is "
                "parsed by the same parsers, property and unit are looked up (or added) through "
                "the session, owner and case are added, there is one `Arrear` object per row, "
                "and one commit per owner. It is measured on the first 2,000 owners in a "
                "fresh instance and scaled linearly to 100,000. Every owner costs the same "
                "queries and one commit, so the cost is linear.",
                "- **Deadlines, engine**: `cases.deadlines.compute_many` over the facts of all "
                "cases, as `tiezheng cases deadlines` runs it: every limitation row with its "
                "basis and status, soonest first.",
                "  - *Baseline*: a per-period loop without caching. For each period it adds "
                "three years (the month-end if there is no such day), then steps day by day "
                "while `chinese_calendar.is_workday` says no (weekends only for years without "
                "a schedule), and sorts the dates at the end. Its 2,400,000 dates are checked "
                "equal to the engine's.",
                "- **Deadlines from the database**: the whole command path "
                "(`CaseService.deadlines`). It reads the cases, periods, events and "
                "preservations in one query per table, builds the engine's facts, then "
                "computes. It has no target. Its baseline is the naive loop plus the same "
                "read.",
                "- Bulk work runs with Python's cyclic garbage collector paused "
                "(`cases.service.paused_gc`): millions of small objects without cycles would "
                "otherwise trigger repeated full passes over the growing heap (see the note "
                "above for the engine with the collector on).",
                "",
            ]
        )
        write_docs(wrap(section))
        log(f"wrote the Cases section of {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
