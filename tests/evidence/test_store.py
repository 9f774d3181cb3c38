"""The write-once store: content addresses, dedupe, and nothing left behind by a failure."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError, InputError
from evidence.errors import (
    BlobAltered,
    BlobMissing,
    CorruptMedia,
    EmptyUpload,
    StorageError,
    StorageFull,
    UnsupportedMedia,
    UploadInterrupted,
    UploadTooLarge,
)
from evidence.store import HEAD_SIZE, BlobStore, LocalBlobStore, check_sha256
from tests.evidence.conftest import peak_rss_script, store_files

REPO = Path(__file__).resolve().parents[2]


def _data(n: int, seed: int = 1) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(n)


def _chunks(data: bytes, size: int = 64 << 10) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def assert_nothing_left(store: LocalBlobStore) -> None:
    blobs, temps = store_files(store)
    assert blobs == [] and temps == []


def test_ingest_stores_under_the_content_address_read_only(store: LocalBlobStore) -> None:
    data = _data(300_000)
    blob = store.ingest(_chunks(data))
    sha = hashlib.sha256(data).hexdigest()
    assert blob.sha256 == sha
    assert blob.sm3 == hashlib.new("sm3", data).hexdigest()
    assert (blob.size, blob.created) == (len(data), True)
    path = store.path(sha)
    assert path == store.root / "blobs" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.exists(sha) and store.size(sha) == len(data)
    with store.open(sha) as f:
        assert f.read() == data
    store.verify(sha, sm3=blob.sm3, size=blob.size)
    assert store_files(store)[1] == []  # no temporary file left


def test_ingest_from_a_file_object(store: LocalBlobStore) -> None:
    data = _data(200_000, seed=2)
    blob = store.ingest(io.BytesIO(data))
    assert store.path(blob.sha256).read_bytes() == data


def test_ingest_one_buffer(store: LocalBlobStore) -> None:
    blob = store.ingest(b"a single buffer")
    assert store.path(blob.sha256).read_bytes() == b"a single buffer"


def test_identical_bytes_are_stored_once(store: LocalBlobStore) -> None:
    data = _data(5000)
    first = store.ingest([data])
    second = store.ingest(_chunks(data, 100))
    assert first.created and not second.created
    assert (first.sha256, first.sm3, first.size) == (second.sha256, second.sm3, second.size)
    blobs, temps = store_files(store)
    assert blobs == [store.path(first.sha256)] and temps == []


def test_a_twin_of_another_size_is_reported_not_overwritten(store: LocalBlobStore) -> None:
    data = _data(4000)
    blob = store.ingest([data])
    path = store.path(blob.sha256)
    path.chmod(0o644)
    path.write_bytes(data[:100])  # the stored original was damaged behind our back
    with pytest.raises(BlobAltered):
        store.ingest([data])
    assert path.read_bytes() == data[:100]  # write-once: not repaired silently either
    assert store_files(store)[1] == []


def test_writer_exposes_head_and_temp_file_before_commit(store: LocalBlobStore) -> None:
    data = _data(200_000)
    seen: list[bytes] = []
    with store.writer() as w:
        for chunk in _chunks(data, 10_000):
            w.write(chunk)
        assert w.head == data[:HEAD_SIZE]
        assert w.size == len(data)
        assert w.temp_path.parent == store.tmp_dir

        def validate(path: Path) -> None:
            assert path == w.temp_path
            seen.append(path.read_bytes())

        blob = w.commit(validate)
    assert seen == [data]
    assert store.path(blob.sha256).read_bytes() == data
    assert store_files(store)[1] == []


def test_a_failed_validation_leaves_nothing(store: LocalBlobStore) -> None:
    def refuse(path: Path) -> None:
        raise CorruptMedia("not really an mp4")

    with pytest.raises(CorruptMedia):
        store.ingest([_data(1000)], validate=refuse)
    assert_nothing_left(store)


def test_inspect_head_refuses_early_without_reading_the_rest(store: LocalBlobStore) -> None:
    consumed = 0

    def source() -> Iterator[bytes]:
        nonlocal consumed
        for chunk in _chunks(_data(1 << 20), 16 << 10):
            consumed += len(chunk)
            yield chunk

    heads: list[int] = []

    def inspect(head: bytes) -> None:
        heads.append(len(head))
        raise UnsupportedMedia("a text file")

    with pytest.raises(UnsupportedMedia):
        store.ingest(source(), inspect_head=inspect)
    assert heads == [HEAD_SIZE]
    assert consumed == HEAD_SIZE
    assert_nothing_left(store)


def test_inspect_head_sees_a_short_upload_whole(store: LocalBlobStore) -> None:
    heads: list[bytes] = []
    store.ingest([b"short"], inspect_head=heads.append)
    assert heads == [b"short"]


def test_empty_upload(store: LocalBlobStore) -> None:
    with pytest.raises(EmptyUpload):
        store.ingest([])
    with pytest.raises(EmptyUpload):
        store.ingest([b"", b""])
    with pytest.raises(EmptyUpload):
        store.ingest(io.BytesIO(b""))
    assert_nothing_left(store)


def test_exactly_at_the_limit_is_accepted(store: LocalBlobStore) -> None:
    blob = store.ingest(io.BytesIO(_data(store.max_size)))
    assert blob.size == store.max_size


class CountingReader(io.RawIOBase):
    """An endless stream that counts what was asked of it."""

    def __init__(self) -> None:
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size is not None and 0 < size <= (1 << 20)
        self.delivered += size
        return b"\x5a" * size


def test_over_the_limit_stops_reading_one_byte_past_it(store: LocalBlobStore) -> None:
    reader = CountingReader()
    with pytest.raises(UploadTooLarge) as info:
        store.ingest(reader)
    assert info.value.limit == store.max_size
    assert reader.delivered == store.max_size + 1
    assert_nothing_left(store)


def test_over_the_limit_from_an_iterator(store: LocalBlobStore) -> None:
    produced = 0

    def endless() -> Iterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield b"\0" * 300_000

    with pytest.raises(UploadTooLarge):
        store.ingest(endless())
    assert produced == 4  # 4 x 300 000 > 1 MiB: the fourth chunk trips the limit
    assert_nothing_left(store)


def test_disk_full_during_the_write(store: LocalBlobStore,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    big = LocalBlobStore(store.root.parent / "big", max_size=1 << 30,
                         direct_io=store.direct_io)
    real_write = os.write
    written = 0

    def filling_write(fd: int, data: bytes | memoryview) -> int:
        # The disk takes 5 MB of the upload, then reports ENOSPC as ext4 does.
        nonlocal written
        if fd > 2 and written + len(data) > 5_000_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", filling_write)
    with pytest.raises(StorageFull):
        big.ingest(_chunks(_data(12_000_000), 300_000))
    monkeypatch.undo()
    assert written > 0
    assert_nothing_left(big)


def test_disk_full_reported_by_the_kernel(tmp_path: Path) -> None:
    # A real refusal by the kernel: RLIMIT_FSIZE makes write(2) fail with EFBIG past 200 kB
    # (CPython ignores SIGXFSZ). Run in a child so the limit does not touch this process.
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from evidence.store import LocalBlobStore
        from evidence.errors import StorageFull
        store = LocalBlobStore(Path({str(tmp_path / 'store')!r}), max_size=1 << 30)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        try:
            store.ingest(iter([b"x" * 64_000] * 10))
        except StorageFull as exc:
            print(json.dumps({{"error": "StorageFull", "message": exc.message}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    result = json.loads(out.stdout)
    assert result["error"] == "StorageFull"
    assert "ran out of space" in result["message"]
    assert_nothing_left(LocalBlobStore(tmp_path / "store", max_size=1))


def test_interrupted_stream(store: LocalBlobStore) -> None:
    def broken() -> Iterator[bytes]:
        yield _data(100_000)
        yield _data(100_000, seed=2)
        raise ConnectionResetError("client went away")

    with pytest.raises(UploadInterrupted) as info:
        store.ingest(broken())
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert_nothing_left(store)


def test_interrupted_file_object(store: LocalBlobStore) -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError(errno.ECONNRESET, "connection reset")
            return b"y" * 1000

    with pytest.raises(UploadInterrupted):
        store.ingest(Broken())
    assert_nothing_left(store)


def test_keyboard_interrupt_while_reading(store: LocalBlobStore) -> None:
    def interrupted() -> Iterator[bytes]:
        yield _data(100_000)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.ingest(interrupted())
    assert_nothing_left(store)


def test_keyboard_interrupt_while_validating(store: LocalBlobStore) -> None:
    def validate(path: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.ingest([_data(1000)], validate=validate)
    assert_nothing_left(store)


def test_leaving_the_writer_without_commit_aborts(store: LocalBlobStore) -> None:
    with store.writer() as w:
        w.write(b"abc")
        temp = w.temp_path
        assert temp.exists()
    assert not temp.exists()
    with pytest.raises(StorageError):
        w.write(b"more")
    assert_nothing_left(store)


def test_commit_twice_is_refused(store: LocalBlobStore) -> None:
    with store.writer() as w:
        w.write(b"abc")
        w.commit()
        with pytest.raises(StorageError):
            w.commit()
    assert store.exists(hashlib.sha256(b"abc").hexdigest())


def test_verify_detects_missing_and_altered_originals(store: LocalBlobStore) -> None:
    data = _data(70_000)
    blob = store.ingest([data])
    store.verify(blob.sha256)
    store.verify(blob.sha256, sm3=blob.sm3, size=blob.size)
    with pytest.raises(BlobAltered):
        store.verify(blob.sha256, size=blob.size + 1)
    with pytest.raises(BlobAltered):
        store.verify(blob.sha256, sm3="0" * 64)
    path = store.path(blob.sha256)
    path.chmod(0o644)
    altered = bytearray(data)
    altered[12345] ^= 1
    path.write_bytes(bytes(altered))  # same size, one bit flipped
    with pytest.raises(BlobAltered) as info:
        store.verify(blob.sha256)
    assert hashlib.sha256(bytes(altered)).hexdigest() in info.value.message
    path.unlink()
    with pytest.raises(BlobMissing):
        store.verify(blob.sha256)
    with pytest.raises(BlobMissing):
        store.open(blob.sha256)
    with pytest.raises(BlobMissing):
        store.size(blob.sha256)
    assert not store.exists(blob.sha256)


@pytest.mark.parametrize("bad", [
    "../../../../etc/passwd",
    "A" * 64,
    "0" * 63,
    "0" * 65,
    "0" * 63 + "\n",
    "0" * 62 + "/x",
    "g" * 64,
    "",
    None,
    12,
])
def test_addresses_are_validated_strictly(store: LocalBlobStore, bad: object) -> None:
    with pytest.raises(InputError):
        check_sha256(bad)
    calls: list[Callable[[Any], object]] = [store.path, store.exists, store.open, store.size,
                                            store.verify]
    for call in calls:
        with pytest.raises(InputError):
            call(bad)
    with pytest.raises(InputError):
        store.verify("0" * 64, sm3="../x")


def test_local_store_is_a_blob_store(store: LocalBlobStore) -> None:
    as_interface: BlobStore = store  # checked by mypy: LocalBlobStore meets the Protocol
    with as_interface.writer() as w:
        w.write(b"via the interface")
        blob = w.commit()
    assert as_interface.exists(blob.sha256)


def test_limit_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LocalBlobStore(tmp_path, max_size=0)


def test_remove_stale_temp(store: LocalBlobStore) -> None:
    old = store.tmp_dir / "upload-old.part"
    new = store.tmp_dir / "upload-new.part"
    other = store.tmp_dir / "keep.txt"
    for p in (old, new, other):
        p.write_bytes(b"x")
    past = time.time() - 3 * 24 * 3600
    os.utime(old, (past, past))
    assert store.remove_stale_temp(24 * 3600) == 1
    assert sorted(p.name for p in store.tmp_dir.iterdir()) == ["keep.txt", "upload-new.part"]


_RSS_BODY = """
import hashlib
from evidence.store import LocalBlobStore

store = LocalBlobStore(Path({root!r}), max_size=1 << 40)
store.ingest([b"warm-up" * 100_000])  # import, thread and allocator warm-up
before = hwm_kb()
chunk = hashlib.shake_256(b"seed").digest(1 << 20)
blob = store.ingest(chunk for _ in range({mib}))
after = hwm_kb()
print(json.dumps({{"before": before, "after": after, "size": blob.size}}))
"""


@pytest.mark.slow
def test_memory_stays_flat_for_a_512_mib_upload(tmp_path: Path) -> None:
    mib = 512
    script = peak_rss_script(_RSS_BODY.format(root=str(tmp_path / "store"), mib=mib))
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=300, check=True)
    finally:
        shutil.rmtree(tmp_path / "store", ignore_errors=True)  # do not keep 512 MiB around
    result = json.loads(out.stdout)
    assert result["size"] == mib << 20
    grew_mb = (result["after"] - result["before"]) / 1024
    assert grew_mb < 100, f"peak RSS grew by {grew_mb:.1f} MB"


def test_ingest_with_sniff_and_probe_before_commit(store: LocalBlobStore,
                                                   media: dict[str, Path]) -> None:
    """How the service composes the parts: sniff the head early, probe the temp file."""
    from evidence.media import MediaInfo, probe, sniff

    found: dict[str, str] = {}
    infos: list[MediaInfo] = []

    def inspect(head: bytes) -> None:
        media_type = sniff(head)
        if media_type is None:
            raise UnsupportedMedia("not an accepted type")
        found["type"] = media_type

    def validate(path: Path) -> None:
        infos.append(probe(path, found["type"]))

    good = media["mp4"].read_bytes()
    blob = store.ingest(io.BytesIO(good), inspect_head=inspect, validate=validate)
    assert infos[0].media_type == "video/mp4" and blob.size == len(good)
    assert store.path(blob.sha256).read_bytes() == good

    store2 = LocalBlobStore(store.root.parent / "store2", max_size=1 << 20)
    with pytest.raises(CorruptMedia):
        store2.ingest(io.BytesIO(good[: len(good) // 2]), inspect_head=inspect,
                      validate=validate)
    with pytest.raises(UnsupportedMedia):
        store2.ingest(io.BytesIO(b"#!/bin/sh\nrm -rf /\n"), inspect_head=inspect,
                      validate=validate)
    assert_nothing_left(store2)


# --- direct I/O ---------------------------------------------------------------------------


def _supports_direct_io(directory: Path) -> bool:
    """Ask the kernel directly whether files in ``directory`` can be opened with O_DIRECT."""
    probe_file = directory / "direct-probe"
    try:
        fd = os.open(probe_file, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    finally:
        probe_file.unlink(missing_ok=True)
    os.close(fd)
    return True


def _is_direct(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def test_large_uploads_are_written_with_direct_io_where_the_file_system_allows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path / "store", max_size=1 << 30)
    expected = _supports_direct_io(store.tmp_dir)
    data = _data(9 * (1 << 20) + 12_345)  # two whole stages and an unaligned tail
    real_write = os.write
    modes: list[tuple[int, bool]] = []

    def watching_write(fd: int, buf: bytes | memoryview) -> int:
        if fd > 2:
            modes.append((len(buf), _is_direct(fd)))
        return real_write(fd, buf)

    monkeypatch.setattr(os, "write", watching_write)
    with store.writer() as w:
        assert w.direct_io is expected
        for chunk in _chunks(data, 1_000_003):
            w.write(chunk)
        blob = w.commit()
    monkeypatch.undo()
    assert store.path(blob.sha256).read_bytes() == data
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    if expected:
        # Whole 4 MiB stages, then the aligned part of the rest, all direct; the tail not.
        assert modes[:2] == [(4 << 20, True), (4 << 20, True)]
        assert all(direct for _n, direct in modes[:-1])
        assert modes[-1] == (len(data) % 4096, False)
        assert all(n % 4096 == 0 for n, _d in modes[:-1])
    else:
        assert not any(direct for _n, direct in modes)


def test_a_file_system_without_direct_io_is_written_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some file systems (FUSE mounts, tmpfs before Linux 6.6) refuse O_DIRECT with EINVAL
    # when it is switched on: the writer notices at once and writes as usual.
    import fcntl

    real_fcntl = fcntl.fcntl

    def refusing_fcntl(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", refusing_fcntl)
    store = LocalBlobStore(tmp_path / "store", max_size=1 << 30)
    data = _data(5 << 20)
    with store.writer() as w:
        assert w.direct_io is False
        w.write(data)
        assert not _is_direct(w._fd)
        blob = w.commit()
    assert store.path(blob.sha256).read_bytes() == data
    assert_nothing_left_but(store, blob.sha256)


@pytest.mark.parametrize("trouble", ["EINVAL", "short"])
def test_direct_io_trouble_mid_upload_carries_on_buffered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trouble: str) -> None:
    store = LocalBlobStore(tmp_path / "store", max_size=1 << 30)
    assert _supports_direct_io(store.tmp_dir)
    data = _data(13 << 20)
    real_write = os.write
    calls = 0

    def troubled_write(fd: int, buf: bytes | memoryview) -> int:
        # The second direct write is refused (another alignment) or only partly done.
        nonlocal calls
        if fd > 2 and _is_direct(fd):
            calls += 1
            if calls == 2:
                if trouble == "EINVAL":
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
                return real_write(fd, memoryview(buf)[:1000])
        return real_write(fd, buf)

    monkeypatch.setattr(os, "write", troubled_write)
    with store.writer() as w:
        for chunk in _chunks(data, 1 << 20):
            w.write(chunk)
        assert w.direct_io is False
        blob = w.commit()
    monkeypatch.undo()
    assert calls == 2
    assert store.path(blob.sha256).read_bytes() == data
    assert_nothing_left_but(store, blob.sha256)


def assert_nothing_left_but(store: LocalBlobStore, sha256: str) -> None:
    blobs, temps = store_files(store)
    assert blobs == [store.path(sha256)] and temps == []


def test_observe_sees_every_chunk_in_order_after_the_head_is_inspected(
        store: LocalBlobStore) -> None:
    data = _data(300_000)
    events: list[tuple[str, int]] = []
    seen = bytearray()

    def inspect(head: bytes) -> None:
        events.append(("head", len(head)))

    def observe(chunk: bytes) -> None:
        events.append(("chunk", len(chunk)))
        seen.extend(chunk)

    blob = store.ingest(_chunks(data, 50_000), inspect_head=inspect, observe=observe)
    assert bytes(seen) == data and blob.size == len(data)
    # The head (64 KiB) is complete within the second chunk: inspected before it is observed.
    assert events[:4] == [("chunk", 50_000), ("head", HEAD_SIZE), ("chunk", 50_000),
                          ("chunk", 50_000)]
    assert [e for e in events if e[0] == "head"] == [("head", HEAD_SIZE)]
