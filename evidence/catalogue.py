"""The evidence catalogue (证据目录) of a bundle, as HTML and as PDF from one template.

The catalogue is what a judge or the other party reads first: one row per item with its
kind, case, upload time, SHA-256 and SM3, entry index, the checkpoint that first covered it
and that checkpoint's timestamp, and its purpose (证明目的). Chinese first, English beside it.

Everything shown is escaped (Jinja2 autoescape); invisible control and bidi-override characters
in free text are shown as boxed ``U+XXXX`` codes, so a hostile purpose can neither inject markup
nor reorder what the reader sees. The PDF is rendered by WeasyPrint from the same HTML, with a
URL fetcher that loads nothing but ``data:`` URIs: rendering never touches the network or files.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from evidence.errors import EvidenceError

#: Legal dates and times a Chinese court reads are Beijing time (Asia/Shanghai, UTC+8).
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")

#: Item kinds and their labels (Chinese, English).
KIND_LABELS: dict[str, tuple[str, str]] = {
    "call": ("通话录音", "call recording"),
    "visit": ("上门视频", "visit video"),
    "document": ("书证", "document"),
    "photo": ("照片", "photo"),
}

_TEMPLATES = Path(__file__).with_name("templates")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Most characters of free text shown in the catalogue: a purpose, a file name (at most 255
#: bytes anyway), and short fields (case, user, origin, media type). Longer text is cut with a
#: visible note: the catalogue is a summary and the exact text is in the bundled entry. The
#: limits keep every row shorter than a page, so no row is split, and bound the layout time.
PURPOSE_CHARS = 500
NAME_CHARS = 255
SHORT_CHARS = 120

# Unicode categories never printed as themselves: controls, format characters (bidi overrides
# such as U+202E, zero-width characters), surrogates, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class CatalogueError(EvidenceError):
    """The catalogue cannot be made from these values (a malformed item or bundle field)."""


@dataclass(frozen=True)
class CatalogueItem:
    """One row of the catalogue: an evidence entry as bundled.

    ``uploaded`` and ``timestamp`` are RFC 3339 times; ``timestamp`` is the time of the
    RFC 3161 token of the first checkpoint that covered the entry, ``None`` while pending
    (``checkpoint_size`` is then ``None`` too when that checkpoint is not yet known).
    """

    no: int
    index: int
    kind: str
    case: str | None
    uploaded: str
    sha256: str
    sm3: str
    size: int
    media_type: str
    filename: str
    purpose: str | None
    checkpoint_size: int | None
    timestamp: str | None
    actor: str
    duration_s: float | None = None


@dataclass(frozen=True)
class CatalogueInfo:
    """The bundle as a whole: its case (``None`` for a bundle made from entry indexes), the
    log's origin, the export time, who exported it, and the bundled checkpoint."""

    case: str | None
    origin: str
    created: str
    bundle_checkpoint_size: int
    bundle_timestamp: str | None
    exported_by: str


def render_html(info: CatalogueInfo, items: Sequence[CatalogueItem]) -> str:
    """The catalogue as a self-contained HTML document (UTF-8 text, styles inline).

    Items are listed in the order given. The output depends on the arguments alone.
    Raises ``CatalogueError`` for a malformed value (unknown kind, bad digest, bad time).
    """
    context = _context(info, list(items))
    return _environment().get_template("catalogue.html").render(context)


def render_pdf(info: CatalogueInfo, items: Sequence[CatalogueItem]) -> bytes:
    """The catalogue as an A4 PDF made by WeasyPrint from ``render_html``'s document.

    The Chinese text is set in Noto Sans CJK SC (Debian's fonts-noto-cjk), embedded as a
    subset. The PDF's title and creation date come from the catalogue, so the same export
    gives the same bytes.
    """
    # Imported here: WeasyPrint loads Pango and fontconfig, which only PDF rendering needs.
    import weasyprint

    document = weasyprint.HTML(
        string=render_html(info, items), url_fetcher=local_only_fetcher(), media_type="print"
    )
    pdf: bytes = document.write_pdf(pdf_identifier=False)
    return pdf


def local_only_fetcher() -> Any:
    """A WeasyPrint URL fetcher that serves ``data:`` URIs and refuses every other URL
    (``http``, ``https``, ``ftp``, ``file`` ...) by raising ``CatalogueError``."""
    return _fetcher_class()(allowed_protocols=("data",), allow_redirects=False)


@cache
def _fetcher_class() -> type[Any]:
    from weasyprint.urls import URLFetcher

    class LocalOnlyFetcher(URLFetcher):  # type: ignore[misc]
        """Serves ``data:`` URIs only: the catalogue must not depend on anything outside it."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            if not url.lower().startswith("data:"):
                raise CatalogueError(f"the catalogue loads no external resource: {url[:200]!r}")
            return super().fetch(url, headers)

    return LocalOnlyFetcher


def template_environment(templates: Path) -> jinja2.Environment:
    """The Jinja settings of our documents (catalogue, letters): autoescaped, strict about
    missing values, and the ``visible`` filter for user text."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["visible"] = visible
    return env


@cache
def _environment() -> jinja2.Environment:
    env = template_environment(_TEMPLATES)
    env.filters["plain"] = plain
    env.globals["PURPOSE"] = PURPOSE_CHARS
    env.globals["NAME"] = NAME_CHARS
    env.globals["SHORT"] = SHORT_CHARS
    return env


def visible(text: str | None, limit: int | None = None) -> Markup:
    """``text`` escaped for HTML, with every invisible character (controls except newline,
    bidi overrides and isolates, zero-width characters, separators) shown as a boxed code,
    and cut after ``limit`` characters with a visible note of the full length."""
    if text is None:
        return Markup("")
    shown = text if limit is None else text[:limit]
    parts: list[str] = []
    for char in shown:
        if _hidden(char):
            parts.append(f'<span class="ctl">U+{ord(char):04X}</span>')
        else:
            parts.append(str(escape(char)))
    if len(shown) < len(text):
        parts.append(
            f'<span class="cut">…［已截断，全文 {len(text)} 字符 '
            f"cut, {len(text)} characters in full］</span>"
        )
    return Markup("".join(parts))


def plain(text: str | None, limit: int | None = None) -> str:
    """``text`` for places that hold no markup (the title): invisible characters written as
    ``U+XXXX``, cut after ``limit`` characters with ``…``. Escaping is left to autoescape."""
    if text is None:
        return ""
    shown = text if limit is None else text[:limit]
    out = "".join(f"U+{ord(char):04X}" if _hidden(char) else char for char in shown)
    return out + ("…" if len(shown) < len(text) else "")


def _hidden(char: str) -> bool:
    return char != "\n" and unicodedata.category(char) in _HIDDEN_CATEGORIES


# ---------------------------------------------------------------------------------------------
# Values prepared for the template (all plain strings and ints; the template escapes them).


def _context(info: CatalogueInfo, items: list[CatalogueItem]) -> dict[str, Any]:
    created = _time(info.created, "created")
    return {
        "case": info.case,
        "origin": info.origin,
        "created": created,
        "created_w3c": created["utc_seconds"],
        "exported_by": info.exported_by,
        "bundle_checkpoint_size": _count(info.bundle_checkpoint_size, "bundle checkpoint size"),
        "bundle_timestamp": (
            None if info.bundle_timestamp is None else _time(info.bundle_timestamp, "timestamp")
        ),
        "items": [_row(item) for item in items],
        "item_count": len(items),
        "total_size": _size(sum(item.size for item in items)),
    }


def _row(item: CatalogueItem) -> dict[str, Any]:
    where = f"item {item.no}"
    if item.kind not in KIND_LABELS:
        raise CatalogueError(f"{where}: unknown kind {item.kind!r}")
    kind_zh, kind_en = KIND_LABELS[item.kind]
    for name, digest in (("SHA-256", item.sha256), ("SM3", item.sm3)):
        if not _HEX64.fullmatch(digest):
            raise CatalogueError(f"{where}: {name} is not 64 lowercase hex digits")
    if item.duration_s is not None and not 0 <= item.duration_s < 1e9:
        raise CatalogueError(f"{where}: duration out of range: {item.duration_s!r}")
    return {
        "no": _count(item.no, f"{where}: number"),
        "index": _count(item.index, f"{where}: entry index"),
        "kind_zh": kind_zh,
        "kind_en": kind_en,
        "case": item.case,
        "uploaded": _time(item.uploaded, f"{where}: upload time"),
        "actor": item.actor,
        # Halves of 32 characters: a digest breaks at one fixed place, never mid-group.
        "sha256": (item.sha256[:32], item.sha256[32:]),
        "sm3": (item.sm3[:32], item.sm3[32:]),
        "size": _size(_count(item.size, f"{where}: size")),
        "media_type": item.media_type,
        "filename": item.filename,
        "purpose": item.purpose,
        "checkpoint_size": (
            None
            if item.checkpoint_size is None
            else _count(item.checkpoint_size, f"{where}: checkpoint size")
        ),
        "timestamp": (
            None if item.timestamp is None else _time(item.timestamp, f"{where}: timestamp")
        ),
        "duration": None if item.duration_s is None else _duration(item.duration_s),
    }


def _count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CatalogueError(f"{what} must be a non-negative integer, not {value!r}")
    return value


def _time(text: str, what: str) -> dict[str, str]:
    """An RFC 3339 time shown as Beijing time and as the exact UTC time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise CatalogueError(f"{what} is not an RFC 3339 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise CatalogueError(f"{what} has no UTC offset: {text!r}")
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return {
        "local": moment.astimezone(LOCAL_ZONE).strftime("%Y-%m-%d %H:%M:%S"),
        "utc": utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z",
        "utc_seconds": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _size(size: int) -> str:
    """``1,048,576 字节 bytes (1.0 MiB)``: the exact count, and a readable one when large."""
    exact = f"{size:,} 字节 bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return exact if size < 1024 else f"{exact} ({value:.1f} {unit})"
    return exact  # pragma: no cover - the loop always returns


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
