"""File names: the uploaded name made harmless, and the neutral name the log records.

A name is never a reason to refuse an upload: ``sanitize_filename`` always returns a usable
name. The uploaded name often holds an owner's name, so it stays in the evidence table (which
can be corrected or erased under PIPL); the ledger entry carries ``neutral_name`` instead, built
from the case reference, the kind, the time and the extension only.

Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from core.errors import InputError

#: Most file systems (ext4, NTFS, APFS) allow 255 bytes per name component.
MAX_NAME_BYTES = 255
#: The stem used when nothing of the uploaded name survives.
FALLBACK_STEM = "upload"
# A trailing ".ext" is kept through truncation only when it looks like an extension.
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}")
_NOT_NEUTRAL = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_CASE_CHARS = 64


def _cut_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``limit`` bytes."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    # errors="ignore" drops the partial character the byte cut may have left at the end.
    return encoded[:limit].decode("utf-8", errors="ignore")


def _clean_extension(extension: str) -> str:
    ext = extension.strip().lstrip(".").lower()
    ext = re.sub(r"[^a-z0-9]", "", ext)[:16]
    return f".{ext}" if ext else ""


def sanitize_filename(name: str, *, fallback_extension: str = "") -> str:
    """Make an uploaded file name safe to store and show; never raises.

    Removes control and other invisible characters (Unicode category C*: controls, format
    characters such as the right-to-left override, surrogates, private use, unassigned),
    normalises to NFC, keeps only the last path component (both ``/`` and ``\\`` separate),
    turns other white space into plain spaces, strips leading dots and spaces (no hidden
    files, no ``..``) and trailing spaces, and cuts
    the result to 255 bytes of UTF-8 without splitting a character, keeping the extension when
    there is room. If nothing is left, returns ``"upload"`` plus ``fallback_extension``.
    """
    try:
        text = name if isinstance(name, str) else str(name)
        text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
        text = unicodedata.normalize("NFC", text)
        text = re.split(r"[/\\]", text)[-1]
        # Other spaces (no-break, ideographic, line separators) become plain spaces.
        text = "".join(" " if ch.isspace() else ch for ch in text)
        text = text.lstrip(". ").rstrip()
        if len(text.encode("utf-8")) > MAX_NAME_BYTES:
            stem, ext = text, ""
            match = _EXTENSION.search(text, max(0, len(text) - 17))
            if match and match.end() == len(text) and match.start() > 0:
                stem, ext = text[: match.start()], match.group()
            text = _cut_utf8(stem, MAX_NAME_BYTES - len(ext.encode("utf-8"))).rstrip() + ext
        if not text:
            text = FALLBACK_STEM + _clean_extension(fallback_extension)
        return text
    except Exception:  # the contract is "never raises": a name is no reason to refuse
        return FALLBACK_STEM + _clean_extension(fallback_extension)


def neutral_name(case: str | None, kind: str, time: datetime, extension: str) -> str:
    """The name the log records, e.g. ``C-001_visit_20261126T101500Z.mp4``.

    ``case`` and ``kind`` are reduced to ``[A-Za-z0-9._-]`` (other runs become ``-``; the case
    is left out if nothing remains); ``time`` must be timezone-aware and is written in UTC to
    the second; ``extension`` may have a leading dot. Nothing personal can get through.
    """
    if time.tzinfo is None or time.utcoffset() is None:
        raise InputError("the time of a neutral name must be timezone-aware")
    parts = []
    if case:
        ref = _NOT_NEUTRAL.sub("-", case).strip("-._")[:_MAX_CASE_CHARS].strip("-._")
        if ref:
            parts.append(ref)
    parts.append(_NOT_NEUTRAL.sub("-", kind).strip("-._") or "evidence")
    parts.append(time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
    return "_".join(parts) + _clean_extension(extension)
