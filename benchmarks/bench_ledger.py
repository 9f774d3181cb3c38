"""Benchmark: the evidence log — durable appends, Merkle proofs and the full audit.

Every row is measured against a baseline in the same run (the machine may be shared and
noisy, so no figure is hard-coded):

- Durable appends per second (``Ledger.append_durable``: committed, not yet checkpointed) from
  1 and 16 threads of one process and from 4 processes, on SQLite and on PostgreSQL. Baseline:
  the same sequencer with group commit off (``max_batch=1``: one entry per transaction, same
  engine, same durability: SQLite WAL with ``synchronous=FULL``, PostgreSQL
  ``synchronous_commit=on``). Target: at least 5,000/s from 16 threads on SQLite.
- Inclusion and consistency proof latency (median and max of 1,000 random proofs) on a log of
  1,000,000 entries, through ``Ledger.prove_inclusion`` / ``prove_consistency`` on stored
  checkpoints, every proof checked with ``ledger.merkle``'s verifiers (untimed). Baseline:
  pymerkle 7 ``SqliteTree`` holding the same entry bytes (its root is checked equal to ours).
  Target: median under 1 ms.
- ``tiezheng ledger verify`` (``ledger.audit.audit_log``, called as the CLI calls it) of that
  log. Baseline: the bare cost of reading every entry's bytes in the same chunked order and
  computing its RFC 9162 leaf hash (no parsing, no chain, no tree, no signatures). Target:
  under 60 s.

"Speed-up" is ours over the baseline: our rate / its rate, or its time / our time; above 1
means ours is faster.

Run: ``python benchmarks/bench_ledger.py`` (``make bench``); ``--quick`` for a smoke run,
``--skip-postgres`` without a PostgreSQL server.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import queue
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.exc import OperationalError

from core.db import make_engine
from core.settings import Settings
from ledger import merkle
from ledger.audit import CHUNK, audit_log
from ledger.instance import init_instance, open_ledger, trust_anchors, verifier
from ledger.models import Entry
from ledger.sequencer import Sequencer
from ledger.service import Ledger
from ledger.tsa import BuiltinTSA

ACTOR = "system"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BUILD_TXN = 10_000  # entries per transaction when building the big log
BUILD_CALL = 50_000  # entries generated and handed to append_many at a time


def log(message: str) -> None:
    """Progress on stderr; the table alone goes to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def evidence_payload(n: int) -> dict[str, Any]:
    """A realistic evidence payload (entries of about 600 bytes): hashes, neutral name, claims."""
    case = f"C2025-{n % 9973:05d}"
    seed = n.to_bytes(8, "big", signed=True)
    return {
        "sha256": hashlib.sha256(seed).hexdigest(),
        "sm3": hashlib.sha256(b"sm3" + seed).hexdigest(),
        "size": 10_000 + n * 7919 % 1_000_000_000,
        "media_type": "video/mp4",
        "filename": f"{case}_visit_20250301T101500Z_{n}.mp4",
        "kind": "visit_video",
        "case": case,
        "purpose": "证明已于2025年3月1日上门催缴物业费",
        "claims": {"captured_at": "2025-03-01T10:15:00Z", "device": "android-phone"},
    }


# -- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table; ``speedup`` above 1 means ours is faster."""

    measure: str
    ours: str
    baseline: str
    speedup: float | None
    target: str = ""
    met: bool | None = None


@dataclass
class Results:
    """The table and the notes printed under it."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rate(self, measure: str, ours: float, base: float, target: float | None = None) -> None:
        self.rows.append(
            Row(
                measure,
                f"{ours:,.0f}/s",
                f"{base:,.0f}/s",
                ours / base if base else None,
                "" if target is None else f">= {target:,.0f}/s",
                None if target is None else ours >= target,
            )
        )

    def seconds(
        self, measure: str, ours: float, base: float, target: float | None = None, unit: str = "s"
    ) -> None:
        scale = 1000.0 if unit == "ms" else 1.0
        digits = 3 if unit == "ms" else 1
        self.rows.append(
            Row(
                measure,
                f"{ours * scale:,.{digits}f} {unit}",
                f"{base * scale:,.{digits}f} {unit}",
                base / ours if ours else None,
                "" if target is None else f"< {target * scale:g} {unit}",
                None if target is None else ours < target,
            )
        )

    def skipped(self, measure: str, why: str) -> None:
        self.rows.append(Row(measure, why, "", None))

    def table(self) -> str:
        head = ["Measure", "Ours", "Baseline", "Speed-up", "Target", "Met"]
        body = [
            [
                r.measure,
                r.ours,
                r.baseline,
                "" if r.speedup is None else f"{r.speedup:.2f}x",
                r.target,
                "" if r.met is None else ("yes" if r.met else "NO"),
            ]
            for r in self.rows
        ]
        widths = [max(len(c) for c in col) for col in zip(head, *body, strict=False)]
        lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for cells in body:
            lines.append(
                "| "
                + " | ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
                + " |"
            )
        return "\n".join(lines)


# -- instances -----------------------------------------------------------------------------


def make_instance(home: Path, database_url: str | None, tsa_template: Path | None) -> Settings:
    """A fresh instance; a copied built-in TSA saves its RSA key generation."""
    settings = Settings(
        home=home, database_url=database_url, checkpoint_interval=0.0, timestamp_wait=5.0
    )
    if tsa_template is not None:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tsa_template, settings.tsa_dir)
    init_instance(settings)
    return settings


@contextmanager
def opened(settings: Settings) -> Iterator[Ledger]:
    """The instance's ledger, opened as the app opens it (engine, log key, TSA)."""
    engine = make_engine(settings.db_url)
    try:
        yield open_ledger(settings, engine=engine)
    finally:
        engine.dispose()


@contextmanager
def scratch_pg_database(admin_url: str) -> Iterator[str]:
    """A throw-away PostgreSQL database (ledger tables refuse DELETE, so drop it whole)."""
    url = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = "tzbench_" + uuid.uuid4().hex[:12]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# -- durable appends -----------------------------------------------------------------------


AppendFn = Callable[[int], object]


def appender(ledger: Ledger, grouped: bool) -> AppendFn:
    """Ours (the ledger's group-committing sequencer) or the baseline (one entry per txn)."""
    if grouped:

        def ours(n: int) -> object:
            return ledger.append_durable("evidence", evidence_payload(n), ACTOR)

        return ours
    naive = Sequencer(ledger.engine, ledger.clock, max_batch=1)

    def baseline(n: int) -> object:
        return naive.append("evidence", ACTOR, evidence_payload(n))

    return baseline


def run_threads(append: AppendFn, threads: int, duration: float) -> tuple[int, float]:
    """(appends, seconds) from ``threads`` threads appending for ``duration`` seconds."""
    go = threading.Event()
    counts = [0] * threads
    errors: list[BaseException] = []
    deadline = [0.0]

    def work(slot: int) -> None:
        go.wait()
        n = slot * 10_000_000
        try:
            while time.perf_counter() < deadline[0]:
                append(n)
                n += 1
                counts[slot] += 1
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    start = time.perf_counter()
    deadline[0] = start + duration
    go.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


# Baseline and ours alternate in short segments, B O O B B O O B: on a machine whose disk
# speed drifts (shared storage), both then see the same conditions on average.
SCHEDULE = (False, True, True, False) * 2


def raw_commit_rate(directory: Path, seconds: float) -> float:
    """Commits/s of bare sqlite3 (one open connection, WAL, synchronous=FULL, one 600-byte row
    per commit): what this disk allows a single committer, whatever the code above it."""
    path = directory / "commit-probe.db"
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, d BLOB)")
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO t VALUES (?, ?)", (n, b"x" * 600))
            con.execute("COMMIT")
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        con.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _process_appender(
    settings: Settings, segment: float, barrier: Any, out: Any, slot: int
) -> None:
    """Child process: for each segment of SCHEDULE, start with the others, append, report."""
    with opened(settings) as ledger:
        appenders = {grouped: appender(ledger, grouped) for grouped in (False, True)}
        base = slot * 10_000_000
        for grouped, append in appenders.items():
            append(base - 1 - int(grouped))  # warm-up: connection, imports, caches
        out.put("ready")
        n = base
        for grouped in SCHEDULE:
            append = appenders[grouped]
            barrier.wait()
            deadline = time.perf_counter() + segment
            count = 0
            while time.perf_counter() < deadline:
                append(n)
                n += 1
                count += 1
            out.put(count)


def _collect(out: Any, procs: list[Any], timeout: float) -> list[Any]:
    """One message from each child; fail fast if a child dies instead of waiting it out."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < len(procs):
        try:
            got.append(out.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    p.terminate()
                raise RuntimeError(f"appending processes failed (exit codes {dead})") from None
    return got


def run_processes(settings: Settings, processes: int, segment: float) -> tuple[Rates, int]:
    """Rates of baseline and ours from ``processes`` processes, and all entries written."""
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    barrier = mp.Barrier(processes + 1, timeout=60)
    procs = [
        mp.Process(target=_process_appender, args=(settings, segment, barrier, out, i + 1))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    _collect(out, procs, 300)
    rates = Rates()
    for grouped in SCHEDULE:
        barrier.wait()
        start = time.perf_counter()
        count = sum(_collect(out, procs, segment + 60))
        rates.add(grouped, count, time.perf_counter() - start)
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"appending process exited with {p.exitcode}")
    return rates, rates.appends + 2 * processes


@dataclass
class Rates:
    """Appends and seconds of baseline (False) and ours (True), summed over segments."""

    counts: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    seconds: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})

    def add(self, grouped: bool, count: int, seconds: float) -> None:
        self.counts[grouped] += count
        self.seconds[grouped] += seconds

    def rate(self, grouped: bool) -> float:
        return self.counts[grouped] / self.seconds[grouped]

    @property
    def appends(self) -> int:
        return sum(self.counts.values())


def bench_appends(
    results: Results,
    label: str,
    settings: Settings,
    segment: float,
    threads: list[int],
    processes: int,
    target_16: float | None,
) -> None:
    written = 0
    with opened(settings) as ledger:
        for grouped in (True, False):
            written += len([appender(ledger, grouped)(i) for i in range(-5, 0)])  # warm-up
        for n in threads:
            log(f"{label}: {n} thread(s)")
            rates = Rates()
            for grouped in SCHEDULE:
                count, elapsed = run_threads(appender(ledger, grouped), n, segment)
                rates.add(grouped, count, elapsed)
            written += rates.appends
            results.rate(
                f"{label}: durable appends, {n} thread{'s' if n > 1 else ''}",
                rates.rate(True),
                rates.rate(False),
                target_16 if n == 16 else None,
            )
        log(f"{label}: {processes} processes")
        rates, total = run_processes(settings, processes, segment)
        written += total
        results.rate(
            f"{label}: durable appends, {processes} processes", rates.rate(True), rates.rate(False)
        )
        # Honesty check: every counted append is in one unbroken chain, no gap, no fork.
        log(f"{label}: auditing the {written:,} appended entries")
        size = ledger.size()
        if size != written:
            raise SystemExit(f"{label}: log has {size} entries, {written} appends counted")
        ledger.checkpoint()
        report = audit_log(
            ledger.engine,
            verifier=verifier(settings),
            origin=settings.log_origin,
            trust_anchors=trust_anchors(settings),
        )
        if not report.ok or report.entries != written:
            raise SystemExit(f"{label}: audit failed: {report.problems[:1]}")


# -- the big log: proofs and audit ---------------------------------------------------------


def checkpoint_sizes(entries: int, count: int, rng: random.Random) -> list[int]:
    """``count`` stored checkpoint sizes: random ones below ``entries``, and ``entries``."""
    count = max(1, min(count, entries))
    return [*sorted(rng.sample(range(1, entries), count - 1)), entries]


def build_log(settings: Settings, sizes: list[int]) -> float:
    """Append entries with append_many in big transactions, checkpointing at ``sizes``."""
    with opened(settings) as ledger:
        ledger.sequencer.max_batch = BUILD_TXN
        start = time.perf_counter()
        done = 0
        last_log = start
        for target in sizes:
            while done < target:
                stop = min(target, done + BUILD_CALL)
                ledger.sequencer.append_many(
                    [("evidence", ACTOR, evidence_payload(n)) for n in range(done, stop)]
                )
                done = stop
            ledger.checkpoint()
            if time.perf_counter() - last_log > 15:
                last_log = time.perf_counter()
                log(f"  {done:,} entries, {last_log - start:.0f} s")
        return time.perf_counter() - start


def build_pymerkle(settings: Settings, path: Path, entries: int, expected_root: bytes) -> float:
    """pymerkle SqliteTree with the same entry bytes; its root must equal our checkpoint's."""
    from pymerkle import SqliteTree

    engine = make_engine(settings.db_url)
    start = time.perf_counter()
    tree: Any = SqliteTree(str(path))
    try:
        with engine.connect() as conn:
            for first in range(0, entries, BUILD_CALL):
                rows = conn.execute(
                    select(Entry.data)
                    .where(Entry.idx >= first, Entry.idx < first + BUILD_CALL)
                    .order_by(Entry.idx)
                ).scalars()
                tree.append_entries([bytes(d) for d in rows])
        elapsed = time.perf_counter() - start
        if tree.get_size() != entries or tree.get_root(entries) != expected_root:
            raise SystemExit("pymerkle's root differs from ours: the baseline is not comparable")
    finally:
        tree.close()
        engine.dispose()
    return elapsed


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """(seconds, value) of one call."""
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def summary(latencies: list[float]) -> tuple[float, float]:
    return statistics.median(latencies), max(latencies)


def bench_proofs(
    results: Results,
    settings: Settings,
    pm_path: Path,
    entries: int,
    sizes: list[int],
    proofs: int,
    rng: random.Random,
) -> None:
    from pymerkle import SqliteTree
    from pymerkle import verify_consistency as pm_verify_consistency
    from pymerkle import verify_inclusion as pm_verify_inclusion

    indices = [rng.randrange(entries) for _ in range(proofs)]
    older = [s for s in sizes if s < entries] or [entries]
    olds = [rng.choice(older) for _ in range(proofs)]

    # Ours: a fresh process-level ledger (cold tile cache), the API the CLI and web use.
    with opened(settings) as ledger:
        roots = {cp.size: cp.root for cp in ledger.checkpoints()}
        inc: list[float] = []
        inc_proofs = []
        log(f"ours: {proofs} inclusion proofs at size {entries:,}")
        for i in indices:
            dt, (size, proof) = timed(ledger.prove_inclusion, i)
            inc.append(dt)
            inc_proofs.append((i, size, proof))
        con: list[float] = []
        con_proofs = []
        log(f"ours: {proofs} consistency proofs to size {entries:,}")
        for old in olds:
            dt, proof = timed(ledger.prove_consistency, old, entries)
            con.append(dt)
            con_proofs.append((old, proof))
        # Untimed: every proof must verify against the signed checkpoints' roots.
        for i, size, proof in inc_proofs:
            if size != entries:
                raise SystemExit(f"inclusion proof against size {size}, not {entries}")
            leaf = merkle.hash_leaf(ledger.entry(i))
            merkle.verify_inclusion(leaf, i, size, proof, roots[size])
        for old, proof in con_proofs:
            merkle.verify_consistency(old, entries, proof, roots[old], roots[entries])

    # Baseline: pymerkle (1-based indices), freshly opened (cold subroot cache).
    tree: Any = SqliteTree(str(pm_path))
    try:
        pm_inc: list[float] = []
        log(f"pymerkle: {proofs} inclusion proofs")
        sample = []
        for k, i in enumerate(indices):
            dt, proof = timed(tree.prove_inclusion, i + 1, entries)
            pm_inc.append(dt)
            if k % 10 == 0:
                sample.append((i, proof))
        pm_con: list[float] = []
        pm_con_sample = []
        log(f"pymerkle: {proofs} consistency proofs")
        for k, old in enumerate(olds):
            dt, proof = timed(tree.prove_consistency, old, entries)
            pm_con.append(dt)
            if k % 10 == 0:
                pm_con_sample.append((old, proof))
        # Untimed: a sample of its proofs must verify too, or it is not doing the work.
        root = tree.get_root(entries)
        for i, proof in sample:
            pm_verify_inclusion(tree.get_leaf(i + 1), root, proof, index=i + 1, size=entries)
        for old, proof in pm_con_sample:
            pm_verify_consistency(roots[old], root, proof, prior_size=old, later_size=entries)
    finally:
        tree.close()

    med, worst = summary(inc)
    pm_med, pm_worst = summary(pm_inc)
    n = f"{entries:,}"
    results.seconds(f"inclusion proof at {n}, median", med, pm_med, 0.001, "ms")
    results.seconds(f"inclusion proof at {n}, max", worst, pm_worst, None, "ms")
    med, worst = summary(con)
    pm_med, pm_worst = summary(pm_con)
    results.seconds(f"consistency proof to {n}, median", med, pm_med, 0.001, "ms")
    results.seconds(f"consistency proof to {n}, max", worst, pm_worst, None, "ms")


def read_and_hash(settings: Settings) -> float:
    """Baseline: read every entry's bytes in the audit's chunk order and leaf-hash them."""
    engine = make_engine(settings.db_url)
    try:
        start = time.perf_counter()
        sha = hashlib.sha256
        expected = 0
        with engine.connect() as conn:
            while True:
                rows = conn.execute(
                    select(Entry.idx, Entry.data)
                    .where(Entry.idx >= expected)
                    .order_by(Entry.idx)
                    .limit(CHUNK)
                ).all()
                if not rows:
                    break
                for row in rows:
                    sha(b"\x00" + bytes(row.data)).digest()
                expected = int(rows[-1].idx) + 1
        return time.perf_counter() - start
    finally:
        engine.dispose()


def bench_verify(results: Results, settings: Settings, entries: int, checkpoints: int) -> None:
    log("baseline: reading and hashing every entry")
    base = read_and_hash(settings)
    log(f"ours: ledger verify of {entries:,} entries")
    engine = make_engine(settings.db_url)
    try:
        start = time.perf_counter()
        report = audit_log(
            engine,
            verifier=verifier(settings),
            origin=settings.log_origin,
            trust_anchors=trust_anchors(settings),
        )
        ours = time.perf_counter() - start
    finally:
        engine.dispose()
    if not report.ok or report.entries != entries or report.checkpoints != checkpoints:
        raise SystemExit(f"audit of the benchmark log failed: {report.problems[:1]}")
    if report.pending:
        raise SystemExit(f"{len(report.pending)} checkpoints left without a timestamp")
    results.seconds(
        f"ledger verify, {entries:,} entries, {checkpoints:,} checkpoints", ours, base, 60.0
    )


# -- main ----------------------------------------------------------------------------------


def pg_reachable(url: str) -> str | None:
    """None if we can connect, else why not."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except OperationalError as e:
        return str(e.orig).strip().splitlines()[0] if e.orig else str(e)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print one table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--entries", type=int, help="log size for proofs and verify (1,000,000)")
    parser.add_argument("--checkpoints", type=int, help="stored checkpoints in it (1,000)")
    parser.add_argument("--proofs", type=int, default=1000, help="random proofs of each kind")
    parser.add_argument(
        "--duration", type=float, help="seconds of each append measurement, per variant (4)"
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TIEZHENG_BENCH_DATABASE_URL", DEFAULT_PG_URL),
        help="PostgreSQL server to create a scratch database on",
    )
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    n_checkpoints = args.checkpoints or (100 if args.quick else 1000)
    duration = args.duration or (1.0 if args.quick else 4.0)
    rng = random.Random(args.seed)
    results = Results()
    began = time.perf_counter()

    scratch = Path(tempfile.mkdtemp(prefix="tzbench-", dir=args.workdir))
    try:
        tsa_template = scratch / "tsa-template"
        BuiltinTSA.create(tsa_template)

        raw_before = raw_commit_rate(scratch, 2.0)
        log("SQLite: durable appends")
        sqlite = make_instance(scratch / "appends-sqlite", None, tsa_template)
        bench_appends(results, "SQLite", sqlite, duration / 4, [1, 16], args.processes, 5000.0)

        why = "--skip-postgres" if args.skip_postgres else pg_reachable(args.pg_url)
        if why is None:
            with scratch_pg_database(args.pg_url) as url:
                log("PostgreSQL: durable appends")
                pg = make_instance(scratch / "appends-pg", url, tsa_template)
                bench_appends(
                    results, "PostgreSQL", pg, duration / 4, [1, 16], args.processes, None
                )
        else:
            results.skipped("PostgreSQL: durable appends", "skipped")
            results.notes.append(f"PostgreSQL rows skipped: {why}")

        raw_after = raw_commit_rate(scratch, 2.0)
        results.notes.append(
            f"Disk: bare sqlite3 (one open connection, WAL, synchronous=FULL, one row per "
            f"commit) managed {raw_before:,.0f} commits/s before the append rows and "
            f"{raw_after:,.0f}/s after. Group commit with 16 appenders, each with one entry in "
            f"flight, puts at most 16 entries in a commit: about "
            f"{16 * max(raw_before, raw_after):,.0f}/s at best on this disk."
        )
        log(f"building a log of {entries:,} entries with {n_checkpoints:,} checkpoints")
        big = make_instance(scratch / "big", None, tsa_template)
        sizes = checkpoint_sizes(entries, n_checkpoints, rng)
        build_s = build_log(big, sizes)
        results.notes.append(
            f"Building the {entries:,}-entry log (append_many, {BUILD_TXN:,} entries per "
            f"transaction, {len(sizes):,} signed and timestamped checkpoints) took "
            f"{build_s:,.0f} s ({entries / build_s:,.0f} entries/s)."
        )
        with opened(big) as ledger:
            latest_root = ledger.checkpoint_at().root
        log("building the pymerkle SqliteTree of the same entries")
        pm_path = scratch / "pymerkle.db"
        pm_s = build_pymerkle(big, pm_path, entries, latest_root)
        results.notes.append(
            f"pymerkle SqliteTree.append_entries of the same bytes took {pm_s:,.1f} s; "
            "its root equals our checkpoint's."
        )
        bench_proofs(results, big, pm_path, entries, sizes, args.proofs, rng)
        results.notes.append(
            f"Proofs: {args.proofs:,} random inclusion proofs (random index, against the latest "
            f"checkpoint, size {entries:,}) and {args.proofs:,} consistency proofs (from a random "
            "stored checkpoint to the latest), each in a freshly opened ledger and pymerkle "
            "tree; every one of ours and every tenth of pymerkle's verified (untimed)."
        )
        bench_verify(results, big, entries, len(sizes))
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(
        f"Ledger benchmark, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPU cores, "
        f"Python {sys.version.split()[0]}, total {time.perf_counter() - began:,.0f} s"
    )
    print()
    print(results.table())
    print()
    for note in results.notes:
        print(f"- {note}")
    missed = [r.measure for r in results.rows if r.met is False]
    if missed:
        print(f"- Targets missed: {'; '.join(missed)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
