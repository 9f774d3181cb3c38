"""``tiezheng faces``, ``tiezheng jobs``, ``tiezheng worker`` and ``tiezheng bundle enqueue``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from core.errors import TiezhengError
from core.settings import Settings
from evidence.jobs import JobInfo, format_progress
from web.cli import _by_option, _home_option, _json_option, bundle, cli, emit, with_context
from web.context import AppContext


class JobFailed(TiezhengError):
    """A job ended in state failed; its error is the message."""


def _bar(enabled: bool, label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress callback drawing a bar on stderr (only on a terminal), and its closer."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if not enabled or total <= 0:
            return
        bar = state.get("bar")
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            bar.__enter__()
            state["bar"] = bar
        bar.length = total
        if done > bar.pos:
            bar.update(done - bar.pos)

    def close() -> None:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)

    return update, close


# --- faces ---------------------------------------------------------------------------------


@cli.group()
def faces() -> None:
    """Face enrolment (with consent), withdrawal, and face checks of visit videos."""


@faces.command("enroll")
@click.argument("person_ref")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--role", type=click.Choice(["staff", "owner"]), required=True)
@click.option(
    "--consent",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The signed consent document (PDF or image); stored as evidence.",
)
@_by_option
@_json_option
@with_context
def faces_enroll(
    ctx: AppContext,
    person_ref: str,
    images: tuple[Path, ...],
    role: str,
    consent: Path,
    by: str | None,
    as_json: bool,
) -> None:
    """Enrol PERSON_REF (a user name for staff, an owner reference for owners) from photos
    showing exactly one face each."""
    actor = ctx.resolve_actor(by)
    result = ctx.faces.enroll(person_ref, list(images), role=role, consent=consent, actor=actor)
    data = result.as_dict()
    emit(
        data,
        as_json,
        f"enrolled {result.person} ({result.role}): entry {result.index}, consent stored as "
        f"entry {result.consent_index}, {len(result.template_hashes)} template(s)",
    )


@faces.command("withdraw")
@click.argument("person_ref")
@_by_option
@_json_option
@with_context
def faces_withdraw(ctx: AppContext, person_ref: str, by: str | None, as_json: bool) -> None:
    """Delete the face templates of PERSON_REF and log the withdrawal of consent."""
    actor = ctx.resolve_actor(by)
    result = ctx.faces.withdraw(person_ref, actor=actor)
    emit(
        result.as_dict(),
        as_json,
        f"withdrew {result.person}: {len(result.template_hashes)} template(s) deleted, "
        f"entry {result.index}",
    )


@faces.command("list")
@_json_option
@with_context
def faces_list(ctx: AppContext, as_json: bool) -> None:
    """People enrolled now or before (references, roles, template counts)."""
    people = [p.as_dict() for p in ctx.faces.persons()]
    text = "\n".join(
        f"{p['ref']:<24} {p['role']:<6} {p['status']:<11} {p['templates']} template(s)"
        for p in people
    )
    emit(people, as_json, text or "(nobody enrolled)")


def _check_text(data: dict[str, Any]) -> str:
    lines = [
        f"face check entry {data['entry']} of evidence {data['evidence']}: "
        f"{data['frames_sampled']} frame(s) sampled"
    ]
    for p in data["persons"]:
        distance = "-" if p["distance"] is None else f"{p['distance']:.4f}"
        if p["matched"]:
            lines.append(
                f"  {p['ref']:<20} matched      distance {distance}, {p['frames']} frame(s), "
                f"seen {p['first_seen_s']:g}-{p['last_seen_s']:g} s"
            )
        else:
            lines.append(f"  {p['ref']:<20} not matched  closest distance {distance}")
    if not data["persons"]:
        lines.append("  (nobody enrolled was checked)")
    lines.append(f"unknown people: {data['unknown_faces']}")
    return "\n".join(lines)


@faces.command("check")
@click.argument("index", type=int)
@click.option("--fps", type=float, default=1.0, show_default=True, help="Frames sampled per s.")
@click.option("--tolerance", type=float, default=0.6, show_default=True)
@click.option("--model", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True)
@click.option("--person", "persons", multiple=True, help="Also check this enrolled person.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Run the check now and print its result, or queue it for a worker.",
)
@_by_option
@_json_option
@with_context
def faces_check(
    ctx: AppContext,
    index: int,
    fps: float,
    tolerance: float,
    model: str,
    persons: tuple[str, ...],
    wait: bool,
    by: str | None,
    as_json: bool,
) -> None:
    """Check which enrolled people appear in the video of evidence entry INDEX: its uploader
    and each --person. Appends a face_check entry (a re-check supersedes the previous one)."""
    actor = ctx.resolve_actor(by)
    job, created = ctx.faces.submit_check(
        index,
        actor=actor,
        fps=fps,
        tolerance=tolerance,
        model=model,
        persons=persons,
        send=not wait,
    )
    if not wait:
        data = {"job": job.id, "state": job.state, "created": created}
        emit(data, as_json, f"job {job.id}: {job.state} (see `tiezheng jobs show {job.id}`)")
        return
    data = _run_here(ctx, job, label="frames", show=sys.stderr.isatty() and not as_json)
    emit(data, as_json, _check_text(data))


def _run_here(ctx: AppContext, job: JobInfo, *, label: str, show: bool) -> dict[str, Any]:
    """Run a queued job in this process (or wait for the worker running it); its result."""
    update, close = _bar(show, label)
    try:
        job = ctx.jobs.run_here(job.id, ctx, on_progress=update)
    finally:
        close()
    if job.state == "failed":
        raise JobFailed(f"job {job.id} failed: {job.error}")
    return job.result or {}


@faces.command("checks")
@click.argument("index", type=int)
@_json_option
@with_context
def faces_checks(ctx: AppContext, index: int, as_json: bool) -> None:
    """Every face check of evidence entry INDEX, oldest first."""
    ctx.faces.video_item(index)
    rows = ctx.faces.checks(index)
    text = "\n".join(
        f"entry {r['entry']}: {'automatic' if r['automatic'] else 'manual'}, "
        f"{r['model']} {r['parameters']['fps']:g} fps, tolerance {r['parameters']['tolerance']:g}"
        + (f", supersedes {r['supersedes']}" if r["supersedes"] is not None else "")
        + ": "
        + (", ".join(f"{p['ref']} {'yes' if p['matched'] else 'no'}" for p in r["persons"]) or "-")
        + f"; unknown {r['unknown_faces']}"
        for r in rows
    )
    emit(rows, as_json, text or f"(no face check of entry {index} yet)")


# --- jobs and workers ----------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Background jobs: face checks and bundle exports."""


def _job_line(job: JobInfo) -> str:
    result = "-" if job.result_index is None else f"entry {job.result_index}"
    return (
        f"{job.id:>6} {job.type:<14} {job.state:<8} {format_progress(job):>9} "
        f"{job.attempts}/{job.max_attempts}  {result}"
    )


@jobs.command("list")
@click.option("--state", default=None, help="queued, running, done or failed.")
@click.option("--type", "type_", default=None, help="face_check, bundle_export, ...")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@_json_option
@with_context
def jobs_list(
    ctx: AppContext, state: str | None, type_: str | None, limit: int, as_json: bool
) -> None:
    """The most recent jobs, newest first."""
    found = ctx.jobs.recent(state=state, type=type_, limit=limit)
    header = f"{'ID':>6} {'TYPE':<14} {'STATE':<8} {'PROGRESS':>9} TRIES RESULT"
    text = "\n".join([header, *(_job_line(j) for j in found)]) if found else "(no jobs)"
    emit([j.as_dict() for j in found], as_json, text)


@jobs.command("show")
@click.argument("job_id", type=int)
@_json_option
@with_context
def jobs_show(ctx: AppContext, job_id: int, as_json: bool) -> None:
    """State, progress, attempts, result and error of a job."""
    job = ctx.jobs.get(job_id)
    data = job.as_dict()
    lines = [
        f"job {job.id}: {job.type}, {job.state}, progress {format_progress(job)}, "
        f"attempt {job.attempts} of {job.max_attempts}",
    ]
    if job.result_index is not None:
        lines.append(f"result: entry {job.result_index}")
    if job.error:
        lines.append(f"error: {job.error}")
    emit(data, as_json, "\n".join(lines))


@jobs.command("retry")
@click.argument("job_id", type=int)
@with_context
def jobs_retry(ctx: AppContext, job_id: int) -> None:
    """Queue a failed job again (with a fresh set of attempts)."""
    job = ctx.jobs.retry(job_id)
    click.echo(f"job {job.id}: {job.state}")


@cli.command()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@_home_option
def worker(home: Path | None, workers: int) -> None:
    """Run background jobs until interrupted (Ctrl-C lets running jobs finish).

    The queue is embedded (SQLite in the instance home) unless TIEZHENG_QUEUE names Redis.
    Unfinished jobs of workers that died are picked up when a worker starts.
    """
    from evidence.jobs import run_worker

    settings = Settings.from_env(home=home)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("huey").setLevel(logging.WARNING)
    probe = AppContext(settings)
    try:
        probe.ledger  # noqa: B018 - fail now if the instance is missing or broken
    finally:
        probe.close()
    where = settings.queue_url or f"embedded ({settings.home / 'queue.db'})"

    def ready() -> None:
        click.echo(f"worker ready: {workers} worker(s), queue {where}", err=True)

    run_worker(settings, lambda: AppContext(settings), workers=workers, ready=ready)


# --- bundles in the background -------------------------------------------------------------


@bundle.command("enqueue")
@click.option("--case", "case", default=None, help="Case reference.")
@click.option("--index", "indexes", multiple=True, type=int, help="Evidence entry index.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--reason", default=None, help="Why (recorded in each custody trail).")
@click.option("--wait", is_flag=True, help="Run it now and wait (progress on a terminal).")
@_by_option
@_json_option
@with_context
def bundle_enqueue(
    ctx: AppContext,
    case: str | None,
    indexes: tuple[int, ...],
    out: Path,
    reason: str | None,
    wait: bool,
    by: str | None,
    as_json: bool,
) -> None:
    """Export a bundle as a background job (--case REF or --index N ...); prints the job id."""
    from evidence.jobs import submit_bundle_export
    from evidence.service import InvalidEvidenceInput

    if bool(case) == bool(indexes):
        raise InvalidEvidenceInput("give either --case or --index")
    actor = ctx.resolve_actor(by)
    ctx.exporter.select(case=case, indexes=list(indexes) or None)
    job = submit_bundle_export(
        ctx.jobs,
        out=out,
        actor=actor,
        case=case,
        indexes=list(indexes),
        reason=reason,
        send=not wait,
    )
    if wait:
        data = _run_here(ctx, job, label="bundle", show=sys.stderr.isatty() and not as_json)
        emit(data, as_json, f"wrote {data.get('path')}: export entry {data.get('export_index')}")
        return
    emit({"job": job.id, "state": job.state}, as_json, f"job {job.id}: {job.state}")
