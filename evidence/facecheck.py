"""Face enrolment with consent, withdrawal, and face checks of visit videos as log entries.

Enrolment (PIPL arts. 28-29: biometric data is sensitive personal information and needs
separate consent; the SPC provisions on face recognition, 2021, art. 2, require it too): the
signed consent document is stored as evidence (kind ``document``) first, then a
``face_enrolment`` entry records the person reference, role, the consent's entry index and
SHA-256, and the SHA-256 of each template (:func:`evidence.facekeys.template_hash`). The
templates themselves are stored AES-256-GCM encrypted with the instance key
(``<home>/keys/face.key``, 0600, made on first enrolment) in ``face_templates``, never in the
log. Staff are enrolled under their user name (the ``actor`` of their uploads), owners under
an owner reference; no name, photo or template reaches the log.

Withdrawal deletes the person's templates, then appends ``face_withdrawal`` with the hashes of
what was deleted. Face crops are not stored at all: the original video is kept and the check
records when each person was seen, so a crop can be cut again on demand
(:func:`evidence.faces.face_crops`) and there is no second copy of a face to erase.

A check runs as a job (:mod:`evidence.jobs`): it verifies the original's digests, samples and
matches (see :func:`evidence.faces.check_video`) and appends one ``face_check`` entry carrying
the job id; a re-check appends a new entry naming the one it ``supersedes``. Uploading a visit
video queues its automatic check (one per evidence entry).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, delete, insert, select, update

from core.accounts import SYSTEM_ACTOR, AccountService
from core.clock import Clock, SystemClock, aware, zulu
from core.db import transaction
from core.errors import InputError, NotFoundError, TiezhengError
from evidence.errors import EvidenceError
from evidence.face_models import FaceCheck, FaceEnrolment, FacePerson, FaceTemplate
from evidence.facejobs import JOB_TYPE, auto_check_key
from evidence.facekeys import (
    KEY_BYTES,
    FaceKeyError,
    decrypt_template,
    encrypt_template,
    generate_key,
    template_hash,
)
from evidence.faces import (
    DEFAULT_TOLERANCE,
    MODELS,
    FaceError,
    Model,
    check_video,
    encode_enrolment_image,
    engine_versions,
)
from evidence.jobs import (
    JobInfo,
    JobQueue,
    JobRun,
    JobType,
    Outcome,
    Services,
    TransientJobError,
    named_lock,
    on_worker_start,
    register,
)
from evidence.media import MEDIA_TYPES, identify
from evidence.service import KIND_FAMILIES, EvidenceNotFound, EvidenceService
from evidence.store import LocalBlobStore
from ledger.entry import decode_entry
from ledger.models import Entry
from ledger.service import Ledger

if TYPE_CHECKING:
    from evidence.models import EvidenceItem
    from evidence.service import EvidenceReceipt

log = logging.getLogger(__name__)

FACE_KEY: Final = "face.key"
ROLES: Final = ("staff", "owner")
REF_MAX: Final = 64
MAX_PHOTOS: Final = 10
MAX_FPS: Final = 30.0
CONSENT_PURPOSE: Final = "consent to face recognition (PIPL arts. 28-29)"
ENCODER: Final = "dlib_face_recognition_resnet_model_v1"
PERSON_KEYS: Final = ("ref", "matched", "distance", "frames", "first_seen_s", "last_seen_s")


class ConsentMissing(InputError, FaceError):
    """Enrolment without a readable consent document."""


class NotEnrolled(NotFoundError, FaceError):
    """The person has no templates (never enrolled, or withdrew)."""


class NotAVideoEntry(InputError, FaceError):
    """The entry is not an evidence entry holding a video."""


class NoSuchEntry(NotFoundError, FaceError):
    """The log has no entry with that index."""


class InvalidFaceInput(InputError, FaceError):
    """A person reference, role or check parameter is invalid."""


# --- the instance key -----------------------------------------------------------------------


def load_face_key(keys_dir: Path, *, create: bool) -> bytes:
    """The face-template key of the instance; made (0600) on first use when ``create``.

    The key is written to a private temporary file and hard-linked into place, so two
    processes enrolling at once agree on one key and nobody reads a half-written file.
    """
    path = keys_dir / FACE_KEY
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise NotEnrolled("nobody is enrolled on this instance (it has no face key)") from None
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = keys_dir / f".{FACE_KEY}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, generate_key())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process got there first: use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise FaceKeyError(f"{FACE_KEY} must hold {KEY_BYTES} bytes, it holds {len(data)}")
    if path.stat().st_mode & 0o077:
        raise FaceKeyError(f"{FACE_KEY} is readable by others: chmod 600 it")
    return data


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    index: int
    person: str
    role: str
    consent_index: int
    consent_sha256: str
    template_hashes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry": self.index,
            "person": self.person,
            "role": self.role,
            "consent": self.consent_index,
            "consent_sha256": self.consent_sha256,
            "templates": list(self.template_hashes),
        }


@dataclass(frozen=True)
class Withdrawal:
    index: int
    person: str
    template_hashes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.index, "person": self.person, "templates": self.template_hashes}


@dataclass(frozen=True)
class PersonInfo:
    ref: str
    role: str
    status: str
    templates: int
    enrolments: list[int]
    enrolled_at: datetime
    withdrawal_index: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "role": self.role,
            "status": self.status,
            "templates": self.templates,
            "enrolments": self.enrolments,
            "enrolled_at": zulu(self.enrolled_at),
            "withdrawal": self.withdrawal_index,
        }


def check_output(entry: int, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer of ``faces check``: the entry index and what it attests."""
    return {
        "entry": entry,
        "evidence": payload["evidence"],
        "persons": [{k: p[k] for k in PERSON_KEYS} for p in payload["persons"]],
        "unknown_faces": payload["unknown_faces"],
        "frames_sampled": payload["frames_sampled"],
    }


def check_person_ref(ref: str) -> str:
    if (
        not isinstance(ref, str)
        or not ref
        or len(ref) > REF_MAX
        or not ref.isprintable()
        or any(c.isspace() or c in "/\\" for c in ref)
    ):
        raise InvalidFaceInput(
            f"invalid person reference {ref!r}: printable, 1 to {REF_MAX} characters, no spaces "
            "or slashes (a user name for staff, an owner reference for owners)"
        )
    return ref


def check_parameters(fps: float, tolerance: float, model: str) -> tuple[float, float, Model]:
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= MAX_FPS:
        raise InvalidFaceInput(f"--fps must be above 0 and at most {MAX_FPS:g}, not {fps!r}")
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 < tolerance <= 1
    ):
        raise InvalidFaceInput(f"--tolerance must be above 0 and at most 1, not {tolerance!r}")
    if model not in MODELS:
        raise InvalidFaceInput(f"--model must be one of {', '.join(MODELS)}, not {model!r}")
    return float(fps), float(tolerance), model  # type: ignore[return-value]


# --- the service ----------------------------------------------------------------------------


class FaceService:
    """Enrol, withdraw, and check faces of one instance."""

    def __init__(
        self,
        *,
        engine: Engine,
        ledger: Ledger,
        evidence: EvidenceService,
        keys_dir: Path,
        jobs: JobQueue | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.evidence = evidence
        self.keys_dir = keys_dir
        self.jobs = jobs
        self.clock = clock or SystemClock()

    @classmethod
    def from_services(cls, services: Services, jobs: JobQueue) -> FaceService:
        return cls(
            engine=services.engine,
            ledger=services.ledger,
            evidence=services.evidence,
            keys_dir=services.settings.keys_dir,
            jobs=jobs,
        )

    def _queue(self) -> JobQueue:
        if self.jobs is None:
            raise RuntimeError("this FaceService was built without a job queue")
        return self.jobs

    # -- enrolment ---------------------------------------------------------------------------

    def enroll(
        self,
        ref: str,
        photos: Sequence[Path],
        *,
        role: str,
        consent: Path,
        actor: str,
    ) -> Enrolment:
        """Enrol a person from photos showing exactly one face each, with signed consent.

        Everything that can be refused is checked before anything is stored: no consent
        document, no template and no entry is written for a refused enrolment.
        """
        ref = check_person_ref(ref)
        if role not in ROLES:
            raise InvalidFaceInput(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
        if not photos:
            raise InvalidFaceInput("give at least one photo of the person")
        if len(photos) > MAX_PHOTOS:
            raise InvalidFaceInput(f"give at most {MAX_PHOTOS} photos")
        if consent is None or not Path(consent).is_file():
            raise ConsentMissing(
                "a signed consent document is required (PIPL art. 29: separate consent to "
                f"process biometric data): {Path(consent).name if consent else '--consent'} "
                "is not a file"
            )
        self._check_consent(Path(consent))
        self._check_role(ref, role)
        templates: list[NDArray[np.float64]] = []
        for number, photo in enumerate(photos, 1):
            try:
                templates.append(encode_enrolment_image(photo))
            except FaceError as e:
                raise type(e)(f"photo {number} ({Path(photo).name}): {e.message}") from None
        hashes = [template_hash(t) for t in templates]
        key = load_face_key(self.keys_dir, create=True)
        with self._person_lock(ref):
            return self._store_enrolment(ref, role, templates, hashes, key, Path(consent), actor)

    @staticmethod
    def _check_consent(consent: Path) -> None:
        # The same test evidence.add applies, made before anything (even the key) is written.
        try:
            info = identify(consent)
        except (InputError, EvidenceError) as e:
            raise ConsentMissing(f"the consent document {consent.name}: {e.message}") from None
        if info.kind not in KIND_FAMILIES["document"]:
            raise ConsentMissing(
                f"the consent document must be a PDF or an image; {consent.name} is "
                f"{info.media_type}"
            )

    def _person_lock(self, ref: str) -> AbstractContextManager[None]:
        # One enrolment or withdrawal of a person at a time, across processes.
        return named_lock(self.engine, self.keys_dir.parent, f"face_person:{ref}")

    def _store_enrolment(
        self,
        ref: str,
        role: str,
        templates: list[NDArray[np.float64]],
        hashes: list[str],
        key: bytes,
        consent: Path,
        actor: str,
    ) -> Enrolment:
        self._check_role(ref, role)  # again, under the lock
        with consent.open("rb") as f:
            receipt = self.evidence.add(
                f,
                kind="document",
                actor=actor,
                purpose=CONSENT_PURPOSE,
                original_name=consent.name,
            )
        payload = {
            "person": ref,
            "role": role,
            "consent": receipt.index,
            "consent_sha256": receipt.sha256,
            "templates": hashes,
            "encoder": ENCODER,
            "engine": engine_versions(),
        }
        appended = self.ledger.append_durable("face_enrolment", payload, actor)
        now = self.clock.now()
        with transaction(self.engine, write=True) as session:
            person = session.get(FacePerson, ref)
            if person is None:
                session.add(
                    FacePerson(
                        ref=ref, role=role, status="enrolled", enrolled_at=now, changed_at=now
                    )
                )
            else:
                if person.status == "withdrawn":
                    person.enrolled_at = now  # a new consent: enrolled again from now
                person.role, person.status, person.changed_at = role, "enrolled", now
            session.execute(
                insert(FaceEnrolment),
                [
                    {
                        "entry_index": appended.index,
                        "person_ref": ref,
                        "role": role,
                        "consent_index": receipt.index,
                        "template_hashes": hashes,
                        "actor": actor,
                        "time": now,
                    }
                ],
            )
            session.execute(
                insert(FaceTemplate),
                [
                    {
                        "person_ref": ref,
                        "enrolment_index": appended.index,
                        "template_hash": h,
                        "ciphertext": encrypt_template(key, t, ref),
                        "created_at": now,
                    }
                    for t, h in zip(templates, hashes, strict=True)
                ],
            )
        self.ledger.ensure_checkpoint(appended.index + 1)
        return Enrolment(
            index=appended.index,
            person=ref,
            role=role,
            consent_index=receipt.index,
            consent_sha256=receipt.sha256,
            template_hashes=hashes,
        )

    def _check_role(self, ref: str, role: str) -> None:
        with transaction(self.engine) as session:
            accounts = AccountService(session)
            person = session.get(FacePerson, ref)
            if person is not None and person.status == "withdrawing":
                raise InvalidFaceInput(
                    f"the withdrawal of {ref!r} is unfinished: run `tiezheng faces withdraw` again"
                )
            if person is not None and person.role != role and person.status != "withdrawn":
                raise InvalidFaceInput(f"{ref!r} is enrolled as {person.role}, not {role}")
            if role == "staff":
                if ref == SYSTEM_ACTOR:
                    raise InvalidFaceInput(f"{SYSTEM_ACTOR!r} is not a person")
                accounts.require_active(ref)  # staff are enrolled under their user name
            else:
                from core.accounts import UnknownUser

                try:
                    accounts.get(ref)
                except UnknownUser:
                    return
                raise InvalidFaceInput(
                    f"{ref!r} is a user name: enrol staff with --role staff, owners under "
                    "their owner reference"
                )

    def withdraw(self, ref: str, *, actor: str) -> Withdrawal:
        """Delete a person's templates, then log ``face_withdrawal`` with their hashes.

        The deletion comes first: a crash before the entry leaves no biometric data behind, and
        withdrawing again completes the entry (found in the log if it was already appended).
        """
        ref = check_person_ref(ref)
        with self._person_lock(ref):
            return self._withdraw(ref, actor)

    def _withdraw(self, ref: str, actor: str) -> Withdrawal:
        now = self.clock.now()
        with transaction(self.engine, write=True) as session:
            person = session.get(FacePerson, ref)
            if person is None or person.status == "withdrawn":
                raise NotEnrolled(f"{ref!r} is not enrolled")
            last = person.withdrawal_index
            role = person.role
            enrolments = session.execute(
                select(FaceEnrolment.entry_index, FaceEnrolment.template_hashes)
                .where(FaceEnrolment.person_ref == ref)
                .order_by(FaceEnrolment.entry_index)
            ).all()
            session.execute(delete(FaceTemplate).where(FaceTemplate.person_ref == ref))
            person.status, person.changed_at = "withdrawing", now
        since = max((int(e.entry_index) for e in enrolments), default=-1)
        if last is not None:
            enrolments = [e for e in enrolments if int(e.entry_index) > last]
        hashes = [h for e in enrolments for h in e.template_hashes]
        index = self._logged_withdrawal(ref, since)
        if index is None:
            payload = {
                "person": ref,
                "role": role,
                "enrolments": [int(e.entry_index) for e in enrolments],
                "templates": hashes,
            }
            index = self.ledger.append_durable("face_withdrawal", payload, actor).index
        with transaction(self.engine, write=True) as session:
            session.execute(
                update(FacePerson)
                .where(FacePerson.ref == ref)
                .values(status="withdrawn", withdrawal_index=index, changed_at=now)
            )
        self.ledger.ensure_checkpoint(index + 1)
        return Withdrawal(index=index, person=ref, template_hashes=hashes)

    def _logged_withdrawal(self, ref: str, after: int) -> int | None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Entry.idx, Entry.data).where(
                    Entry.type == "face_withdrawal", Entry.idx > after
                )
            ).all()
        for row in rows:
            if decode_entry(bytes(row.data), check_canonical=False).payload.get("person") == ref:
                return int(row.idx)
        return None

    def persons(self) -> list[PersonInfo]:
        """Everyone enrolled now or before (references and roles only)."""
        with self.engine.connect() as conn:
            people = conn.execute(select(FacePerson.__table__).order_by(FacePerson.ref)).all()
            counts: dict[str, int] = {}
            for (r,) in conn.execute(select(FaceTemplate.person_ref)).all():
                counts[r] = counts.get(r, 0) + 1
            enrolments: dict[str, list[int]] = {}
            for e in conn.execute(
                select(FaceEnrolment.person_ref, FaceEnrolment.entry_index).order_by(
                    FaceEnrolment.entry_index
                )
            ).all():
                enrolments.setdefault(e.person_ref, []).append(int(e.entry_index))
        return [
            PersonInfo(
                ref=p.ref,
                role=p.role,
                status=p.status,
                templates=counts.get(p.ref, 0),
                enrolments=enrolments.get(p.ref, []),
                enrolled_at=aware(p.enrolled_at),
                withdrawal_index=p.withdrawal_index,
            )
            for p in people
        ]

    def template_hashes(self, refs: Sequence[str]) -> dict[str, list[str]]:
        """The hashes of the stored templates of each enrolled person in ``refs``."""
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(FaceTemplate.person_ref, FaceTemplate.template_hash)
                .where(FaceTemplate.person_ref.in_(list(refs)))
                .order_by(FaceTemplate.id)
            ).all()
        for row in rows:
            out.setdefault(row.person_ref, []).append(row.template_hash)
        return out

    def templates(self, refs: Sequence[str]) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        """Decrypted templates and their hashes, by person (only those enrolled)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(FaceTemplate.person_ref, FaceTemplate.template_hash, FaceTemplate.ciphertext)
                .where(FaceTemplate.person_ref.in_(list(refs)))
                .order_by(FaceTemplate.id)
            ).all()
        if not rows:
            return {}, {}
        key = load_face_key(self.keys_dir, create=False)
        templates: dict[str, list[Any]] = {}
        hashes: dict[str, list[str]] = {}
        for row in rows:
            templates.setdefault(row.person_ref, []).append(
                decrypt_template(key, bytes(row.ciphertext), row.person_ref)
            )
            hashes.setdefault(row.person_ref, []).append(row.template_hash)
        return templates, hashes

    # -- checks ------------------------------------------------------------------------------

    def video_item(self, index: int) -> EvidenceItem:
        """The evidence item of entry ``index``, which must hold a video."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InvalidFaceInput(f"an entry index is a non-negative integer, not {index!r}")
        size = self.ledger.size()
        if index >= size:
            raise NoSuchEntry(f"no entry {index}: the log has {size} entries")
        try:
            item = self.evidence.item(index)
        except EvidenceNotFound:
            kind = decode_entry(self.ledger.entry(index), check_canonical=False).type
            raise NotAVideoEntry(
                f"entry {index} is a {kind} entry, not evidence: face checks run on videos"
            ) from None
        spec = MEDIA_TYPES.get(item.media_type)
        if spec is None or spec.kind != "video":
            raise NotAVideoEntry(
                f"entry {index} holds {item.media_type} ({item.kind}), not a video: face "
                "checks run on videos"
            )
        return item

    def submit_check(
        self,
        index: int,
        *,
        actor: str,
        fps: float = 1.0,
        tolerance: float = DEFAULT_TOLERANCE,
        model: str = "hog",
        persons: Sequence[str] = (),
        automatic: bool = False,
        send: bool = True,
    ) -> tuple[JobInfo, bool]:
        """Create (or find) the job checking entry ``index``; returns (job, created).

        The uploader (the entry's actor) is always checked if enrolled; ``persons`` must be
        enrolled. A manual check is one job per evidence, parameters and templates: asking
        again for the same check gives the same job (and entry); new parameters or new
        templates make a new job, whose entry supersedes the previous check.
        """
        fps, tolerance, model_ = check_parameters(fps, tolerance, model)
        item = self.video_item(index)
        wanted = sorted({check_person_ref(p) for p in persons})
        hashes = self.template_hashes([*wanted, item.uploader])
        missing = [p for p in wanted if p not in hashes]
        if missing:
            raise NotEnrolled(
                f"not enrolled (or consent withdrawn): {', '.join(missing)}; enrol with "
                "`tiezheng faces enroll` first"
            )
        params = {
            "evidence": index,
            "fps": fps,
            "tolerance": tolerance,
            "model": model_,
            "persons": wanted,
            "automatic": automatic,
        }
        if automatic:
            key = auto_check_key(index)
        else:
            digest = hashlib.sha256(
                json.dumps([params, hashes], sort_keys=True).encode()
            ).hexdigest()
            key = f"{JOB_TYPE}:{index}:{digest[:40]}"
        return self._queue().submit(JOB_TYPE, params, key=key, actor=actor, send=send)

    def run_check(self, run: JobRun) -> Outcome:
        """The job: check the video and append its ``face_check`` entry exactly once."""
        p = run.params
        index = int(p["evidence"])
        found = run.find_entry("face_check")
        if found is not None:  # an earlier attempt got as far as the log
            return self._finish_check(*found)
        item = self.video_item(index)
        # Attest the bytes the log names: re-hash the original before looking at it.
        self.evidence.store.verify(item.sha256, sm3=item.sm3, size=item.size)
        refs = list(dict.fromkeys([item.uploader, *p["persons"]]))
        templates, hashes = self.templates(refs)
        missing = [r for r in p["persons"] if r not in templates]
        if missing:
            raise NotEnrolled(f"not enrolled (or consent withdrawn): {', '.join(missing)}")
        with self._video_path(item.sha256) as path:
            result = check_video(
                path,
                templates,
                fps=float(p["fps"]),
                tolerance=float(p["tolerance"]),
                model=p["model"],
                progress=run.progress,
            )
        with run.lock(f"face_check:{index}"):
            found = run.find_entry("face_check")
            if found is not None:
                return self._finish_check(*found)
            if self.template_hashes(refs) != hashes:
                # Consent was withdrawn (or a person re-enrolled) while the video was checked.
                raise TransientJobError("templates changed during the check; checking again")
            self.sync_index()
            payload = {
                "evidence": index,
                "sha256": item.sha256,
                "uploader": item.uploader,
                **result.to_payload(),
                "templates": hashes,
                "not_enrolled": [r for r in refs if r not in templates and r != SYSTEM_ACTOR],
                "automatic": bool(p["automatic"]),
                "job": run.job.id,
                "supersedes": self.latest_check(index),
            }
            appended = self.ledger.append_durable("face_check", payload, run.job.actor)
            self._index_check(appended.index, payload, run.job.actor, appended.time)
        return self._finish_check(appended.index, payload)

    def _finish_check(self, index: int, payload: dict[str, Any]) -> Outcome:
        self.sync_index()
        cp = self.ledger.ensure_checkpoint(index + 1)
        self.ledger.wait_timestamp(cp.size)
        return Outcome(index=index, result=check_output(index, payload))

    @contextmanager
    def _video_path(self, sha256: str) -> Iterator[Path]:
        store = self.evidence.store
        if isinstance(store, LocalBlobStore):
            yield store.path(sha256)
            return
        with tempfile.TemporaryDirectory() as tmp:  # a store without files: copy it out
            path = Path(tmp) / "video"
            with store.open(sha256) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            yield path

    def latest_check(self, evidence_index: int) -> int | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(FaceCheck.entry_index)
                .where(FaceCheck.evidence_index == evidence_index)
                .order_by(FaceCheck.entry_index.desc())
                .limit(1)
            ).scalar()
        return None if found is None else int(found)

    def checks(self, evidence_index: int) -> list[dict[str, Any]]:
        """Every face check of an evidence entry, oldest first (entry index and payload)."""
        self.sync_index()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(FaceCheck.entry_index, FaceCheck.payload)
                .where(FaceCheck.evidence_index == evidence_index)
                .order_by(FaceCheck.entry_index)
            ).all()
        return [{"entry": int(r.entry_index), **r.payload} for r in rows]

    def _index_check(self, index: int, payload: dict[str, Any], actor: str, time: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(FaceCheck),
                [
                    {
                        "entry_index": index,
                        "evidence_index": payload["evidence"],
                        "job_id": payload.get("job"),
                        "supersedes": payload.get("supersedes"),
                        "automatic": bool(payload.get("automatic")),
                        "actor": actor,
                        "time": time,
                        "payload": payload,
                    }
                ],
            )

    def sync_index(self) -> int:
        """Index ``face_check`` entries a crash left unindexed; returns how many."""
        with self.engine.connect() as conn:
            logged = set(
                conn.execute(select(Entry.idx).where(Entry.type == "face_check")).scalars()
            )
            known = set(conn.execute(select(FaceCheck.entry_index)).scalars())
            missing = sorted(logged - known)
            rows = (
                conn.execute(select(Entry.idx, Entry.data).where(Entry.idx.in_(missing))).all()
                if missing
                else []
            )
        for row in rows:
            entry = decode_entry(bytes(row.data), check_canonical=False)
            self._index_check(int(row.idx), entry.payload, entry.actor, entry.time)
        return len(rows)

    # -- automatic checks --------------------------------------------------------------------

    def on_evidence_added(self, receipt: EvidenceReceipt, kind: str, actor: str) -> None:
        """Queue the automatic check of a visit video (quick: a row and a message)."""
        if kind != "visit" or MEDIA_TYPES[receipt.media_type].kind != "video":
            return
        self.submit_check(receipt.index, actor=SYSTEM_ACTOR, automatic=True)

    def ensure_auto_checks(self) -> list[int]:
        """Queue the automatic check of every visit video that has none (e.g. uploaded while
        the queue was unreachable); returns the evidence indexes queued."""
        from evidence.models import EvidenceItem

        prefix = f"{JOB_TYPE}:auto:"
        from evidence.jobs import Job

        with self.engine.connect() as conn:
            visits = [
                int(i)
                for i, media_type in conn.execute(
                    select(EvidenceItem.entry_index, EvidenceItem.media_type).where(
                        EvidenceItem.kind == "visit"
                    )
                ).all()
                if MEDIA_TYPES.get(media_type) is not None
                and MEDIA_TYPES[media_type].kind == "video"
            ]
            keys = set(conn.execute(select(Job.key).where(Job.key.like(prefix + "%"))).scalars())
        queued = []
        for index in visits:
            if f"{prefix}{index}" in keys:
                continue
            try:
                self.submit_check(index, actor=SYSTEM_ACTOR, automatic=True)
            except TiezhengError as e:  # one bad item must not hold up the others
                log.warning("cannot queue the face check of entry %s: %s", index, e.message)
                continue
            queued.append(index)
        return queued


# --- job type -------------------------------------------------------------------------------


def _run(run: JobRun) -> Outcome:
    return FaceService.from_services(run.services, run.queue).run_check(run)


def _resume(run: JobRun) -> Outcome | str | None:
    found = run.find_entry("face_check")
    if found is None:
        return None
    return FaceService.from_services(run.services, run.queue)._finish_check(*found)


def _worker_start(services: Services, queue: JobQueue) -> None:
    queued = FaceService.from_services(services, queue).ensure_auto_checks()
    if queued:
        log.info("queued the automatic face checks of %d visit video(s)", len(queued))


register(JobType(JOB_TYPE, run=_run, resume=_resume))
on_worker_start(_worker_start)
