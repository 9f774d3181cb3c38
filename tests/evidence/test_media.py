"""Sniffing and probing real media files; damaged ones are refused."""

from __future__ import annotations

import random
import shutil
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from evidence.errors import CorruptMedia, UnsupportedMedia
from evidence.media import (
    MEDIA_TYPES,
    MediaInfo,
    extension_for,
    identify,
    parse_iso6709,
    probe,
    sniff,
)
from tests.evidence import media_factory as mf

ALL = sorted(mf.CATALOGUE)
AV = [n for n in ALL if MEDIA_TYPES[mf.expected_type(n)].kind in ("audio", "video")]
CAPTURED = datetime(2026, 11, 26, 10, 15, tzinfo=UTC)

# name -> (stream types and codecs, sample rate of the audio stream or None)
EXPECTED_STREAMS: dict[str, list[tuple[str, str]]] = {
    "mp4": [("video", "h264"), ("audio", "aac")],
    "mp4_faststart": [("video", "h264"), ("audio", "aac")],
    "mov": [("video", "h264"), ("audio", "aac")],
    "3gp": [("video", "mpeg4"), ("audio", "amr_nb")],
    "webm": [("video", "vp8"), ("audio", "opus")],
    "mkv": [("video", "mpeg4"), ("audio", "mp3")],
    "avi": [("video", "mjpeg"), ("audio", "pcm_s16le")],
    "mp3": [("audio", "mp3")],
    "mp3_plain": [("audio", "mp3")],
    "m4a": [("audio", "aac")],
    "mp4_audio": [("audio", "aac")],
    "mp4_fragmented": [("video", "h264"), ("audio", "aac")],
    "aac": [("audio", "aac")],
    "wav": [("audio", "pcm_s16le")],
    "ogg": [("audio", "opus")],
    "opus": [("audio", "opus")],
    "amr": [("audio", "amr_nb")],
}


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(64 << 10)


@pytest.mark.parametrize("name", ALL)
def test_sniff_names_the_real_type(media: dict[str, Path], name: str) -> None:
    assert sniff(_head(media[name])) == mf.expected_type(name)


@pytest.mark.parametrize("name", ALL)
def test_a_wrong_extension_changes_nothing(media: dict[str, Path], name: str,
                                           tmp_path: Path) -> None:
    disguised = tmp_path / "holiday-photo.txt"
    shutil.copyfile(media[name], disguised)
    assert sniff(_head(disguised)) == mf.expected_type(name)
    assert identify(disguised).as_dict() == identify(media[name]).as_dict()


@pytest.mark.parametrize("name", AV)
def test_probe_audio_and_video(media: dict[str, Path], name: str) -> None:
    info = probe(media[name], mf.expected_type(name))
    assert info.duration_s is not None
    assert abs(info.duration_s - mf.SECONDS) < 0.1
    assert [(s.type, s.codec) for s in info.streams] == EXPECTED_STREAMS[name]
    for s in info.streams:
        if s.type == "video":
            assert (s.width, s.height) == (mf.WIDTH, mf.HEIGHT)
            # A fragmented MP4 has no frame rate field: FFmpeg averages one over its length.
            assert s.fps == (pytest.approx(mf.FPS, rel=0.02) if name == "mp4_fragmented"
                             else float(mf.FPS))
        else:
            assert s.sample_rate in (8000, 16000, 44100, 48000)
            assert s.channels == 1
    if any(s.type == "video" for s in info.streams):
        assert (info.width, info.height) == (mf.WIDTH, mf.HEIGHT)
        assert info.fps == next(s.fps for s in info.streams if s.type == "video")
        assert info.kind == "video"
    else:
        assert info.width is None and info.kind == "audio"


def test_audio_only_mp4_is_reported_as_audio(media: dict[str, Path]) -> None:
    info = probe(media["mp4_audio"], "video/mp4")
    assert (info.media_type, info.kind) == ("audio/mp4", "audio")


@pytest.mark.parametrize("name", ["mp4", "mov"])
def test_video_creation_time_and_gps(media: dict[str, Path], name: str) -> None:
    info = probe(media[name], mf.expected_type(name))
    assert info.creation_time == CAPTURED
    assert info.gps == (mf.GPS_LAT, mf.GPS_LON, mf.GPS_ALT)
    d = info.as_dict()
    assert d["creation_time"] == "2026-11-26T10:15:00Z"
    assert d["gps"] == {"lat": mf.GPS_LAT, "lon": mf.GPS_LON, "alt": mf.GPS_ALT}


def test_video_without_claims(media: dict[str, Path]) -> None:
    info = probe(media["webm"], "video/webm")
    assert info.creation_time is None and info.gps is None
    assert probe(media["3gp"], "video/3gpp").creation_time == CAPTURED


@pytest.mark.parametrize("name", ["jpeg", "png", "heic"])
def test_photos_dimensions_capture_time_and_gps(media: dict[str, Path], name: str) -> None:
    info = probe(media[name], mf.expected_type(name))
    assert (info.width, info.height, info.kind) == (mf.WIDTH, mf.HEIGHT, "image")
    assert info.creation_time == mf.local_time() == CAPTURED
    assert info.creation_time_local == "2026-11-26T18:15:00"
    assert info.gps is not None
    lat, lon, alt = info.gps  # type: ignore[misc]
    assert abs(lat - mf.GPS_LAT) < 1e-5 and abs(lon - mf.GPS_LON) < 1e-5 and alt == mf.GPS_ALT


def test_photo_without_zone_keeps_local_time_only(tmp_path: Path) -> None:
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:03:01 09:30:00"
    path = tmp_path / "p.jpg"
    Image.new("RGB", (40, 30), "red").save(path, exif=exif)
    info = probe(path, "image/jpeg")
    assert info.creation_time is None
    assert info.creation_time_local == "2026-03-01T09:30:00"
    assert info.gps is None


def test_pdf(media: dict[str, Path]) -> None:
    info = probe(media["pdf"], "application/pdf")
    assert (info.kind, info.container) == ("document", "pdf-1.4")


def test_as_dict_is_json_ready(media: dict[str, Path]) -> None:
    import json

    for name in ALL:
        d = identify(media[name]).as_dict()
        assert json.loads(json.dumps(d)) == d
        assert d["media_type"] in MEDIA_TYPES


# --- damaged files ------------------------------------------------------------------------


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage_body(data: bytes) -> bytes:
    """The first KiB (the header) intact, everything after it random."""
    keep = min(1024, len(data) // 4)
    return data[:keep] + random.Random(42).randbytes(len(data) - keep)


DAMAGED = ["mp4", "mp4_faststart", "mp4_fragmented", "mov", "3gp", "m4a", "webm", "mkv", "avi",
           "mp3", "aac", "amr", "wav", "jpeg", "png", "heic", "pdf"]


@pytest.mark.parametrize(("name", "damage"), [
    (name, damage) for name in DAMAGED for damage in (_truncated, _garbage_body)
    # Random PCM samples are valid audio: see test_wav_requirement_... for what WAV must meet.
    if not (name == "wav" and damage is _garbage_body)
])
def test_damaged_files_are_refused(media: dict[str, Path], name: str, damage: object,
                                   tmp_path: Path) -> None:
    path = tmp_path / media[name].name
    path.write_bytes(damage(media[name].read_bytes()))  # type: ignore[operator]
    sniffed = sniff(_head(path)) or mf.expected_type(name)
    with pytest.raises(CorruptMedia):
        probe(path, sniffed)


def test_wav_requirement_is_a_header_that_matches_the_length(media: dict[str, Path],
                                                            tmp_path: Path) -> None:
    # Documented limit: random PCM is valid PCM, so a WAV with its header intact and its
    # samples overwritten is accepted; what we require is that the header's length holds.
    data = media["wav"].read_bytes()
    noisy = tmp_path / "noisy.wav"
    noisy.write_bytes(_garbage_body(data))
    assert probe(noisy, "audio/wav").duration_s == pytest.approx(2.0, abs=0.01)
    # Cut at a whole sample: no packet is short, only the RIFF header tells.
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 16000 * 2])
    with pytest.raises(CorruptMedia, match="RIFF header"):
        probe(cut, "audio/wav")
    # A recorder that never filled in its sizes (0xFFFFFFFF) is not called truncated.
    streamed = bytearray(data)
    streamed[4:8] = b"\xff\xff\xff\xff"
    ok = tmp_path / "streamed.wav"
    ok.write_bytes(bytes(streamed))
    probe(ok, "audio/wav")


def test_mp3_without_a_length_header_must_be_mostly_frames(media: dict[str, Path],
                                                          tmp_path: Path) -> None:
    data = media["mp3_plain"].read_bytes()
    assert probe(media["mp3_plain"], "audio/mpeg").duration_s == pytest.approx(2.0, abs=0.1)
    # Junk in the middle: the demuxer skips it to find frames.
    junk = tmp_path / "junk.mp3"
    mid = len(data) // 3
    junk.write_bytes(data[:mid] + b"\0" * len(data) + data[mid:])
    with pytest.raises(CorruptMedia, match="whole audio frame"):
        probe(junk, "audio/mpeg")
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(_garbage_body(data))
    with pytest.raises(CorruptMedia):
        probe(garbage, "audio/mpeg")
    # A frame cut short at the end is refused ...
    ten = _after_frames(data, 10)
    mid_frame = tmp_path / "mid-frame.mp3"
    mid_frame.write_bytes(data[: ten + 100])
    with pytest.raises(CorruptMedia, match="whole audio frame"):
        probe(mid_frame, "audio/mpeg")
    # ... but a cut between frames is a valid, shorter recording (the documented limit).
    boundary = tmp_path / "boundary.mp3"
    boundary.write_bytes(data[:ten])
    assert probe(boundary, "audio/mpeg").duration_s == pytest.approx(10 * 1152 / 44100, abs=0.01)
    tagged = tmp_path / "tagged.mp3"  # an ID3v1 tag at the end is not junk
    tagged.write_bytes(data + b"TAG" + b"t" * 125)
    assert probe(tagged, "audio/mpeg").duration_s == pytest.approx(2.0, abs=0.1)


def _after_frames(data: bytes, count: int) -> int:
    """Offset just after the first ``count`` MPEG audio frames (walking their headers)."""
    from evidence.media import _mpeg_frame_length

    at = 0
    for _ in range(count):
        length = _mpeg_frame_length(data, at)
        assert length is not None
        at += length
    return at


def test_live_webm_declares_no_length(tmp_path: Path) -> None:
    # Browsers record WebM live, without a Duration element: accepted whole, and (the
    # documented limit) a cut copy is a shorter recording with nothing to contradict it.
    live = mf.make_video(tmp_path / "live.webm", fmt="webm", codec="libvpx", audio="libopus",
                         container_options={"live": "1"})
    assert probe(live, "video/webm").duration_s == pytest.approx(2.0, abs=0.1)
    data = live.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    shorter = probe(cut, "video/webm").duration_s
    assert shorter is not None and shorter < 1.5


def test_faststart_mp4_missing_samples(media: dict[str, Path], tmp_path: Path) -> None:
    # With the index first, a cut file still opens: every indexed sample must be readable.
    data = media["mp4_faststart"].read_bytes()
    for fraction in (0.6, 0.9, 0.99):
        cut = tmp_path / f"cut{fraction}.mp4"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(CorruptMedia):
            probe(cut, "video/mp4")


def test_pdf_damage(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["pdf"].read_bytes()
    bad_xref = tmp_path / "bad.pdf"
    bad_xref.write_bytes(data.replace(b"startxref\n", b"startxref\n1").rstrip(b"\n"))
    with pytest.raises(CorruptMedia, match="cross-reference"):
        probe(bad_xref, "application/pdf")
    prefixed = tmp_path / "prefixed.pdf"  # junk before the header, offsets relative to it
    prefixed.write_bytes(b"\r\n\r\n" + data)
    assert sniff(_head(prefixed)) == "application/pdf"
    assert probe(prefixed, "application/pdf").kind == "document"


def test_heic_structure_damage(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["heic"].read_bytes()
    no_pict = tmp_path / "no-pict.heic"
    no_pict.write_bytes(data.replace(b"pict", b"vide", 1))
    with pytest.raises(CorruptMedia, match="handler"):
        probe(no_pict, "image/heic")
    shortened = tmp_path / "shortened.heic"  # consistent boxes, but the image lies past EOF
    mdat_at = data.rindex(b"mdat") - 4
    body = data[mdat_at + 8:-200]
    shortened.write_bytes(data[:mdat_at] + struct.pack(">I", 8 + len(body)) + b"mdat" + body)
    with pytest.raises(CorruptMedia, match="past"):
        probe(shortened, "image/heic")


# --- types we do not accept ---------------------------------------------------------------


@pytest.mark.parametrize("head", [
    b"",
    b"plain text, certainly not media\n" * 10,
    b"\x7fELF\x02\x01\x01" + b"\0" * 100,
    b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\0" * 100,
    b"GIF89a" + b"\0" * 100,
    b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
    b"\x00\x00\x00\x18ftypzzzz\x00\x00\x00\x00zzzzyyyy",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"OggS\x00\x02" + b"\0" * 20 + b"\x01\x1e\x80theora",
    b"\x1aE\xdf\xa3\x84B\x82\x81x",  # EBML with an unknown DocType
    b"\xff\xfb\x90\x00" + b"\x00" * 1000,  # one MPEG frame header, then no second frame
])
def test_unsupported_heads(head: bytes, tmp_path: Path) -> None:
    assert sniff(head) is None
    path = tmp_path / "upload.bin"
    path.write_bytes(head or b"\n")
    with pytest.raises(UnsupportedMedia):
        identify(path)


def test_real_text_elf_and_zip_files_are_unsupported(tmp_path: Path) -> None:
    import sys
    import zipfile

    text = tmp_path / "notes.mp4"
    text.write_text("业主拒绝缴费的记录\n" * 100, encoding="utf-8")
    archive = tmp_path / "evidence.mp3"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    elf = Path(sys.executable).resolve()
    for path in (text, archive, elf):
        with pytest.raises(UnsupportedMedia):
            identify(path)


def test_probe_refuses_unknown_media_types(media: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedMedia):
        probe(media["mp4"], "application/zip")
    with pytest.raises(UnsupportedMedia):
        extension_for("text/plain")
    assert extension_for("video/quicktime") == "mov"
    assert issubclass(UnsupportedMedia, InputError) and issubclass(CorruptMedia, InputError)


def test_a_claimed_type_that_does_not_match_is_corrupt(media: dict[str, Path]) -> None:
    # probe forces the demuxer of the claimed type: a WAV is not an MP4.
    with pytest.raises(CorruptMedia):
        probe(media["wav"], "video/mp4")
    with pytest.raises(CorruptMedia):
        probe(media["pdf"], "image/jpeg")


# --- sniffing details ---------------------------------------------------------------------


def test_quicktime_without_ftyp(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["mov"].read_bytes()
    (size,) = struct.unpack(">I", data[:4])
    old_style = tmp_path / "old.mov"  # the ftyp box turned into a free box: offsets unchanged
    old_style.write_bytes(data[:4] + b"free" + data[8:])
    assert sniff(_head(old_style)) == "video/quicktime"
    assert probe(old_style, "video/quicktime").duration_s == pytest.approx(2.0, abs=0.1)
    assert size >= 8


@pytest.mark.parametrize(("brands", "expected"), [
    (b"isom" + b"\0" * 4 + b"isomiso2", "video/mp4"),
    (b"mp42" + b"\0" * 4 + b"mp42isom", "video/mp4"),
    (b"M4A " + b"\0" * 4 + b"M4A isom", "audio/mp4"),
    (b"qt  " + b"\0" * 4 + b"qt  ", "video/quicktime"),
    (b"3gp5" + b"\0" * 4 + b"3gp5isom", "video/3gpp"),
    (b"heic" + b"\0" * 4 + b"mif1heic", "image/heic"),
    (b"mif1" + b"\0" * 4 + b"mif1heic", "image/heic"),
    (b"mif1" + b"\0" * 4 + b"mif1", "image/heic"),
    (b"mif1" + b"\0" * 4 + b"mif1avif", None),
    (b"zzzz" + b"\0" * 4 + b"zzzzmp42", "video/mp4"),  # unknown major, known compatible
])
def test_ftyp_brands(brands: bytes, expected: str | None) -> None:
    head = struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands
    assert sniff(head) == expected


def test_adts_and_mpeg_frames_are_told_apart(media: dict[str, Path]) -> None:
    aac, mp3 = _head(media["aac"]), _head(media["mp3_plain"])
    assert aac[:2] == b"\xff\xf1" and sniff(aac) == "audio/aac"
    assert mp3[:1] == b"\xff" and sniff(mp3) == "audio/mpeg"
    assert sniff(b"ID3\x04\x00\x00\x00\x00\x00\x05" + b"\0" * 5 + aac) == "audio/aac"


def test_amr_wide_band_header() -> None:
    assert sniff(b"#!AMR-WB\n" + b"\x04" * 10) == "audio/amr-wb"


@pytest.mark.parametrize(("text", "expected"), [
    ("+31.2304+121.4737/", (31.2304, 121.4737)),
    ("+31.2304+121.4737+012.500/", (31.2304, 121.4737, 12.5)),
    ("-33.8688+151.2093-005.0/", (-33.8688, 151.2093, -5.0)),
    ("+3113.824+12128.422/", (31.2304, 121.4737)),  # DDMM.MMM
    ("+311349.44+1212825.32/", (31.2304, 121.4737)),  # DDMMSS.SS
    ("+31.2304+121.4737CRSWGS_84/", (31.2304, 121.4737)),
    ("+91.0+121.0/", None),
    ("+31.2+181.0/", None),
    ("garbage", None),
    ("", None),
])
def test_iso6709(text: str, expected: tuple[float, ...] | None) -> None:
    got = parse_iso6709(text)
    if expected is None:
        assert got is None
    else:
        assert got is not None and len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert a == pytest.approx(b, abs=1e-4)


def test_media_info_is_frozen(media: dict[str, Path]) -> None:
    import dataclasses

    info: MediaInfo = identify(media["jpeg"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.width = 1  # type: ignore[misc]


def test_truncated_jpeg_refused_even_after_a_library_relaxed_pillow(
    media: dict[str, Path], tmp_path: Path
) -> None:
    # WeasyPrint and face_recognition set Pillow's process-wide LOAD_TRUNCATED_IMAGES = True
    # at import; a truncated photo must still be refused, and the flag left as it was.
    import weasyprint  # noqa: F401
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    data = media["jpeg"].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptMedia):
        probe(path, "image/jpeg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


# --- containers with a complete index -----------------------------------------------------

INDEXED = ["mp4", "mp4_faststart", "mp4_audio", "mov", "3gp", "m4a", "avi"]


@pytest.mark.parametrize("name", INDEXED)
def test_an_indexed_container_is_checked_from_its_index_alone(
        media: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No packet is read, and the result is what demuxing every packet gives."""
    import evidence.media as media_module

    kind = mf.expected_type(name)
    with monkeypatch.context() as m:
        m.setattr(media_module, "_index_scan", lambda *_a: None)
        demuxed = probe(media[name], kind)

    def no_demux(*_a: object) -> None:
        raise AssertionError("every packet was demuxed")

    monkeypatch.setattr(media_module, "_scan", no_demux)
    assert probe(media[name], kind) == demuxed


def test_a_fragmented_mp4_is_demuxed_in_full(media: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import evidence.media as media_module

    calls: list[object] = []
    real_scan = media_module._scan

    def counting_scan(*args: Any) -> Any:
        calls.append(args)
        return real_scan(*args)

    monkeypatch.setattr(media_module, "_scan", counting_scan)
    info = probe(media["mp4_fragmented"], "video/mp4")
    assert calls and info.duration_s is not None and abs(info.duration_s - mf.SECONDS) < 0.1


def _patch_u32(data: bytearray, at: int, value: int, order: str) -> None:
    data[at:at + 4] = value.to_bytes(4, order)  # type: ignore[arg-type]


def test_an_mp4_sample_listed_past_the_end_is_refused(media: dict[str, Path],
                                                      tmp_path: Path) -> None:
    # The boxes still tile the file; only the chunk offset table points past its end.
    data = bytearray(media["mp4"].read_bytes())
    stco = data.index(b"stco")
    count = int.from_bytes(data[stco + 8:stco + 12], "big")
    _patch_u32(data, stco + 12 + 4 * (count - 1), len(data) - 16, "big")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptMedia, match="lies past its end"):
        probe(bad, "video/mp4")


def test_an_avi_sample_listed_past_the_end_is_refused(media: dict[str, Path],
                                                      tmp_path: Path) -> None:
    # idx1 entries: chunk id, flags, offset, size. The last one now claims 1 MB of data.
    data = bytearray(media["avi"].read_bytes())
    idx1 = data.rindex(b"idx1")
    end = idx1 + 8 + int.from_bytes(data[idx1 + 4:idx1 + 8], "little")
    _patch_u32(data, end - 4, 1_000_000, "little")
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptMedia, match="lies past its end"):
        probe(bad, "video/x-msvideo")
