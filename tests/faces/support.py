"""Helpers of the enrolment, check and job tests: files, log reading, worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import Engine, func, select

from core.accounts import AccountService
from core.db import transaction
from core.settings import Settings
from evidence.face_models import FacePerson, FaceTemplate
from evidence.jobs import JobInfo, JobQueue
from ledger.entry import decode_entry
from ledger.models import Entry
from tests.conftest import settings_env
from tests.evidence.media_factory import make_pdf
from web.context import AppContext

TIEZHENG = Path(sys.executable).with_name("tiezheng")


def png(path: Path, rgb: NDArray[np.uint8]) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def consent_pdf(path: Path) -> Path:
    return make_pdf(path)


def add_user(ctx: AppContext, name: str, role: str = "field") -> None:
    with transaction(ctx.engine) as session:
        AccountService(session).add(name, role, "correct horse battery")


def entries(engine: Engine, type: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(index, actor, payload) of every entry of ``type``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Entry.idx, Entry.data).where(Entry.type == type).order_by(Entry.idx)
        ).all()
    out = []
    for row in rows:
        entry = decode_entry(bytes(row.data))
        out.append((int(row.idx), entry.actor, entry.payload))
    return out


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def face_rows(engine: Engine) -> tuple[int, int]:
    return count(engine, FacePerson), count(engine, FaceTemplate)


def damage_mjpeg(src: Path, dst: Path) -> Path:
    """Zero every JPEG frame of the second half of an MJPG AVI: the index still lists each
    frame (so ingestion, which demuxes without decoding, accepts it) but they do not decode."""
    data = bytearray(src.read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", bytes(data))]
    ends = [m.start() for m in re.finditer(b"\xff\xd9", bytes(data))]
    for start in starts[len(starts) // 2 :]:
        end = min(e for e in ends if e > start) + 2
        data[start:end] = bytes(end - start)
    dst.write_bytes(bytes(data))
    return dst


def wait_job(
    queue: JobQueue, job_id: int, *, timeout: float = 60.0, until: str = "finished"
) -> JobInfo:
    deadline = time.monotonic() + timeout
    while True:
        job = queue.get(job_id)
        if (until == "finished" and job.finished) or job.state == until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.state} after {timeout} s: {job}")
        time.sleep(0.1)


class Worker:
    """``tiezheng worker`` in a child process, with its log in a file."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        full_env = {**os.environ, **settings_env(settings), **(env or {})}
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [str(TIEZHENG), "worker", "--workers", str(workers)],
            env=full_env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while b"worker ready" not in self.log.read_bytes():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready after {timeout} s:\n{self.text()}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
