"""The automatic face check of an uploaded visit video, queued without loading the face engine.

Uploads queue a check of every visit video; importing ``evidence.facecheck`` for that would load
OpenCV, NumPy and dlib's bindings into the uploading process (about 0.3 s), for a job that a
worker runs. This module holds what the producer needs: the job type, the automatic check's
parameters and key. ``evidence.facecheck`` uses the same, so both sides agree.
"""

from __future__ import annotations

from typing import Any, Final

from core.accounts import SYSTEM_ACTOR
from evidence.jobs import DEFAULT_ATTEMPTS, JobInfo, JobQueue, declare

JOB_TYPE: Final = "face_check"
AUTO_FPS: Final = 1.0
AUTO_TOLERANCE: Final = 0.6  # dlib's own threshold for its ResNet encoder
AUTO_MODEL: Final = "hog"

declare(JOB_TYPE, max_attempts=DEFAULT_ATTEMPTS)


def auto_check_key(index: int) -> str:
    """One automatic check per evidence entry."""
    return f"{JOB_TYPE}:auto:{index}"


def auto_check_params(index: int) -> dict[str, Any]:
    return {
        "evidence": index,
        "fps": AUTO_FPS,
        "tolerance": AUTO_TOLERANCE,
        "model": AUTO_MODEL,
        "persons": [],
        "automatic": True,
    }


def queue_auto_check(
    queue: JobQueue, index: int, *, actor: str = SYSTEM_ACTOR, send: bool = True
) -> tuple[JobInfo, bool]:
    """Queue (or find) the automatic check of evidence entry ``index``, a video."""
    return queue.submit(
        JOB_TYPE, auto_check_params(index), key=auto_check_key(index), actor=actor, send=send
    )
