"""Matroska and WebM packets demuxed while the upload streams in (evidence.media.StreamScan)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import evidence.media as media_module
from core.errors import NotFoundError
from evidence.errors import CorruptMedia, UnsupportedMedia
from evidence.media import StreamScan, probe, scanned_while_streaming
from tests.evidence.conftest import peak_rss_script

TYPES = {"mkv": "video/x-matroska", "webm": "video/webm"}


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _streamed(data: bytes, media_type: str, chunk: int = 1 << 20) -> StreamScan:
    scan = StreamScan(media_type)
    for piece in _chunks(data, chunk):
        scan.feed(piece)
    return scan


@pytest.fixture
def file_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads that demux packets; the stream scan's worker is 'stream-scan'."""
    calls: list[str] = []
    real = media_module._scan

    def spy(*args: Any) -> Any:
        calls.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(media_module, "_scan", spy)
    return calls


def _no_scan_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name == "stream-scan"]


def test_only_matroska_and_webm_are_scanned_while_streaming() -> None:
    assert scanned_while_streaming("video/x-matroska") and scanned_while_streaming("video/webm")
    for other in ("video/mp4", "video/x-msvideo", "audio/mpeg", "image/jpeg", "nope"):
        assert not scanned_while_streaming(other)
    with pytest.raises(UnsupportedMedia):
        StreamScan("video/mp4")


@pytest.mark.parametrize("chunk", [1000, 65536, 1 << 20])
@pytest.mark.parametrize("name", ["mkv", "webm"])
def test_the_stream_scan_gives_what_reading_the_file_gives(
    large_media: dict[str, Path],
    media: dict[str, Path],
    name: str,
    chunk: int,
    file_scans: list[str],
) -> None:
    for path in (large_media[name], media[name]):
        expected = probe(path, TYPES[name])
        assert file_scans == ["MainThread"]
        file_scans.clear()
        scan = _streamed(path.read_bytes(), TYPES[name], chunk)
        assert probe(path, TYPES[name], streamed=scan) == expected
        assert file_scans == ["stream-scan"]  # the packets were not read from the file
        file_scans.clear()
    assert _no_scan_threads()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage_body(data: bytes) -> bytes:
    keep = min(1024, len(data) // 4)
    return data[:keep] + random.Random(42).randbytes(len(data) - keep)


@pytest.mark.parametrize("damage", [_truncated, _garbage_body])
@pytest.mark.parametrize("name", ["mkv", "webm"])
def test_damaged_streams_are_refused(
    large_media: dict[str, Path], tmp_path: Path, name: str, damage: Any
) -> None:
    data = damage(large_media[name].read_bytes())
    bad = tmp_path / f"bad.{name}"
    bad.write_bytes(data)
    with pytest.raises(CorruptMedia):
        probe(bad, TYPES[name])  # as reading the file says
    scan = _streamed(data, TYPES[name])
    with pytest.raises(CorruptMedia):
        probe(bad, TYPES[name], streamed=scan)
    assert _no_scan_threads()


def test_a_scan_of_other_streams_is_not_trusted(
    large_media: dict[str, Path], file_scans: list[str]
) -> None:
    # The stream showed a video and an audio track, the stored file only a video: the file's
    # own packets decide.
    silent = large_media["mkv_video_only"]
    scan = _streamed(large_media["mkv"].read_bytes(), TYPES["mkv"])
    info = probe(silent, TYPES["mkv"], streamed=scan)
    assert [s.type for s in info.streams] == ["video"]
    assert file_scans == ["stream-scan", "MainThread"]
    file_scans.clear()
    assert probe(silent, TYPES["mkv"]) == info


def test_a_scan_of_another_type_is_refused(large_media: dict[str, Path]) -> None:
    scan = _streamed(large_media["webm"].read_bytes(), TYPES["webm"])
    with pytest.raises(ValueError, match="another media type"):
        probe(large_media["mkv"], TYPES["mkv"], streamed=scan)
    assert _no_scan_threads()


def test_probe_ends_the_scan_even_when_the_stored_file_fails(large_media: dict[str, Path],
                                                             tmp_path: Path) -> None:
    scan = _streamed(large_media["mkv"].read_bytes(), TYPES["mkv"])  # no end of stream fed
    with pytest.raises(NotFoundError):
        probe(tmp_path / "gone.mkv", TYPES["mkv"], streamed=scan)
    assert _no_scan_threads()


def test_an_abandoned_scan_stops_and_takes_no_more(large_media: dict[str, Path]) -> None:
    data = large_media["webm"].read_bytes()
    scan = StreamScan(TYPES["webm"])
    for piece in _chunks(data[: len(data) // 3], 4096):
        scan.feed(piece)
    scan.close()
    scan.close()  # idempotent
    assert _no_scan_threads()
    with pytest.raises(ValueError):
        scan.feed(b"more")


def test_a_scan_that_fails_early_never_holds_up_the_upload() -> None:
    # Not Matroska at all: the worker gives up at once, and feeding far more chunks than the
    # queue holds still returns (the worker keeps draining).
    scan = StreamScan(TYPES["mkv"])
    done = threading.Event()

    def feed_many() -> None:
        for _ in range(200):
            scan.feed(b"\x00" * 65536)
        done.set()

    feeder = threading.Thread(target=feed_many)
    feeder.start()
    feeder.join(timeout=60)
    assert done.is_set()
    with pytest.raises(CorruptMedia, match="cannot be read as video/x-matroska"):
        scan.finish()
    assert _no_scan_threads()


_RSS_BODY = """
from evidence.media import StreamScan, probe
from evidence.store import LocalBlobStore

def ingest(store, path):
    scan = StreamScan("video/x-matroska")
    infos = []
    try:
        with open(path, "rb") as f:
            blob = store.ingest(f, observe=scan.feed, validate=lambda p: infos.append(
                probe(p, "video/x-matroska", streamed=scan)))
    finally:
        scan.close()
    return blob, infos[0]

store = LocalBlobStore(Path({root!r}), max_size=1 << 40)
ingest(store, Path({small!r}))  # import, thread and allocator warm-up
before = hwm_kb()
blob, info = ingest(store, Path({big!r}))
print(json.dumps({{"before": before, "after": hwm_kb(), "size": blob.size,
                  "duration_s": info.duration_s}}))
"""


@pytest.mark.slow
def test_memory_stays_flat_while_a_large_matroska_upload_is_scanned(
        large_media: dict[str, Path], tmp_path: Path) -> None:
    import av

    # 256 MiB of Matroska: the large clip's frames over and over (remuxed, not encoded).
    big = tmp_path / "long.mkv"
    with av.open(str(large_media["mkv_video_only"])) as src:
        packets = [bytes(p) for p in src.demux(src.streams.video[0]) if p.size]
        template = src.streams.video[0]
        with av.open(str(big), "w", format="matroska") as out:
            stream = out.add_stream_from_template(template)
            n = written = 0
            while written < 256 << 20:
                data = packets[n % len(packets)]
                packet = av.Packet(data)
                packet.stream = stream
                packet.time_base = Fraction(1, 1000)
                packet.pts = packet.dts = n * 100  # 10 frames a second
                out.mux(packet)
                n += 1
                written += len(data)
    script = peak_rss_script(_RSS_BODY.format(
        root=str(tmp_path / "store"), small=str(large_media["mkv_video_only"]), big=str(big)))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=True)
    result = json.loads(out.stdout)
    assert result["size"] == big.stat().st_size
    assert result["duration_s"] == pytest.approx(n / 10, abs=0.2)
    grew_mb = (result["after"] - result["before"]) / 1024
    assert grew_mb < 100, f"peak RSS grew by {grew_mb:.1f} MB"
