"""An instance's log: its key, its TSA and trust anchors, assembled from settings.

``init_instance`` creates what is missing (database schema, log key, built-in TSA) and never
overwrites a key; ``open_ledger`` loads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlalchemy import Engine

from core.clock import Clock
from core.db import make_engine
from core.errors import ConfigError
from core.settings import Settings
from ledger.note import NoteSigner, NoteVerifier
from ledger.service import Ledger
from ledger.tsa import BuiltinTSA, RemoteTSA, TimestampAuthority, load_pem_certificates

LOG_KEY = "log.key"
LOG_VKEY = "log.vkey"


@dataclass(frozen=True)
class InitResult:
    created_key: bool
    created_tsa: bool
    vkey: str


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never overwrite a key, even if two inits race.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def init_instance(settings: Settings, engine: Engine | None = None) -> InitResult:
    """Create the instance home, schema, log key and built-in TSA; idempotent."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.keys_dir.mkdir(mode=0o700, exist_ok=True)
    own_engine = engine is None
    engine = engine or make_engine(settings.db_url)
    from core.migrate import upgrade  # Alembic is only needed here; keep CLI start-up quick

    try:
        upgrade(engine)
    finally:
        if own_engine:
            engine.dispose()
    key_path = settings.keys_dir / LOG_KEY
    created_key = False
    if key_path.exists():
        signer = load_signer(settings)
    else:
        signer = NoteSigner.generate(settings.log_origin)
        _write_private(key_path, signer.to_pem())
        created_key = True
    (settings.keys_dir / LOG_VKEY).write_text(signer.vkey() + "\n")
    created_tsa = False
    if not (settings.tsa_dir / "tsa.pem").exists():
        BuiltinTSA.create(settings.tsa_dir)
        created_tsa = True
    return InitResult(created_key=created_key, created_tsa=created_tsa, vkey=signer.vkey())


def load_signer(settings: Settings) -> NoteSigner:
    key_path = settings.keys_dir / LOG_KEY
    try:
        pem = key_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no instance at {settings.home}: run `tiezheng init` first") from None
    signer = NoteSigner.from_pem(pem, settings.log_origin)
    return signer


def verifier(settings: Settings) -> NoteVerifier:
    return NoteVerifier.from_vkey(load_signer(settings).vkey())


def builtin_ca(settings: Settings) -> list[x509.Certificate]:
    path = settings.tsa_dir / "ca.pem"
    return load_pem_certificates(path.read_bytes()) if path.exists() else []


def trust_anchors(settings: Settings) -> list[x509.Certificate]:
    """CA certificates trusted for tokens: the built-in TSA's CA and TIEZHENG_TSA_CA_FILE."""
    anchors = builtin_ca(settings)
    if settings.tsa_ca_file is not None:
        try:
            anchors += load_pem_certificates(settings.tsa_ca_file.read_bytes())
        except OSError as e:
            raise ConfigError(f"cannot read TIEZHENG_TSA_CA_FILE: {e.strerror}") from None
    return anchors


def make_tsa(settings: Settings) -> tuple[TimestampAuthority, str]:
    if settings.tsa_urls:
        assert settings.tsa_ca_file is not None  # Settings.from_env insists on it
        tsa = RemoteTSA.from_config(
            ",".join(settings.tsa_urls),
            settings.tsa_ca_file,
            timeout=max(settings.timestamp_wait, 1.0),
        )
        return tsa, ",".join(settings.tsa_urls)
    return BuiltinTSA.load(settings.tsa_dir), "builtin"


def open_ledger(settings: Settings, *, engine: Engine, clock: Clock | None = None) -> Ledger:
    signer = load_signer(settings)
    tsa, label = make_tsa(settings)
    return Ledger(
        engine=engine,
        signer=signer,
        origin=settings.log_origin,
        tsa=tsa,
        tsa_label=label,
        clock=clock,
        checkpoint_interval=settings.checkpoint_interval,
        timestamp_wait=settings.timestamp_wait,
    )
