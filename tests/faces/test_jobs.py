"""The task queue: automatic checks of uploads, worker crashes, retries, Redis, bundle jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update

import evidence.facecheck
from core.errors import ConfigError
from core.settings import Settings
from evidence.bundle import BundleExporter
from evidence.jobs import _HOST, Job, JobQueue
from tests.conftest import Cli
from tests.faces.conftest import Videos
from tests.faces.support import Worker, add_user, consent_pdf, entries, png, wait_job
from web.context import AppContext

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_WORKER = f"{_HOST}:999999999:0"  # above any pid_max: a process that is gone


class Crash(BaseException):
    """Stands for the process dying at that point (nothing catches a BaseException here)."""


@pytest.fixture
def alice(instance: AppContext, tmp_path: Path, astronaut_head: Any) -> None:
    add_user(instance, "alice")
    instance.faces.enroll(
        "alice",
        [png(tmp_path / "alice.png", astronaut_head)],
        role="staff",
        consent=consent_pdf(tmp_path / "consent.pdf"),
        actor="alice",
    )


def upload(instance: AppContext, path: Path) -> int:
    with path.open("rb") as f:
        return instance.evidence.add(f, kind="visit", actor="alice").index


def face_checks_of(instance: AppContext, job_id: int) -> list[int]:
    return [i for i, _a, p in entries(instance.engine, "face_check") if p["job"] == job_id]


def kill_worker_of(instance: AppContext, job_id: int) -> None:
    """Make the job's row name a worker process that no longer exists."""
    with instance.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(worker=DEAD_WORKER))


# --- with real worker processes -------------------------------------------------------------


def test_workers_check_uploads_within_seconds_and_survive_sigkill(
    instance: AppContext, cli: Cli, alice: None, videos: Videos, tmp_path: Path
) -> None:
    first = Worker(instance.settings, tmp_path / "first.log")
    try:
        first.wait_ready()
        # 1. An upload of a visit video queues its check; the running worker does it.
        out = cli("evidence", "add", str(videos.astronaut), "--kind", "visit", "--by", "alice",
                  "--json")  # fmt: skip
        index = json.loads(out.stdout)["index"]
        auto = instance.jobs.by_key(f"face_check:auto:{index}")
        assert auto is not None and auto.enqueued_at is not None  # queued by the upload itself
        done = wait_job(instance.jobs, auto.id, timeout=30)
        assert done.state == "done", first.text()  # within wait_job's 30 s bound

        # 2. A longer check; the worker is killed (SIGKILL) in the middle of it.
        job, _ = instance.faces.submit_check(index, actor="alice", fps=3)  # 18 frames
        running = wait_job(instance.jobs, job.id, until="running", timeout=30)
        while running.progress_done < 2:
            assert running.state == "running", first.text()
            time.sleep(0.05)
            running = instance.jobs.get(job.id)
    finally:
        first.kill()

    [(entry, actor, payload)] = entries(instance.engine, "face_check")
    assert (actor, payload["automatic"], payload["evidence"], payload["job"]) == (
        "system",
        True,
        index,
        auto.id,
    )
    assert done.result_index == entry
    assert done.result is not None and done.result["persons"][0]["matched"] is True
    shown = json.loads(cli("jobs", "show", str(auto.id), "--json").stdout)
    assert shown["state"] == "done" and shown["progress"] == {"done": 6, "total": 6}
    # One automatic check per evidence entry: a worker start queues none again.
    assert instance.faces.ensure_auto_checks() == []

    killed = instance.jobs.get(job.id)
    assert killed.state == "running" and killed.attempts == 1
    assert killed.progress_done < 18
    assert face_checks_of(instance, job.id) == []

    # 3. After a restart the job is found, run again and logged exactly once.
    second = Worker(instance.settings, tmp_path / "second.log")
    try:
        finished = wait_job(instance.jobs, job.id, timeout=60)
    finally:
        second.stop()
    assert finished.state == "done", second.text()
    assert finished.attempts == 2 and finished.progress_done == finished.progress_total == 18
    assert face_checks_of(instance, job.id) == [finished.result_index]
    assert "queueing it again" in second.text()
    assert len(entries(instance.engine, "face_check")) == 2


def test_redis_mode(
    instance: AppContext, cli: Cli, alice: None, videos: Videos, tmp_path: Path
) -> None:
    name = "tiezhengtest" + uuid.uuid4().hex[:12]  # huey keys are named after the queue
    env = {"TIEZHENG_QUEUE": REDIS_URL, "TIEZHENG_QUEUE_NAME": name}
    queue = JobQueue(
        settings=replace(instance.settings, queue_url=REDIS_URL, queue_name=name),
        engine=instance.engine,
    )
    client = redis.Redis.from_url(REDIS_URL)
    # Two workers: forked processes, the mode for several cores.
    worker = Worker(instance.settings, tmp_path / "worker.log", env=env, workers=2)
    try:
        worker.wait_ready()
        out = cli("evidence", "add", str(videos.hopper_brief), "--kind", "visit", "--by", "alice",
                  "--json", env=env)  # fmt: skip
        index = json.loads(out.stdout)["index"]
        queued = cli("faces", "check", str(index), "--no-wait", "--tolerance", "0.5",
                     "--json", env=env)  # fmt: skip
        manual = json.loads(queued.stdout)["job"]
        auto = queue.by_key(f"face_check:auto:{index}")
        assert auto is not None
        done = [wait_job(queue, j, timeout=40) for j in (auto.id, manual)]
        assert type(queue.huey).__name__ == "RedisHuey"
    finally:
        worker.stop()
        queue.huey.flush()  # deletes only this queue's keys
    assert [j.state for j in done] == ["done", "done"], worker.text()
    results = [j.result for j in done]
    assert all(r is not None and r["unknown_faces"] == 1 for r in results)
    assert not [k for k in client.keys("*") if name.encode() in k]


_CLIENTS_SCRIPT = """
import json, sys, uuid
from core.settings import Settings
from evidence.jobs import make_huey

seen = {{}}
sqlite_huey, _task = make_huey(Settings.from_env({{}}, home={home!r}))
seen["after_sqlite"] = sorted(m for m in ("psycopg", "redis") if m in sys.modules)
name = "tiezhengtest" + uuid.uuid4().hex[:12]
redis_huey, _task = make_huey(Settings.from_env(
    {{"TIEZHENG_QUEUE": {url!r}, "TIEZHENG_QUEUE_NAME": name}}, home={home!r}))
try:
    redis_huey.storage.enqueue(b"message")
    seen["through_redis"] = redis_huey.storage.dequeue().decode()
finally:
    redis_huey.flush()
sqlite_huey.storage.enqueue(b"still here")
seen["through_sqlite"] = sqlite_huey.storage.dequeue().decode()
print(json.dumps(seen))
"""


def test_huey_loads_only_the_client_libraries_the_queue_needs(tmp_path: Path) -> None:
    # huey imports psycopg and redis when installed; the embedded queue needs neither, and a
    # Redis queue opened later in the same process must still work.
    script = _CLIENTS_SCRIPT.format(home=str(tmp_path / "home"), url=REDIS_URL)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True, cwd=Path(__file__).resolve().parents[2])
    assert json.loads(out.stdout) == {
        "after_sqlite": [],
        "through_redis": "message",
        "through_sqlite": "still here",
    }


# --- crashes, retries and recovery in this process ------------------------------------------


def test_a_crash_between_the_append_and_done_never_gives_a_second_entry(
    instance: AppContext, alice: None, videos: Videos, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = upload(instance, videos.astronaut)
    job, _ = instance.faces.submit_check(index, actor="alice", send=False)

    def die(*_args: Any) -> None:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(JobQueue, "_finish", die)
        with pytest.raises(Crash):
            instance.jobs.run(job.id, instance)
    [entry] = face_checks_of(instance, job.id)  # appended, but the job was never marked done
    assert instance.jobs.get(job.id).state == "running"
    # A live worker's job is left alone; once its worker is gone it is queued again.
    assert job.id not in instance.jobs.recover(instance)
    kill_worker_of(instance, job.id)
    assert job.id in instance.jobs.recover(instance)
    assert instance.jobs.get(job.id).state == "queued"

    calls: list[int] = []
    real = evidence.facecheck.check_video
    monkeypatch.setattr(
        evidence.facecheck, "check_video", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    done = instance.jobs.run(job.id, instance)
    assert done is not None and done.state == "done" and done.attempts == 2
    assert done.result_index == entry and face_checks_of(instance, job.id) == [entry]
    assert calls == []  # the second attempt found the entry: no second check at all
    assert instance.jobs.run(job.id, instance) is None  # a spare message is a no-op


def test_a_transient_failure_is_retried_after_a_backoff(
    instance: AppContext, alice: None, videos: Videos, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = upload(instance, videos.empty)
    job, _ = instance.faces.submit_check(index, actor="alice", send=False)
    real = evidence.facecheck.check_video
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(evidence.facecheck, "check_video", flaky)
    first = instance.jobs.run(job.id, instance)
    assert first is not None and first.state == "queued" and first.attempts == 1
    assert first.error == "OSError: disk hiccup"
    assert first.not_before is not None and first.not_before > instance.clock.now()
    assert instance.jobs.run(job.id, instance) is None  # not before its backoff ends
    # Running it here to its end waits out the backoff (2 s) and runs the second attempt.
    second = instance.jobs.run_here(job.id, instance)
    assert second.state == "done" and second.attempts == 2
    assert second.started_at is not None and second.started_at >= first.not_before
    assert second.error is None and len(face_checks_of(instance, job.id)) == 1


def test_a_job_whose_worker_died_on_every_attempt_fails_clearly(
    instance: AppContext, cli: Cli, alice: None, videos: Videos
) -> None:
    index = upload(instance, videos.empty)
    job, _ = instance.faces.submit_check(index, actor="alice", send=False)
    with instance.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job.id).values(attempts=2))
    assert instance.jobs.claim(job.id, DEAD_WORKER) is not None  # the third attempt, then death
    assert instance.jobs.recover(instance) == [job.id]
    failed = instance.jobs.get(job.id)
    assert failed.state == "failed" and "gave up after 3 attempt(s)" in (failed.error or "")
    listed = json.loads(cli("jobs", "list", "--state", "failed", "--json").stdout)
    assert [j["id"] for j in listed] == [job.id]
    assert cli("jobs", "retry", str(job.id)).stdout.strip() == f"job {job.id}: queued"
    assert instance.jobs.get(job.id).state == "queued"
    refused = cli("jobs", "retry", str(job.id), expect=2)
    assert "only a failed job can be retried" in refused.stderr


# --- bundle exports as jobs -----------------------------------------------------------------


def test_bundle_export_jobs(
    instance: AppContext, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(instance, "alice")
    with consent_pdf(tmp_path / "notice.pdf").open("rb") as f:
        index = instance.evidence.add(f, kind="document", actor="alice").index

    # An attempt that dies after logging the export, before writing the ZIP, is not repeated.
    out = cli("bundle", "enqueue", "--index", str(index), "--out", str(tmp_path / "a.zip"),
              "--by", "alice", "--json")  # fmt: skip
    job_id = json.loads(out.stdout)["job"]

    def die(*_args: Any, **_kwargs: Any) -> int:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(BundleExporter, "_write_zip", die)
        with pytest.raises(Crash):
            instance.jobs.run(job_id, instance)
    kill_worker_of(instance, job_id)
    instance.jobs.recover(instance)
    failed = instance.jobs.run(job_id, instance)
    assert failed is not None and failed.state == "failed"
    assert "interrupted after logging" in (failed.error or "")
    assert len(entries(instance.engine, "export")) == 1
    assert not (tmp_path / "a.zip").exists()

    out = cli("bundle", "enqueue", "--index", str(index), "--out", str(tmp_path / "b.zip"),
              "--by", "alice", "--wait", "--json")  # fmt: skip
    result = json.loads(out.stdout)
    exports = entries(instance.engine, "export")
    assert result["export_index"] == exports[-1][0] and len(exports) == 2
    cli("bundle", "verify", str(tmp_path / "b.zip"))


def test_the_queue_setting(tmp_path: Path) -> None:
    env = {"TIEZHENG_HOME": str(tmp_path)}
    assert Settings.from_env(env).queue_url is None
    s = Settings.from_env({**env, "TIEZHENG_QUEUE": REDIS_URL, "TIEZHENG_QUEUE_NAME": "q1"})
    assert (s.queue_url, s.queue_name) == (REDIS_URL, "q1")
    with pytest.raises(ConfigError, match="TIEZHENG_QUEUE must be a Redis URL"):
        Settings.from_env({**env, "TIEZHENG_QUEUE": "amqp://localhost"})


def test_upload_queues_the_same_automatic_check_as_the_face_service() -> None:
    # The upload path queues through evidence.facejobs (without loading the face engine); the
    # face service's own automatic submission must describe the very same job.
    from evidence.facejobs import auto_check_key, auto_check_params

    assert auto_check_key(7) == "face_check:auto:7"
    params = auto_check_params(7)
    service_params = {
        "evidence": 7,
        "fps": 1.0,
        "tolerance": 0.6,
        "model": "hog",
        "persons": [],
        "automatic": True,
    }
    assert params == service_params
    from evidence.facecheck import DEFAULT_TOLERANCE, check_parameters

    assert check_parameters(1.0, DEFAULT_TOLERANCE, "hog") == (
        params["fps"],
        params["tolerance"],
        params["model"],
    )
