"""The Flask application factory (the web stub for now: latest checkpoint and health)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template
from sqlalchemy import text

from core.errors import TiezhengError
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

    @app.errorhandler(TiezhengError)
    def domain_error(e: TiezhengError) -> tuple[Response, int]:
        body: dict[str, Any] = {"title": type(e).__name__, "detail": e.message}
        return jsonify(body), 400

    return app
