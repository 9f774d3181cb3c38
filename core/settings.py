"""Settings of an instance, read from the environment in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.errors import ConfigError

DEFAULT_ORIGIN = "tiezheng.local/log"
DEFAULT_MAX_UPLOAD = 4 * 1024**3
DEFAULT_QUEUE_NAME = "tiezheng"
QUEUE_SCHEMES = ("redis://", "rediss://", "unix://")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from e
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from e
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything configurable about an instance.

    ``home`` holds the SQLite database, the keys, the built-in TSA and the blob store unless
    ``database_url`` points elsewhere.
    """

    home: Path
    database_url: str | None = None
    log_origin: str = DEFAULT_ORIGIN
    actor: str | None = None
    tsa_urls: tuple[str, ...] = ()
    tsa_ca_file: Path | None = None
    timestamp_wait: float = 10.0
    checkpoint_interval: float = 1.0
    max_upload: int = DEFAULT_MAX_UPLOAD
    #: Task queue: None for the embedded SQLite queue in ``home``, else a Redis URL.
    queue_url: str | None = None
    queue_name: str = DEFAULT_QUEUE_NAME
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: str | Path | None = None
    ) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); ``home`` overrides TIEZHENG_HOME."""
        env = os.environ if env is None else env
        home_path = Path(home or env.get("TIEZHENG_HOME") or "instance").expanduser()
        urls = tuple(u.strip() for u in env.get("TIEZHENG_TSA_URL", "").split(",") if u.strip())
        ca_file = env.get("TIEZHENG_TSA_CA_FILE")
        if urls and not ca_file:
            raise ConfigError(
                "TIEZHENG_TSA_URL is set but TIEZHENG_TSA_CA_FILE is not: a remote TSA's tokens "
                "can only be trusted against the CA certificates you name there"
            )
        origin = env.get("TIEZHENG_LOG_ORIGIN") or DEFAULT_ORIGIN
        if any(c.isspace() for c in origin) or "+" in origin:
            raise ConfigError("TIEZHENG_LOG_ORIGIN must not contain spaces or '+'")
        queue_url = env.get("TIEZHENG_QUEUE") or None
        if queue_url is not None and not queue_url.startswith(QUEUE_SCHEMES):
            raise ConfigError(
                "TIEZHENG_QUEUE must be a Redis URL (redis://host:port/db, rediss://, unix://) "
                f"or unset for the embedded queue; got {queue_url!r}"
            )
        queue_name = env.get("TIEZHENG_QUEUE_NAME") or DEFAULT_QUEUE_NAME
        if not queue_name.isprintable() or any(c.isspace() for c in queue_name):
            raise ConfigError("TIEZHENG_QUEUE_NAME must be printable and hold no spaces")
        return cls(
            home=home_path.absolute(),
            database_url=env.get("TIEZHENG_DATABASE_URL") or None,
            log_origin=origin,
            actor=env.get("TIEZHENG_ACTOR") or None,
            tsa_urls=urls,
            tsa_ca_file=Path(ca_file) if ca_file else None,
            timestamp_wait=_float(env, "TIEZHENG_TIMESTAMP_WAIT", 10.0),
            checkpoint_interval=_float(env, "TIEZHENG_CHECKPOINT_INTERVAL", 1.0),
            max_upload=_int(env, "TIEZHENG_MAX_UPLOAD", DEFAULT_MAX_UPLOAD),
            queue_url=queue_url,
            queue_name=queue_name,
        )

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=home.absolute())

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: the configured one, else SQLite in the instance home."""
        if self.database_url:
            url = self.database_url
            # Plain postgresql:// means psycopg 3 here (SQLAlchemy's default is psycopg2).
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.home / 'tiezheng.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def tsa_dir(self) -> Path:
        return self.home / "tsa"

    @property
    def blob_dir(self) -> Path:
        return self.home / "store"
