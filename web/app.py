"""The Flask application factory (the web stub for now: latest checkpoint and health)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy import text

from core.accounts import AccountService, User
from core.db import transaction
from core.errors import NotFoundError, TiezhengError
from web.context import AppContext


def create_app(ctx: AppContext | None = None) -> Flask:
    ctx = ctx or AppContext.from_env()
    app = Flask(__name__)
    app.config["TIEZHENG"] = ctx

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            with ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            size = ctx.ledger.size()
        except Exception as e:  # health reports any failure; it must not raise
            return jsonify({"status": "error", "error": str(e)}), 503
        return jsonify({"status": "ok", "log_size": size}), 200

    @app.get("/")
    def index() -> str:
        cp = ctx.ledger.latest_checkpoint()
        token = ctx.ledger.token(cp.size) if cp is not None else None
        return render_template(
            "index.html",
            origin=ctx.settings.log_origin,
            checkpoint=cp.note.decode() if cp else None,
            size=cp.size if cp else 0,
            timestamp=token.gen_time.isoformat() if token else None,
            vkey=ctx.ledger.signer.vkey(),
        )

    def bearer_user() -> User | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        with transaction(ctx.engine) as session:
            return AccountService(session).user_for_token(header[7:].strip())

    @app.get("/api/jobs/<int:job_id>")
    def job_status(job_id: int) -> tuple[Response, int]:
        """State and progress of a background job (face check, bundle export), for polling."""
        if bearer_user() is None:
            return problem(401, "Unauthorized", "需要有效的 API 令牌 (a valid bearer token)")
        try:
            info = ctx.jobs.get(job_id)
        except NotFoundError:
            return problem(404, "Not Found", f"没有任务 {job_id} (no job {job_id})")
        return jsonify(info.as_dict()), 200

    def problem(status: int, title: str, detail: str) -> tuple[Response, int]:
        res = jsonify({"type": "about:blank", "title": title, "status": status, "detail": detail})
        res.headers["Content-Type"] = "application/problem+json"
        return res, status

    @app.errorhandler(TiezhengError)
    def domain_error(e: TiezhengError) -> tuple[Response, int]:
        body: dict[str, Any] = {"title": type(e).__name__, "detail": e.message}
        return jsonify(body), 400

    return app
