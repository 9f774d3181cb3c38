"""Shared fixtures: databases (SQLite always, PostgreSQL when TIEZHENG_TEST_DATABASE_URL is set),
instances, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, text

from core.db import make_engine
from core.settings import Settings
from ledger.instance import init_instance
from web.context import AppContext

PG_URL = os.environ.get("TIEZHENG_TEST_DATABASE_URL", "")


def _pg_params() -> list[Any]:
    if PG_URL:
        return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
    return ["sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: runs against PostgreSQL")


class PgSchema:
    """A throw-away schema: the ledger tables refuse DELETE/TRUNCATE, so tests isolate by schema."""

    def __init__(self) -> None:
        self.name = "t_" + uuid.uuid4().hex[:16]
        base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self.admin.dispose()


@pytest.fixture(params=_pg_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for SQLite in the instance home, else a PostgreSQL URL with a private schema."""
    if request.param == "sqlite":
        yield None
        return
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
def settings(tmp_path: Path, db_url: str | None) -> Settings:
    return Settings(
        home=tmp_path / "instance",
        database_url=db_url,
        timestamp_wait=5.0,
        checkpoint_interval=0.0,
    )


@pytest.fixture(scope="session")
def builtin_tsa_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One built-in TSA for the session: RSA-3072 key generation costs ~1 s per instance."""
    from ledger.tsa import BuiltinTSA

    path = tmp_path_factory.mktemp("tsa-template") / "tsa"
    BuiltinTSA.create(path)
    return path


@pytest.fixture
def instance(settings: Settings, builtin_tsa_template: Path) -> Iterator[AppContext]:
    # init keeps an existing TSA; seeding it saves the key generation, nothing else differs.
    shutil.copytree(builtin_tsa_template, settings.tsa_dir)
    init_instance(settings)
    ctx = AppContext(settings)
    yield ctx
    ctx.close()


@pytest.fixture
def engine(instance: AppContext) -> Engine:
    return instance.engine


def settings_env(settings: Settings) -> dict[str, str]:
    env = {
        "TIEZHENG_HOME": str(settings.home),
        "TIEZHENG_CHECKPOINT_INTERVAL": "0",
        "TIEZHENG_TIMESTAMP_WAIT": str(settings.timestamp_wait),
    }
    if settings.database_url:
        env["TIEZHENG_DATABASE_URL"] = settings.database_url
    return env


class Cli:
    """Runs ``tiezheng`` in-process against one instance."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = settings_env(settings)

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        expect: int | None = 0,
        env: dict[str, str] | None = None,
    ) -> Result:
        from web.cli import cli

        runner = CliRunner()
        result = runner.invoke(
            cli, list(args), input=input, env={**self.env, **(env or {})}, catch_exceptions=False
        )
        if expect is not None:
            assert result.exit_code == expect, (
                f"exit {result.exit_code} != {expect}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}"
            )
        return result


@pytest.fixture
def cli(instance: AppContext) -> Cli:
    return Cli(instance.settings)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "instance", timestamp_wait=5.0, checkpoint_interval=0.0)


def fresh_engine(settings: Settings) -> Engine:
    return make_engine(settings.db_url)


__all__ = ["PG_URL", "Cli", "fresh_engine", "replace", "settings_env"]
