"""Fixtures of the evidence tests: real media built once per session, and a blob store."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidence.store import LocalBlobStore
from tests.evidence.media_factory import build_all, make_large_video


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every file of media_factory.CATALOGUE, encoded once per test session."""
    return build_all(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def large_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Matroska and WebM clips of several MB: uploads that span many store chunks."""
    d = tmp_path_factory.mktemp("large-media")
    return {
        "mkv": make_large_video(d / "large.mkv", fmt="matroska", codec="mjpeg", audio="mp3"),
        "webm": make_large_video(d / "large.webm", fmt="webm", codec="libvpx", audio="libopus"),
        "mkv_video_only": make_large_video(d / "silent.mkv", fmt="matroska", codec="mjpeg"),
    }


@pytest.fixture(params=["direct", "buffered"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> LocalBlobStore:
    """An empty store with a 1 MiB upload limit, writing with O_DIRECT where the file system
    allows it, or through the page cache."""
    return LocalBlobStore(tmp_path / "store", max_size=1 << 20,
                          direct_io=request.param == "direct")


def store_files(store: LocalBlobStore) -> tuple[list[Path], list[Path]]:
    """(blobs, temporary files) currently in ``store``."""
    blobs = sorted(p for p in store.blobs_dir.rglob("*") if p.is_file())
    temps = sorted(p for p in store.tmp_dir.iterdir())
    return blobs, temps


_REPO = Path(__file__).resolve().parents[2]

_PEAK_RSS_PREAMBLE = f"""
import json, sys
sys.path.insert(0, {str(_REPO)!r})
from pathlib import Path

def hwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
"""


def peak_rss_script(body: str) -> str:
    """A Python script for a child process: the repository on its path, ``json`` and ``Path``
    imported, and ``hwm_kb()`` giving its peak resident memory so far, then ``body``."""
    return _PEAK_RSS_PREAMBLE + body
