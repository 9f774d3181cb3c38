"""SHA-256 and SM3 of a byte stream in one pass.

SHA-256 is the log's hash (RFC 9162 leaves, bundle manifests); SM3 (GB/T 32905-2016) is the
hash Chinese judicial evidence platforms quote, so every original gets both.

Why a worker thread: on this class of machine OpenSSL's SHA-256 runs at about 1.7 GB/s (SHA-NI)
and SM3 at about 0.36 GB/s, so hashing the two one after the other costs ~20 % more than SM3
alone. hashlib releases the GIL while it hashes a buffer larger than 2 KiB, so SM3 runs in one
worker thread fed through a small bounded queue while the caller's thread does SHA-256 (and,
in the blob store, the file write and the next read). Measured with 1 MiB chunks on a 2-core
machine with the second core free (MiB/s, two runs): sequential 234/189; a ThreadPoolExecutor
submitting SM3 per chunk and waiting 286/313; both hashes in two worker threads 272/319; SM3
in one worker with SHA-256 inline 325/341, which is SM3 alone (267-356). It is kept because it
was the fastest and is the simplest threaded variant, and, unlike the per-chunk executor, it
lets SM3 run on while the caller reads and writes the next chunk. When the other core is
busy the variants all fall to the sequential speed: the gain needs a free core. The queue
holds at most ``_QUEUE_DEPTH`` chunks, so memory stays flat whatever the size of the stream.

Pure: no I/O except reading the file or stream the caller names.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import NotFoundError
from evidence.errors import EvidenceError

#: Default read size; also the size at which small writes are batched for the SM3 worker.
CHUNK_SIZE = 1 << 20
# Chunks smaller than this are batched (below ~2 KiB hashlib would not even release the GIL,
# and a queue hand-off per tiny chunk costs more than hashing it).
_DIRECT_MIN = 256 << 10
_QUEUE_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Digests:
    """The fingerprints of one byte stream: lowercase hex SHA-256 and SM3, and its length."""

    sha256: str
    sm3: str
    size: int


def _sm3_worker(
    h: hashlib._Hash, q: queue.Queue[bytes | None], errors: list[BaseException]
) -> None:
    while True:
        data = q.get()
        if data is None:
            return
        if not errors:
            try:
                h.update(data)
            except BaseException as exc:  # keep draining so the producer never blocks
                errors.append(exc)


def _stop_worker(q: queue.Queue[bytes | None], thread: threading.Thread) -> None:
    q.put(None)
    if thread is not threading.current_thread():
        thread.join()


class DualHasher:
    """Incremental SHA-256 + SM3 + size; SM3 runs in a worker thread (see the module docs).

    Call :meth:`update` with consecutive chunks, then :meth:`digests` once. A hasher that is
    abandoned (an upload that failed) should be :meth:`close`-d; it is also stopped when it is
    garbage-collected. Usable as a context manager, which closes it.
    """

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._sm3 = hashlib.new("sm3")
        self._size = 0
        self._pending = bytearray()
        self._queue: queue.Queue[bytes | None] | None = None
        self._stop: weakref.finalize[..., DualHasher] | None = None
        self._errors: list[BaseException] = []
        self._result: Digests | None = None
        self._closed = False

    @property
    def size(self) -> int:
        """Bytes seen so far."""
        return self._size

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk of the stream. The caller may reuse its buffer afterwards."""
        if self._closed or self._result is not None:
            raise EvidenceError("this hasher is finished; start a new one")
        # The worker reads the chunk later, so it must own an immutable copy.
        data = chunk if isinstance(chunk, bytes) else memoryview(chunk).cast("B").tobytes()
        if not data:
            return
        self._sha256.update(data)
        self._size += len(data)
        if len(data) >= _DIRECT_MIN:
            self._flush_pending()
            self._feed(data)
        else:
            self._pending += data
            if len(self._pending) >= CHUNK_SIZE:
                self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            self._feed(bytes(self._pending))
            self._pending.clear()

    def _feed(self, data: bytes) -> None:
        if self._queue is None:
            self._queue = queue.Queue(maxsize=_QUEUE_DEPTH)
            thread = threading.Thread(
                target=_sm3_worker,
                args=(self._sm3, self._queue, self._errors),
                name="sm3-hasher",
                daemon=True,
            )
            thread.start()
            self._stop = weakref.finalize(self, _stop_worker, self._queue, thread)
        self._queue.put(data)

    def digests(self) -> Digests:
        """Finish and return the digests (the same object on every later call)."""
        if self._result is not None:
            return self._result
        if self._closed:
            raise EvidenceError("this hasher was closed before it finished")
        if self._stop is None:
            # Never started the worker: a small input, hash the rest inline.
            self._sm3.update(self._pending)
        else:
            self._flush_pending()
            self._stop()
        self._pending.clear()
        self._closed = True
        if self._errors:
            raise EvidenceError(f"SM3 hashing failed: {self._errors[0]}") from self._errors[0]
        self._result = Digests(self._sha256.hexdigest(), self._sm3.hexdigest(), self._size)
        return self._result

    def close(self) -> None:
        """Stop the worker without a result (idempotent)."""
        if self._stop is not None:
            self._stop()
        self._pending.clear()
        self._closed = True

    def __enter__(self) -> DualHasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hash_bytes(data: bytes | bytearray | memoryview) -> Digests:
    """Digests of a buffer already in memory."""
    hasher = DualHasher()
    hasher.update(data)
    return hasher.digests()


def hash_chunks(chunks: Iterable[bytes | bytearray | memoryview]) -> Digests:
    """Digests of consecutive chunks."""
    with DualHasher() as hasher:
        for chunk in chunks:
            hasher.update(chunk)
        return hasher.digests()


def hash_stream(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Digests:
    """Digests of a binary stream read to its end in ``chunk_size`` reads."""
    with DualHasher() as hasher:
        while chunk := stream.read(chunk_size):
            hasher.update(chunk)
        return hasher.digests()


def hash_file(path: Path, chunk_size: int = CHUNK_SIZE) -> Digests:
    """Digests of a file. A missing file raises NotFoundError; other read errors EvidenceError."""
    try:
        with open(path, "rb") as f:
            return hash_stream(f, chunk_size)
    except FileNotFoundError as exc:
        raise NotFoundError(f"no such file: {path.name}") from exc
    except OSError as exc:
        raise EvidenceError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
