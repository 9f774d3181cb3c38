"""The ``tiezheng`` command line. Only this module (and the web app) ends the process."""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.accounts import AccountService, generate_password
from core.clock import zulu
from core.db import transaction
from core.errors import TiezhengError
from core.settings import Settings
from ledger.instance import init_instance, trust_anchors, verifier
from ledger.service import Receipt
from web.context import AppContext

if TYPE_CHECKING:
    from ledger.audit import AuditReport

F = TypeVar("F", bound=Callable[..., Any])


def _home_option(f: F) -> F:
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Instance directory (default: $TIEZHENG_HOME, else ./instance).",
    )(f)


def _json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def _by_option(f: F) -> F:
    return click.option(
        "--by",
        default=None,
        metavar="USER",
        help="The acting user (default: $TIEZHENG_ACTOR, else 'system').",
    )(f)


def with_context(f: Callable[..., Any]) -> Callable[..., Any]:
    """Build the AppContext from --home and close it afterwards."""

    @functools.wraps(f)
    def wrapper(*args: Any, home: Path | None = None, **kwargs: Any) -> Any:
        ctx = AppContext.from_env(home=home)
        try:
            return f(ctx, *args, **kwargs)
        finally:
            ctx.close()

    return _home_option(wrapper)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=None, sort_keys=False))
    else:
        click.echo(text if text is not None else json.dumps(data, ensure_ascii=False, indent=2))


def receipt_dict(r: Receipt) -> dict[str, Any]:
    return {
        "index": r.index,
        "leaf_hash": r.leaf_hash.hex(),
        "time": r.time,
        "checkpoint_size": r.checkpoint_size,
        "timestamp": r.timestamp.as_dict(),
    }


# Command groups of other feature areas live in their own modules (web/cli_<area>.py); each
# adds its commands to ``cli`` (or to a group here) when imported. They are imported only when
# one of their commands is asked for, so that e.g. `evidence add` does not pay for loading the
# face engine, the case module and their libraries.
LAZY_COMMANDS: dict[str, tuple[str, ...]] = {
    "cases": ("web.cli_cases", "web.cli_cases_work"),
    "faces": ("web.cli_faces",),
    "jobs": ("web.cli_faces",),
    "worker": ("web.cli_faces",),
    "bundle": ("web.cli_faces",),  # adds `bundle enqueue`
}


def _load(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


class TiezhengGroup(click.Group):
    """Maps domain errors to one line on stderr and their exit code; loads areas on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            _load(LAZY_COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TiezhengError as e:
            click.echo(f"error: {e.message}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=TiezhengGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tiezheng")
def cli() -> None:
    """Tiezheng (铁证): evidence log, evidence, cases."""


@cli.command()
@_home_option
def init(home: Path | None) -> None:
    """Create the instance: database, log key, built-in TSA. Idempotent; never overwrites keys."""
    settings = Settings.from_env(home=home)
    result = init_instance(settings)
    click.echo(f"instance: {settings.home}")
    click.echo("log key: " + ("created" if result.created_key else "kept (already present)"))
    click.echo("built-in TSA: " + ("created" if result.created_tsa else "kept (already present)"))
    click.echo(f"verifier key: {result.vkey}")


# --- users ---------------------------------------------------------------------------------


@cli.group()
def user() -> None:
    """Users and API tokens."""


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, help="field, legal, auditor or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--if-missing", is_flag=True, help="Do nothing if the user already exists.")
@with_context
def user_add(ctx: AppContext, name: str, role: str, password_stdin: bool, if_missing: bool) -> None:
    """Add a user; without --password-stdin a password is generated and printed once."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else generate_password()
    with transaction(ctx.engine) as session:
        accounts = AccountService(session, clock=ctx.clock)
        if if_missing:
            from core.accounts import UnknownUser

            try:
                accounts.get(name)
                click.echo(f"user {name} already exists")
                return
            except UnknownUser:
                pass
        accounts.add(name, role, password)
    click.echo(f"added user {name} ({role})")
    if not password_stdin:
        click.echo(f"password: {password}")


@user.command("list")
@_json_option
@with_context
def user_list(ctx: AppContext, as_json: bool) -> None:
    """List users."""
    with transaction(ctx.engine) as session:
        users = [
            {
                "name": u.name,
                "role": u.role,
                "active": u.active,
                "created_at": u.created_at.isoformat(),
            }
            for u in AccountService(session).list()
        ]
    text = (
        "\n".join(
            f"{u['name']:<24} {u['role']:<8} {'active' if u['active'] else 'disabled'}"
            for u in users
        )
        or "(no users)"
    )
    emit(users, as_json, text)


@user.command("disable")
@click.argument("name")
@with_context
def user_disable(ctx: AppContext, name: str) -> None:
    """Disable a user and revoke their tokens (the user stays as an actor of the log)."""
    with transaction(ctx.engine) as session:
        AccountService(session, clock=ctx.clock).disable(name)
    click.echo(f"disabled user {name}")


@user.command("token")
@click.argument("name")
@with_context
def user_token(ctx: AppContext, name: str) -> None:
    """Issue a new API bearer token (printed once, on the last line)."""
    with transaction(ctx.engine) as session:
        token = AccountService(session, clock=ctx.clock).issue_token(name)
    click.echo(f"new API token for {name} (store it now; it is not shown again):")
    click.echo(token)


@user.command("revoke-tokens")
@click.argument("name")
@with_context
def user_revoke(ctx: AppContext, name: str) -> None:
    """Revoke every API token of a user."""
    with transaction(ctx.engine) as session:
        n = AccountService(session, clock=ctx.clock).revoke_tokens(name)
    click.echo(f"revoked {n} token(s) of {name}")


# --- ledger --------------------------------------------------------------------------------


@cli.group()
def ledger() -> None:
    """The evidence log: entries, checkpoints, timestamps, proofs, audit."""


@ledger.command("append-note")
@click.argument("text")
@_by_option
@_json_option
@with_context
def append_note(ctx: AppContext, text: str, by: str | None, as_json: bool) -> None:
    """Append an entry of type note (for operators and tests)."""
    actor = ctx.resolve_actor(by)
    receipt = ctx.ledger.append("note", {"text": text}, actor)
    data = receipt_dict(receipt)
    emit(data, as_json, _receipt_text(data))


def _receipt_text(d: dict[str, Any]) -> str:
    ts = d["timestamp"]
    stamp = f"timestamp {ts['time']}" if ts["status"] == "granted" else "timestamp pending"
    return (
        f"entry {d['index']} (leaf {d['leaf_hash']}) in checkpoint {d['checkpoint_size']}, {stamp}"
    )


def _checkpoint_dict(ctx: AppContext, size: int) -> dict[str, Any]:
    cp = ctx.ledger.checkpoint_at(size)
    return {
        "size": cp.size,
        "root": cp.root.hex(),
        "note": cp.note.decode(),
        "timestamp": ctx.ledger.timestamp_status(size).as_dict(),
    }


@ledger.command("checkpoint")
@_json_option
@with_context
def checkpoint(ctx: AppContext, as_json: bool) -> None:
    """Make a checkpoint of the log now and print it."""
    cp = ctx.ledger.checkpoint()
    ctx.ledger.wait_timestamp(cp.size)
    data = _checkpoint_dict(ctx, cp.size)
    ts = data["timestamp"]
    emit(data, as_json, data["note"] + f"\ntimestamp: {ts['time'] or 'pending'}")


@ledger.command("show-checkpoint")
@click.option("--size", type=int, default=None, help="Tree size (default: the latest).")
@with_context
def show_checkpoint(ctx: AppContext, size: int | None) -> None:
    """Print the exact bytes of a stored signed checkpoint."""
    cp = ctx.ledger.checkpoint_at(size)
    sys.stdout.buffer.write(cp.note)
    sys.stdout.flush()


@ledger.command("timestamp")
@click.option("--size", type=int, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_context
def timestamp(ctx: AppContext, size: int, out: Path) -> None:
    """Write the RFC 3161 TimeStampResp (DER) of the checkpoint of SIZE."""
    ctx.ledger.checkpoint_at(size)
    token = ctx.ledger.token(size)
    if token is None:
        raise TiezhengError(
            f"the checkpoint of size {size} has no timestamp yet (pending); "
            "run `tiezheng ledger stamp-pending`"
        )
    out.write_bytes(token.response)
    click.echo(f"wrote {out} (genTime {token.gen_time.isoformat()})")


@ledger.command("vkey")
@with_context
def vkey(ctx: AppContext) -> None:
    """Print the log's verifier key (signed-note format)."""
    click.echo(ctx.ledger.signer.vkey())


@ledger.command("tsa-certs")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@with_context
def tsa_certs(ctx: AppContext, out: Path) -> None:
    """Write ca.pem and tsa.pem of the TSA that stamped the latest stamped checkpoint."""
    token = ctx.ledger.latest_token()
    if token is None:
        raise TiezhengError("no checkpoint has a timestamp yet")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_text(token.ca_pem)
    (out / "tsa.pem").write_text(token.tsa_pem)
    click.echo(f"wrote {out / 'ca.pem'} and {out / 'tsa.pem'} (TSA: {token.tsa})")


@ledger.command("entry")
@click.argument("index", type=int)
@with_context
def entry(ctx: AppContext, index: int) -> None:
    """Print the exact bytes of entry INDEX."""
    sys.stdout.buffer.write(ctx.ledger.entry(index))
    sys.stdout.flush()


@ledger.command("prove")
@click.argument("index", type=int)
@click.option("--size", type=int, default=None, help="Checkpoint size (default: latest).")
@with_context
def prove(ctx: AppContext, index: int, size: int | None) -> None:
    """Inclusion proof of entry INDEX against a stored checkpoint (JSON)."""
    tree_size, hashes = ctx.ledger.prove_inclusion(index, size)
    click.echo(
        json.dumps(
            {
                "index": index,
                "tree_size": tree_size,
                "leaf_hash": ctx.ledger.leaf_hash(index).hex(),
                "hashes": [h.hex() for h in hashes],
            }
        )
    )


@ledger.command("consistency")
@click.argument("old", type=int)
@click.argument("new", type=int)
@with_context
def consistency(ctx: AppContext, old: int, new: int) -> None:
    """Consistency proof between two stored checkpoints (JSON)."""
    hashes = ctx.ledger.prove_consistency(old, new)
    click.echo(json.dumps({"old_size": old, "new_size": new, "hashes": [h.hex() for h in hashes]}))


@ledger.command("stamp-pending")
@click.option("--attempts", type=int, default=5, show_default=True)
@click.option("--backoff", type=float, default=1.0, show_default=True, help="First delay, s.")
@_json_option
@with_context
def stamp_pending(ctx: AppContext, attempts: int, backoff: float, as_json: bool) -> None:
    """Obtain timestamps for pending checkpoints, retrying with exponential backoff."""
    stamped, pending = ctx.ledger.stamp_pending(attempts=attempts, backoff=backoff)
    emit(
        {"stamped": stamped, "pending": pending},
        as_json,
        f"stamped {len(stamped)} checkpoint(s); {len(pending)} still pending",
    )
    if pending:
        sys.exit(1)


AuditHook = Callable[[AppContext, "AuditReport", bool], None]
AUDIT_HOOKS: list[AuditHook] = []


@ledger.command("verify")
@click.option("--require-timestamps", is_flag=True, help="A pending timestamp is an error.")
@_json_option
@with_context
def verify(ctx: AppContext, require_timestamps: bool, as_json: bool) -> None:
    """Full audit of the log. Exit 0 when everything holds, 1 naming the first failure."""
    show_bar = sys.stderr.isatty() and not as_json
    bar_state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if not show_bar:
            return
        bar = bar_state.get("bar")
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label="entries", file=sys.stderr)
            bar.__enter__()
            bar_state["bar"] = bar
        bar.update(done - bar.pos)

    from ledger.audit import audit_log

    report = audit_log(
        ctx.engine,
        verifier=verifier(ctx.settings),
        origin=ctx.settings.log_origin,
        trust_anchors=trust_anchors(ctx.settings),
        progress=progress,
    )
    if "bar" in bar_state:
        bar_state["bar"].__exit__(None, None, None)
    for hook in AUDIT_HOOKS:
        if report.ok:
            hook(ctx, report, show_bar)
    failed = not report.ok or (require_timestamps and bool(report.pending))
    data = {
        "ok": not failed,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "timestamps": report.tokens,
        "tree_nodes": report.nodes,
        "pending_timestamps": report.pending,
        "problems": [str(p) for p in report.problems],
    }
    lines = []
    if report.problems:
        lines.append(f"FAILED: {report.problems[0]}")
    else:
        lines.append(
            f"verified {report.entries} entries, {report.checkpoints} checkpoints, "
            f"{report.tokens} timestamps, {report.nodes} stored tree nodes"
        )
    if report.pending:
        label = "ERROR" if require_timestamps else "warning"
        sizes = ", ".join(str(s) for s in report.pending[:20])
        lines.append(f"{label}: {len(report.pending)} checkpoint(s) without a timestamp: {sizes}")
    if failed and not report.problems:
        lines.append("FAILED: timestamps required but pending")
    elif not failed:
        lines.append("OK")
    emit(data, as_json, "\n".join(lines))
    if failed:
        sys.exit(1)


# --- serving -------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@with_context
def serve(ctx: AppContext, host: str, port: int, threads: int) -> None:
    """Serve the web app (waitress)."""
    from waitress import serve as waitress_serve

    from web.app import create_app

    ctx.ledger  # noqa: B018 - fail now, not on the first request, if the instance is broken
    click.echo(f"serving on http://{host}:{port}")
    waitress_serve(create_app(ctx), host=host, port=port, threads=threads)


# --- evidence ------------------------------------------------------------------------------


@cli.group()
def evidence() -> None:
    """Originals: add, show, get, verify, custody."""


def _item_dict(ctx: AppContext, item: Any) -> dict[str, Any]:
    cp = ctx.ledger.covering_checkpoint(item.entry_index)
    return {
        "index": item.entry_index,
        "sha256": item.sha256,
        "sm3": item.sm3,
        "size": item.size,
        "media_type": item.media_type,
        "kind": item.kind,
        "case": item.case_ref,
        "purpose": item.purpose,
        "filename": item.filename,
        "uploaded_by": item.uploader,
        "uploaded_at": zulu(item.uploaded_at),
        "media": item.media,
        "checkpoint_size": cp.size if cp else None,
        "timestamp": (
            ctx.ledger.timestamp_status(cp.size).as_dict()
            if cp
            else {"status": "pending", "time": None}
        ),
    }


@evidence.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, help="call, visit, document or photo.")
@click.option("--case", "case", default=None, help="Case reference.")
@click.option("--purpose", default=None, help="What it is meant to prove (证明目的).")
@click.option("--captured-at", default=None, help="Capture time the client claims (RFC 3339).")
@click.option("--device", default=None, help="Capture device the client claims.")
@click.option("--location", default=None, help="Capture location the client claims.")
@_by_option
@_json_option
@with_context
def evidence_add(
    ctx: AppContext,
    file: Path,
    kind: str,
    case: str | None,
    purpose: str | None,
    captured_at: str | None,
    device: str | None,
    location: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Store FILE as evidence and log it; prints the receipt once it is acknowledged."""
    from evidence.service import check_kind, check_ref, parse_claims

    check_kind(kind)
    check_ref(case)
    claims = parse_claims(captured_at, device, location)
    actor = ctx.resolve_actor(by)
    with file.open("rb") as f:
        receipt = ctx.evidence.add(
            f,
            kind=kind,
            actor=actor,
            case=case,
            purpose=purpose,
            original_name=file.name,
            claims=claims,
        )
    data = receipt.as_dict()
    ts = data["timestamp"]
    text = (
        f"entry {data['index']}: {data['media_type']}, {data['size']} bytes\n"
        f"SHA-256 {data['sha256']}\nSM3     {data['sm3']}\n"
        f"checkpoint {data['checkpoint_size']}, timestamp "
        f"{ts['time'] if ts['status'] == 'granted' else 'pending'}"
    )
    emit(data, as_json, text)


@evidence.command("show")
@click.argument("ref")
@click.option("--reason", default=None, help="Why you look at it (recorded in the custody trail).")
@_by_option
@_json_option
@with_context
def evidence_show(
    ctx: AppContext, ref: str, reason: str | None, by: str | None, as_json: bool
) -> None:
    """Show the evidence entries of a SHA-256 or an entry INDEX (a custody 'view')."""
    actor = ctx.resolve_actor(by)
    items = ctx.evidence.resolve(ref)
    ctx.evidence.record_custody(items[0].sha256, "view", actor, reason=reason)
    data = [_item_dict(ctx, i) for i in items]
    lines = []
    for d in data:
        ts = d["timestamp"]
        lines.append(
            f"entry {d['index']}: {d['kind']} {d['media_type']} {d['size']} bytes, "
            f"case {d['case'] or '-'}, by {d['uploaded_by']} at {d['uploaded_at']}\n"
            f"  SHA-256 {d['sha256']}\n  SM3     {d['sm3']}\n"
            f"  checkpoint {d['checkpoint_size']}, timestamp {ts['time'] or 'pending'}"
        )
    emit(data, as_json, "\n".join(lines))


@evidence.command("get")
@click.argument("sha256")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--reason", default=None, help="Why it leaves the store (custody trail).")
@_by_option
@with_context
def evidence_get(
    ctx: AppContext, sha256: str, out: Path, reason: str | None, by: str | None
) -> None:
    """Copy an original out of the store (a custody 'download')."""
    actor = ctx.resolve_actor(by)
    items = ctx.evidence.resolve(sha256)
    sha = items[0].sha256
    if out.exists():
        raise TiezhengError(f"{out} exists; refusing to overwrite it")
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("wb") as f:
            for chunk in ctx.evidence.open_original(sha):
                f.write(chunk)
        ctx.evidence.store.verify(sha, sm3=items[0].sm3, size=items[0].size)
        tmp.rename(out)
    finally:
        tmp.unlink(missing_ok=True)
    ctx.evidence.record_custody(sha, "download", actor, reason=reason)
    click.echo(f"wrote {out} ({items[0].size} bytes, SHA-256 {sha})")


@evidence.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_by_option
@_json_option
@with_context
def evidence_verify(ctx: AppContext, file: Path, by: str | None, as_json: bool) -> None:
    """Is this exact file in the log? Exit 0 naming every entry that holds it, else 1."""
    actor = ctx.resolve_actor(by)
    digests, items = ctx.evidence.find_file(file)
    data: dict[str, Any] = {
        "sha256": digests.sha256,
        "sm3": digests.sm3,
        "size": digests.size,
        "found": bool(items),
        "entries": [_item_dict(ctx, i) for i in items],
    }
    if not items:
        emit(
            data,
            as_json,
            f"NOT FOUND: no entry of the log holds this file\n"
            f"SHA-256 {digests.sha256}\nSM3     {digests.sm3}",
        )
        sys.exit(1)
    ctx.evidence.record_custody(digests.sha256, "verify", actor)
    lines = [f"FOUND: SHA-256 {digests.sha256}, SM3 {digests.sm3}, {digests.size} bytes"]
    for d in data["entries"]:
        ts = d["timestamp"]
        lines.append(
            f"  entry {d['index']} ({d['kind']}, case {d['case'] or '-'}) by "
            f"{d['uploaded_by']} at {d['uploaded_at']}; checkpoint {d['checkpoint_size']}, "
            f"timestamp {ts['time'] or 'pending'}"
        )
    emit(data, as_json, "\n".join(lines))


@evidence.command("custody")
@click.argument("sha256")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@_json_option
@with_context
def evidence_custody(ctx: AppContext, sha256: str, as_csv: bool, as_json: bool) -> None:
    """The custody trail of an original: uploads, views, downloads, verifications, exports."""
    from evidence.service import custody_csv

    items = ctx.evidence.resolve(sha256)
    rows = ctx.evidence.custody_rows(items[0].sha256)
    if as_csv:
        click.echo(custody_csv(rows), nl=False)
        return
    text = "\n".join(
        f"{r['time']}  entry {r['entry']:<6} {r['action']:<8} {r['actor']:<16} {r['reason'] or ''}"
        for r in rows
    )
    emit(rows, as_json, text)


def _audit_originals(ctx: AppContext, report: AuditReport, show_bar: bool) -> None:
    from ledger.audit import Problem

    ctx.evidence.sync_index()
    for index, sha, problem in ctx.evidence.audit_originals():
        report.problems.append(Problem(f"entry {index}", f"{problem} (SHA-256 {sha})"))


AUDIT_HOOKS.append(_audit_originals)


# --- bundles -------------------------------------------------------------------------------


@cli.group()
def bundle() -> None:
    """Evidence bundles for courts and auditors: export, verify offline."""


@bundle.command("export")
@click.option("--case", "cases", multiple=True, help="Case reference (repeat for a batch).")
@click.option("--index", "indexes", multiple=True, type=int, help="Evidence entry index.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--reason", default=None, help="Why (recorded in each custody trail).")
@_by_option
@_json_option
@with_context
def bundle_export(
    ctx: AppContext,
    cases: tuple[str, ...],
    indexes: tuple[int, ...],
    out: Path | None,
    out_dir: Path | None,
    reason: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Export a bundle: --case REF or --index N [...] with --out FILE.zip; or several --case
    with --out-dir DIR (one bundle per case)."""
    from evidence.bundle import bundle_name
    from evidence.service import InvalidEvidenceInput

    if bool(cases) == bool(indexes):
        raise InvalidEvidenceInput("give either --case or --index")
    if (out is None) == (out_dir is None):
        raise InvalidEvidenceInput("give exactly one of --out FILE.zip or --out-dir DIR")
    if out is not None and len(cases) > 1:
        raise InvalidEvidenceInput("several cases need --out-dir (one bundle per case)")
    actor = ctx.resolve_actor(by)
    # Check every case before writing anything, so a batch does all or nothing it can check.
    for case in cases:
        ctx.exporter.select(case=case, indexes=None)
    if indexes:
        ctx.exporter.select(case=None, indexes=list(indexes))
    results = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if cases:
        for case in cases:
            target = out if out is not None else out_dir / bundle_name(case)  # type: ignore[operator]
            results.append(ctx.exporter.export(target, actor=actor, case=case, reason=reason))
    else:
        target = out if out is not None else out_dir / "bundle.zip"  # type: ignore[operator]
        results.append(
            ctx.exporter.export(target, actor=actor, indexes=list(indexes), reason=reason)
        )
    data = [r.as_dict() for r in results]
    text = "\n".join(
        f"wrote {r.path}: {len(r.items)} item(s), export entry {r.export_index}, "
        f"checkpoint {r.checkpoint_size}, {r.size} bytes"
        for r in results
    )
    emit(data if len(data) > 1 or out_dir is not None else data[0], as_json, text)


@bundle.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vkey", default=None, help="The log's verifier key, obtained independently.")
@click.option(
    "--tsa-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM file of the TSA CA certificates you trust.",
)
@_json_option
def bundle_verify(file: Path, vkey: str | None, tsa_ca: Path | None, as_json: bool) -> None:
    """Verify a bundle offline (no database, no network). Exit 0 if all holds, else 1."""
    from ledger.bundle import verify_bundle
    from ledger.tsa import load_pem_certificates

    if vkey is not None and Path(vkey).is_file():
        vkey = Path(vkey).read_text().strip()
    anchors = load_pem_certificates(tsa_ca.read_bytes()) if tsa_ca is not None else None
    report = verify_bundle(file, vkey=vkey, tsa_ca=anchors)
    emit(report.to_dict(), as_json, report.text().rstrip("\n"))
    if not report.ok:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="tiezheng")
