"""Build real media files for the evidence tests.

Every audio and video file here is encoded by FFmpeg through PyAV, so the tests exercise the
same demuxer that production uses on real uploads; images come from Pillow. Two formats are
put together by hand because nothing in the dependency set writes them:

- HEIC: FFmpeg has no HEIF muxer. We encode one HEVC frame with libx265 into an MP4, lift the
  ``hvcC`` configuration and the sample out of it, and wrap them in the boxes ISO/IEC 23008-12
  requires (``ftyp``, ``meta`` with ``hdlr``/``pitm``/``iinf``/``iloc``/``iprp``, ``mdat``),
  plus an ``Exif`` item, as phones write it.
- PDF: a one-page PDF 1.4 with a correct cross-reference table.

The files are small (a couple of seconds, 160x120) so the whole set builds in about a second.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

# Where and when the synthetic "visit" happened (Shanghai, People's Square).
GPS_LAT = 31.2304
GPS_LON = 121.4737
GPS_ALT = 12.5
ISO6709 = "+31.2304+121.4737+012.500/"
CREATION_TIME = "2026-11-26T10:15:00.000000Z"
EXIF_LOCAL_TIME = "2026:11:26 18:15:00"
EXIF_OFFSET = "+08:00"

WIDTH, HEIGHT = 160, 120
FPS = 10
SECONDS = 2


def _frames(count: int) -> list[np.ndarray]:
    """A moving gradient: cheap to encode, never a blank frame."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for i in range(count):
        r = (xs * 255 // WIDTH + i * 12) % 256
        g = (ys * 255 // HEIGHT + i * 7) % 256
        b = ((xs + ys + i * 5) * 3) % 256
        frames.append(np.dstack([r, g, b]).astype(np.uint8))
    return frames


def _tone(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1330 * t)
    return (wave * 32767).astype(np.int16)


def _add_audio(container: av.container.OutputContainer, codec: str, rate: int,
               layout: str) -> av.audio.stream.AudioStream:
    stream = container.add_stream(codec, rate=rate)
    assert isinstance(stream, av.audio.stream.AudioStream)
    stream.layout = layout
    return stream


def _encode_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  seconds: float, source_rate: int = 48000) -> None:
    samples = _tone(source_rate, seconds)
    resampler = av.AudioResampler(format=stream.format, layout=stream.layout, rate=stream.rate)
    chunk = 1024
    pts = 0
    for start in range(0, len(samples), chunk):
        piece = samples[start:start + chunk].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
        frame.sample_rate = source_rate
        frame.pts = pts
        frame.time_base = Fraction(1, source_rate)
        pts += piece.shape[1]
        for out in resampler.resample(frame):
            container.mux(stream.encode(out))
    for out in resampler.resample(None):
        container.mux(stream.encode(out))
    container.mux(stream.encode(None))


def make_video(path: Path, *, fmt: str, codec: str, audio: str | None = "aac",
               metadata: dict[str, str] | None = None,
               container_options: dict[str, str] | None = None,
               pix_fmt: str = "yuv420p", audio_rate: int = 48000) -> Path:
    """Encode a SECONDS-long WIDTHxHEIGHT clip (with an audio track unless ``audio`` is None)."""
    with av.open(str(path), mode="w", format=fmt, container_options=container_options or {}) as c:
        for key, value in (metadata or {}).items():
            c.metadata[key] = value
        video = c.add_stream(codec, rate=FPS)
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, pix_fmt
        if codec in ("libx264", "h264"):
            video.options = {"preset": "ultrafast"}
        elif codec in ("libvpx", "libvpx-vp9", "vp8", "vp9"):
            video.options = {"deadline": "realtime", "cpu-used": "8"}
        astream = _add_audio(c, audio, audio_rate, "mono") if audio else None
        for i, arr in enumerate(_frames(FPS * SECONDS)):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            c.mux(video.encode(frame))
        c.mux(video.encode(None))
        if astream is not None:
            _encode_audio(c, astream, SECONDS)
    return path


def make_large_video(path: Path, *, fmt: str, codec: str, frames: int = 24,
                     size: tuple[int, int] = (640, 480), audio: str | None = None) -> Path:
    """A clip of noise frames (several MB), for uploads that span many store chunks."""
    rng = np.random.default_rng(11)
    width, height = size
    with av.open(str(path), mode="w", format=fmt) as c:
        video = c.add_stream(codec, rate=FPS)
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height = width, height
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec in ("libvpx", "libvpx-vp9"):
            video.options = {"deadline": "realtime", "cpu-used": "8", "b": "20M"}
        astream = _add_audio(c, audio, 48000, "mono") if audio else None
        for i in range(frames):
            arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            c.mux(video.encode(frame))
        c.mux(video.encode(None))
        if astream is not None:
            _encode_audio(c, astream, frames / FPS)
    return path


def make_audio(path: Path, *, fmt: str, codec: str, rate: int = 48000,
               layout: str = "mono", metadata: dict[str, str] | None = None,
               container_options: dict[str, str] | None = None) -> Path:
    """Encode a SECONDS-long two-tone recording."""
    with av.open(str(path), mode="w", format=fmt, container_options=container_options or {}) as c:
        for key, value in (metadata or {}).items():
            c.metadata[key] = value
        stream = _add_audio(c, codec, rate, layout)
        _encode_audio(c, stream, SECONDS)
    return path


def _exif(with_gps: bool = True) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Tiezheng Test Camera"  # Make
    exif[0x0110] = "TZ-1"  # Model
    ifd = exif.get_ifd(0x8769)  # Exif IFD
    ifd[0x9003] = EXIF_LOCAL_TIME  # DateTimeOriginal (local time of the device)
    ifd[0x9011] = EXIF_OFFSET  # OffsetTimeOriginal
    if with_gps:
        def dms(value: float) -> tuple[float, float, float]:
            deg = int(value)
            minutes_full = (value - deg) * 60
            minutes = int(minutes_full)
            return (float(deg), float(minutes), round((minutes_full - minutes) * 60, 4))

        gps = exif.get_ifd(0x8825)
        gps[1] = "N"
        gps[2] = dms(GPS_LAT)
        gps[3] = "E"
        gps[4] = dms(GPS_LON)
        gps[5] = b"\x00"
        gps[6] = GPS_ALT
    return exif


def make_image(path: Path, *, fmt: str, exif: bool = True) -> Path:
    """A WIDTHxHEIGHT photo with EXIF capture time and GPS."""
    img = Image.fromarray(_frames(1)[0])
    kwargs: dict[str, object] = {}
    if exif:
        kwargs["exif"] = _exif()
    img.save(path, format=fmt, **kwargs)
    return path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _find_box(data: bytes, kind: bytes) -> bytes:
    """The whole box (header included) of the first ``kind`` found anywhere in ``data``."""
    at = data.index(kind) - 4
    (size,) = struct.unpack(">I", data[at:at + 4])
    return data[at:at + size]


def _hevc_mp4(mp4: Path) -> bytes:
    """One HEVC frame in an MP4. libx265 with its thread pools now and then fails with
    FFmpeg's "patches welcome" error on this 2-core machine: run it single-threaded, and retry."""
    for attempt in range(5):
        try:
            with av.open(str(mp4), mode="w", format="mp4") as c:
                s = c.add_stream("libx265", rate=1)
                s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
                s.options = {
                    "preset": "ultrafast",
                    "x265-params": "log-level=none:pools=none:frame-threads=1",
                }
                s.codec_tag = "hvc1"
                frame = av.VideoFrame.from_ndarray(_frames(1)[0], format="rgb24")
                frame.pts = 0
                c.mux(s.encode(frame))
                c.mux(s.encode(None))
            return mp4.read_bytes()
        except av.error.PatchWelcomeError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def make_heic(path: Path, scratch: Path) -> Path:
    """A single-image HEIF (ISO/IEC 23008-12) with HEVC coding and an Exif item."""
    source = _hevc_mp4(scratch / "heic-source.mp4")
    hvcc = _find_box(source, b"hvcC")
    mdat = _find_box(source, b"mdat")
    image = mdat[8:]  # one sample: length-prefixed NAL units, exactly what HEIF stores
    exif_tiff = _exif().tobytes()[6:]  # drop "Exif\0\0": HEIF stores an offset word instead
    exif_item = struct.pack(">I", 0) + exif_tiff

    ftyp = _box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic")
    hdlr = _full_box(b"hdlr", 0, 0, b"\0\0\0\0pict" + b"\0" * 12 + b"\0")
    pitm = _full_box(b"pitm", 0, 0, struct.pack(">H", 1))
    infe1 = _full_box(b"infe", 2, 0, struct.pack(">HH", 1, 0) + b"hvc1" + b"\0")
    infe2 = _full_box(b"infe", 2, 0, struct.pack(">HH", 2, 0) + b"Exif" + b"\0")
    iinf = _full_box(b"iinf", 0, 0, struct.pack(">H", 2) + infe1 + infe2)
    iref = _full_box(b"iref", 0, 0, _box(b"cdsc", struct.pack(">HHH", 2, 1, 1)))
    ispe = _full_box(b"ispe", 0, 0, struct.pack(">II", WIDTH, HEIGHT))
    ipco = _box(b"ipco", hvcc + ispe)
    # item 1: property 1 (hvcC, essential) and property 2 (ispe)
    ipma = _full_box(b"ipma", 0, 0, struct.pack(">IHB", 1, 1, 2) + bytes([0x81, 0x02]))
    iprp = _box(b"iprp", ipco + ipma)

    def build(offset1: int, offset2: int) -> bytes:
        # iloc version 0, offset_size 4, length_size 4, base_offset_size 0
        entries = b"".join(
            struct.pack(">HHHII", item, 0, 1, off, len(blob))
            for item, off, blob in ((1, offset1, image), (2, offset2, exif_item))
        )
        iloc = _full_box(b"iloc", 0, 0, bytes([0x44, 0x00]) + struct.pack(">H", 2) + entries)
        return _full_box(b"meta", 0, 0, hdlr + pitm + iloc + iinf + iref + iprp)

    head_len = len(ftyp) + len(build(0, 0)) + 8  # the sizes do not depend on the offsets
    meta = build(head_len, head_len + len(image))
    path.write_bytes(ftyp + meta + _box(b"mdat", image + exif_item))
    return path


def make_pdf(path: Path) -> Path:
    """A one-page PDF 1.4 with a correct xref table (offsets computed, not guessed)."""
    content = b"BT /F1 18 Tf 20 60 Td (Tiezheng evidence) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


# name -> (file name, expected sniffed media type, builder)
_Builder = Callable[[Path, Path], Path]

_VIDEO_META = {"creation_time": CREATION_TIME, "location": ISO6709}

CATALOGUE: dict[str, tuple[str, str, _Builder]] = {
    "mp4": ("visit.mp4", "video/mp4", lambda p, _s: make_video(
        p, fmt="mp4", codec="libx264", metadata=_VIDEO_META)),
    "mov": ("visit.mov", "video/quicktime", lambda p, _s: make_video(
        p, fmt="mov", codec="libx264", metadata={
            "creation_time": CREATION_TIME,
            "com.apple.quicktime.location.ISO6709": ISO6709,
        }, container_options={"movflags": "use_metadata_tags"})),
    "3gp": ("visit.3gp", "video/3gpp", lambda p, _s: make_video(
        p, fmt="3gp", codec="mpeg4", audio="libopencore_amrnb", audio_rate=8000,
        metadata={"creation_time": CREATION_TIME}, pix_fmt="yuv420p")),
    "webm": ("visit.webm", "video/webm", lambda p, _s: make_video(
        p, fmt="webm", codec="libvpx", audio="libopus")),
    "mkv": ("visit.mkv", "video/x-matroska", lambda p, _s: make_video(
        p, fmt="matroska", codec="mpeg4", audio="mp3")),
    "avi": ("visit.avi", "video/x-msvideo", lambda p, _s: make_video(
        p, fmt="avi", codec="mjpeg", audio="pcm_s16le", pix_fmt="yuvj420p")),
    "mp3": ("call.mp3", "audio/mpeg", lambda p, _s: make_audio(p, fmt="mp3", codec="libmp3lame",
                                                              rate=44100)),
    "m4a": ("call.m4a", "audio/mp4", lambda p, _s: make_audio(p, fmt="ipod", codec="aac")),
    "aac": ("call.aac", "audio/aac", lambda p, _s: make_audio(p, fmt="adts", codec="aac")),
    "wav": ("call.wav", "audio/wav", lambda p, _s: make_audio(p, fmt="wav", codec="pcm_s16le",
                                                             rate=16000)),
    "ogg": ("call.ogg", "audio/ogg", lambda p, _s: make_audio(p, fmt="ogg", codec="libopus")),
    "opus": ("call.opus", "audio/ogg", lambda p, _s: make_audio(p, fmt="opus", codec="libopus")),
    "amr": ("call.amr", "audio/amr", lambda p, _s: make_audio(
        p, fmt="amr", codec="libopencore_amrnb", rate=8000)),
    "jpeg": ("photo.jpg", "image/jpeg", lambda p, _s: make_image(p, fmt="JPEG")),
    "png": ("photo.png", "image/png", lambda p, _s: make_image(p, fmt="PNG")),
    "heic": ("photo.heic", "image/heic", lambda p, s: make_heic(p, s)),
    "pdf": ("notice.pdf", "application/pdf", lambda p, _s: make_pdf(p)),
    # Variants: the index before the data (as phones and web players want it), an MP3 with
    # neither an ID3 tag nor a Xing header (frame sync only), an audio-only "isom" MP4, and
    # a fragmented MP4.
    "mp4_faststart": ("faststart.mp4", "video/mp4", lambda p, _s: make_video(
        p, fmt="mp4", codec="libx264", container_options={"movflags": "faststart"})),
    "mp3_plain": ("plain.mp3", "audio/mpeg", lambda p, _s: make_audio(
        p, fmt="mp3", codec="libmp3lame", rate=44100,
        container_options={"id3v2_version": "0", "write_xing": "0"})),
    "mp4_audio": ("recording.mp4", "video/mp4", lambda p, _s: make_audio(
        p, fmt="mp4", codec="aac")),
    # Fragmented MP4 (as live recorders and some phones write): no complete sample table.
    "mp4_fragmented": ("fragmented.mp4", "video/mp4", lambda p, _s: make_video(
        p, fmt="mp4", codec="libx264",
        container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})),
}


def build_all(directory: Path) -> dict[str, Path]:
    """Build every file of CATALOGUE in ``directory``; returns name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / "scratch"
    scratch.mkdir(exist_ok=True)
    built = {}
    for name, (filename, _type, build) in CATALOGUE.items():
        try:
            built[name] = build(directory / filename, scratch)
        except Exception as exc:
            raise RuntimeError(f"could not build the test file {name!r}: {exc!r}") from exc
    return built


def expected_type(name: str) -> str:
    """The media type a CATALOGUE entry must sniff to."""
    return CATALOGUE[name][1]


def local_time() -> datetime:
    """The capture time written into the photos' EXIF, as an aware datetime."""
    return datetime.fromisoformat(EXIF_LOCAL_TIME.replace(":", "-", 2).replace(" ", "T")
                                  + EXIF_OFFSET)
