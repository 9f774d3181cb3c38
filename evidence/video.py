"""Frame sampling from video files (OpenCV's FFmpeg backend).

A face check looks at a few frames per second, not all of them: :func:`sample_frames` walks the
stream with ``grab()`` (demux and decode, no colour conversion) and ``retrieve()``s only the
frames it samples. Sample ``k`` is the first frame whose presentation time is at or after
``k / fps``; times come from the stream (``CAP_PROP_POS_MSEC``), so variable-frame-rate phone
videos are sampled at the right moments.

Before OpenCV sees a file its first bytes are checked: FFmpeg happily "opens" a JPEG (one frame)
or a text file (its tty demuxer), which must be refused as not a video rather than checked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from core.errors import InputError, NotFoundError, TiezhengError

__all__ = [
    "CorruptVideo",
    "FrameSampler",
    "NotAVideo",
    "VideoError",
    "VideoInfo",
    "VideoNotFound",
    "probe_video",
    "read_frame_at",
    "sample_frames",
]

# Presentation times come back in (rounded) milliseconds: compare with half a millisecond slack.
_EPS: Final = 0.0005
_SNIFF_BYTES: Final = 4096

RGBFrame = NDArray[np.uint8]


class VideoError(TiezhengError):
    """Root of the errors about video files."""


class VideoNotFound(NotFoundError, VideoError):
    """The video file does not exist."""


class NotAVideo(InputError, VideoError):
    """The file is recognisably something else (an image, audio, a document, text)."""


class CorruptVideo(InputError, VideoError):
    """The file looks like a video (or like nothing known) but cannot be decoded to the end."""


# ISO base media file format brands that are still images, image sequences or audio only.
_NON_VIDEO_BRANDS: Final = {
    b"heic": "a HEIF image",
    b"heix": "a HEIF image",
    b"heim": "a HEIF image",
    b"heis": "a HEIF image",
    b"hevc": "a HEIF image sequence",
    b"hevx": "a HEIF image sequence",
    b"mif1": "a HEIF image",
    b"msf1": "a HEIF image sequence",
    b"avif": "an AVIF image",
    b"avis": "an AVIF image sequence",
    b"M4A ": "M4A audio",
    b"M4B ": "M4B audio",
    b"M4P ": "M4P audio",
    b"F4A ": "F4A audio",
    b"F4B ": "F4B audio",
}
_ISO_BOXES: Final = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def _sniff(head: bytes) -> tuple[bool | None, str]:
    """Classify the first bytes: (True, container), (False, what it is) or (None, "")."""
    if head[4:8] in _ISO_BOXES:
        brand = head[8:12] if head[4:8] == b"ftyp" else b""
        if brand in _NON_VIDEO_BRANDS:
            return False, _NON_VIDEO_BRANDS[brand]
        return True, "ISO/MP4"
    if head[:4] == b"RIFF":
        kind = head[8:12]
        if kind in (b"AVI ", b"AVIX"):
            return True, "AVI"
        return False, {b"WAVE": "WAV audio", b"WEBP": "a WebP image"}.get(kind, "a RIFF file")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return True, "Matroska/WebM"
    if head[:3] == b"FLV":
        return True, "FLV"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        return True, "ASF/WMV"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return True, "MPEG program stream"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return True, "MPEG transport stream"
    if head[:4] == b"OggS":
        return (True, "Ogg/Theora") if b"\x80theora" in head else (False, "Ogg audio")
    non_video = (
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"BM", "a BMP image"),
        (b"II*\x00", "a TIFF image"),
        (b"MM\x00*", "a TIFF image"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"ID3", "MP3 audio"),
        (b"fLaC", "FLAC audio"),
        (b"#!AMR", "AMR audio"),
        (b"\xff\xfb", "MP3 audio"),
        (b"\xff\xf3", "MP3 audio"),
        (b"\xff\xf2", "MP3 audio"),
        (b"\xff\xf1", "AAC audio"),
        (b"\xff\xf9", "AAC audio"),
    )
    for magic, what in non_video:
        if head.startswith(magic):
            return False, what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the window is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None, ""
    if text and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        return False, "text"
    return None, ""


@dataclass(frozen=True)
class VideoInfo:
    """What the container declares about its video stream."""

    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        """Declared duration in seconds (frame count over frame rate)."""
        return self.frame_count / self.fps

    @property
    def last_frame_s(self) -> float:
        """Presentation time of the last frame, at the declared (average) frame rate."""
        return (self.frame_count - 1) / self.fps

    def planned_samples(self, fps: float) -> int:
        """How many frames sampling at ``fps`` (capped at the video's own rate) will yield."""
        rate = effective_rate(self, fps)
        return math.floor((self.last_frame_s + _EPS) * rate) + 1


def effective_rate(info: VideoInfo, fps: float) -> float:
    """The sampling rate actually used: sampling faster than the video adds nothing."""
    if not math.isfinite(fps) or fps <= 0:
        raise InputError(f"the sampling rate must be a positive number of frames per second: {fps}")
    return min(fps, info.fps)


def _open(path: str | os.PathLike[str]) -> tuple[cv2.VideoCapture, VideoInfo]:
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except FileNotFoundError as e:
        raise VideoNotFound(f"no such video file: {p.name}") from e
    except IsADirectoryError as e:
        raise NotAVideo(f"{p.name} is a directory, not a video") from e
    except OSError as e:
        raise CorruptVideo(f"cannot read {p.name}: {e.strerror or e}") from e
    if not head:
        raise NotAVideo(f"{p.name} is empty, not a video")
    is_video, what = _sniff(head)
    if is_video is False:
        raise NotAVideo(f"{p.name} is {what}, not a video")
    # CAP_FFMPEG explicitly: other backends read "%d" in a name as an image sequence.
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    # Phones store portrait video as landscape frames plus a rotation matrix (ISO/IEC 14496-12
    # tkhd): apply it, or every face is sideways and HOG finds none. On by default; say so.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    if not cap.isOpened():
        cap.release()
        if is_video:
            raise CorruptVideo(
                f"{p.name} looks like {what} but cannot be opened: damaged or truncated"
            )
        raise CorruptVideo(f"{p.name} is not a readable video (no known container): damaged?")
    info = VideoInfo(
        fps=float(cap.get(cv2.CAP_PROP_FPS)),
        frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    if not (math.isfinite(info.fps) and info.fps > 0) or info.width <= 0 or info.height <= 0:
        cap.release()
        raise CorruptVideo(f"{p.name} has no usable video stream (frame rate or size missing)")
    if info.frame_count <= 0:
        # Without a frame count there is neither a progress total nor a completeness check.
        cap.release()
        raise CorruptVideo(f"{p.name} does not declare its length; remux it (e.g. to MP4) first")
    return cap, info


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open the video, check it is one, and return its declared properties."""
    cap, info = _open(path)
    cap.release()
    return info


def u8(array: Any) -> NDArray[np.uint8]:
    """View an OpenCV result (typed as any numeric array) as the uint8 image it is."""
    return np.asarray(array, dtype=np.uint8)


def _to_rgb(frame: Any, max_side: int | None, name: str) -> RGBFrame:
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise CorruptVideo(f"{name}: a frame could not be decoded")
    h, w = frame.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    # cvtColor gives a new C-contiguous array; dlib refuses strided views such as [:, :, ::-1].
    return u8(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def _seek_before(cap: cv2.VideoCapture, info: VideoInfo, t: float) -> None:
    # Seek a frame early: the first grab after it must not be past t (checked by the caller).
    index = max(0, math.floor(t * info.fps) - 1)
    if index > 0:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)


class FrameSampler:
    """Iterable of ``(t_seconds, frame_rgb)`` sampled from one video; ``total`` known up front.

    ``first`` and ``stop`` select sample indices ``[first, stop)`` so that several processes can
    share one video; the union of the parts equals the whole.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float = 1.0,
        max_side: int | None = None,
        *,
        first: int = 0,
        stop: int | None = None,
    ) -> None:
        if max_side is not None and max_side < 16:
            raise InputError(f"max_side must be at least 16 pixels: {max_side}")
        self.path = Path(path)
        self.info = probe_video(path)
        self.rate = effective_rate(self.info, fps)
        self.max_side = max_side
        planned = self.info.planned_samples(fps)
        self.first = max(0, first)
        self.stop = planned if stop is None else min(stop, planned)
        if self.first > self.stop:
            raise InputError(f"sample range [{first}, {stop}) is empty or reversed")
        #: Frames this sampler is expected to yield (reported before decoding starts).
        self.total = self.stop - self.first
        self._planned = planned

    def __iter__(self) -> Iterator[tuple[float, RGBFrame]]:
        name = self.path.name
        cap, info = _open(self.path)
        try:
            k = self.first
            start_t = k / self.rate
            if k > 0:
                _seek_before(cap, info, start_t)
            checked_seek = k == 0
            last_t: float | None = None
            while k < self.stop:
                if not cap.grab():
                    break
                t = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                if not checked_seek:
                    checked_seek = True
                    if t > start_t + _EPS:
                        # The seek overshot (inexact index on a variable-rate stream): start over.
                        cap.release()
                        cap, info = _open(self.path)
                        continue
                last_t = t
                if t + _EPS < k / self.rate:
                    continue
                ok, frame = cap.retrieve()
                if not ok:
                    raise CorruptVideo(f"{name}: the frame at {t:.3f} s could not be decoded")
                yield round(t, 6), _to_rgb(frame, self.max_side, name)
                # A frame may stand for several sample points only when the stream has gaps.
                k = max(k + 1, math.floor((t + _EPS) * self.rate) + 1)
            if k < self.stop:
                self._check_complete(last_t)
        finally:
            cap.release()

    def _check_complete(self, last_t: float | None) -> None:
        # The stream ended before the planned samples. Forgive less than a sampling interval
        # (or two frames) at the very end, where declared counts are sometimes one frame long;
        # anything else is a truncated or damaged file, and a check of it would mislead.
        slack = max(2.0 / self.info.fps, 1.0 / self.rate)
        reached = -1.0 if last_t is None else last_t
        if self.stop == self._planned and reached >= self.info.last_frame_s - slack:
            return
        raise CorruptVideo(
            f"{self.path.name}: decoding stopped at {max(reached, 0.0):.1f} s of "
            f"{self.info.duration_s:.1f} s declared: the file is truncated or damaged"
        )


def sample_frames(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    max_side: int | None = None,
    *,
    first: int = 0,
    stop: int | None = None,
) -> FrameSampler:
    """Sample ``fps`` frames per second of video as RGB arrays, optionally shrunk to ``max_side``.

    The returned :class:`FrameSampler` has ``total`` (for progress) and ``info`` before any
    frame is decoded. Raises :class:`VideoNotFound`, :class:`NotAVideo` or :class:`CorruptVideo`
    (also while iterating, when the stream ends early or a frame does not decode).
    """
    return FrameSampler(path, fps, max_side, first=first, stop=stop)


def read_frame_at(path: str | os.PathLike[str], t_seconds: float) -> RGBFrame:
    """Return the full-size RGB frame presented at ``t_seconds`` (a time a sampler yielded)."""
    name = Path(path).name
    for seek in (True, False):
        cap, info = _open(path)
        overshot = False
        try:
            if seek:
                _seek_before(cap, info, t_seconds)
            first = True
            while cap.grab():
                t = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                if first and seek and t > t_seconds + _EPS:
                    overshot = True  # inexact seek: read from the start instead
                    break
                first = False
                if abs(t - t_seconds) <= _EPS:
                    ok, frame = cap.retrieve()
                    if ok:
                        return _to_rgb(frame, None, name)
                    break
                if t > t_seconds + _EPS:
                    break
        finally:
            cap.release()
        if not overshot:
            break
    raise CorruptVideo(f"{name}: no frame presented at {t_seconds:.3f} s")
