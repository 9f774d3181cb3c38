"""Uploaded names are sanitised, never refused; the logged name carries nothing personal."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from evidence.names import MAX_NAME_BYTES, neutral_name, sanitize_filename


@pytest.mark.parametrize(("raw", "expected"), [
    ("visit.mp4", "visit.mp4"),
    ("../../etc/passwd", "passwd"),
    ("/abs/path/call.m4a", "call.m4a"),
    ("C:\\Users\\张三\\Desktop\\欠费 录音.amr", "欠费 录音.amr"),
    ("mixed/sep\\name.jpg", "name.jpg"),
    ("a\x00b\x1fc\x7f.pdf", "abc.pdf"),
    ("invoice\u202egpj.exe", "invoicegpj.exe"),  # right-to-left override (a spoofing trick)
    ("zero\u200bwidth.png", "zerowidth.png"),
    ("bad\ud800surrogate.mp3", "badsurrogate.mp3"),
    ("line\nbreak\r.wav", "linebreak.wav"),
    ("e\u0301te\u0301.mov", "été.mov"),  # NFC
    ("..hidden", "hidden"),
    (" . leading.mp4", "leading.mp4"),
    ("trailing.mp4   ", "trailing.mp4"),
    ("full\u3000width\u00a0space.mp4", "full width space.mp4"),
])
def test_examples(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", "/", "\\", "..", "...", "dir/", "\x00\x01", " ", "\u202e"])
def test_nothing_left_gives_a_generated_name(raw: str) -> None:
    assert sanitize_filename(raw) == "upload"
    assert sanitize_filename(raw, fallback_extension=".MP4") == "upload.mp4"
    assert sanitize_filename(raw, fallback_extension="m4a") == "upload.m4a"


def test_long_name_is_cut_to_255_bytes_keeping_the_extension() -> None:
    raw = "业主张三的上门催缴视频" * 40 + ".mp4"
    out = sanitize_filename(raw)
    encoded = out.encode("utf-8")
    assert len(encoded) <= MAX_NAME_BYTES
    assert len(encoded) > MAX_NAME_BYTES - 4  # cut at a character, not far short of it
    assert out.endswith(".mp4")
    assert out.startswith("业主张三")
    encoded.decode("utf-8")  # no split character


def test_long_name_without_extension_and_thousands_of_characters() -> None:
    out = sanitize_filename("x" * 10_000)
    assert out == "x" * MAX_NAME_BYTES
    out = sanitize_filename("é" * 5000 + "." + "y" * 40)  # a "suffix" too long to be one
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    assert out == "é" * 127  # 254 bytes: a 2-byte character does not fit in the last byte


def test_four_byte_characters_are_not_split() -> None:
    out = sanitize_filename("😀" * 100 + ".jpg")
    assert out == "😀" * 62 + ".jpg"  # 248 + 4 bytes; a 63rd emoji would make 256
    assert len(out.encode()) <= MAX_NAME_BYTES


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=600))
def test_properties_for_any_text(raw: str) -> None:
    out = sanitize_filename(raw, fallback_extension="bin")
    assert out
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    assert "/" not in out and "\\" not in out
    assert not any(unicodedata.category(ch).startswith("C") for ch in out)
    assert not out.startswith((".", " "))
    assert out == unicodedata.normalize("NFC", out) or out == "upload.bin"
    assert sanitize_filename(out) == out  # idempotent: a clean name stays as it is


def test_neutral_name() -> None:
    t = datetime(2026, 11, 26, 18, 15, 0, tzinfo=timezone(timedelta(hours=8)))
    assert neutral_name("C-001", "visit", t, "mp4") == "C-001_visit_20261126T101500Z.mp4"
    assert neutral_name(None, "call", t, ".M4A") == "call_20261126T101500Z.m4a"
    assert neutral_name("", "photo", t, "") == "photo_20261126T101500Z"
    # a case "reference" someone typed an owner's name and unit into: only ASCII survives
    assert (neutral_name("2026/张三 3-502室", "document", t, "pdf")
            == "2026-3-502_document_20261126T101500Z.pdf")
    assert neutral_name("张三", "visit", t, "mp4") == "visit_20261126T101500Z.mp4"
    assert neutral_name("../../x", "vi/sit", t, "m/p4") == "x_vi-sit_20261126T101500Z.mp4"
    long = neutral_name("A" * 500, "visit", t, "mp4")
    assert long.startswith("A" * 64 + "_visit")


def test_neutral_name_needs_an_aware_time() -> None:
    with pytest.raises(InputError):
        neutral_name("C-1", "visit", datetime(2026, 1, 1), "mp4")
    assert neutral_name("C-1", "visit", datetime(2026, 1, 1, tzinfo=UTC), "mp4").endswith(
        "20260101T000000Z.mp4")
