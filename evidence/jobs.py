"""Background jobs: our own job table, carried by huey (embedded SQLite or Redis).

huey moves messages; it does not own the work. A message only says "job N"; the ``jobs`` table
says what N is, its state (``queued``, ``running``, ``done``, ``failed``), attempts, progress,
idempotency key, result and error. That table is what makes jobs survive a crash:

- huey drops a message once a worker has taken it, so a worker killed mid-job (SIGKILL, power
  cut) loses it. Every worker, when it starts and then every few seconds, *recovers* jobs left
  ``running`` by a worker that is gone (a dead process on this host, or a heartbeat older than
  the lease) and sends them again; it also re-sends ``queued`` jobs whose message may be lost.
- A message can therefore arrive twice; a worker *claims* a job by an atomic
  ``UPDATE ... WHERE state = 'queued'``, so only one runs it, and the spare message is a no-op.
- A job whose result is a log entry must append it exactly once although an attempt may die
  between appending and recording ``done``. The entry carries the job id; before appending,
  the job takes a lock (a PostgreSQL advisory lock, or a file lock in the instance home for
  SQLite) and looks for an entry of its own in the log (:meth:`JobRun.find_entry`); the next
  attempt of a job that died in that window finds the entry and finishes without a second one.
- Transient failures (any exception that is not a deliberate :class:`~core.errors.TiezhengError`,
  or a :class:`TransientJobError`) are retried with exponential backoff up to the job type's
  attempts; a deliberate error (bad input, missing evidence, a corrupt video) fails at once.

The queue is ``SqliteHuey`` in ``<home>/queue.db`` by default, ``RedisHuey`` when
``TIEZHENG_QUEUE`` names a Redis URL. Job types register here (:func:`register`); modules that
define them are imported on demand (:func:`register_module`), so other packages can add theirs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import Clock, SystemClock, aware, zulu
from core.db import Base
from core.errors import InputError, NotFoundError, TiezhengError
from core.settings import Settings
from ledger.entry import decode_entry
from ledger.models import Entry

if TYPE_CHECKING:
    from evidence.bundle import BundleExporter
    from evidence.service import EvidenceService
    from ledger.service import Ledger

log = logging.getLogger(__name__)

STATES: Final = ("queued", "running", "done", "failed")
HEARTBEAT_S: Final = 5.0
#: A running job whose heartbeat is older than this is taken to be orphaned (any host).
LEASE_S: Final = 60.0
#: How often a worker looks for orphaned or unsent jobs.
SWEEP_S: Final = 10.0
#: A queued job whose message went out this long ago is sent again (the message may be lost:
#: taken by a worker that died before claiming it, or a Redis that lost its data).
RESEND_S: Final = 600.0
PROGRESS_EVERY_S: Final = 0.5
DEFAULT_ATTEMPTS: Final = 3
BACKOFF_S: Final = 2.0
QUEUE_FILE: Final = "queue.db"
TASK_NAME: Final = "tiezheng.run_job"
KEY_MAX: Final = 128


class Job(Base):
    """One background job and every attempt at it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(KEY_MAX), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    progress_done: Mapped[int] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Size of the log when the job was created: its own entries can only come after.
    log_mark: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- errors ---------------------------------------------------------------------------------


class JobError(TiezhengError):
    """Root of the errors about jobs and the queue."""


class JobNotFound(NotFoundError, JobError):
    """No job with that id."""


class TransientJobError(JobError):
    """A failure worth retrying: something was briefly unavailable or changed under the job."""


class UnknownJobType(JobError):
    """A job names a type no module registered."""


# --- snapshots and types --------------------------------------------------------------------


def _z(moment: datetime | None) -> str | None:
    return None if moment is None else zulu(moment)


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of a job row."""

    id: int
    type: str
    key: str
    params: dict[str, Any]
    actor: str
    state: str
    attempts: int
    max_attempts: int
    progress_done: int
    progress_total: int | None
    result_index: int | None
    result: dict[str, Any] | None
    error: str | None
    worker: str | None
    claim: str | None
    log_mark: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    not_before: datetime | None
    enqueued_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def as_dict(self) -> dict[str, Any]:
        """JSON view (what ``tiezheng jobs show`` prints and the web app serves)."""
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state,
            "params": self.params,
            "actor": self.actor,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "progress": {"done": self.progress_done, "total": self.progress_total},
            "result_entry": self.result_index,
            "result": self.result,
            "error": self.error,
            "created_at": _z(self.created_at),
            "started_at": _z(self.started_at),
            "finished_at": _z(self.finished_at),
            "updated_at": _z(self.updated_at),
        }


def _info(row: Any) -> JobInfo:
    values = {c.key: getattr(row, c.key) for c in Job.__table__.columns}
    for name in (
        "created_at",
        "updated_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "not_before",
        "enqueued_at",
    ):
        if values[name] is not None:
            values[name] = aware(values[name])
    return JobInfo(**values)


@dataclass(frozen=True)
class Outcome:
    """What a finished job produced: the log entry it appended (if any) and a JSON result."""

    index: int | None
    result: dict[str, Any] = field(default_factory=dict)


class Services(Protocol):
    """What a job may use; ``web.context.AppContext`` provides it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def evidence(self) -> EvidenceService: ...

    @property
    def exporter(self) -> BundleExporter: ...

    def close(self) -> None: ...


Handler = Callable[["JobRun"], Outcome]
#: Called before a retry (attempt > 1): an Outcome finishes the job without running it again
#: (a previous attempt got as far as the log), a string fails it with that reason, None runs it.
Resume = Callable[["JobRun"], "Outcome | str | None"]


@dataclass(frozen=True)
class JobType:
    name: str
    run: Handler
    resume: Resume | None = None
    max_attempts: int = DEFAULT_ATTEMPTS


_TYPES: dict[str, JobType] = {}
_MODULES: list[str] = ["evidence.facecheck"]
_STARTUP: list[Callable[[Services, JobQueue], None]] = []


def register(job_type: JobType) -> JobType:
    """Make a job type known to producers and workers (idempotent per name)."""
    _TYPES[job_type.name] = job_type
    return job_type


_DECLARED: dict[str, int] = {}


def declare(name: str, *, max_attempts: int = DEFAULT_ATTEMPTS) -> None:
    """Let producers submit jobs of ``name`` without importing the module that runs them
    (workers import it when they run one); ``max_attempts`` must match its registration."""
    _DECLARED[name] = max_attempts


def _max_attempts(name: str) -> int:
    if name in _TYPES:
        return _TYPES[name].max_attempts
    if name in _DECLARED:
        return _DECLARED[name]
    return job_type(name).max_attempts


def register_module(module: str) -> None:
    """Name a module that registers job types when imported (imported on demand)."""
    if module not in _MODULES:
        _MODULES.append(module)


def on_worker_start(hook: Callable[[Services, JobQueue], None]) -> None:
    """Run ``hook`` when a worker starts (e.g. to queue work an outage left undone)."""
    if hook not in _STARTUP:
        _STARTUP.append(hook)


def load_job_types() -> None:
    for module in list(_MODULES):
        importlib.import_module(module)


def job_type(name: str) -> JobType:
    if name not in _TYPES:
        load_job_types()
    try:
        return _TYPES[name]
    except KeyError:
        raise UnknownJobType(f"no job type {name!r} is registered") from None


# --- worker identity ------------------------------------------------------------------------

_HOST: Final = socket.gethostname()[:64]


def _proc_start(pid: int) -> str:
    """The start time of a process (Linux: /proc/PID/stat field 22), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def worker_id() -> str:
    """``host:pid:start`` of this process."""
    pid = os.getpid()
    return f"{_HOST}:{pid}:{_proc_start(pid)}"


def worker_gone(worker: str | None) -> bool:
    """True when ``worker`` was a process of this host that no longer exists."""
    if not worker:
        return True
    host, _, rest = worker.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != _HOST or not pid_text.isdigit():
        return False  # another host: only its heartbeat can tell
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    return bool(start) and _proc_start(pid) not in ("", start)


# --- huey -----------------------------------------------------------------------------------


# Storage back ends huey.storage imports whenever they are installed, for storage classes of
# its own that we never use (psycopg) or use only with TIEZHENG_QUEUE (redis).
_HUEY_OPTIONAL = ("psycopg", "redis")


def _import_huey(*, need_redis: bool) -> Any:
    """Import huey without loading the client libraries this process does not need.

    huey.storage imports psycopg and redis when they are installed (0.3 s together), so an
    upload that queues one job on the embedded SQLite queue would pay for both. While huey is
    first imported, the ones not yet loaded and not needed are hidden (``sys.modules[name] =
    None`` makes ``import name`` fail); huey then leaves those storage classes unavailable.
    If a Redis queue is wanted later in the same process, huey.storage is loaded again.
    """
    hidden = [
        name
        for name in _HUEY_OPTIONAL
        if name not in sys.modules and not (need_redis and name == "redis")
    ]
    if "huey" not in sys.modules:
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            import huey
        finally:
            for name in hidden:
                if sys.modules.get(name, False) is None:
                    del sys.modules[name]
    import huey
    import huey.storage

    if need_redis and huey.storage.Redis is None:
        # Loaded before without redis: load huey.storage again, now with it; make_huey hands
        # RedisHuey the fresh RedisStorage class.
        importlib.reload(huey.storage)
    return huey


def make_huey(settings: Settings) -> tuple[Any, Any]:
    """The huey instance of ``settings`` (SqliteHuey in the home, or RedisHuey) and the task
    that carries job ids."""
    huey_module = _import_huey(need_redis=bool(settings.queue_url))
    RedisHuey, SqliteHuey = huey_module.RedisHuey, huey_module.SqliteHuey

    if settings.queue_url:
        huey: Any = RedisHuey(
            settings.queue_name,
            url=settings.queue_url,
            results=False,
            storage_class=huey_module.storage.RedisStorage,
        )
    else:
        settings.home.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(
            settings.queue_name,
            filename=str(settings.home / QUEUE_FILE),
            results=False,
            fsync=True,
            timeout=30,
        )
    task = huey.task(name=TASK_NAME)(_run_job_task)
    return huey, task


class _Runtime:
    """The worker side of one process: settings and services, rebuilt after a fork."""

    def __init__(self, settings: Settings, factory: Callable[[], Services]) -> None:
        self.settings = settings
        self.factory = factory
        self.parent = os.getpid()
        self._pid = -1
        self._services: Services | None = None
        self._queue: JobQueue | None = None
        self._lock = threading.Lock()

    def services(self) -> tuple[Services, JobQueue]:
        with self._lock:
            pid = os.getpid()
            if self._pid != pid:
                if self._services is not None:
                    # Inherited over fork: drop its pooled connections without closing them,
                    # they belong to the parent (SQLAlchemy "Using connection pools with
                    # multiprocessing").
                    with contextlib.suppress(Exception):
                        self._services.engine.dispose(close=False)
                self._services = self.factory()
                self._queue = JobQueue(settings=self.settings, engine=self._services.engine)
                self._pid = pid
            assert self._services is not None and self._queue is not None
            return self._services, self._queue


_RUNTIME: _Runtime | None = None


def _run_job_task(job_id: int) -> None:
    runtime = _RUNTIME
    if runtime is None:
        log.error("job %s was delivered to a process that is not a tiezheng worker", job_id)
        return
    services, queue = runtime.services()
    orphan_of = runtime.parent if os.getpid() != runtime.parent else None
    if orphan_of is not None and os.getppid() != orphan_of:
        # A forked worker whose consumer was killed: hand the message back and stop.
        with contextlib.suppress(Exception):
            queue.send(queue.get(job_id))
        log.error("the worker's consumer died; stopping")
        os._exit(70)
    queue.run(job_id, services, orphan_of=orphan_of)


# --- locks ----------------------------------------------------------------------------------


@contextlib.contextmanager
def named_lock(engine: Engine, home: Path, name: str) -> Iterator[None]:
    """A lock across processes: PostgreSQL advisory lock, or a file lock in ``home`` (SQLite,
    whose writers are all on this host anyway)."""
    digest = hashlib.sha256(name.encode()).digest()
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(digest[:8], "big", signed=True)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    locks = home / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{digest[:16].hex()}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# --- one attempt ----------------------------------------------------------------------------


class JobRun:
    """One attempt at one job, as its handler sees it."""

    def __init__(
        self,
        queue: JobQueue,
        job: JobInfo,
        services: Services,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.queue = queue
        self.job = job
        self.services = services
        self._on_progress = on_progress
        self._last_write = 0.0

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def progress(self, done: int, total: int) -> None:
        """Report progress; written to the job row at most every half second (and the last)."""
        if self._on_progress is not None:
            self._on_progress(done, total)
        now = time.monotonic()
        if done < total and done > 0 and now - self._last_write < PROGRESS_EVERY_S:
            return
        self._last_write = now
        self.queue._progress(self.job, done, total)

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A lock shared by every worker of the instance (see :func:`named_lock`)."""
        return named_lock(self.queue.engine, self.queue.settings.home, name)

    def find_entry(self, type: str) -> tuple[int, dict[str, Any]] | None:
        """The entry of ``type`` this job appended in an earlier attempt: (index, payload)."""
        return self.queue.find_entry(self.job, type)


class _Heartbeat:
    """Keeps a running job's heartbeat fresh; stops the process if its parent died (a forked
    worker whose consumer was killed must not run on unwatched)."""

    def __init__(self, queue: JobQueue, job: JobInfo, orphan_of: int | None) -> None:
        self.queue = queue
        self.job = job
        self.orphan_of = orphan_of
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"job-{job.id}-beat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _loop(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            if self.orphan_of is not None and os.getppid() != self.orphan_of:
                log.error("the worker's consumer died; stopping (job %s is recovered)", self.job.id)
                os._exit(70)
            try:
                self.queue._beat(self.job)
            except Exception:  # a missed beat is harmless; the next one may work
                log.warning("heartbeat of job %s failed", self.job.id, exc_info=True)


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, TransientJobError):
        return False
    from evidence.errors import StorageError

    return isinstance(exc, TiezhengError) and not isinstance(exc, StorageError)


# --- the queue ------------------------------------------------------------------------------


class JobQueue:
    """Submit, run, inspect and recover jobs of one instance."""

    def __init__(self, *, settings: Settings, engine: Engine, clock: Clock | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock or SystemClock()
        self._transport: tuple[Any, Any] | None = None
        self._transport_lock = threading.Lock()

    def _huey(self) -> tuple[Any, Any]:
        with self._transport_lock:
            if self._transport is None:
                self._transport = make_huey(self.settings)
            return self._transport

    @property
    def huey(self) -> Any:
        """The huey instance (SqliteHuey or RedisHuey)."""
        return self._huey()[0]

    @property
    def task(self) -> Any:
        """The huey task that carries a job id to a worker."""
        return self._huey()[1]

    # -- producing ---------------------------------------------------------------------------

    def submit(
        self,
        type: str,
        params: dict[str, Any],
        *,
        key: str,
        actor: str,
        send: bool = True,
    ) -> tuple[JobInfo, bool]:
        """Create the job of ``key`` unless it exists; returns (job, created).

        An existing job that failed is queued again (a new set of attempts). ``send`` puts the
        message on the queue; without it the caller runs the job itself (:meth:`run`).
        """
        max_attempts = _max_attempts(type)
        if not key or len(key) > KEY_MAX:
            raise InputError(f"a job key must have 1 to {KEY_MAX} characters")
        now = self.clock.now()
        with self.engine.connect() as conn:
            last = conn.execute(select(Entry.idx).order_by(Entry.idx.desc()).limit(1)).scalar()
        row = {
            "type": type,
            "key": key,
            "params": params,
            "actor": actor,
            "state": "queued",
            "attempts": 0,
            "max_attempts": max_attempts,
            "progress_done": 0,
            "progress_total": None,
            "log_mark": 0 if last is None else int(last) + 1,
            "created_at": now,
            "updated_at": now,
        }
        created = True
        try:
            with self.engine.begin() as conn:
                job_id = int(conn.execute(insert(Job).values(**row).returning(Job.id)).scalar_one())
        except IntegrityError:
            created = False
            existing = self.by_key(key)
            if existing is None:  # pragma: no cover - the row that conflicted must exist
                raise
            job_id = existing.id
            if existing.state == "failed":
                self._update(
                    job_id,
                    {"state": "queued", "attempts": 0, "error": None, "not_before": None},
                    where_state="failed",
                )
        job = self.get(job_id)
        if send and job.state == "queued":
            self.send(job)
        return self.get(job_id), created

    def send(self, job: JobInfo) -> bool:
        """Put a message for ``job`` on the queue (delayed to its ``not_before``); False when the
        queue is unreachable: the job stays queued and a worker's sweep sends it later."""
        try:
            delay = 0.0
            if job.not_before is not None:
                delay = max(0.0, (job.not_before - self.clock.now()).total_seconds())
            if delay > 0:
                self.task.schedule(args=(job.id,), delay=delay)
            else:
                self.task(job.id)
        except Exception as e:  # Redis down, SQLite queue locked: the sweep sends it later
            log.warning("could not queue job %s: %s", job.id, e)
            return False
        self._update(job.id, {"enqueued_at": self.clock.now()})
        return True

    # -- reading -----------------------------------------------------------------------------

    def get(self, job_id: int) -> JobInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(Job.__table__).where(Job.id == job_id)).first()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return _info(row)

    def by_key(self, key: str) -> JobInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Job.__table__).where(Job.key == key)).first()
        return None if row is None else _info(row)

    def recent(
        self, *, state: str | None = None, type: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        if state is not None and state not in STATES:
            raise InputError(f"unknown job state {state!r}; choose one of: {', '.join(STATES)}")
        stmt = select(Job.__table__).order_by(Job.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(Job.state == state)
        if type is not None:
            stmt = stmt.where(Job.type == type)
        with self.engine.connect() as conn:
            return [_info(r) for r in conn.execute(stmt).all()]

    def find_entry(self, job: JobInfo, type: str) -> tuple[int, dict[str, Any]] | None:
        """The log entry of ``type`` whose payload names ``job`` (read from the log itself)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Entry.idx, Entry.data)
                .where(Entry.type == type, Entry.idx >= job.log_mark)
                .order_by(Entry.idx)
            ).all()
        for row in rows:
            payload = decode_entry(bytes(row.data), check_canonical=False).payload
            if payload.get("job") == job.id:
                return int(row.idx), payload
        return None

    def wait(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll: float = 0.2,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> JobInfo:
        """Poll until the job is done or failed (or ``timeout`` seconds passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_progress is not None and job.progress_total:
                on_progress(job.progress_done, job.progress_total)
            if job.finished or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(poll)

    def run_here(
        self,
        job_id: int,
        services: Services,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        poll: float = 0.2,
    ) -> JobInfo:
        """Run a job in this process to its end, retries (after their backoff) included; while
        another worker runs it, follow that one's progress (and take over if it dies)."""
        while True:
            job = self.get(job_id)
            if job.finished:
                return job
            if job.state == "running":
                if on_progress is not None and job.progress_total:
                    on_progress(job.progress_done, job.progress_total)
                if not self._requeue_if_orphaned(job, services):
                    time.sleep(poll)
                continue
            wait = 0.0
            if job.not_before is not None:
                wait = (job.not_before - self.clock.now()).total_seconds()
            if wait > 0:
                time.sleep(min(wait, poll * 5))
                continue
            self.run(job_id, services, on_progress=on_progress)

    # -- row updates -------------------------------------------------------------------------

    def _update(
        self,
        job_id: int,
        values: dict[str, Any],
        *,
        claim: str | None = None,
        where_state: str | None = None,
    ) -> bool:
        stmt = update(Job).where(Job.id == job_id)
        if claim is not None:
            stmt = stmt.where(Job.claim == claim)
        if where_state is not None:
            stmt = stmt.where(Job.state == where_state)
        with self.engine.begin() as conn:
            done = conn.execute(stmt.values(updated_at=self.clock.now(), **values)).rowcount
        return bool(done)

    def _progress(self, job: JobInfo, done: int, total: int) -> None:
        now = self.clock.now()
        self._update(
            job.id,
            {"progress_done": done, "progress_total": total, "heartbeat_at": now},
            claim=job.claim,
        )

    def _beat(self, job: JobInfo) -> None:
        self._update(job.id, {"heartbeat_at": self.clock.now()}, claim=job.claim)

    # -- running -----------------------------------------------------------------------------

    def claim(self, job_id: int, worker: str) -> JobInfo | None:
        """Take a queued job for one attempt; None when it is not ours to run (any more)."""
        now = self.clock.now()
        token = os.urandom(8).hex()
        stmt = (
            update(Job)
            .where(
                Job.id == job_id,
                Job.state == "queued",
                or_(Job.not_before.is_(None), Job.not_before <= now),
            )
            .values(
                state="running",
                attempts=Job.attempts + 1,
                worker=worker,
                claim=token,
                started_at=now,
                heartbeat_at=now,
                updated_at=now,
                error=None,
            )
        )
        with self.engine.begin() as conn:
            if conn.execute(stmt).rowcount != 1:
                return None
        return self.get(job_id)

    def run(
        self,
        job_id: int,
        services: Services,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        orphan_of: int | None = None,
    ) -> JobInfo | None:
        """Claim and run one attempt of a job here; None if it was not ours to run."""
        job = self.claim(job_id, worker_id())
        if job is None:
            return None
        attempt = JobRun(self, job, services, on_progress)
        try:
            jt = job_type(job.type)
            with _Heartbeat(self, job, orphan_of):
                resumed = jt.resume(attempt) if (jt.resume and job.attempts > 1) else None
                if isinstance(resumed, str):
                    self._fail(job, resumed)
                    return self.get(job.id)
                outcome = resumed if resumed is not None else jt.run(attempt)
        except (KeyboardInterrupt, SystemExit):
            # Stopped on purpose (worker shutdown): hand the job back, not counted as failed.
            self._update(
                job.id,
                {"state": "queued", "worker": None, "claim": None, "attempts": job.attempts - 1},
                claim=job.claim,
            )
            raise
        except Exception as e:
            message = e.message if isinstance(e, TiezhengError) else f"{type(e).__name__}: {e}"
            if _permanent(e) or job.attempts >= job.max_attempts:
                if not _permanent(e):
                    log.exception("job %s failed for good", job.id)
                self._fail(job, message)
            else:
                log.warning("job %s attempt %s failed, retrying: %s", job.id, job.attempts, message)
                self._retry(job, message)
            return self.get(job.id)
        self._finish(job, outcome)
        return self.get(job.id)

    def _finish(self, job: JobInfo, outcome: Outcome) -> None:
        now = self.clock.now()
        self._update(
            job.id,
            {
                "state": "done",
                "result_index": outcome.index,
                "result": outcome.result,
                "finished_at": now,
                "error": None,
            },
            claim=job.claim,
        )

    def _fail(self, job: JobInfo, message: str) -> None:
        self._update(
            job.id,
            {"state": "failed", "error": message, "finished_at": self.clock.now()},
            claim=job.claim,
        )

    def _retry(self, job: JobInfo, message: str) -> None:
        delay = BACKOFF_S * 4 ** (job.attempts - 1)
        not_before = self.clock.now() + timedelta(seconds=delay)
        if self._update(
            job.id,
            {
                "state": "queued",
                "error": message,
                "worker": None,
                "claim": None,
                "not_before": not_before,
            },
            claim=job.claim,
        ):
            self.send(self.get(job.id))

    def retry(self, job_id: int) -> JobInfo:
        """Queue a failed job again with a fresh set of attempts."""
        job = self.get(job_id)
        if job.state != "failed":
            raise InputError(f"job {job_id} is {job.state}; only a failed job can be retried")
        self._update(
            job_id,
            {"state": "queued", "attempts": 0, "error": None, "not_before": None},
            where_state="failed",
        )
        job = self.get(job_id)
        self.send(job)
        return job

    # -- recovery ----------------------------------------------------------------------------

    def recover(
        self,
        services: Services | None = None,
        *,
        resend_queued: bool = False,
        unsent_after: float = RESEND_S,
    ) -> list[int]:
        """Queue again the running jobs whose worker is gone; send queued jobs that may have no
        message (never sent, or sent long ago; all when ``resend_queued``). A job whose worker
        died on its last attempt is settled here with ``services``: finished if an attempt got
        as far as the log (its type's ``resume``), else failed. Returns the ids touched."""
        now = self.clock.now()
        touched: list[int] = []
        with self.engine.connect() as conn:
            running = [
                _info(r)
                for r in conn.execute(select(Job.__table__).where(Job.state == "running")).all()
            ]
        for job in running:
            if self._requeue_if_orphaned(job, services, send=True):
                touched.append(job.id)
        cutoff = now - timedelta(seconds=unsent_after)
        stmt = select(Job.__table__).where(Job.state == "queued")
        if not resend_queued:
            stmt = stmt.where(or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff))
        with self.engine.connect() as conn:
            queued = [_info(r) for r in conn.execute(stmt).all()]
        for job in queued:
            if job.id not in touched and self.send(job):
                touched.append(job.id)
        return touched

    def _requeue_if_orphaned(
        self, job: JobInfo, services: Services | None, *, send: bool = False
    ) -> bool:
        """Queue a running job again if its worker is gone (settle it if that was its last
        attempt); True if it was."""
        stale = self.clock.now() - timedelta(seconds=LEASE_S)
        beat = job.heartbeat_at or job.started_at or job.updated_at
        if not (worker_gone(job.worker) or beat < stale):
            return False
        if job.attempts >= job.max_attempts:
            if services is None:
                return False
            self._settle(job, services)
            return True
        log.warning("job %s: its worker %s is gone; queueing it again", job.id, job.worker)
        if not self._update(
            job.id,
            {"state": "queued", "worker": None, "claim": None, "not_before": None},
            claim=job.claim,
            where_state="running",
        ):
            return False
        if send:
            self.send(self.get(job.id))
        return True

    def _settle(self, job: JobInfo, services: Services) -> None:
        jt = job_type(job.type)
        resumed = jt.resume(JobRun(self, job, services)) if jt.resume else None
        if isinstance(resumed, Outcome):
            self._finish(job, resumed)
            return
        reason = resumed or (
            f"gave up after {job.attempts} attempt(s): the worker stopped during each"
        )
        self._fail(job, reason)


# --- the worker -----------------------------------------------------------------------------


def run_worker(
    settings: Settings,
    factory: Callable[[], Services],
    *,
    workers: int = 1,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run a consumer until SIGINT (finish running jobs) or SIGTERM (stop now).

    One worker runs in a thread of this process; several run in forked processes, because the
    face engine (dlib) holds the GIL while it works.
    """
    global _RUNTIME
    if workers < 1:
        raise InputError("--workers must be at least 1")
    load_job_types()
    runtime = _Runtime(settings, factory)
    _RUNTIME = runtime
    services, queue = runtime.services()
    for hook in _STARTUP:
        try:
            hook(services, queue)
        except Exception:
            log.exception("a worker start hook failed")
    recovered = queue.recover(services, resend_queued=True)
    if recovered:
        log.info("sent %d unfinished job(s): %s", len(recovered), recovered)
    consumer = queue.huey.create_consumer(
        workers=workers,
        worker_type="process" if workers > 1 else "thread",
        periodic=False,
        initial_delay=0.1,
        backoff=1.15,
        max_delay=1.0,
        check_worker_health=True,
    )
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(SWEEP_S):
            try:
                queue.recover(services)
            except Exception:
                log.warning("job recovery sweep failed", exc_info=True)

    sweeper = threading.Thread(target=sweep, name="job-sweep", daemon=True)
    if workers > 1:
        # Fork the workers before any other thread exists in this process.
        consumer.start()
        sweeper.start()
        if ready is not None:
            ready()
        _consume_started(consumer)
    else:
        sweeper.start()
        if ready is not None:
            ready()
        consumer.run()
    stop.set()


def _consume_started(consumer: Any) -> None:
    """``Consumer.run`` after ``Consumer.start`` was already called (its main loop)."""
    health = time.monotonic()
    from huey.consumer import ConsumerStopped

    while True:
        try:
            health = consumer.loop(health)
        except ConsumerStopped:
            break
    consumer.huey.notify_interrupted_tasks()


def format_progress(job: JobInfo) -> str:
    if job.progress_total:
        return f"{job.progress_done}/{job.progress_total}"
    return "-"


# --- bundle export as a job -----------------------------------------------------------------


def submit_bundle_export(
    queue: JobQueue,
    *,
    out: Path,
    actor: str,
    case: str | None = None,
    indexes: Sequence[int] | None = None,
    reason: str | None = None,
    send: bool = True,
) -> JobInfo:
    """Queue an evidence bundle export to ``out`` (one job per output file)."""
    target = out.absolute()
    if target.exists():
        raise InputError(f"{out} exists; refusing to overwrite it")
    if not target.parent.is_dir():
        raise InputError(f"{out.parent} is not a directory")
    params = {
        "out": str(target),
        "case": case,
        "indexes": sorted(set(indexes)) if indexes else None,
        "reason": reason,
    }
    key = "bundle_export:" + hashlib.sha256(str(target).encode()).hexdigest()[:40]
    job, _created = queue.submit("bundle_export", params, key=key, actor=actor, send=send)
    return job


def _run_bundle_export(run: JobRun) -> Outcome:
    p = run.params
    run.progress(0, 1)
    result = run.services.exporter.export(
        Path(p["out"]),
        actor=run.job.actor,
        case=p["case"],
        indexes=p["indexes"],
        reason=p["reason"],
    )
    run.progress(1, 1)
    return Outcome(index=result.export_index, result=result.as_dict())


def _resume_bundle_export(run: JobRun) -> Outcome | str | None:
    # The exporter appends custody and export entries itself, before it writes the ZIP: an
    # attempt that died after appending must not be repeated (it would log the export twice).
    with run.queue.engine.connect() as conn:
        rows = conn.execute(
            select(Entry.idx, Entry.type)
            .where(
                Entry.type.in_(("export", "custody")),
                Entry.idx >= run.job.log_mark,
                Entry.actor == run.job.actor,
            )
            .order_by(Entry.idx)
        ).all()
    if not rows:
        return None
    out = Path(run.params["out"])
    exports = [int(r.idx) for r in rows if r.type == "export"]
    if out.exists() and exports:
        return Outcome(index=exports[-1], result={"path": str(out), "export_index": exports[-1]})
    return (
        f"an earlier attempt was interrupted after logging (entry {int(rows[0].idx)}) and "
        "before the bundle was written; export again"
    )


register(
    JobType("bundle_export", run=_run_bundle_export, resume=_resume_bundle_export, max_attempts=2)
)
