"""One-pass SHA-256 + SM3: known answers, chunking independence, buffer reuse, cleanup."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import NotFoundError
from evidence.errors import EvidenceError
from evidence.hashing import (
    DualHasher,
    hash_bytes,
    hash_chunks,
    hash_file,
    hash_stream,
)

# GB/T 32905-2016, appendix A.1 and A.2.
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
SM3_EMPTY = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _reference(data: bytes) -> tuple[str, str, int]:
    return hashlib.sha256(data).hexdigest(), hashlib.new("sm3", data).hexdigest(), len(data)


def test_known_answers() -> None:
    d = hash_bytes(b"abc")
    assert (d.sha256, d.sm3, d.size) == (SHA256_ABC, SM3_ABC, 3)
    assert hash_bytes(b"abcd" * 16).sm3 == SM3_ABCD16
    empty = DualHasher().digests()
    assert (empty.sm3, empty.size) == (SM3_EMPTY, 0)
    assert empty.sha256 == hashlib.sha256(b"").hexdigest()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 3 << 20),
       cuts=st.lists(st.integers(0, 3 << 20), max_size=12))
def test_any_chunking_gives_the_one_shot_digests(seed: int, size: int, cuts: list[int]) -> None:
    data = random.Random(seed).randbytes(size)
    bounds = sorted({0, size, *(c for c in cuts if c < size)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    d = hash_chunks(chunks)
    assert (d.sha256, d.sm3, d.size) == _reference(data)


def test_many_small_chunks_and_large_ones_mixed() -> None:
    rng = random.Random(7)
    chunks = [rng.randbytes(rng.choice([1, 100, 4096, 300_000, 1 << 20])) for _ in range(60)]
    d = hash_chunks(chunks)
    assert (d.sha256, d.sm3, d.size) == _reference(b"".join(chunks))


def test_the_caller_may_reuse_its_buffer() -> None:
    # The SM3 worker reads later: the hasher must have copied what it was given.
    buf = bytearray(1 << 20)
    expected = bytearray()
    hasher = DualHasher()
    for i in range(5):
        buf[:] = bytes([i + 1]) * len(buf)
        hasher.update(memoryview(buf))
        expected += buf
        buf[:] = b"\xee" * len(buf)  # overwrite at once, before the worker may have run
    d = hasher.digests()
    assert (d.sha256, d.sm3, d.size) == _reference(bytes(expected))


def test_non_byte_memoryview_counts_bytes() -> None:
    import array

    words = array.array("I", range(1000))
    d = hash_bytes(memoryview(words))
    assert d.size == 4000
    assert d.sm3 == hashlib.new("sm3", words.tobytes()).hexdigest()


def test_digests_is_idempotent_and_the_hasher_then_refuses_input() -> None:
    hasher = DualHasher()
    hasher.update(b"x" * (1 << 20))
    first = hasher.digests()
    assert hasher.digests() is first
    with pytest.raises(EvidenceError):
        hasher.update(b"more")


def _sm3_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "sm3-hasher")


def test_large_input_uses_a_worker_that_stops_after_digests_and_close() -> None:
    before = _sm3_threads()
    hasher = DualHasher()
    hasher.update(b"a" * (1 << 20))
    assert _sm3_threads() == before + 1
    hasher.digests()
    abandoned = DualHasher()
    abandoned.update(b"b" * (1 << 20))
    abandoned.close()
    with pytest.raises(EvidenceError):
        abandoned.digests()
    deadline = time.monotonic() + 5
    while _sm3_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _sm3_threads() == before


def test_small_input_needs_no_thread() -> None:
    before = _sm3_threads()
    hasher = DualHasher()
    hasher.update(b"small")
    assert _sm3_threads() == before
    assert hasher.digests().sm3 == hashlib.new("sm3", b"small").hexdigest()


def test_hash_file_and_stream(tmp_path: Path) -> None:
    data = random.Random(3).randbytes((2 << 20) + 12345)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    expected = _reference(data)
    for d in (hash_file(path), hash_file(path, chunk_size=4096),
              hash_stream(io.BytesIO(data), chunk_size=777_777)):
        assert (d.sha256, d.sm3, d.size) == expected


def test_hash_file_missing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        hash_file(tmp_path / "absent")
    with pytest.raises(EvidenceError):
        hash_file(tmp_path)  # a directory: an OSError other than "missing"
