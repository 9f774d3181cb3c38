"""Real photographs of two people and test videos made from them.

The astronaut (Eileen Collins, ``skimage.data.astronaut()``) and Grace Hopper (matplotlib's
``sample_data/grace_hopper.jpg``) ship inside the packages, so the tests run offline. The full
astronaut image also holds a face-like mission patch that HOG detects, so enrolment uses a crop
of her head. Videos are written with OpenCV's mp4v (.mp4) and MJPG (.avi) writers, the ones that
work with the pip wheel.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
from numpy.typing import NDArray
from PIL import Image

from evidence.faces import encode_enrolment_image

WIDTH, HEIGHT, FPS, SECONDS = 640, 480, 10, 6
FRAMES = FPS * SECONDS

Image_ = NDArray[np.uint8]


def _astronaut_full() -> Image_:
    data: Any = skimage.data  # untyped
    return np.ascontiguousarray(data.astronaut())


def _astronaut_head() -> Image_:
    # Her face is at rows 76-166, columns 175-265; the mission patch starts at row 335.
    head = _astronaut_full()[0:250, 120:320]
    return np.ascontiguousarray(cv2.resize(head, None, fx=1.2, fy=1.2))


def _hopper_full() -> Image_:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def _hopper_head() -> Image_:
    head = _hopper_full()[60:400, 110:440]
    return np.ascontiguousarray(
        cv2.resize(head, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    )


@dataclass(frozen=True)
class Appearance:
    """One head on screen from ``start`` (inclusive) to ``end`` (exclusive) seconds, moving
    left to right along a row starting at ``x0``."""

    head: Image_
    start: float
    end: float
    x0: int = 0
    y: int = 60


def _background(kind: str) -> Image_:
    if kind == "plain":
        return np.full((HEIGHT, WIDTH, 3), (40, 90, 140), dtype=np.uint8)
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def write_video(
    path: Path,
    fourcc: str,
    appearances: Sequence[Appearance],
    *,
    background: str = "noise",
    frames: int = FRAMES,
) -> Path:
    """Write a 640x480, 10 fps video in which each head slides across the frame (RGB heads)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    base = _background(background)
    for i in range(frames):
        t = i / FPS
        frame = base.copy()
        for a in appearances:
            if not a.start <= t < a.end:
                continue
            h, w = a.head.shape[:2]
            travel = WIDTH // 2 - w // 2
            x = a.x0 + round(travel * (t - a.start) / max(a.end - a.start, 1e-9))
            x = min(max(x, 0), WIDTH - w)
            frame[a.y : a.y + h, x : x + w] = a.head[:, :, ::-1]  # RGB -> BGR for OpenCV
        writer.write(frame)
    writer.release()
    return path


def write_portrait_video(path: Path, head: Image_, *, frames: int = 20) -> Path:
    """A phone-style portrait video: landscape frames holding the scene turned 90° to the left,
    and a track matrix (ISO/IEC 14496-12 tkhd) telling players to turn it back."""
    scene = np.full((WIDTH, HEIGHT, 3), 90, dtype=np.uint8)  # 480 wide, 640 high
    scene[100 : 100 + head.shape[0], 100 : 100 + head.shape[1]] = head
    stored = cv2.cvtColor(np.ascontiguousarray(np.rot90(scene)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for _ in range(frames):
        writer.write(stored)
    writer.release()
    data = path.read_bytes()
    at = data.index(b"tkhd")
    assert data[at + 4] == 0  # version 0 box: 32-bit times
    # fourcc, version+flags, 5 x 32-bit fields, 8 reserved, layer/group/volume/reserved
    matrix = at + 4 + 4 + 20 + 8 + 8
    rotate_90 = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(data[:matrix] + rotate_90 + data[matrix + 36 :])
    return path


@dataclass(frozen=True)
class Videos:
    astronaut: Path  # mp4v: the astronaut for the whole 6 s
    hopper: Path  # MJPG: Hopper for the whole 6 s
    sequence: Path  # mp4v: astronaut 0-3 s, then Hopper 3-6 s
    both: Path  # MJPG: both at once, side by side, 0-6 s
    hopper_brief: Path  # mp4v: Hopper only from 0.5 s to 5.5 s (5 sampled frames at 1 fps)
    empty: Path  # mp4v: plain background, nobody


@pytest.fixture(scope="session")
def astronaut_head() -> Image_:
    return _astronaut_head()


@pytest.fixture(scope="session")
def astronaut_full() -> Image_:
    return _astronaut_full()


@pytest.fixture(scope="session")
def hopper_head() -> Image_:
    return _hopper_head()


@pytest.fixture(scope="session")
def astronaut_template(astronaut_head: Image_) -> NDArray[np.float64]:
    return encode_enrolment_image(astronaut_head)


@pytest.fixture(scope="session")
def hopper_template(hopper_head: Image_) -> NDArray[np.float64]:
    return encode_enrolment_image(hopper_head)


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Videos:
    d = tmp_path_factory.mktemp("videos")
    astro, hopper = _astronaut_head(), _hopper_head()
    return Videos(
        astronaut=write_video(d / "astronaut.mp4", "mp4v", [Appearance(astro, 0, SECONDS)]),
        hopper=write_video(d / "hopper.avi", "MJPG", [Appearance(hopper, 0, SECONDS)]),
        sequence=write_video(
            d / "sequence.mp4",
            "mp4v",
            [Appearance(astro, 0, 3), Appearance(hopper, 3, SECONDS)],
        ),
        both=write_video(
            d / "both.avi",
            "MJPG",
            [
                Appearance(astro, 0, SECONDS, x0=0, y=20),
                Appearance(hopper, 0, SECONDS, x0=330, y=250),
            ],
        ),
        hopper_brief=write_video(d / "hopper_brief.mp4", "mp4v", [Appearance(hopper, 0.5, 5.5)]),
        empty=write_video(d / "empty.mp4", "mp4v", [], background="plain"),
    )


@pytest.fixture()
def progress_log() -> tuple[list[tuple[int, int]], Callable[[int, int], None]]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))
