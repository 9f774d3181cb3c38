"""C2SP signed notes (Ed25519) and tlog-checkpoint bodies.

Pure module (``cryptography`` only). Formats, from C2SP ``signed-note`` v1.0.0 and
``tlog-checkpoint`` v1.0.0:

- A signed note is UTF-8 text (no control characters but LF) ending in LF, an empty line,
  then one or more lines ``— <key name> base64(key ID[4] || signature)`` (U+2014 em dash).
- Key ID = SHA-256(name || 0x0A || type || public key)[:4]; type 0x01 is Ed25519, whose
  signature (RFC 8032) covers the note text up to and including its final LF.
- A verifier key (vkey) is ``<name>+hex(key ID)+base64(type || public key)``.
- A checkpoint body is the origin line, the decimal tree size, the base64 root hash, then
  optional extension lines, each ending in LF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import NoteError

__all__ = [
    "ED25519_KEY_TYPE",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "key_id",
    "open_note",
    "parse_signed_note",
]

ED25519_KEY_TYPE = 0x01
"""Signature type byte of an Ed25519 signed-note key."""

SIGNATURE_PREFIX = "\u2014 "
"""Every signature line starts with an em dash (U+2014) and a space."""

MAX_SIGNATURES = 100
"""Notes with more signature lines are refused (the spec asks to accept at least 16)."""

_ED25519_SIG_SIZE = 64
_ROOT_SIZE = 32
_MAX_SIZE = 2**64 - 1  # tree sizes are uint64 everywhere else (RFC 9162, tlog-tiles)
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)", re.ASCII)
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: padded, no whitespace, canonical (one encoding per value)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise NoteError(f"{what} is not valid base64") from e
    if _b64encode(raw) != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _control_char(text: str) -> str | None:
    """The first control character other than LF in ``text`` (signed-note forbids them)."""
    for ch in text:
        if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def _check_key_name(name: str) -> None:
    # signed-note: key names are non-empty and hold no Unicode space and no "+".
    if not isinstance(name, str) or not name:
        raise NoteError("a key name must be a non-empty string")
    for ch in name:
        if ch.isspace() or ch == "+" or unicodedata.category(ch) in ("Cc", "Cs"):
            raise NoteError(f"key name {name!r} contains a space, '+' or a control character")


def key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    """Return the 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    if not 0 <= key_type <= 0xFF:
        raise NoteError(f"key type {key_type} is not a byte")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public_key)
    return digest.digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint body: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("checkpoint size must be an integer")
        if not 0 <= self.size <= _MAX_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != _ROOT_SIZE:
            raise NoteError(f"checkpoint root must be {_ROOT_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions must be a tuple of lines")
        for ext in self.extensions:
            _check_line("extension line", ext)

    def to_text(self) -> str:
        """The note text: one LF-terminated line per field."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly; raises NoteError on any deviation."""
        if not isinstance(text, str):
            raise NoteError("checkpoint text must be a string")
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, size and root lines")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise NoteError(f"checkpoint size {size_text!r} is not a decimal without leading zeros")
        root = _b64decode(root_text, "checkpoint root")
        if len(root) != _ROOT_SIZE:
            raise NoteError(f"checkpoint root is {len(root)} bytes, expected {_ROOT_SIZE}")
        return cls(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def _check_line(what: str, line: str) -> None:
    if not isinstance(line, str) or not line:
        raise NoteError(f"checkpoint {what} must be a non-empty string")
    bad = _control_char(line)
    if bad is not None or "\n" in line:
        raise NoteError(f"checkpoint {what} {line!r} contains a newline or control character")


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    bad = _control_char(text)
    if bad is not None:
        raise NoteError(f"note text contains control character U+{ord(bad):04X}")


class NoteSigner:
    """Signs notes with an Ed25519 key under a key name (for the log: its origin)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError("a note signer needs an Ed25519 private key")
        self._name = name
        self._key = private_key
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_id(name, ED25519_KEY_TYPE, self._public)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes, name: str) -> NoteSigner:
        """Load an unencrypted PKCS#8 PEM Ed25519 key (as written by ``to_pem``)."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise NoteError("the signing key file is not an unencrypted PKCS#8 PEM key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise NoteError("the signing key is not an Ed25519 key")
        return cls(name, key)

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM; store it with file mode 0600."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def name(self) -> str:
        """The key name written on signature lines."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public

    def vkey(self) -> str:
        """The verifier key ``name+hex(key ID)+base64(0x01 || public key)``."""
        encoded = _b64encode(bytes([ED25519_KEY_TYPE]) + self._public)
        return f"{self._name}+{self._key_id.hex()}+{encoded}"

    def signature_line(self, text: str) -> str:
        """The signature line (with its LF) for ``text``."""
        _check_note_text(text)
        sig = self._key.sign(text.encode("utf-8"))
        return f"{SIGNATURE_PREFIX}{self._name} {_b64encode(self._key_id + sig)}\n"

    def sign(self, text: str) -> str:
        """The whole signed note: ``text``, an empty line and this key's signature line."""
        return text + "\n" + self.signature_line(text)


class NoteVerifier:
    """Verifies signatures of one Ed25519 signed-note key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_key_name(name)
        if len(public_key) != 32:
            raise NoteError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(bytes(public_key))
        except ValueError as e:
            raise NoteError("invalid Ed25519 public key") from e
        self._name = name
        self._public = bytes(public_key)
        self._key_id = key_id(name, ED25519_KEY_TYPE, self._public)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hex(key ID)+base64(type || key)``; the key ID must match the key.

        Split from the left: the base64 part may itself contain '+', the name may not.
        """
        if not isinstance(vkey, str):
            raise NoteError("a verifier key must be a string")
        name, sep1, rest = vkey.partition("+")
        hex_id, sep2, encoded = rest.partition("+")
        if not sep1 or not sep2:
            raise NoteError("verifier key must be name+keyid+base64key")
        _check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(hex_id):
            raise NoteError(f"verifier key ID {hex_id!r} is not 8 hex digits")
        raw = _b64decode(encoded, "verifier key")
        if not raw or raw[0] != ED25519_KEY_TYPE:
            kind = f"0x{raw[0]:02x}" if raw else "missing"
            raise NoteError(f"verifier key type {kind} is not supported (only Ed25519, 0x01)")
        verifier = cls(name, raw[1:])
        if verifier.key_id != bytes.fromhex(hex_id):
            raise NoteError(
                f"verifier key ID {hex_id} does not match the key (computed "
                f"{verifier.key_id.hex()})"
            )
        return verifier

    @property
    def name(self) -> str:
        """The key name."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return self._key_id

    def vkey(self) -> str:
        """The verifier key text."""
        encoded = _b64encode(bytes([ED25519_KEY_TYPE]) + self._public)
        return f"{self._name}+{self._key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is this key's signature of ``text``."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            self._key.verify(bytes(signature), bytes(text))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class SignedNote:
    """A parsed signed note; ``verified_by`` names the keys whose signatures verified."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified_by: tuple[str, ...] = ()


def _decode(note: str | bytes) -> str:
    if isinstance(note, bytes | bytearray | memoryview):
        try:
            return bytes(note).decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteError("signed note is not valid UTF-8") from e
    if not isinstance(note, str):
        raise NoteError("signed note must be text or bytes")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteError("signed note is not valid UTF-8") from e
    return note


def parse_signed_note(note: str | bytes) -> SignedNote:
    """Split a signed note into text and signature lines, without checking signatures."""
    msg = _decode(note)
    bad = _control_char(msg)
    if bad is not None:
        raise NoteError(f"signed note contains control character U+{ord(bad):04X}")
    if not msg.endswith("\n"):
        raise NoteError("signed note must end with a newline")
    # The last empty line separates text from signatures (signature lines are never empty).
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no empty line before its signatures")
    text = msg[: split + 1]
    lines = msg[split + 2 : -1].split("\n") if msg[split + 2 :] else []
    if not lines:
        raise NoteError("signed note has no signatures")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"signed note has more than {MAX_SIGNATURES} signatures")
    sigs: list[NoteSignature] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"signature line {number} does not start with an em dash and a space")
        name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or not encoded:
            raise NoteError(f"signature line {number} is not '— name signature'")
        _check_key_name(name)
        raw = _b64decode(encoded, f"signature line {number}")
        if len(raw) < 5:
            raise NoteError(f"signature line {number} is too short")
        sigs.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
    return SignedNote(text=text, signatures=tuple(sigs))


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> SignedNote:
    """Parse a signed note and check it against known keys.

    Signatures by unknown keys (no verifier with the same name AND key ID) are ignored. A
    signature by a known key must verify, and at least one must be present; otherwise, or
    when the note is malformed, NoteError is raised.
    """
    parsed = parse_signed_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    data = parsed.text.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in parsed.signatures:
        ident = (sig.name, sig.key_id)
        verifier = known.get(ident)
        if verifier is None:
            continue
        if ident in seen:
            raise NoteError(f"signed note has two signatures by key {sig.name}")
        seen.add(ident)
        if not verifier.verify(data, sig.signature):
            raise NoteError(f"signature by key {sig.name} ({sig.key_id.hex()}) does not verify")
        verified.append(sig.name)
    if not verified:
        names = ", ".join(sorted({f"{s.name} ({s.key_id.hex()})" for s in parsed.signatures}))
        raise NoteError(f"signed note has no signature by a known key (signed by: {names})")
    return SignedNote(text=parsed.text, signatures=parsed.signatures, verified_by=tuple(verified))
