"""Errors of the evidence package.

Errors the uploader can fix (an empty, oversized, corrupt or unsupported file, a broken
connection) are also ``InputError``; a blob that should exist but does not is also
``NotFoundError``. The messages are English; the web layer translates them.
"""

from __future__ import annotations

from core.errors import InputError, NotFoundError, TiezhengError


class EvidenceError(TiezhengError):
    """Root of evidence errors."""


class EmptyUpload(InputError, EvidenceError):
    """The upload holds no bytes."""


class UploadTooLarge(InputError, EvidenceError):
    """The upload is larger than the configured limit; reading stopped at the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class UnsupportedMedia(InputError, EvidenceError):
    """The bytes are not one of the accepted audio, video, image or document types."""


class CorruptMedia(InputError, EvidenceError):
    """The bytes claim to be a supported type but cannot be read as one (truncated, damaged)."""


class UploadInterrupted(InputError, EvidenceError):
    """The stream of the upload broke off before its end."""


class StorageError(EvidenceError):
    """The blob store could not write or read a file (a fault of the server, not the caller)."""


class StorageFull(StorageError):
    """The disk (or the file size limit of the process) ran out during a write."""


class BlobMissing(NotFoundError, EvidenceError):
    """No stored original with that SHA-256."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no stored original with SHA-256 {sha256}")
        self.sha256 = sha256


class BlobAltered(EvidenceError):
    """A stored original no longer has the size or digests it was stored with."""

    def __init__(self, sha256: str, detail: str) -> None:
        super().__init__(f"the stored original {sha256} has been altered: {detail}")
        self.sha256 = sha256
        self.detail = detail
