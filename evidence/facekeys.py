"""Face templates at rest: AES-256-GCM encryption and the hash the log records.

A face template (a 128-d dlib encoding) is biometric data, sensitive personal information under
PIPL arts. 28-29. It is stored only encrypted with a key of the instance and never enters the log;
the log records ``template_hash`` instead, so an enrolment can be proven without keeping the
template readable in the log. Key files are the caller's business: this module takes raw bytes.

Blob format: ``nonce (12 bytes) || ciphertext || tag (16 bytes)`` as produced by
``cryptography``'s AESGCM. The associated data binds the blob to its person reference, so a
template copied onto another person's row does not decrypt (NIST SP 800-38D section 5.2.1.2).
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numpy.typing import ArrayLike, NDArray

from core.errors import ConfigError, InputError, TiezhengError

__all__ = [
    "KEY_BYTES",
    "TEMPLATE_DIMENSIONS",
    "FaceKeyError",
    "InvalidTemplate",
    "TemplateDecryptError",
    "as_template",
    "decrypt_template",
    "encrypt_template",
    "generate_key",
    "template_hash",
]

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # the GCM nonce length SP 800-38D recommends (section 8.2)
TAG_BYTES: Final = 16
TEMPLATE_DIMENSIONS: Final = 128
_TEMPLATE_BYTES: Final = TEMPLATE_DIMENSIONS * 8
# Domain separation: the instance key may one day encrypt other things; a template blob must
# never decrypt as anything else (nor the reverse).
_AAD_PREFIX: Final = b"tiezheng/face-template/v1\x00"


class FaceKeyError(ConfigError):
    """The face-template key is unusable (wrong length or type)."""


class InvalidTemplate(InputError):
    """A face template is not a finite 128-dimensional vector."""


class TemplateDecryptError(TiezhengError):
    """A stored face template cannot be decrypted: wrong key, wrong person or damaged data."""


def generate_key() -> bytes:
    """Return a fresh random 256-bit key for encrypting face templates."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def as_template(encoding: ArrayLike) -> NDArray[np.float64]:
    """Return ``encoding`` as a C-contiguous float64 vector of 128 finite values, or refuse it."""
    try:
        array = np.asarray(encoding, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidTemplate(f"a face template must be numeric: {e}") from e
    if array.shape != (TEMPLATE_DIMENSIONS,):
        raise InvalidTemplate(
            f"a face template has shape ({TEMPLATE_DIMENSIONS},), not {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise InvalidTemplate("a face template must hold only finite numbers")
    return np.ascontiguousarray(array)


def _template_bytes(encoding: ArrayLike) -> bytes:
    # Fixed byte order so the hash and the ciphertext do not depend on the machine.
    return as_template(encoding).astype("<f8", copy=False).tobytes()


def template_hash(encoding: ArrayLike) -> str:
    """Return the hex SHA-256 of the template as 128 little-endian float64 values.

    This is what enrolment entries in the log record instead of the template itself.
    """
    return hashlib.sha256(_template_bytes(encoding)).hexdigest()


def _aead(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise FaceKeyError(f"the face-template key must be {KEY_BYTES} bytes, got {size}")
    return AESGCM(key)


def _aad(person_ref: str) -> bytes:
    if not isinstance(person_ref, str) or not person_ref:
        raise InputError("a face template needs a non-empty person reference")
    return _AAD_PREFIX + person_ref.encode("utf-8")


def encrypt_template(key: bytes, encoding: ArrayLike, person_ref: str) -> bytes:
    """Encrypt one template for ``person_ref``; returns ``nonce || ciphertext`` (with GCM tag).

    A random 96-bit nonce per call: the same template encrypts differently each time.
    """
    aead = _aead(key)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, _template_bytes(encoding), _aad(person_ref))


def decrypt_template(key: bytes, blob: bytes, person_ref: str) -> NDArray[np.float64]:
    """Decrypt a blob made by :func:`encrypt_template` for the same person.

    Raises :class:`TemplateDecryptError` when the key is wrong, the blob was altered or
    truncated, or it belongs to another person reference.
    """
    aead = _aead(key)
    aad = _aad(person_ref)
    if not isinstance(blob, bytes) or len(blob) != NONCE_BYTES + _TEMPLATE_BYTES + TAG_BYTES:
        size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
        raise TemplateDecryptError(
            f"the stored face template of {person_ref!r} is damaged: "
            f"expected {NONCE_BYTES + _TEMPLATE_BYTES + TAG_BYTES} bytes, got {size}"
        )
    try:
        plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as e:
        raise TemplateDecryptError(
            f"cannot decrypt the face template of {person_ref!r}: wrong key, "
            "template of another person, or damaged data"
        ) from e
    template = np.frombuffer(plain, dtype="<f8").astype(np.float64)
    try:
        return as_template(template)
    except InvalidTemplate as e:  # authentic but not a template: written by a broken caller
        raise TemplateDecryptError(
            f"the stored face template of {person_ref!r} is invalid: {e.message}"
        ) from e
