"""Evidence end to end: add, receipts, bad input changing nothing, custody, and the audit
re-hashing originals (SQLite and PostgreSQL)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.errors import CorruptMedia, StorageFull, UploadInterrupted, UploadTooLarge
from evidence.models import EvidenceItem
from ledger.entry import decode_entry
from tests.conftest import Cli
from web.context import AppContext

EVIDENCE_KEYS = {
    "sha256",
    "sm3",
    "size",
    "media_type",
    "filename",
    "kind",
    "case",
    "purpose",
    "claims",
}


def nothing_changed(ctx: AppContext, size_before: int) -> None:
    assert ctx.ledger.size() == size_before
    blobs = (
        list((ctx.settings.blob_dir / "blobs").rglob("*"))
        if (ctx.settings.blob_dir / "blobs").exists()
        else []
    )
    assert [p for p in blobs if p.is_file()] == []
    tmp = ctx.settings.blob_dir / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_add_visit_video_and_call_recording(
    cli: Cli, instance: AppContext, media: dict[str, Path], tmp_path: Path
) -> None:
    cli("user", "add", "zhang", "--role", "field", "--password-stdin", input="password-1\n")
    hostile = tmp_path / "张三 13800000000 \x07.mp4"
    shutil.copy(media["mp4"], hostile)
    out = cli(
        "evidence",
        "add",
        str(hostile),
        "--kind",
        "visit",
        "--case",
        "C-001",
        "--purpose",
        "证明2026年11月上门催缴",
        "--by",
        "zhang",
        "--captured-at",
        "2026-11-26T10:15:00+08:00",
        "--device",
        "Phone X",
        "--json",
    )
    receipt = json.loads(out.stdout)
    assert set(receipt) == {
        "index",
        "sha256",
        "sm3",
        "size",
        "media_type",
        "checkpoint_size",
        "timestamp",
    }
    assert receipt["media_type"] == "video/mp4"
    assert receipt["size"] == media["mp4"].stat().st_size
    assert receipt["checkpoint_size"] > receipt["index"]
    assert receipt["timestamp"]["status"] == "granted"

    entry = decode_entry(instance.ledger.entry(receipt["index"]))
    assert entry.type == "evidence" and entry.actor == "zhang"
    assert set(entry.payload) == EVIDENCE_KEYS
    p = entry.payload
    assert (p["sha256"], p["sm3"], p["size"]) == (
        receipt["sha256"],
        receipt["sm3"],
        receipt["size"],
    )
    assert p["kind"] == "visit" and p["case"] == "C-001"
    assert p["claims"] == {"captured_at": "2026-11-26T02:15:00Z", "device": "Phone X"}
    # The log carries a neutral name, never the uploaded one (it holds a name and a phone).
    assert p["filename"].startswith("C-001_visit_") and p["filename"].endswith(".mp4")
    raw = instance.ledger.entry(receipt["index"]).decode()
    assert "张三" not in raw and "13800000000" not in raw
    item = instance.evidence.item(receipt["index"])
    assert item.original_name is not None and "张三" in item.original_name
    assert "\x07" not in item.original_name
    stored = instance.store.path(receipt["sha256"])
    assert stored.read_bytes() == media["mp4"].read_bytes()
    assert stored.stat().st_mode & 0o222 == 0

    call = json.loads(
        cli(
            "evidence", "add", str(media["m4a"]), "--kind", "call", "--case", "C-001", "--json"
        ).stdout
    )
    assert call["media_type"] == "audio/mp4" and call["index"] > receipt["index"]


def test_identical_bytes_stored_once_but_logged_twice(
    cli: Cli, instance: AppContext, media: dict[str, Path]
) -> None:
    a = json.loads(cli("evidence", "add", str(media["mp3"]), "--kind", "call", "--json").stdout)
    b = json.loads(cli("evidence", "add", str(media["mp3"]), "--kind", "call", "--json").stdout)
    assert a["sha256"] == b["sha256"] and a["index"] != b["index"]
    blobs = [p for p in (instance.settings.blob_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1


@pytest.mark.parametrize("name", ["mov", "3gp", "webm", "mkv", "avi"])
def test_every_video_container_is_accepted_as_a_visit(
    cli: Cli, media: dict[str, Path], name: str
) -> None:
    out = json.loads(cli("evidence", "add", str(media[name]), "--kind", "visit", "--json").stdout)
    assert out["media_type"].startswith("video/")


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda m, t: _write(t / "empty.mp4", b""), ["--kind", "visit"], "empty"),
        (
            lambda m, t: _write(
                t / "half.mp4", m["mp4"].read_bytes()[: m["mp4"].stat().st_size // 2]
            ),
            ["--kind", "visit"],
            "",
        ),
        (
            lambda m, t: _write(t / "notes.mp4", b"just some text\n" * 100),
            ["--kind", "visit"],
            "unsupported file type",
        ),
        (lambda m, t: m["mp3"], ["--kind", "visit"], "a visit must be video"),
        (lambda m, t: m["mp4"], ["--kind", "selfie"], "unknown kind"),
        (lambda m, t: m["mp4"], ["--kind", "visit", "--case", "../../etc"], "invalid case"),
        (lambda m, t: m["mp4"], ["--kind", "visit", "--captured-at", "yesterday"], "RFC 3339"),
        (lambda m, t: m["mp4"], ["--kind", "visit", "--by", "ghost"], "no user named 'ghost'"),
    ],
    ids=[
        "empty",
        "truncated",
        "not-media",
        "wrong-kind",
        "unknown-kind",
        "hostile-case",
        "bad-time",
        "unknown-user",
    ],
)
def test_bad_input_changes_nothing(
    cli: Cli,
    instance: AppContext,
    media: dict[str, Path],
    tmp_path: Path,
    make: object,
    args: list[str],
    message: str,
) -> None:
    path = make(media, tmp_path)  # type: ignore[operator]
    res = cli("evidence", "add", str(path), *args, expect=None)
    assert res.exit_code in (1, 2), res.stdout
    assert res.stderr.startswith("error: ") and message in res.stderr
    nothing_changed(instance, 0)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_over_the_size_limit_changes_nothing(
    cli: Cli, instance: AppContext, media: dict[str, Path]
) -> None:
    limit = media["mp4"].stat().st_size - 1
    res = cli(
        "evidence",
        "add",
        str(media["mp4"]),
        "--kind",
        "visit",
        expect=2,
        env={"TIEZHENG_MAX_UPLOAD": str(limit)},
    )
    assert "limit" in res.stderr or "large" in res.stderr
    nothing_changed(instance, 0)


def test_disk_full_during_the_write_changes_nothing(
    instance: AppContext, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    written = {"n": 0}

    def full(fd: int, data: bytes) -> int:
        # The disk has room for 16 KiB of the upload: a write that does not fit is cut short
        # there, as the kernel does, and the next one reports ENOSPC.
        if fd > 2 and written["n"] + len(data) > 16_384:
            room = 16_384 - written["n"]
            if room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            data = memoryview(data)[:room]
        n = real_write(fd, data)
        written["n"] += n
        return n

    data = media["mp4"].read_bytes()
    chunks = [data[i : i + 8192] for i in range(0, len(data), 8192)]
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageFull):
        instance.evidence.add(iter(chunks), kind="visit", actor="system")
    monkeypatch.undo()
    assert written["n"] > 0
    nothing_changed(instance, 0)


def test_interrupted_stream_changes_nothing(instance: AppContext, media: dict[str, Path]) -> None:
    data = media["mp4"].read_bytes()

    def stream() -> Iterator[bytes]:
        yield data[:70000]
        raise ConnectionResetError("client went away")

    with pytest.raises(UploadInterrupted):
        instance.evidence.add(stream(), kind="visit", actor="system")
    nothing_changed(instance, 0)
    with instance.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EvidenceItem)).scalar() == 0


def test_show_get_verify_and_custody_trail(
    cli: Cli, instance: AppContext, media: dict[str, Path], tmp_path: Path
) -> None:
    cli("user", "add", "li", "--role", "legal", "--password-stdin", input="password-1\n")
    r = json.loads(
        cli(
            "evidence", "add", str(media["wav"]), "--kind", "call", "--case", "C-9", "--json"
        ).stdout
    )
    sha = r["sha256"]
    shown = json.loads(
        cli("evidence", "show", sha, "--by", "li", "--reason", "起诉准备", "--json").stdout
    )
    assert shown[0]["index"] == r["index"] and shown[0]["case"] == "C-9"
    assert json.loads(cli("evidence", "show", str(r["index"]), "--json").stdout)[0]["sha256"] == sha
    out = tmp_path / "copy.wav"
    cli("evidence", "get", sha, "--out", str(out), "--by", "li")
    assert out.read_bytes() == media["wav"].read_bytes()
    assert (
        "refusing to overwrite" in cli("evidence", "get", sha, "--out", str(out), expect=1).stderr
    )
    found = json.loads(cli("evidence", "verify", str(out), "--json").stdout)
    assert found["found"] and found["entries"][0]["index"] == r["index"]
    other = tmp_path / "other.bin"
    other.write_bytes(b"not in the log")
    missing = cli("evidence", "verify", str(other), expect=1)
    assert "NOT FOUND" in missing.stdout

    trail = json.loads(cli("evidence", "custody", sha, "--json").stdout)
    assert [t["action"] for t in trail] == ["upload", "view", "view", "download", "verify"]
    assert trail[1]["actor"] == "li" and trail[1]["reason"] == "起诉准备"
    for t in trail[1:]:
        entry = decode_entry(instance.ledger.entry(t["entry"]))
        assert entry.type == "custody" and entry.payload["sha256"] == sha
        assert entry.payload["evidence"] == [r["index"]]
    csv_text = cli("evidence", "custody", sha, "--csv").stdout
    assert csv_text.splitlines()[0] == "entry,time,actor,action,reason,request"
    assert len(csv_text.splitlines()) == 6
    assert "no evidence with SHA-256" in cli("evidence", "show", "0" * 64, expect=1).stderr
    assert "neither an entry index" in cli("evidence", "show", "zz", expect=2).stderr


def test_ledger_verify_rehashes_originals(
    cli: Cli, instance: AppContext, media: dict[str, Path]
) -> None:
    a = json.loads(cli("evidence", "add", str(media["jpeg"]), "--kind", "photo", "--json").stdout)
    b = json.loads(cli("evidence", "add", str(media["pdf"]), "--kind", "document", "--json").stdout)
    assert json.loads(cli("ledger", "verify", "--json").stdout)["ok"]
    path = instance.store.path(a["sha256"])
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    out = cli("ledger", "verify", expect=1).stdout
    assert f"entry {a['index']}: original altered" in out and a["sha256"] in out
    instance.store.path(b["sha256"]).unlink()
    path.write_bytes(media["jpeg"].read_bytes())
    out = cli("ledger", "verify", expect=1).stdout
    assert f"entry {b['index']}: original missing from the store" in out


# --- Matroska and WebM: packets demuxed while the upload streams in ------------------------


def _stream_scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "stream-scan"]


@pytest.mark.parametrize("name", ["mkv", "webm"])
def test_a_large_matroska_upload_is_demuxed_as_it_streams(
    instance: AppContext, large_media: dict[str, Path], name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import evidence.media as media_module

    threads: list[str] = []
    real_scan = media_module._scan

    def spy(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return real_scan(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(media_module, "_scan", spy)
    path = large_media[name]
    expected = media_module.probe(path, "video/webm" if name == "webm" else "video/x-matroska")
    threads.clear()
    with path.open("rb") as f:
        receipt = instance.evidence.add(f, kind="visit", actor="system")
    assert threads == ["stream-scan"]  # the stored file was not read back for its packets
    item = instance.evidence.item(receipt.index)
    assert item.media == expected.as_dict()
    assert instance.store.path(receipt.sha256).read_bytes() == path.read_bytes()
    assert _stream_scan_threads() == []


def test_a_damaged_webm_upload_changes_nothing_and_leaves_no_thread(
    instance: AppContext, large_media: dict[str, Path]
) -> None:
    data = large_media["webm"].read_bytes()
    with pytest.raises(CorruptMedia):
        instance.evidence.add(iter([data[: len(data) // 2]]), kind="visit", actor="system")
    nothing_changed(instance, 0)
    assert _stream_scan_threads() == []


def test_a_webm_upload_over_the_limit_stops_its_scan(
    instance: AppContext, large_media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = large_media["webm"].read_bytes()
    monkeypatch.setattr(instance.store, "max_size", len(data) // 2)
    with pytest.raises(UploadTooLarge):
        instance.evidence.add(iter(data[i : i + 100_000] for i in range(0, len(data), 100_000)),
                              kind="visit", actor="system")
    nothing_changed(instance, 0)
    assert _stream_scan_threads() == []
