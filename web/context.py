"""What a command or a request needs: settings, the engine, the ledger; built lazily, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from core.accounts import SYSTEM_ACTOR, AccountService
from core.clock import Clock, SystemClock
from core.db import make_engine, transaction
from core.errors import ConfigError
from core.settings import Settings
from evidence.media import MEDIA_TYPES
from evidence.service import EvidenceService
from evidence.store import LocalBlobStore
from ledger.instance import open_ledger
from ledger.service import Ledger

if TYPE_CHECKING:
    from evidence.bundle import BundleExporter
    from evidence.facecheck import FaceService
    from evidence.jobs import JobQueue
    from evidence.service import EvidenceReceipt


@dataclass
class AppContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> AppContext:
        return cls(Settings.from_env(home=home))

    @cached_property
    def engine(self) -> Engine:
        if not self.settings.database_url and not (self.settings.home / "tiezheng.db").exists():
            raise ConfigError(f"no instance at {self.settings.home}: run `tiezheng init` first")
        return make_engine(self.settings.db_url)

    @cached_property
    def ledger(self) -> Ledger:
        return open_ledger(self.settings, engine=self.engine, clock=self.clock)

    @cached_property
    def store(self) -> LocalBlobStore:
        return LocalBlobStore(self.settings.blob_dir, max_size=self.settings.max_upload)

    @cached_property
    def evidence(self) -> EvidenceService:
        service = EvidenceService(
            engine=self.engine, ledger=self.ledger, store=self.store, clock=self.clock
        )
        service.listeners.append(self._evidence_added)
        return service

    def _evidence_added(self, receipt: EvidenceReceipt, kind: str, actor: str) -> None:
        # A visit video gets its automatic face check queued (never delaying the upload).
        if kind == "visit" and MEDIA_TYPES[receipt.media_type].kind == "video":
            from evidence.facejobs import queue_auto_check  # light: not the face engine

            queue_auto_check(self.jobs, receipt.index)

    @cached_property
    def jobs(self) -> JobQueue:
        from evidence.jobs import JobQueue

        return JobQueue(settings=self.settings, engine=self.engine, clock=self.clock)

    @cached_property
    def faces(self) -> FaceService:
        from evidence.facecheck import FaceService  # loads OpenCV: only when faces are used

        return FaceService(
            engine=self.engine,
            ledger=self.ledger,
            evidence=self.evidence,
            keys_dir=self.settings.keys_dir,
            jobs=self.jobs,
            clock=self.clock,
        )

    @cached_property
    def exporter(self) -> BundleExporter:
        from evidence.bundle import BundleExporter  # WeasyPrint is heavy: load it on demand

        return BundleExporter(
            evidence=self.evidence,
            ledger=self.ledger,
            origin=self.settings.log_origin,
            vkey=self.ledger.signer.vkey(),
            builtin_tsa_dir=self.settings.tsa_dir,
        )

    def resolve_actor(self, by: str | None) -> str:
        """The log actor: ``--by`` (an active user), else TIEZHENG_ACTOR, else ``system``."""
        name = by or self.settings.actor
        if not name or (name == SYSTEM_ACTOR and by is None):
            return SYSTEM_ACTOR
        with transaction(self.engine) as session:
            AccountService(session, clock=self.clock).require_active(name)
        return name

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
