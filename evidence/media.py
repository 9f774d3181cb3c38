"""What an upload really is, from its bytes, and what it says about itself.

``sniff(head)`` names the media type from the magic bytes alone (never the file name or the
client's MIME type). ``probe(path, media_type)`` then reads the file with a real parser and
returns its metadata, or raises ``CorruptMedia`` when the bytes claim a type they cannot be
read as. What each family must satisfy:

- Audio and video go through PyAV (FFmpeg), with the demuxer forced to the sniffed format. The
  file must open, hold at least one audio or video stream, and every packet must demux
  (decode-free, so a 1 GB video costs one read, not a decode). Where the demuxer reads a
  complete sample index when it opens the file (MP4/MOV/3GP/M4A sample tables, an AVI's
  index), every sample that index lists must lie inside the file instead, checked from the
  index without reading the samples: reading them would prove nothing more, since demuxing
  does not look inside a sample, and a 4 GiB phone video then costs its index, not its size.
  A fragmented MP4 or an AVI without its index is demuxed packet by packet. Matroska and WebM
  have no complete index either; an upload of one is demuxed while it streams in
  (:class:`StreamScan`), so the stored file is not read back. Then, so that a truncated or
  half-overwritten file is caught:

  * where the container declares its length (MP4/MOV/3GP/M4A sample tables, Matroska/WebM
    ``Duration``, AVI and WAV headers, Ogg's final granule, an MP3 Xing/Info/VBRI header), the
    packets must reach it: an ISO-BMFF track must deliver every sample its index lists, and
    the data must not end more than max(0.5 s, 1 %) before the declared duration;
  * a RIFF (WAV, AVI) header must not declare more bytes than the file has, the top-level
    boxes of an ISO-BMFF file (MP4, MOV, 3GP, M4A) must tile it exactly, and no packet may be
    cut short (FFmpeg flags such a packet as corrupt);
  * in raw streams (MP3, ADTS AAC, AMR) every packet must be exactly one whole frame by its
    own header, and packets must make up at least 90 % of the bytes after any ID3 tag when
    no Xing header declares the length: junk glued to a frame, a demuxer skipping garbage to
    find frames, or a last frame cut short all mean damage. A cut at a frame boundary
    leaves a valid, shorter recording that no parser can tell apart; likewise random PCM
    samples in a WAV, a cut at an Ogg page boundary, or a cut in a Matroska/WebM file written
    live (as browsers' MediaRecorder does: no ``Duration``, so nothing to fall short of). The
    SHA-256 and SM3 in the log fix the exact bytes whatever they hold.

  A file whose index is intact but whose compressed frames were overwritten demuxes cleanly;
  catching that would need a full decode, which ingestion does not do.
- JPEG and PNG go through Pillow: ``verify()`` (PNG chunk CRCs) and a full ``load()``, which
  rejects a truncated or damaged image (JPEG decoded at 1/8 scale to keep memory small).
- HEIC is checked as ISO-BMFF (ISO/IEC 23008-12): an ``ftyp`` first, no top-level box running
  past the end, a ``meta`` box whose handler is ``pict``, a primary item of a HEVC image type,
  and every ``iloc`` extent inside the file. Dimensions come from the primary item's ``ispe``
  property, capture time and GPS from its ``Exif`` item. PyAV (FFmpeg 8) opens a HEIF too,
  but it only reads the primary image's stream, and phones store that image as a grid of
  tiles whose support in PyAV is young; the box walk checks every item, tile and Exif alike,
  so it is the judge here.
- PDF: a ``%PDF-`` header in the first KiB, ``startxref`` and ``%%EOF`` in the last 2 KiB, and
  a ``startxref`` offset that lands on a cross-reference table or stream.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import av
from PIL import Image, ImageFile, UnidentifiedImageError

from core.clock import zulu
from core.errors import NotFoundError
from evidence.errors import CorruptMedia, StorageError, UnsupportedMedia

Kind = Literal["audio", "video", "image", "document"]


@dataclass(frozen=True, slots=True)
class MediaType:
    """An accepted media type: its family, the extension we give it, its FFmpeg demuxer."""

    media_type: str
    kind: Kind
    extension: str
    demuxer: str | None = None


MEDIA_TYPES: dict[str, MediaType] = {
    m.media_type: m
    for m in (
        MediaType("audio/mpeg", "audio", "mp3", "mp3"),
        MediaType("audio/mp4", "audio", "m4a", "mov"),
        MediaType("audio/aac", "audio", "aac", "aac"),
        MediaType("audio/amr", "audio", "amr", "amr"),
        MediaType("audio/amr-wb", "audio", "awb", "amr"),
        MediaType("audio/wav", "audio", "wav", "wav"),
        MediaType("audio/ogg", "audio", "ogg", "ogg"),
        MediaType("audio/3gpp", "audio", "3gp", "mov"),
        MediaType("audio/webm", "audio", "weba", "matroska"),
        MediaType("audio/x-matroska", "audio", "mka", "matroska"),
        MediaType("video/mp4", "video", "mp4", "mov"),
        MediaType("video/quicktime", "video", "mov", "mov"),
        MediaType("video/3gpp", "video", "3gp", "mov"),
        MediaType("video/webm", "video", "webm", "matroska"),
        MediaType("video/x-matroska", "video", "mkv", "matroska"),
        MediaType("video/x-msvideo", "video", "avi", "avi"),
        MediaType("image/jpeg", "image", "jpg"),
        MediaType("image/png", "image", "png"),
        MediaType("image/heic", "image", "heic"),
        MediaType("application/pdf", "document", "pdf"),
    )
}
"""Every media type ``sniff`` can return, keyed by media type."""

# A sniffed video container that turns out to hold only audio is reported as its audio twin.
_AUDIO_TWIN = {
    "video/mp4": "audio/mp4",
    "video/3gpp": "audio/3gpp",
    "video/webm": "audio/webm",
    "video/x-matroska": "audio/x-matroska",
}

# --------------------------------------------------------------------------------------------
# Sniffing


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_UNSUPPORTED_BRANDS = {b"avif", b"avis", b"crx ", b"jpx ", b"jp2 "}
_FTYP_BRANDS: dict[bytes, str] = {
    **dict.fromkeys([b"M4A ", b"M4B ", b"M4P ", b"F4A "], "audio/mp4"),
    b"qt  ": "video/quicktime",
    **dict.fromkeys(
        [
            b"3gp4",
            b"3gp5",
            b"3gp6",
            b"3gp7",
            b"3gr6",
            b"3gs6",
            b"3ge6",
            b"3gg6",
            b"3g2a",
            b"3g2b",
            b"3g2c",
        ],
        "video/3gpp",
    ),
    **dict.fromkeys(
        [
            b"isom",
            b"iso2",
            b"iso3",
            b"iso4",
            b"iso5",
            b"iso6",
            b"iso7",
            b"iso8",
            b"iso9",
            b"mp41",
            b"mp42",
            b"mp71",
            b"avc1",
            b"dash",
            b"mmp4",
            b"M4V ",
            b"M4VH",
            b"M4VP",
            b"MSNV",
            b"NDAS",
            b"NDSC",
            b"XAVC",
            b"f4v ",
            b"kddi",
            b"MP4 ",
        ],
        "video/mp4",
    ),
    **dict.fromkeys(_HEIF_BRANDS, "image/heic"),
}
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

# MPEG audio (ISO/IEC 11172-3, 13818-3) bitrates in kbit/s by (MPEG-1?, layer).
_MPEG_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(buf: bytes, i: int) -> int | None:
    """Length of the MPEG audio frame whose header starts at ``i``, or None if none is."""
    if i + 4 > len(buf) or buf[i] != 0xFF or buf[i + 1] & 0xE0 != 0xE0:
        return None
    version = (buf[i + 1] >> 3) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    layer = 4 - ((buf[i + 1] >> 1) & 3)  # 1..3; 4 means the reserved value 0
    bitrate_index, rate_index = buf[i + 2] >> 4, (buf[i + 2] >> 2) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (buf[i + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _adts_frame_length(buf: bytes, i: int) -> int | None:
    """Length of the ADTS frame (ISO/IEC 13818-7) whose header starts at ``i``, or None."""
    if i + 7 > len(buf) or buf[i] != 0xFF or buf[i + 1] & 0xF6 != 0xF0:
        return None
    if (buf[i + 2] >> 2) & 0xF > 12:  # sampling frequency index
        return None
    length = ((buf[i + 3] & 3) << 11) | (buf[i + 4] << 3) | (buf[i + 5] >> 5)
    return length if length >= 7 else None


def _frames_follow(buf: bytes, i: int, frame_length: Callable[[bytes, int], int | None]) -> bool:
    """A valid frame at ``i`` and, if the head reaches that far, a second one right after it."""
    first = frame_length(buf, i)
    if first is None:
        return False
    nxt = i + first
    return nxt + 7 > len(buf) or frame_length(buf, nxt) is not None


def _id3_end(buf: bytes) -> int:
    """Offset after any ID3v2 tags at the start of ``buf`` (0 when there are none)."""
    at = 0
    while buf[at : at + 3] == b"ID3" and len(buf) >= at + 10:
        size_bytes = buf[at + 6 : at + 10]
        if any(b & 0x80 for b in size_bytes):  # sizes are "syncsafe": 7 bits per byte
            break
        size = 0
        for b in size_bytes:
            size = (size << 7) | b
        footer = 10 if buf[at + 5] & 0x10 else 0
        at += 10 + size + footer
    return at


def _ebml_vint(buf: bytes, i: int, keep_marker: bool = False) -> tuple[int, int] | None:
    """A Matroska variable-length integer at ``i``: (value, length in bytes), or None."""
    if i >= len(buf) or buf[i] == 0:
        return None
    length = 9 - buf[i].bit_length()
    if i + length > len(buf):
        return None
    value = buf[i] if keep_marker else buf[i] & ((1 << (8 - length)) - 1)
    for b in buf[i + 1 : i + length]:
        value = (value << 8) | b
    return value, length


def _ebml_doctype(buf: bytes) -> str | None:
    size = _ebml_vint(buf, 4)
    if size is None:
        return None
    at = 4 + size[1]
    end = min(at + size[0], len(buf))
    while at < end:
        ident, size_at = _ebml_vint(buf, at, keep_marker=True) or (0, 0)
        length = _ebml_vint(buf, at + size_at) if size_at else None
        if length is None:
            return None
        data_at = at + size_at + length[1]
        if ident == 0x4282:  # DocType
            return buf[data_at : data_at + length[0]].rstrip(b"\0").decode("ascii", "replace")
        at = data_at + length[0]
    return None


def _sniff_ftyp(head: bytes) -> str | None:
    (size,) = struct.unpack(">I", head[:4])
    end = min(size if size >= 16 else 16, len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _UNSUPPORTED_BRANDS:
            return None
        if brand in _FTYP_BRANDS:
            return _FTYP_BRANDS[brand]
    if b"mif1" in brands or b"msf1" in brands:  # generic HEIF; probe checks the item type
        return "image/heic"
    return None


def sniff(head: bytes) -> str | None:
    """The media type of a file from its first bytes (64 KiB is plenty), or None if unknown.

    Only types in ``MEDIA_TYPES`` are returned. Container types that can hold either audio
    or video are named as video here (``video/mp4`` for an ``isom`` file); ``probe`` renames
    one without a video stream to its audio twin.
    """
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"#!AMR\n"):
        return "audio/amr"
    if head.startswith(b"#!AMR-WB\n"):
        return "audio/amr-wb"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and len(head) >= 12:
        form = head[8:12]
        if form == b"WAVE":
            return "audio/wav"
        if form == b"AVI " and head[:4] == b"RIFF":
            return "video/x-msvideo"
        return None
    if head.startswith(b"OggS") and len(head) >= 28:
        first = head[27 + head[26] :]
        if first.startswith((b"OpusHead", b"\x01vorbis", b"Speex   ", b"\x7fFLAC")):
            return "audio/ogg"
        return None  # Theora video, or something else inside Ogg
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        doctype = _ebml_doctype(head)
        return {"webm": "video/webm", "matroska": "video/x-matroska"}.get(doctype or "")
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if len(head) >= 8 and head[4:8] in _QT_ATOMS:
        (size,) = struct.unpack(">I", head[:4])
        return "video/quicktime" if size in (0, 1) or size >= 8 else None
    at = _id3_end(head)
    if at >= len(head) and at > 0:
        return "audio/mpeg"  # a tag longer than the head (cover art): MP3 by far most often
    if _frames_follow(head, at, _adts_frame_length):
        return "audio/aac"
    if _frames_follow(head, at, _mpeg_frame_length):
        return "audio/mpeg"
    if b"%PDF-" in head[:1024]:  # readers accept a PDF header after some junk
        return "application/pdf"
    return None


# --------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One audio or video stream of a container."""

    type: str
    codec: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "type": self.type,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
        }


Gps = tuple[float, float] | tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a file says about itself. Claims by the file, not facts: the log records them.

    ``creation_time`` is aware (UTC) when the file says which zone its time is in;
    ``creation_time_local`` keeps a device's local time that came without a zone (EXIF
    without OffsetTime), which is not turned into a guess. ``gps`` is (lat, lon[, alt m]).
    """

    media_type: str
    kind: Kind
    container: str | None = None
    duration_s: float | None = None
    streams: tuple[StreamInfo, ...] = ()
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    creation_time: datetime | None = None
    creation_time_local: str | None = None
    gps: Gps | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in RFC 3339, GPS as {"lat", "lon", "alt"})."""
        gps = None
        if self.gps is not None:
            gps = {
                "lat": self.gps[0],
                "lon": self.gps[1],
                "alt": self.gps[2] if len(self.gps) > 2 else None,
            }
        created = None
        if self.creation_time is not None:
            created = zulu(self.creation_time)
        return {
            "media_type": self.media_type,
            "kind": self.kind,
            "container": self.container,
            "duration_s": self.duration_s,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "creation_time": created,
            "creation_time_local": self.creation_time_local,
            "gps": gps,
            "streams": [s.as_dict() for s in self.streams],
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


_ISO6709 = re.compile(r"([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?(?:CRS.*)?/?")


def _iso6709_part(text: str, degree_digits: int) -> float | None:
    sign = -1.0 if text[0] == "-" else 1.0
    body = text[1:]
    whole, _, frac = body.partition(".")
    fraction = float("0." + frac) if frac else 0.0
    if len(whole) == degree_digits:  # ±DD.DDD
        value = int(whole) + fraction
    elif len(whole) == degree_digits + 2:  # ±DDMM.MMM
        value = int(whole[:degree_digits]) + (int(whole[degree_digits:]) + fraction) / 60
    elif len(whole) == degree_digits + 4:  # ±DDMMSS.SSS
        value = (
            int(whole[:degree_digits])
            + int(whole[degree_digits : degree_digits + 2]) / 60
            + (int(whole[degree_digits + 2 :]) + fraction) / 3600
        )
    else:
        return None
    return sign * value


def parse_iso6709(text: str) -> Gps | None:
    """A point in ISO 6709 text (``+31.2304+121.4737+012.5/``) as (lat, lon[, alt]), or None."""
    m = _ISO6709.fullmatch(text.strip())
    if not m:
        return None
    lat = _iso6709_part(m.group(1), 2)
    lon = _iso6709_part(m.group(2), 3)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if m.group(3) is not None:
        return (round(lat, 7), round(lon, 7), float(m.group(3)))
    return (round(lat, 7), round(lon, 7))


def _parse_time(text: str) -> datetime | None:
    """An ISO 8601 time with a zone (container metadata) as UTC, or None."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None
    # Naive values and the zero dates of unset mvhd fields (1904, 1970) say nothing.
    if value.tzinfo is None or value.year < 1980:
        return None
    return value.astimezone(UTC)


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


# --------------------------------------------------------------------------------------------
# Audio and video


_TIME_KEYS = ("com.apple.quicktime.creationdate", "creation_time", "date")
_GPS_KEYS = ("com.apple.quicktime.location.ISO6709", "location", "location-eng", "\u00a9xyz")
_DECLARED_LENGTH = {"mov", "matroska", "avi", "wav", "ogg"}
_MIN_PACKET_SHARE = 0.9
_NO_TIMESTAMP = -(2**63)  # FFmpeg's AV_NOPTS_VALUE


def _riff_check(path: Path, size: int) -> None:
    with open(path, "rb") as f:
        header = f.read(12)
    if header[:4] != b"RIFF" or len(header) < 8:
        return
    (declared,) = struct.unpack("<I", header[4:8])
    # 0 and 0xFFFFFFFF are placeholders of recorders that never went back to fill them in.
    if declared not in (0, 0xFFFFFFFF) and declared + 8 > size:
        raise CorruptMedia(
            f"the file is truncated: its RIFF header declares {declared + 8} "
            f"bytes but it has {size}"
        )


def _leading_tags(path: Path) -> int:
    """Bytes of ID3v2 tags at the start of a raw audio file (they are not audio frames)."""
    at = 0
    with open(path, "rb") as f:
        while True:
            f.seek(at)
            header = f.read(10)
            end = _id3_end(header)
            if end == 0:
                return at
            at += end


def _mp3_declares_length(path: Path, tags: int) -> bool:
    """Whether an MP3 starts with a Xing/Info/VBRI frame, which gives the frame count."""
    with open(path, "rb") as f:
        f.seek(tags)
        frame = f.read(256)
    if _mpeg_frame_length(frame, 0) is None:
        return False
    mpeg1 = (frame[1] >> 3) & 3 == 3
    mono = frame[3] >> 6 == 3
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return frame[4 + side_info : 8 + side_info] in (b"Xing", b"Info") or frame[36:40] == b"VBRI"


def _av_error(exc: BaseException) -> str:
    detail = getattr(exc, "strerror", None) or type(exc).__name__
    return str(detail)


# Bytes of an AMR frame (header included) by frame type, as FFmpeg's amr demuxer sizes them
# (3GPP TS 26.101 / 26.201); types 9-14 are reserved, 15 is NO_DATA.
_AMR_NB_SIZES = (13, 14, 16, 18, 20, 21, 27, 32, 6, 0, 0, 0, 0, 0, 0, 1)
_AMR_WB_SIZES = (18, 24, 33, 37, 41, 47, 51, 59, 61, 6, 0, 0, 0, 0, 1, 1)


def _amr_frame_ok(frame: bytes, sizes: tuple[int, ...]) -> bool:
    # Storage format (RFC 4867 section 5.3): F bit and the two padding bits are zero.
    return bool(frame) and not frame[0] & 0x83 and sizes[(frame[0] >> 3) & 0xF] == len(frame)


_FRAME_CHECKS: dict[str, Callable[[bytes], bool]] = {
    # Each packet of a raw stream must be exactly one whole frame: junk the parser glued to a
    # frame, or a frame cut short at the end, fails this.
    "audio/mpeg": lambda b: _mpeg_frame_length(b, 0) == len(b),
    "audio/aac": lambda b: _adts_frame_length(b, 0) == len(b),
    "audio/amr": lambda b: _amr_frame_ok(b, _AMR_NB_SIZES),
    "audio/amr-wb": lambda b: _amr_frame_ok(b, _AMR_WB_SIZES),
}


@dataclass
class _Scan:
    streams: list[int] = field(default_factory=list)
    packets: dict[int, int] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)
    data_bytes: int = 0


def _scan(
    container: av.container.InputContainer,
    streams: list[Any],
    frame_ok: Callable[[bytes], bool] | None,
) -> _Scan:
    scan = _Scan(streams=[s.index for s in streams])
    try:
        for packet in container.demux(*streams):
            if packet.size == 0:  # the flush packet at the end of each stream
                continue
            if packet.is_corrupt:
                raise CorruptMedia("the file is truncated or damaged: a packet is cut short")
            index = packet.stream.index
            count = scan.packets[index] = scan.packets.get(index, 0) + 1
            if frame_ok is not None and not frame_ok(bytes(packet)):
                raise CorruptMedia(
                    f"the file is truncated or damaged: packet {count} is not one whole audio frame"
                )
            scan.data_bytes += packet.size
            if packet.pts is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                scan.ends[index] = max(scan.ends.get(index, end), end)
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise CorruptMedia(f"the media cannot be demuxed: {_av_error(exc)}") from exc
    return scan


# Demuxers whose packets are scanned while the upload streams in (see StreamScan): Matroska
# and WebM carry no complete sample index, and are the containers large browser and camera
# recordings come in.
_STREAMED = {"matroska"}
_FEED_DEPTH = 8  # chunks waiting for the scan: memory stays flat
_FEED_BUFFER = 1 << 20  # PyAV's read size: whole upload chunks are handed over uncopied


def scanned_while_streaming(media_type: str) -> bool:
    """Whether an upload of ``media_type`` should get a :class:`StreamScan`."""
    spec = MEDIA_TYPES.get(media_type)
    return spec is not None and spec.demuxer in _STREAMED


class _Feed:
    """A read-only, non-seekable file for PyAV whose bytes arrive through a bounded queue."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_FEED_DEPTH)
        self.ended = False
        self._chunk = b""
        self._at = 0

    def read(self, size: int) -> bytes:
        while self._at >= len(self._chunk):
            if self.ended:
                return b""
            chunk = self.queue.get()
            if chunk is None:
                self.ended = True
                return b""
            self._chunk, self._at = chunk, 0
        if self._at == 0 and size >= len(self._chunk):
            self._at = len(self._chunk)
            return self._chunk
        out = self._chunk[self._at : self._at + size]
        self._at += len(out)
        return out


class StreamScan:
    """Demuxes the packets of an upload while its bytes arrive (Matroska and WebM).

    Those containers have no complete sample index to check, so every packet must be demuxed,
    and once the store has written the upload with direct I/O, reading it back would cost 1-2 s
    per GiB. Fed the chunks the store writes, a worker thread runs the same packet scan as
    ``probe`` on the core SM3 leaves free; ``probe(path, media_type, streamed=scan)`` then opens
    the stored file only for its headers (duration, tags, streams), exactly as before, and
    falls back to reading the packets from it if the two openings disagree on the streams. The
    demuxer reads the stream without seeking, which gives Matroska's packets unchanged: it
    reads clusters in order either way. At most ``_FEED_DEPTH`` chunks wait in memory.

    Feed every chunk in order with :meth:`feed`, then hand the scan to ``probe``; an upload
    that fails calls :meth:`close`.
    """

    def __init__(self, media_type: str) -> None:
        if not scanned_while_streaming(media_type):
            raise UnsupportedMedia(f"{media_type!r} is not scanned while streaming")
        self.media_type = media_type
        #: The indexes of the streams scanned, once the stream's headers have been read.
        self.streams: list[int] | None = None
        self._feed = _Feed()
        self._ended = False
        self._result: _Scan | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        spec = MEDIA_TYPES[self.media_type]
        try:
            container = av.open(
                self._feed,
                mode="r",
                format=spec.demuxer,
                metadata_errors="replace",
                buffer_size=_FEED_BUFFER,
            )
            with container:
                streams = _media_streams(container, spec)
                self.streams = [s.index for s in streams]
                self._result = _scan(container, streams, _FRAME_CHECKS.get(self.media_type))
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            self._error = CorruptMedia(
                f"the file cannot be read as {self.media_type}: {_av_error(exc)}"
            )
        except BaseException as exc:  # CorruptMedia from the scan; anything else for finish()
            self._error = exc
        finally:
            # Keep taking chunks, so an upload never waits on a scan that has stopped.
            while not self._feed.ended:
                if self._feed.queue.get() is None:
                    self._feed.ended = True

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """The next chunk of the upload (copied unless it is ``bytes``)."""
        if self._ended:
            raise ValueError("this scan has ended")
        if chunk:
            self._feed.queue.put(chunk if isinstance(chunk, bytes) else bytes(chunk))

    def finish(self) -> _Scan:
        """The upload is complete: wait for the scan and return it (raises CorruptMedia)."""
        self.close()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """End the stream and wait for the worker (idempotent)."""
        if not self._ended:
            self._ended = True
            self._feed.queue.put(None)
        self._thread.join()


# Demuxers that read a complete sample index when they open a file (ISO-BMFF sample tables,
# an AVI's idx1 or OpenDML index), and how many bytes of chunk header each entry's position
# counts before the sample itself.
_INDEXED = {"mov": 0, "avi": 8}


def _index_scan(streams: list[Any], demuxer: str, size: int) -> _Scan | None:
    """Check the samples a complete index lists against the file, without reading them.

    The demuxer has already parsed the index; what reading every packet would add is that
    each listed sample really lies inside the file, and that is checked here from the index
    itself, so a 4 GiB video costs its index, not its size. Returns None when a stream's
    index is missing or does not list as many samples as its header declares (a fragmented
    MP4, an AVI without its index): then every packet is demuxed instead. An AVI keeps its
    index at the end, so a cut file has none (and fails the RIFF size check anyway).
    """
    header = _INDEXED[demuxer]
    scan = _Scan(streams=[s.index for s in streams])
    for s in streams:
        entries = s.index_entries
        n = len(entries)
        # An AVI header counts audio in samples, not chunks: there only video is counted.
        counted = demuxer == "mov" or s.type == "video"
        if n == 0 or (counted and s.frames != n):
            return None
        data = 0
        last = None
        for i, e in enumerate(entries):
            if e.pos < 0 or e.size < 0 or e.pos + header + e.size > size:
                raise CorruptMedia(
                    f"the file is truncated or damaged: sample {i + 1} of track {s.index} "
                    "lies past its end"
                )
            data += e.size
            if e.timestamp != _NO_TIMESTAMP and (last is None or e.timestamp > last):
                last = e.timestamp
        scan.packets[s.index] = n
        scan.data_bytes += data
        if last is not None and s.time_base:
            step = s.duration / n if s.duration else 0  # one sample's length, on average
            scan.ends[s.index] = float((last + step) * s.time_base)
    return scan


def _check_complete(
    container: av.container.InputContainer,
    streams: list[Any],
    scan: _Scan,
    demuxer: str,
    declares_length: bool,
    payload: int,
) -> float | None:
    """Raise CorruptMedia if the data stops short of what the container declares."""
    if not scan.packets:
        raise CorruptMedia("the file holds no audio or video data")
    if demuxer == "mov":
        for s in streams:
            got = scan.packets.get(s.index, 0)
            if s.frames and got < s.frames:
                raise CorruptMedia(
                    f"the file is truncated: track {s.index} lists {s.frames} "
                    f"samples but {got} could be read"
                )
    start = (container.start_time or 0) / av.time_base
    observed = max(scan.ends.values()) - start if scan.ends else None
    declared = container.duration / av.time_base if container.duration else None
    if (
        declares_length
        and declared is not None
        and observed is not None
        and observed < declared - max(0.5, 0.01 * declared)
    ):
        raise CorruptMedia(
            f"the file is truncated or damaged: it declares {declared:.2f} s "
            f"but its data ends at {observed:.2f} s"
        )
    if not declares_length:
        if scan.data_bytes < _MIN_PACKET_SHARE * payload:
            raise CorruptMedia(
                f"the file is damaged: only {scan.data_bytes} of its {payload} "
                "bytes of audio are audio frames"
            )
        return observed
    return declared if declared is not None else observed


def _media_streams(container: av.container.InputContainer, spec: MediaType) -> list[Any]:
    """The audio and video streams to check (cover art is not media); raises if none."""
    attached = av.stream.Disposition.attached_pic
    streams = [
        s
        for s in container.streams
        if s.type in ("audio", "video") and not s.disposition & attached
    ]
    if not streams:
        raise CorruptMedia(f"the file holds no audio or video stream ({spec.media_type})")
    return streams


def _probe_av(path: Path, spec: MediaType, streamed: StreamScan | None = None) -> MediaInfo:
    size = path.stat().st_size
    demuxer = spec.demuxer or ""
    if demuxer in ("wav", "avi"):
        _riff_check(path, size)
    elif demuxer == "mov":
        _top_level_boxes(path, size, spec.media_type)
    tags = _leading_tags(path) if demuxer in ("mp3", "aac") else 0
    declares_length = demuxer in _DECLARED_LENGTH or (
        demuxer == "mp3" and _mp3_declares_length(path, tags)
    )
    try:
        container = av.open(str(path), mode="r", format=spec.demuxer, metadata_errors="replace")
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise CorruptMedia(
            f"the file cannot be read as {spec.media_type}: {_av_error(exc)}"
        ) from exc
    with container:
        streams = _media_streams(container, spec)
        scan = None
        if streamed is not None:
            streamed.close()
            # Only a scan of the streams the stored file shows stands in for reading it.
            if streamed.streams == [s.index for s in streams]:
                scan = streamed.finish()
        if scan is None and demuxer in _INDEXED:
            scan = _index_scan(streams, demuxer, size)
        if scan is None:
            scan = _scan(container, streams, _FRAME_CHECKS.get(spec.media_type))
        duration = _check_complete(container, streams, scan, demuxer, declares_length, size - tags)
        infos = tuple(_stream_info(s) for s in streams)
        metadata = {**_stream_metadata(streams), **dict(container.metadata)}
        container_name = container.format.name

    media_type = spec.media_type
    if spec.kind == "video" and not any(s.type == "video" for s in infos):
        media_type = _AUDIO_TWIN.get(media_type, media_type)
    video = next((s for s in infos if s.type == "video"), None)
    created = None
    for key in _TIME_KEYS:
        if key in metadata and (created := _parse_time(metadata[key])) is not None:
            break
    gps = None
    for key in _GPS_KEYS:
        if key in metadata and (gps := parse_iso6709(metadata[key])) is not None:
            break
    return MediaInfo(
        media_type=media_type,
        kind=MEDIA_TYPES[media_type].kind,
        container=container_name,
        duration_s=round(duration, 3) if duration is not None else None,
        streams=infos,
        width=video.width if video else None,
        height=video.height if video else None,
        fps=video.fps if video else None,
        creation_time=created,
        gps=gps,
    )


def _stream_metadata(streams: list[Any]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for s in streams:
        for key, value in dict(s.metadata).items():
            merged.setdefault(key, value)
    return merged


def _stream_info(stream: Any) -> StreamInfo:
    ctx = stream.codec_context
    codec = ctx.codec.canonical_name if ctx.codec is not None else ctx.name
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate
        fps = _float(rate)
        return StreamInfo(
            "video",
            codec,
            width=ctx.width or None,
            height=ctx.height or None,
            fps=round(fps, 3) if fps else None,
        )
    return StreamInfo(
        "audio", codec, sample_rate=ctx.sample_rate or None, channels=ctx.channels or None
    )


# --------------------------------------------------------------------------------------------
# JPEG and PNG


def _exif_gps(gps_ifd: dict[int, Any]) -> Gps | None:
    def degrees(value: Any) -> float | None:
        try:
            d, m, s = (float(x) for x in value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return d + m / 60 + s / 3600

    lat, lon = degrees(gps_ifd.get(2)), degrees(gps_ifd.get(4))
    if lat is None or lon is None:
        return None
    if str(gps_ifd.get(1, "N")).upper().startswith("S"):
        lat = -lat
    if str(gps_ifd.get(3, "E")).upper().startswith("W"):
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    alt = _float(gps_ifd.get(6))
    if alt is None:
        return (round(lat, 7), round(lon, 7))
    ref = gps_ifd.get(5, b"\x00")
    if ref in (b"\x01", 1):  # below sea level
        alt = -alt
    return (round(lat, 7), round(lon, 7), round(alt, 3))


def _exif_times(exif: Image.Exif) -> tuple[datetime | None, str | None]:
    """(aware capture time, local capture time without zone) from EXIF."""
    ifd = exif.get_ifd(0x8769)
    local = ifd.get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
    offset = ifd.get(0x9011) if ifd.get(0x9003) else ifd.get(0x9010)
    local_text = None
    if isinstance(local, str):
        try:
            naive = datetime.strptime(local.strip().rstrip("\0"), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            naive = None
        if naive is not None:
            local_text = naive.isoformat()
            if isinstance(offset, str):
                aware = _parse_time(local_text + offset.strip().rstrip("\0"))
                if aware is not None:
                    return aware, local_text
    gps = exif.get_ifd(0x8825)
    stamp, clock = gps.get(29), gps.get(7)  # GPSDateStamp, GPSTimeStamp: UTC by definition
    if isinstance(stamp, str) and clock is not None:
        try:
            h, m, s = (float(x) for x in clock)
            day = datetime.strptime(stamp.strip().rstrip("\0"), "%Y:%m:%d")
            value = day.replace(hour=int(h), minute=int(m), second=int(s), tzinfo=UTC)
            return value, local_text
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    return None, local_text


def _exif_claims(exif: Image.Exif) -> tuple[datetime | None, str | None, Gps | None]:
    created, local = _exif_times(exif)
    return created, local, _exif_gps(dict(exif.get_ifd(0x8825)))


_STRICT_IMAGES = threading.Lock()


@contextlib.contextmanager
def _strict_image_loading() -> Iterator[None]:
    """Refuse truncated images while checking one.

    Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is process-wide, and libraries we import set
    it to True (WeasyPrint and face_recognition do, at import), which would make a truncated
    JPEG decode "successfully" with grey filler. Evidence must not pass that way.
    """
    with _STRICT_IMAGES:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _probe_raster(path: Path, spec: MediaType) -> MediaInfo:
    fmt = "JPEG" if spec.media_type == "image/jpeg" else "PNG"
    try:
        with _strict_image_loading():
            return _probe_raster_strict(path, spec, fmt)
    except Image.DecompressionBombError as exc:
        raise UnsupportedMedia(f"the image is too large to check: {exc}") from exc
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        IndexError,
        UnidentifiedImageError,
    ) as exc:
        # Pillow's messages name the file: keep server paths out of what the user reads.
        reason = str(exc).replace(str(path), path.name)
        raise CorruptMedia(f"the file cannot be read as {spec.media_type}: {reason}") from exc


def _probe_raster_strict(path: Path, spec: MediaType, fmt: str) -> MediaInfo:
    with Image.open(path, formats=[fmt]) as im:
        im.verify()  # structure (and PNG chunk CRCs) without decoding
    with Image.open(path, formats=[fmt]) as im:
        width, height = im.size
        exif = im.getexif()
        if fmt == "JPEG":
            im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        im.load()  # decodes every byte: a truncated or damaged image fails here
    created, local, gps = _exif_claims(exif)
    return MediaInfo(
        media_type=spec.media_type,
        kind="image",
        container=fmt.lower(),
        width=width,
        height=height,
        creation_time=created,
        creation_time_local=local,
        gps=gps,
    )


# --------------------------------------------------------------------------------------------
# HEIC (ISO/IEC 23008-12 on ISO/IEC 14496-12 boxes)

_MAX_META = 16 << 20
_HEIF_IMAGE_TYPES = {"hvc1", "grid", "iden", "iovl"}


def _boxes(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, payload end) of the boxes in ``buf[start:end]``."""
    end = len(buf) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[at : at + 8])
        header = 8
        if size == 1:
            if at + 16 > end:
                raise CorruptMedia("a HEIF box header is cut short")
            (size,) = struct.unpack(">Q", buf[at + 8 : at + 16])
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise CorruptMedia("a HEIF box runs past its container")
        yield kind.decode("latin-1"), at + header, at + size
        at += size
    if at != end:
        raise CorruptMedia("the HEIF structure has trailing bytes in a box")


def _uint(buf: bytes, at: int, size: int) -> tuple[int, int]:
    if size == 0:
        return 0, at
    if at + size > len(buf):
        raise CorruptMedia("a HEIF box is cut short")
    return int.from_bytes(buf[at : at + size], "big"), at + size


@dataclass
class _Heif:
    primary: int | None = None
    items: dict[int, str] = field(default_factory=dict)
    extents: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)  # meth,off,len
    properties: list[tuple[str, bytes]] = field(default_factory=list)
    associations: dict[int, list[int]] = field(default_factory=dict)
    idat: tuple[int, int] | None = None  # file offset and length of idat data


def _parse_meta(meta: bytes, meta_offset: int) -> _Heif:
    heif = _Heif()
    handler = None
    for kind, s, e in _boxes(meta, 4):  # meta is a full box: skip version and flags
        body = meta[s:e]
        if kind == "hdlr":
            handler = body[8:12].decode("latin-1")
        elif kind == "pitm":
            heif.primary = _uint(body, 4, 2 if body[0] == 0 else 4)[0]
        elif kind == "iinf":
            count_size = 2 if body[0] == 0 else 4
            for k2, s2, _e2 in _boxes(body, 4 + count_size):
                if k2 != "infe" or body[s2] < 2:
                    continue
                id_size = 2 if body[s2] == 2 else 4
                item_id, at = _uint(body, s2 + 4, id_size)
                heif.items[item_id] = body[at + 2 : at + 6].decode("latin-1")
        elif kind == "iloc":
            _parse_iloc(body, heif)
        elif kind == "idat":
            heif.idat = (meta_offset + s, e - s)
        elif kind == "iprp":
            for k2, s2, e2 in _boxes(body):
                if k2 == "ipco":
                    heif.properties = [(k3, body[s3:e3]) for k3, s3, e3 in _boxes(body, s2, e2)]
                elif k2 == "ipma":
                    _parse_ipma(body[s2:e2], heif)
    if handler != "pict":
        raise CorruptMedia("the HEIF meta box is not an image (its handler is not 'pict')")
    return heif


def _parse_iloc(body: bytes, heif: _Heif) -> None:
    version = body[0]
    if len(body) < 8:
        raise CorruptMedia("the HEIF iloc box is cut short")
    offset_size, length_size = body[4] >> 4, body[4] & 0xF
    base_size, index_size = body[5] >> 4, (body[5] & 0xF if version in (1, 2) else 0)
    count, at = _uint(body, 6, 2 if version < 2 else 4)
    for _ in range(count):
        item_id, at = _uint(body, at, 2 if version < 2 else 4)
        method = 0
        if version in (1, 2):
            method, at = _uint(body, at, 2)
            method &= 0xF
        _ref, at = _uint(body, at, 2)
        base, at = _uint(body, at, base_size)
        extent_count, at = _uint(body, at, 2)
        extents = []
        for _ in range(extent_count):
            _index, at = _uint(body, at, index_size)
            offset, at = _uint(body, at, offset_size)
            length, at = _uint(body, at, length_size)
            extents.append((method, base + offset, length))
        heif.extents[item_id] = extents


def _parse_ipma(body: bytes, heif: _Heif) -> None:
    version, flags = body[0], int.from_bytes(body[1:4], "big")
    count, at = _uint(body, 4, 4)
    for _ in range(count):
        item_id, at = _uint(body, at, 2 if version < 1 else 4)
        n, at = _uint(body, at, 1)
        indexes = []
        for _ in range(n):
            if flags & 1:
                value, at = _uint(body, at, 2)
                indexes.append(value & 0x7FFF)
            else:
                value, at = _uint(body, at, 1)
                indexes.append(value & 0x7F)
        heif.associations[item_id] = indexes


def _item_bytes(path: Path, heif: _Heif, item_id: int, size: int) -> bytes:
    chunks = []
    for method, offset, length in heif.extents.get(item_id, []):
        if method == 1 and heif.idat is not None:
            offset += heif.idat[0]
        with open(path, "rb") as f:
            f.seek(offset)
            chunks.append(f.read(length if length else size - offset))
    return b"".join(chunks)


def _top_level_boxes(path: Path, size: int, label: str) -> list[tuple[str, int, int]]:
    """(type, payload start, end) of the top-level ISO-BMFF boxes; the walk must end at EOF.

    Only headers are read (a seek per box). A box running past the end means a truncated
    file; a type that is not four printable characters means the bytes there are not a box.
    """
    top: list[tuple[str, int, int]] = []
    with open(path, "rb") as f:
        at = 0
        while at < size:
            f.seek(at)
            header = f.read(16)
            if len(header) < 8:
                if not header.strip(b"\0"):
                    break  # zero padding after the last box, as some recorders leave
                raise CorruptMedia(f"the {label} file ends inside a box header")
            box_size, kind = struct.unpack(">I4s", header[:8])
            if not all(0x20 <= b <= 0x7E or b == 0xA9 for b in kind):
                raise CorruptMedia(
                    f"the {label} file is damaged: no box where one must be (at byte {at})"
                )
            head_len = 8
            if box_size == 1:
                if len(header) < 16:
                    raise CorruptMedia(f"the {label} file ends inside a box header")
                (box_size,) = struct.unpack(">Q", header[8:16])
                head_len = 16
            elif box_size == 0:
                box_size = size - at
            if box_size < head_len or at + box_size > size:
                raise CorruptMedia(f"the {label} file is truncated: a box runs past its end")
            top.append((kind.decode("latin-1"), at + head_len, at + box_size))
            at += box_size
    return top


def _probe_heic(path: Path, spec: MediaType) -> MediaInfo:
    size = path.stat().st_size
    top = _top_level_boxes(path, size, "HEIF")
    with open(path, "rb") as f:
        if not top or top[0][0] != "ftyp":
            raise CorruptMedia("the HEIF file does not start with an ftyp box")
        meta_box = next((b for b in top if b[0] == "meta"), None)
        if meta_box is None:
            raise CorruptMedia("the HEIF file has no meta box")
        if meta_box[2] - meta_box[1] > _MAX_META:
            raise CorruptMedia("the HEIF meta box is implausibly large")
        f.seek(meta_box[1])
        meta = f.read(meta_box[2] - meta_box[1])
    try:
        heif = _parse_meta(meta, meta_box[1])
    except (struct.error, IndexError) as exc:
        raise CorruptMedia("the HEIF meta box is malformed") from exc
    if heif.primary is None or heif.items.get(heif.primary) not in _HEIF_IMAGE_TYPES:
        raise CorruptMedia("the HEIF file has no HEVC primary image")
    for item_id, extents in heif.extents.items():
        for method, offset, length in extents:
            if method == 0 and offset + length > size:
                raise CorruptMedia(f"the HEIF file is truncated: item {item_id} lies past its end")
            if method == 1 and (heif.idat is None or offset + length > heif.idat[1]):
                raise CorruptMedia(f"the HEIF item {item_id} lies outside its idat box")
    if heif.primary not in heif.extents:
        raise CorruptMedia("the HEIF primary image has no data")
    width = height = None
    for index in heif.associations.get(heif.primary, []):
        if 0 < index <= len(heif.properties) and heif.properties[index - 1][0] == "ispe":
            body = heif.properties[index - 1][1]
            width, height = struct.unpack(">II", body[4:12])
    created = local = gps = None
    exif_id = next((i for i, t in heif.items.items() if t == "Exif"), None)
    if exif_id is not None:
        data = _item_bytes(path, heif, exif_id, size)
        if len(data) >= 4:
            (skip,) = struct.unpack(">I", data[:4])  # offset of the TIFF header
            exif = Image.Exif()
            try:
                exif.load(data[4 + skip :])
                created, local, gps = _exif_claims(exif)
            except (SyntaxError, ValueError, struct.error, OSError, IndexError):
                pass  # damaged Exif is a missing claim, not a damaged photo
    codec = "hevc" if heif.items[heif.primary] == "hvc1" else heif.items[heif.primary]
    return MediaInfo(
        media_type=spec.media_type,
        kind="image",
        container="heif",
        streams=(StreamInfo("video", codec, width=width, height=height),),
        width=width,
        height=height,
        creation_time=created,
        creation_time_local=local,
        gps=gps,
    )


# --------------------------------------------------------------------------------------------
# PDF


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF")
_XREF_TARGET = re.compile(rb"\s*(xref|\d+\s+\d+\s+obj)")


def _probe_pdf(path: Path, spec: MediaType) -> MediaInfo:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1024)
        header_at = head.find(b"%PDF-")
        if header_at < 0:
            raise CorruptMedia("the file has no %PDF- header")
        version = re.match(rb"%PDF-(\d\.\d)", head[header_at:])
        f.seek(max(0, size - 2048))
        tail = f.read()
        if b"%%EOF" not in tail:
            raise CorruptMedia("the PDF is truncated: it has no %%EOF marker at its end")
        found = list(_STARTXREF.finditer(tail))
        if not found:
            raise CorruptMedia("the PDF is truncated: it has no startxref before %%EOF")
        offset = int(found[-1].group(1))
        ok = False
        for candidate in {offset, offset + header_at}:
            if candidate < size:
                f.seek(candidate)
                if _XREF_TARGET.match(f.read(64)):
                    ok = True
        if not ok:
            raise CorruptMedia(
                "the PDF is damaged: startxref does not point at its cross-reference table"
            )
    name = f"pdf-{version.group(1).decode()}" if version else "pdf"
    return MediaInfo(media_type=spec.media_type, kind="document", container=name)


def probe(path: Path, media_type: str, *, streamed: StreamScan | None = None) -> MediaInfo:
    """Read the file as ``media_type`` (normally what ``sniff`` said) and return its metadata.

    Raises UnsupportedMedia for a type outside ``MEDIA_TYPES`` and CorruptMedia when the file
    cannot be read as that type (see the module docs for what each family must satisfy).
    ``streamed`` is the :class:`StreamScan` that saw the file's bytes as they were written;
    its packet scan then stands in for reading them back. It is closed when probe returns.
    """
    spec = MEDIA_TYPES.get(media_type)
    if spec is None:
        raise UnsupportedMedia(f"{media_type!r} is not an accepted media type")
    if streamed is not None and streamed.media_type != media_type:
        streamed.close()
        raise ValueError("the stream scan is of another media type")
    try:
        if spec.kind in ("audio", "video"):
            return _probe_av(path, spec, streamed)
        if media_type in ("image/jpeg", "image/png"):
            return _probe_raster(path, spec)
        if media_type == "image/heic":
            return _probe_heic(path, spec)
        return _probe_pdf(path, spec)
    except FileNotFoundError as exc:
        raise NotFoundError(f"no such file: {path.name}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    finally:
        if streamed is not None:
            streamed.close()  # whatever happened, its worker is done with


def identify(path: Path, head: bytes | None = None) -> MediaInfo:
    """Sniff then probe a file: UnsupportedMedia if its bytes are no accepted type."""
    if head is None:
        with open(path, "rb") as f:
            head = f.read(64 << 10)
    media_type = sniff(head)
    if media_type is None:
        raise UnsupportedMedia("the file is not an accepted audio, video, image or PDF type")
    return probe(path, media_type)


def extension_for(media_type: str) -> str:
    """The extension (without dot) we give files of ``media_type``."""
    spec = MEDIA_TYPES.get(media_type)
    if spec is None:
        raise UnsupportedMedia(f"{media_type!r} is not an accepted media type")
    return spec.extension
