"""Enrolment with consent, withdrawal and face checks through the CLI, on real faces and codecs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import select

from evidence.face_models import FaceTemplate
from evidence.facecheck import FACE_KEY, PERSON_KEYS, load_face_key
from evidence.facekeys import decrypt_template, template_hash
from evidence.jobs import Job
from evidence.models import EvidenceItem
from ledger import merkle
from tests.conftest import Cli
from tests.faces.conftest import Videos
from tests.faces.support import add_user, consent_pdf, count, damage_mjpeg, entries, face_rows, png
from web.context import AppContext

Template = NDArray[np.float64]
CHECK_KEYS = {"entry", "evidence", "persons", "unknown_faces", "frames_sampled"}


@pytest.fixture
def files(
    tmp_path: Path, astronaut_head: NDArray[np.uint8], hopper_head: NDArray[np.uint8]
) -> dict[str, Path]:
    return {
        "astronaut": png(tmp_path / "astronaut.png", astronaut_head),
        "hopper": png(tmp_path / "hopper.png", hopper_head),
        "consent": consent_pdf(tmp_path / "consent.pdf"),
    }


@pytest.fixture
def alice(instance: AppContext, cli: Cli, files: dict[str, Path]) -> dict[str, Any]:
    """Field staff member alice, enrolled from the astronaut's head with consent."""
    add_user(instance, "alice")
    out = cli(
        "faces", "enroll", "alice", str(files["astronaut"]), "--role", "staff",
        "--consent", str(files["consent"]), "--by", "alice", "--json",
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def upload(cli: Cli, path: Path, kind: str = "visit", by: str = "alice") -> int:
    out = cli("evidence", "add", str(path), "--kind", kind, "--by", by, "--json")
    return int(json.loads(out.stdout)["index"])


def check(cli: Cli, index: int, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli("faces", "check", str(index), *args, "--by", "alice", "--json", expect=expect)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


# --- enrolment ------------------------------------------------------------------------------


def test_enrolment_logs_hashes_only_and_stores_the_template_encrypted(
    instance: AppContext,
    alice: dict[str, Any],
    files: dict[str, Path],
    astronaut_template: Template,
) -> None:
    [(index, actor, payload)] = entries(instance.engine, "face_enrolment")
    assert (index, actor) == (alice["entry"], "alice")
    assert set(payload) == {
        "person", "role", "consent", "consent_sha256", "templates", "encoder", "engine"
    }  # fmt: skip
    assert (payload["person"], payload["role"]) == ("alice", "staff")
    # The PNG is lossless: its template is the session's template of the same pixels.
    assert payload["templates"] == [template_hash(astronaut_template)] == alice["templates"]

    # The consent document is evidence of its own, and the enrolment names it.
    consent = instance.evidence.item(payload["consent"])
    assert consent.kind == "document"
    assert consent.sha256 == payload["consent_sha256"]
    assert consent.sha256 == hashlib.sha256(files["consent"].read_bytes()).hexdigest()
    assert payload["consent"] < index

    # At rest: AES-GCM ciphertext, no run of the template's float bytes in it or in the log.
    key_path = instance.settings.keys_dir / FACE_KEY
    assert key_path.stat().st_mode & 0o777 == 0o600
    key = load_face_key(instance.settings.keys_dir, create=False)
    with instance.engine.connect() as conn:
        [row] = conn.execute(select(FaceTemplate.__table__)).all()
    plain = astronaut_template.astype("<f8").tobytes()
    blob = bytes(row.ciphertext)
    chunks = [plain[i : i + 8] for i in range(0, len(plain), 8)]
    assert not any(chunk in blob for chunk in chunks)
    log_bytes = b"".join(instance.ledger.entry(i) for i in range(instance.ledger.size()))
    assert not any(chunk in log_bytes for chunk in chunks)
    assert repr(round(float(astronaut_template[0]), 6))[:8].encode() not in log_bytes
    assert np.array_equal(decrypt_template(key, blob, "alice"), astronaut_template)
    assert row.template_hash == template_hash(astronaut_template)


def test_enrolment_of_an_owner_from_two_photos(
    instance: AppContext, cli: Cli, files: dict[str, Path], hopper_template: Template
) -> None:
    out = cli(
        "faces", "enroll", "owner-0815", str(files["hopper"]), str(files["hopper"]),
        "--role", "owner", "--consent", str(files["consent"]), "--json",
    )  # fmt: skip
    data = json.loads(out.stdout)
    assert data["templates"] == [template_hash(hopper_template)] * 2
    listed = json.loads(cli("faces", "list", "--json").stdout)
    assert [(p["ref"], p["role"], p["status"], p["templates"]) for p in listed] == [
        ("owner-0815", "owner", "enrolled", 2)
    ]


def _two_faces(
    tmp: Path, astronaut_head: NDArray[np.uint8], hopper_head: NDArray[np.uint8]
) -> Path:
    h = max(astronaut_head.shape[0], hopper_head.shape[0])
    canvas = np.full((h, astronaut_head.shape[1] + hopper_head.shape[1], 3), 200, np.uint8)
    canvas[: astronaut_head.shape[0], : astronaut_head.shape[1]] = astronaut_head
    canvas[: hopper_head.shape[0], astronaut_head.shape[1] :] = hopper_head
    return png(tmp / "two.png", canvas)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("two_faces", "shows 2 faces"),
        ("no_face", "no face found"),
        ("missing_consent", "consent document is required"),
        ("consent_not_a_document", "consent document must be a PDF or an image"),
        ("unknown_staff", "no user named 'bob'"),
        ("owner_named_like_a_user", "is a user name"),
        ("bad_ref", "invalid person reference"),
    ],
)
def test_refused_enrolments_store_nothing(
    instance: AppContext,
    cli: Cli,
    files: dict[str, Path],
    tmp_path: Path,
    astronaut_head: NDArray[np.uint8],
    hopper_head: NDArray[np.uint8],
    videos: Videos,
    case: str,
    message: str,
) -> None:
    add_user(instance, "alice")
    photo, ref, role, consent = files["astronaut"], "alice", "staff", files["consent"]
    if case == "two_faces":
        photo = _two_faces(tmp_path, astronaut_head, hopper_head)
    elif case == "no_face":
        photo = png(tmp_path / "wall.png", np.full((300, 300, 3), 120, np.uint8))
    elif case == "missing_consent":
        consent = tmp_path / "no-such-consent.pdf"
    elif case == "consent_not_a_document":
        consent = videos.empty
    elif case == "unknown_staff":
        ref = "bob"
    elif case == "owner_named_like_a_user":
        role = "owner"
    elif case == "bad_ref":
        ref, role = "Zhang San/101", "owner"
    size = instance.ledger.size()
    out = cli(
        "faces", "enroll", ref, str(photo), "--role", role, "--consent", str(consent),
        expect=None,
    )  # fmt: skip
    assert out.exit_code != 0
    assert message in out.stderr
    assert instance.ledger.size() == size == 0
    assert face_rows(instance.engine) == (0, 0)
    assert count(instance.engine, EvidenceItem) == 0  # the consent was not stored either
    assert not (instance.settings.keys_dir / FACE_KEY).exists()


# --- checks ---------------------------------------------------------------------------------


def test_check_of_her_video_matches_her_and_the_entry_verifies(
    instance: AppContext, cli: Cli, alice: dict[str, Any], videos: Videos
) -> None:
    index = upload(cli, videos.astronaut)
    data = check(cli, index)
    assert set(data) == CHECK_KEYS
    assert data["evidence"] == index
    assert data["frames_sampled"] == 6
    assert data["unknown_faces"] == 0
    [person] = data["persons"]
    assert set(person) == set(PERSON_KEYS)
    assert person["ref"] == "alice" and person["matched"] is True
    assert person["distance"] < 0.4
    assert (person["frames"], person["first_seen_s"], person["last_seen_s"]) == (6, 0.0, 5.0)

    [(entry, actor, payload)] = entries(instance.engine, "face_check")
    assert entry == data["entry"] and actor == "alice"
    item = instance.evidence.item(index)
    assert payload["evidence"] == index and payload["sha256"] == item.sha256
    assert payload["uploader"] == "alice"
    assert payload["model"] == "hog"
    assert payload["parameters"]["fps"] == 1.0 and payload["parameters"]["tolerance"] == 0.6
    assert payload["templates"] == {"alice": alice["templates"]}
    assert payload["supersedes"] is None and payload["automatic"] is False
    assert payload["persons"] == data["persons"]
    job = instance.jobs.get(payload["job"])
    assert (job.state, job.result_index) == ("done", entry)

    # RFC 9162 inclusion proof of the entry against a signed checkpoint.
    size, proof = instance.ledger.prove_inclusion(entry)
    root = instance.ledger.checkpoint_at(size).root
    merkle.verify_inclusion(instance.ledger.leaf_hash(entry), entry, size, proof, root)
    cli("ledger", "verify")

    # The same check again is the same job and entry; other parameters make a new entry that
    # names the one it supersedes.
    assert check(cli, index) == data
    again = check(cli, index, "--tolerance", "0.5")
    assert again["entry"] > entry and again["persons"] == data["persons"]
    checks = entries(instance.engine, "face_check")
    assert [c[0] for c in checks] == [entry, again["entry"]]
    assert checks[1][2]["supersedes"] == entry
    history = json.loads(cli("faces", "checks", str(index), "--json").stdout)
    assert [h["entry"] for h in history] == [entry, again["entry"]]


def test_hopper_is_not_her_and_counts_as_unknown_until_enrolled(
    instance: AppContext, cli: Cli, alice: dict[str, Any], videos: Videos, files: dict[str, Path]
) -> None:
    index = upload(cli, videos.hopper_brief)
    data = check(cli, index)
    [person] = data["persons"]
    assert person["ref"] == "alice" and person["matched"] is False
    assert person["distance"] > 0.6 and person["frames"] == 0
    assert person["first_seen_s"] is None
    assert data["unknown_faces"] == 1  # one person, seen in 5 frames

    cli(
        "faces", "enroll", "owner-7", str(files["hopper"]), "--role", "owner",
        "--consent", str(files["consent"]),
    )  # fmt: skip
    data = check(cli, index, "--person", "owner-7")
    assert [(p["ref"], p["matched"]) for p in data["persons"]] == [
        ("alice", False),
        ("owner-7", True),
    ]
    assert data["unknown_faces"] == 0


def test_a_video_without_faces(
    instance: AppContext, cli: Cli, alice: dict[str, Any], videos: Videos
) -> None:
    index = upload(cli, videos.empty)
    data = check(cli, index)
    assert data["persons"] == [
        {
            "ref": "alice",
            "matched": False,
            "distance": None,
            "frames": 0,
            "first_seen_s": None,
            "last_seen_s": None,
        }
    ]
    assert (data["unknown_faces"], data["frames_sampled"]) == (0, 6)
    [(_, _, payload)] = entries(instance.engine, "face_check")
    assert payload["faces_detected"] == 0


def test_a_damaged_video_fails_clearly_and_leaves_no_entry(
    instance: AppContext, cli: Cli, alice: dict[str, Any], videos: Videos, tmp_path: Path
) -> None:
    damaged = damage_mjpeg(videos.hopper, tmp_path / "damaged.avi")
    index = upload(cli, damaged)  # its index is intact: ingestion accepts it
    size = instance.ledger.size()
    out = cli("faces", "check", str(index), "--by", "alice", expect=1)
    assert "failed" in out.stderr and "decoding stopped at" in out.stderr
    assert instance.ledger.size() == size
    assert entries(instance.engine, "face_check") == []
    with instance.engine.connect() as conn:
        states = conn.execute(select(Job.state, Job.attempts).where(Job.key.like("%:auto:%"))).all()
        manual = conn.execute(select(Job.state, Job.attempts, Job.error).where(
            Job.key.not_like("%:auto:%"))).one()  # fmt: skip
    assert [tuple(s) for s in states] == [("queued", 0)]  # the automatic one: no worker here
    # A corrupt video is not transient: failed at once, not retried.
    assert manual.state == "failed" and manual.attempts == 1
    assert "decoding stopped" in manual.error

    # A truncated video never gets that far: ingestion refuses it.
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(videos.hopper.read_bytes()[: 1 << 20])
    out = cli("evidence", "add", str(truncated), "--kind", "visit", "--by", "alice", expect=2)
    assert instance.ledger.size() == size


def test_non_video_entries_and_unknown_indexes_are_refused(
    instance: AppContext, cli: Cli, alice: dict[str, Any]
) -> None:
    consent = alice["consent"]
    note = int(json.loads(cli("ledger", "append-note", "hi", "--json").stdout)["index"])
    size = instance.ledger.size()
    cases = [
        (consent, "holds application/pdf (document), not a video"),
        (note, "is a note entry, not evidence"),
        (alice["entry"], "is a face_enrolment entry, not evidence"),
        (999, "no entry 999: the log has"),
    ]
    for index, message in cases:
        out = cli("faces", "check", str(index), "--by", "alice", expect=None)
        assert out.exit_code != 0 and message in out.stderr, out.stderr
    assert instance.ledger.size() == size
    assert count(instance.engine, Job) == 0


def test_withdrawal_deletes_the_templates_and_later_checks_do_not_match(
    instance: AppContext, cli: Cli, alice: dict[str, Any], videos: Videos, files: dict[str, Path]
) -> None:
    index = upload(cli, videos.astronaut)
    out = json.loads(cli("faces", "withdraw", "alice", "--by", "alice", "--json").stdout)
    assert out["templates"] == alice["templates"]
    [(entry, _, payload)] = entries(instance.engine, "face_withdrawal")
    assert entry == out["entry"]
    assert payload == {
        "person": "alice",
        "role": "staff",
        "enrolments": [alice["entry"]],
        "templates": alice["templates"],
    }
    assert face_rows(instance.engine) == (1, 0)  # the reference remains, no template
    [person] = json.loads(cli("faces", "list", "--json").stdout)
    assert (person["status"], person["templates"]) == ("withdrawn", 0)

    # Naming her is refused; checking her upload no longer matches anyone: she is unknown.
    refused = cli("faces", "check", str(index), "--person", "alice", expect=None)
    assert refused.exit_code != 0 and "not enrolled" in refused.stderr
    data = check(cli, index)
    assert data["persons"] == [] and data["unknown_faces"] == 1
    [(_, _, last)] = entries(instance.engine, "face_check")
    assert last["not_enrolled"] == ["alice"] and last["templates"] == {}
    again = cli("faces", "withdraw", "alice", expect=None)
    assert again.exit_code != 0 and "not enrolled" in again.stderr

    # With a new consent she may enrol again; a second withdrawal names only the new templates.
    renewed = json.loads(
        cli(
            "faces", "enroll", "alice", str(files["hopper"]), "--role", "staff",
            "--consent", str(files["consent"]), "--by", "alice", "--json",
        ).stdout
    )  # fmt: skip
    assert renewed["consent"] != alice["consent"]
    cli("faces", "withdraw", "alice", "--by", "alice")
    second = entries(instance.engine, "face_withdrawal")[-1][2]
    assert second["enrolments"] == [renewed["entry"]]
    assert second["templates"] == renewed["templates"] != alice["templates"]
