"""Benchmark: face checks on a 60 s 1280x720 25 fps video, sampled at 1 frame per second.

Compares ``evidence.faces.check_video`` (grab() to skip frames, detection on a 640 px copy,
encoding on the full frame) with 1 and 2 worker processes against the naive loop measured in
the same run: decode every frame, detect on every full-size frame, encode every face found.
The naive loop is measured over the first ``--baseline-seconds`` of the video and scaled to
the whole (it costs about the same every second: the faces are on screen throughout).

Run: ``python benchmarks/bench_faces.py`` (``make bench``). Target: at least 4x real time.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import skimage.data
from numpy.typing import NDArray
from PIL import Image

from evidence.faces import check_video, detect_faces, encode_enrolment_image, encode_faces
from evidence.video import u8


def _heads() -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    # The astronaut image also shows a face-like mission patch: use a crop of her head.
    data: Any = skimage.data  # untyped
    astronaut = np.ascontiguousarray(data.astronaut()[0:250, 120:320])
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as img:
        hopper = np.asarray(img.convert("RGB"))[60:400, 110:440]
    # Faces of about 130 px in a 720p frame: a person at a door, filmed from a few steps away.
    astronaut = cv2.resize(astronaut, None, fx=1.45, fy=1.45, interpolation=cv2.INTER_CUBIC)
    hopper = cv2.resize(hopper, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(astronaut), np.ascontiguousarray(hopper)


def make_video(path: Path, seconds: int, width: int, height: int, fps: int) -> None:
    """Both heads drift across a noise background; Hopper leaves during the middle third."""
    astronaut, hopper = _heads()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write mp4v here")
    background = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = seconds * fps
    for i in range(frames):
        frame = background.copy()
        phase = i / frames
        for head, y, lo, hi in ((astronaut, 40, 0.0, 1.0), (hopper, 330, 0.0, 1.0)):
            t = i / fps
            if head is hopper and seconds / 3 <= t < 2 * seconds / 3:
                continue
            h, w = head.shape[:2]
            x = round((width - w) * (lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * phase))))
            frame[y : y + h, x : x + w] = head[:, :, ::-1]
        writer.write(frame)
    writer.release()


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (the workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def naive(path: Path, seconds: float) -> tuple[float, int]:
    """Decode every frame of the first ``seconds``, detect on the full frame, encode faces."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    limit = round(seconds * cap.get(cv2.CAP_PROP_FPS))
    faces = 0
    start = time.perf_counter()
    for _ in range(limit):
        ok, frame = cap.read()
        if not ok:
            break
        rgb = u8(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        boxes = detect_faces(rgb, model="hog", upsample=1, detect_max_side=None)
        faces += len(encode_faces(rgb, boxes))
    elapsed = time.perf_counter() - start
    cap.release()
    return elapsed, faces


def main(argv: list[str] | None = None) -> None:
    """Build the video, time each variant, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--baseline-seconds", type=float, default=4.0)
    parser.add_argument("--sample-fps", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of ours; the best counts")
    args = parser.parse_args(argv)
    width, height, fps = 1280, 720, 25
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "visit.mp4"
        start = time.perf_counter()
        make_video(video, args.seconds, width, height, fps)
        print(
            f"made {args.seconds} s {width}x{height} {fps} fps mp4v video "
            f"in {time.perf_counter() - start:.1f} s"
        )
        astronaut, _ = _heads()
        template = encode_enrolment_image(astronaut)
        ours: dict[int, float] = {}
        ours_cpu: dict[int, float] = {}
        for workers in (1, 2):
            runs = []
            for _ in range(max(1, args.repeat)):
                start, start_cpu = time.perf_counter(), _cpu()
                result = check_video(
                    video, {"astronaut": [template]}, fps=args.sample_fps, workers=workers
                )
                runs.append((time.perf_counter() - start, _cpu() - start_cpu))
            ours[workers], ours_cpu[workers] = min(runs)  # the least disturbed run (timeit)
            person = result.person("astronaut")
            print(
                f"{workers} worker(s): {ours[workers]:.1f} s, frames {result.frames_sampled}, "
                f"astronaut matched in {person.frames} (best {person.distance:.3f}), "
                f"unknown people {result.unknown_faces}"
            )
        start_cpu = _cpu()
        base_elapsed, base_faces = naive(video, args.baseline_seconds)
        base = base_elapsed / args.baseline_seconds
        base_cpu = (_cpu() - start_cpu) / args.baseline_seconds
        print(
            f"naive: {base_elapsed:.1f} s for the first {args.baseline_seconds:g} s "
            f"({base_faces} faces), scaled to {args.seconds} s"
        )
    rows = []
    for workers in (1, 2):
        per = ours[workers] / args.seconds
        rows.append((f"{workers} worker(s): s per video-second", per, base, base / per))
        rows.append((f"{workers} worker(s): x real time", 1 / per, 1 / base, base / per))
        cpu = ours_cpu[workers] / args.seconds
        rows.append((f"{workers} worker(s): CPU s per video-second", cpu, base_cpu, base_cpu / cpu))
    print()
    print(f"| {'row':<38} | {'ours':>8} | {'baseline':>8} | {'ratio':>7} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    for name, value, baseline, ratio in rows:
        print(f"| {name:<38} | {value:>8.3f} | {baseline:>8.3f} | {ratio:>6.1f}x |")
    print(
        f"\nbaseline: naive loop over the first {args.baseline_seconds:g} s, scaled; "
        f"ratio = our speed-up over it. Target: at least 4x real time.\n"
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} when done: other "
        "processes slow the wall-clock figures much more than the CPU seconds (ours + workers)."
    )


if __name__ == "__main__":
    main()
