"""The content-addressed, write-once store of originals.

Layout under the store's root::

    blobs/<aa>/<bb>/<sha256>   the originals, mode 0444, named by their SHA-256 (aa, bb = its
                               first two and next two hex digits, to keep directories small)
    tmp/upload-*.part          uploads being written; never visible under blobs/

An upload is written to ``tmp/`` while it is hashed in the same pass (SHA-256 + SM3, see
``evidence.hashing``); the size limit is enforced during the write, so an oversized upload is
never read past the limit. Where the file system allows it the bytes are written with O_DIRECT
from a reused, aligned buffer rather than through the page cache (see ``LocalBlobWriter``
for why). On commit the file is fsync-ed, made read-only and hard-linked to its
content address (``link`` fails rather than replace an existing file: a stored original is never
overwritten, not even by identical bytes), then the directory is fsync-ed so the name survives a
power loss. Whatever goes wrong before that (empty upload, too large, disk full, the client's
stream breaking, a failed validation, Ctrl-C), the temporary file is removed: no blob, no
leftover. Memory use does not depend on the size of the upload.

``BlobStore`` is the interface the service uses, so object storage can be added beside
``LocalBlobStore`` later.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from core.errors import ConfigError, InputError, TiezhengError
from evidence.errors import (
    BlobAltered,
    BlobMissing,
    EmptyUpload,
    StorageError,
    StorageFull,
    UploadInterrupted,
    UploadTooLarge,
)
from evidence.hashing import CHUNK_SIZE, Digests, DualHasher, hash_stream

_FLUSH_EVERY = 64 << 20
# Direct I/O writes whole staging buffers, whose lengths and file offsets are multiples of
# this: it covers the logical block sizes in use (512 B and 4 KiB).
_DIRECT_ALIGN = 4096
_STAGE_SIZE = 4 << 20

#: How many leading bytes a writer keeps for type sniffing.
HEAD_SIZE = 64 << 10

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = "upload-"
_TEMP_SUFFIX = ".part"
# errno values meaning "no room": disk full, quota, the process's RLIMIT_FSIZE.
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

Source = BinaryIO | Iterable[bytes] | bytes
"""What ``ingest`` reads: a binary file object, an iterable of chunks, or one buffer."""

Validator = Callable[[Path], object]
"""Called with the complete, fsync-ed temporary file before it is committed; raises to refuse."""


def check_sha256(value: object) -> str:
    """Return ``value`` if it is a SHA-256 in 64 lowercase hex digits, else raise InputError.

    Every path the store builds goes through this, so no input can name a file outside it.
    """
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise InputError("a SHA-256 must be 64 lowercase hexadecimal digits")
    return value


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """Receipt of a committed upload.

    ``created`` is False when identical bytes were already stored (they are stored once; the
    caller still records its own ledger entry for this upload).
    """

    sha256: str
    sm3: str
    size: int
    created: bool

    @property
    def digests(self) -> Digests:
        """The digests as a ``Digests`` value."""
        return Digests(self.sha256, self.sm3, self.size)


class BlobWriter(Protocol):
    """One upload being written. Use as a context manager: leaving without commit aborts."""

    @property
    def size(self) -> int:
        """Bytes written so far."""

    @property
    def head(self) -> bytes:
        """The first bytes written (up to HEAD_SIZE), for sniffing the type early."""

    @property
    def temp_path(self) -> Path:
        """The temporary file; complete once every chunk is written (for probing)."""

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append a chunk (raises UploadTooLarge past the limit, StorageFull on a full disk)."""

    def commit(self, validate: Validator | None = None) -> StoredBlob:
        """Validate, then store under the content address (raises EmptyUpload if empty)."""

    def abort(self) -> None:
        """Discard the upload (idempotent)."""

    def __enter__(self) -> BlobWriter:
        """Return the writer."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Abort unless committed."""


class BlobStore(Protocol):
    """A content-addressed, write-once store of originals."""

    max_size: int

    def writer(self) -> BlobWriter:
        """Start an upload."""

    def ingest(
        self,
        source: Source,
        *,
        validate: Validator | None = None,
        inspect_head: Callable[[bytes], object] | None = None,
        observe: Callable[[bytes], object] | None = None,
    ) -> StoredBlob:
        """Write a whole stream and commit it (see LocalBlobStore.ingest)."""

    def exists(self, sha256: str) -> bool:
        """Whether an original with this SHA-256 is stored."""

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored original for reading (raises BlobMissing)."""

    def size(self, sha256: str) -> int:
        """Size in bytes of a stored original (raises BlobMissing)."""

    def verify(self, sha256: str, *, sm3: str | None = None, size: int | None = None) -> None:
        """Re-hash a stored original; raise BlobMissing or BlobAltered, else return None."""


def _storage_error(exc: OSError, doing: str) -> StorageError:
    if exc.errno in _FULL_ERRNOS:
        return StorageFull(f"the evidence store ran out of space while {doing}")
    return StorageError(f"the evidence store failed while {doing}: {exc.strerror or exc}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Flusher:
    """Flushes a large buffered upload to disk while it is still being written.

    Only used where direct I/O is off (see ``LocalBlobWriter``). Every ``_FLUSH_EVERY`` bytes
    a background thread calls fdatasync, so the kernel writes the file out during the upload
    instead of all at once in the final fsync (which then has little left to do), and dirty
    pages never pile up enough to throttle the writer.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._unflushed = 0
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def wrote(self, n: int) -> None:
        self._unflushed += n
        if self._unflushed >= _FLUSH_EVERY:
            self._unflushed = 0
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="blob-flusher", daemon=True)
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            with contextlib.suppress(OSError):  # the final fsync reports any real error
                os.fdatasync(self._fd)

    def stop(self) -> None:
        """Stop the thread (before the descriptor is closed); idempotent."""
        self._stopped = True
        if self._thread is not None:
            self._wake.set()
            self._thread.join()
            self._thread = None


def _enable_direct_io(fd: int) -> bool:
    """Switch ``fd`` to O_DIRECT; False where the system or file system does not allow it."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flag)
    except OSError:  # EINVAL on tmpfs and other file systems without direct I/O
        return False
    return True


def _disable_direct_io(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~getattr(os, "O_DIRECT", 0))


class LocalBlobWriter:
    """A ``BlobWriter`` for ``LocalBlobStore``; see the module docs for the guarantees.

    Why direct I/O: a buffered write must first find a fresh page-cache page for every 4 KiB
    of the upload, and on a virtual machine that kernel work can cost as much CPU as SM3
    itself (0.3-3 s of system time per GiB, measured), on the core the hashes need. With
    O_DIRECT the bytes go from one reused, page-aligned staging buffer straight to the device
    (about 0.2 s of system time per GiB). Direct I/O needs aligned lengths and offsets, so
    whole ``_STAGE_SIZE`` buffers are written that way and the unaligned tail, after O_DIRECT
    is switched off, like any other write. Where the file system refuses O_DIRECT (tmpfs), or
    a write comes back short or misaligned, the writer carries on with buffered writes and
    the flusher.
    """

    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        try:
            fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=store.tmp_dir)
        except OSError as exc:
            raise _storage_error(exc, "creating a temporary file") from exc
        self._fd = fd
        self._temp = Path(name)
        self._hasher = DualHasher()
        self._flusher = _Flusher(fd)
        self._head = bytearray()
        self._state = "open"
        self._direct = store.direct_io and _enable_direct_io(fd)
        # Anonymous mappings are page-aligned, as O_DIRECT wants; their pages are touched only
        # as the upload fills them, so a small upload costs no more than its size.
        self._stage: mmap.mmap | None = mmap.mmap(-1, _STAGE_SIZE) if self._direct else None
        self._staged = 0

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._hasher.size

    @property
    def head(self) -> bytes:
        """The first bytes written (up to HEAD_SIZE)."""
        return bytes(self._head)

    @property
    def temp_path(self) -> Path:
        """The temporary file (inside the store's tmp directory); complete by the time
        ``commit`` calls its validator."""
        return self._temp

    @property
    def direct_io(self) -> bool:
        """Whether the upload is (still) being written with O_DIRECT."""
        return self._direct

    def _require_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"this upload is already {self._state}")

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append a chunk; on any failure the upload is aborted before the error is raised."""
        self._require_open()
        try:
            view = memoryview(chunk).cast("B")
            if self.size + len(view) > self._store.max_size:
                raise UploadTooLarge(self._store.max_size)
            if not view:
                return
            # Hand the caller's bytes object over as it is (no copy); the hasher copies others.
            self._hasher.update(chunk if isinstance(chunk, bytes) else view)
            if len(self._head) < HEAD_SIZE:
                self._head += view[: HEAD_SIZE - len(self._head)]
            if self._stage is None:
                self._write_all(view)
                return
            while view:
                n = min(len(view), _STAGE_SIZE - self._staged)
                self._stage[self._staged : self._staged + n] = view[:n]
                self._staged += n
                view = view[n:]
                if self._staged == _STAGE_SIZE:
                    self._write_stage()
        except BaseException:
            self.abort()
            raise

    def _write_all(self, view: memoryview) -> None:
        """Write all of ``view`` at the current offset, retrying short writes."""
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                if self._direct and exc.errno == errno.EINVAL:
                    # The device wants another alignment: carry on buffered.
                    self._stop_direct_io()
                    continue
                raise _storage_error(exc, "writing the upload") from exc
            if written <= 0:  # pragma: no cover - a regular file never does this
                raise StorageFull("the evidence store accepted no more bytes")
            if self._direct and written != len(view):
                # The offset is no longer aligned (a file size limit, say): carry on buffered.
                self._stop_direct_io()
            if not self._direct:
                self._flusher.wrote(written)
            view = view[written:]

    def _stop_direct_io(self) -> None:
        try:
            _disable_direct_io(self._fd)
        except OSError as exc:  # pragma: no cover - F_SETFL on our own descriptor
            raise _storage_error(exc, "writing the upload") from exc
        self._direct = False

    def _write_stage(self) -> None:
        """Write the staged bytes: whole blocks with O_DIRECT, then any unaligned rest buffered.

        Mid-upload the stage is always full, so only the last call has an unaligned rest.
        """
        assert self._stage is not None
        with memoryview(self._stage) as stage:
            aligned = self._staged - self._staged % _DIRECT_ALIGN if self._direct else 0
            if aligned:
                self._write_all(stage[:aligned])
            if aligned < self._staged:
                if self._direct:
                    self._stop_direct_io()
                self._write_all(stage[aligned : self._staged])
        self._staged = 0

    def _release_stage(self) -> None:
        if self._stage is not None:
            # A traceback of a failed write can still hold a view of it; then it is freed
            # with that traceback instead.
            with contextlib.suppress(BufferError):
                self._stage.close()
            self._stage = None

    def commit(self, validate: Validator | None = None) -> StoredBlob:
        """Fsync, validate, make read-only and link to the content address.

        ``validate(temp_path)`` runs on the complete file before it gets its address; whatever
        it raises aborts the upload and propagates. Raises EmptyUpload for zero bytes.
        """
        self._require_open()
        self._state = "committing"
        try:
            if self.size == 0:
                raise EmptyUpload("the upload is empty")
            if self._stage is not None:
                self._write_stage()
                self._release_stage()
            try:
                self._flusher.stop()
                os.fsync(self._fd)
                os.close(self._fd)
            except OSError as exc:
                raise _storage_error(exc, "flushing the upload to disk") from exc
            finally:
                self._fd = -1
            digests = self._hasher.digests()
            if validate is not None:
                validate(self._temp)
            blob = self._store._place(self._temp, digests)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return blob

    def abort(self) -> None:
        """Discard the upload: close and remove the temporary file (idempotent)."""
        if self._state in ("aborted", "committed"):
            return
        self._state = "aborted"
        self._flusher.stop()
        self._release_stage()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            self._temp.unlink(missing_ok=True)
        self._hasher.close()

    def __enter__(self) -> LocalBlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "committed":
            self.abort()


class LocalBlobStore:
    """Originals on the local file system under ``root`` (see the module docs).

    ``max_size`` is the largest upload accepted, in bytes (TIEZHENG_MAX_UPLOAD).
    ``direct_io`` lets uploads be written with O_DIRECT where the file system allows it
    (see ``LocalBlobWriter``); False writes through the page cache.
    """

    def __init__(self, root: Path, *, max_size: int, direct_io: bool = True) -> None:
        if max_size <= 0:
            raise ConfigError("the maximum upload size must be a positive number of bytes")
        self.root = root
        self.max_size = max_size
        self.direct_io = direct_io
        self.blobs_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        try:
            self.blobs_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the evidence store: {exc.strerror or exc}") from exc

    # -- writing --------------------------------------------------------------------------

    def writer(self) -> LocalBlobWriter:
        """Start an upload: ``with store.writer() as w: w.write(...); blob = w.commit()``."""
        return LocalBlobWriter(self)

    def ingest(
        self,
        source: Source,
        *,
        validate: Validator | None = None,
        inspect_head: Callable[[bytes], object] | None = None,
        observe: Callable[[bytes], object] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> StoredBlob:
        """Write a whole stream (a binary file object, an iterable of chunks, or one buffer)
        and commit it.

        ``inspect_head(head)`` is called once, as soon as HEAD_SIZE bytes have arrived (or at
        the end of a shorter upload), so an unsupported type is refused before the rest is
        read; ``observe(chunk)`` sees every chunk once it is written (after ``inspect_head``
        for the chunk that completes the head); ``validate`` is passed to ``commit``. Reading
        stops one byte past ``max_size``.
        An exception from the source becomes UploadInterrupted (KeyboardInterrupt and other
        BaseExceptions propagate as they are); in every failure the upload leaves nothing.
        """
        with self.writer() as w:
            inspected = False
            for chunk in self._chunks(source, w, chunk_size):
                w.write(chunk)
                if inspect_head is not None and not inspected and w.size >= HEAD_SIZE:
                    inspected = True
                    inspect_head(w.head)
                if observe is not None:
                    observe(chunk)
            if inspect_head is not None and not inspected and w.size > 0:
                inspect_head(w.head)
            return w.commit(validate)

    def _chunks(self, source: Source, w: LocalBlobWriter, chunk_size: int) -> Iterator[bytes]:
        if isinstance(source, bytes):
            yield source  # one buffer, not an iterable of ints
            return
        if hasattr(source, "read"):
            stream: BinaryIO = source  # type: ignore[assignment]

            def read() -> bytes:
                # Never ask for more than one byte past the limit.
                return stream.read(min(chunk_size, self.max_size + 1 - w.size))

            iterator: Iterator[bytes] = iter(read, b"")
        else:
            iterator = iter(source)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except TiezhengError:
                raise
            except Exception as exc:
                raise UploadInterrupted(f"the upload stream broke off: {exc}") from exc
            if chunk is None:  # a non-blocking stream with nothing ready: treat as broken
                raise UploadInterrupted("the upload stream returned no data")
            yield chunk

    def _make_dirs(self, directory: Path) -> None:
        missing = []
        d = directory
        while not d.exists() and d != self.blobs_dir:
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another upload made it first
                d.mkdir()
            _fsync_dir(d.parent)

    def _place(self, temp: Path, digests: Digests) -> StoredBlob:
        dest = self.path(digests.sha256)
        try:
            os.chmod(temp, 0o444)
            self._make_dirs(dest.parent)
            created = True
            try:
                # link, not rename: it fails instead of replacing an existing original.
                os.link(temp, dest)
            except FileExistsError:
                created = False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                # No hard links on this file system: rename, after checking for a twin.
                if dest.exists():
                    created = False
                else:
                    os.rename(temp, dest)
            if not created:
                stored = dest.stat().st_size
                if stored != digests.size:
                    raise BlobAltered(digests.sha256, f"it has {stored} bytes, not {digests.size}")
            temp.unlink(missing_ok=True)
            _fsync_dir(dest.parent)
        except OSError as exc:
            raise _storage_error(exc, "storing the upload") from exc
        return StoredBlob(digests.sha256, digests.sm3, digests.size, created)

    def remove_stale_temp(self, max_age_s: float = 24 * 3600) -> int:
        """Remove temporary files older than ``max_age_s`` (left by a killed process).

        Returns how many were removed. Uploads still being written are younger than that.
        """
        removed = 0
        cutoff = time.time() - max_age_s
        for p in self.tmp_dir.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed

    # -- reading --------------------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        """Where the original with this SHA-256 is (or would be) stored."""
        h = check_sha256(sha256)
        return self.blobs_dir / h[:2] / h[2:4] / h

    def exists(self, sha256: str) -> bool:
        """Whether an original with this SHA-256 is stored."""
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored original for reading."""
        p = self.path(sha256)
        try:
            return open(p, "rb")
        except FileNotFoundError as exc:
            raise BlobMissing(sha256) from exc
        except OSError as exc:
            raise _storage_error(exc, "opening a stored original") from exc

    def size(self, sha256: str) -> int:
        """Size in bytes of a stored original."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobMissing(sha256) from exc
        except OSError as exc:
            raise _storage_error(exc, "reading a stored original") from exc

    def verify(self, sha256: str, *, sm3: str | None = None, size: int | None = None) -> None:
        """Re-hash a stored original (SHA-256 always, SM3 too) against what it was stored with.

        Raises BlobMissing if it is gone and BlobAltered if its SHA-256, or the ``sm3`` or
        ``size`` the caller expects (from the ledger entry), no longer match.
        """
        if sm3 is not None and not (isinstance(sm3, str) and _SHA256_HEX.fullmatch(sm3)):
            raise InputError("an SM3 digest must be 64 lowercase hexadecimal digits")
        with self.open(sha256) as f:
            try:
                got = hash_stream(f)
            except OSError as exc:
                raise _storage_error(exc, "reading a stored original") from exc
        if size is not None and got.size != size:
            raise BlobAltered(sha256, f"it has {got.size} bytes, not {size}")
        if got.sha256 != sha256:
            raise BlobAltered(sha256, f"its SHA-256 is now {got.sha256}")
        if sm3 is not None and got.sm3 != sm3:
            raise BlobAltered(sha256, f"its SM3 is now {got.sm3}, not {sm3}")
