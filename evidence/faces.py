"""Face enrolment and face checks on visit videos (dlib with face_recognition's models).

A face check attests, for one video, whether each enrolled person checked appears in it, when,
and how close the best match was; and how many *other* distinct people appear. It runs on frames
sampled at ``fps`` (default 1 per second, see :mod:`evidence.video`).

Pipeline per sampled frame:

1. detect on a copy shrunk to ``detect_max_side`` (default 640 px): HOG detection costs about
   75 ms on 640x360 against 300 ms on 1280x720, and with one upsampling pass it still finds
   faces 60 px high in a 720p frame;
2. encode from the *full-size* frame at the detected boxes scaled back. Encoding the shrunk copy
   was measured to lose accuracy on small faces: on a 1280x720 frame with a 60 px face the
   distance to the person's own template was 0.15 from the full frame against 0.32 from the
   640 px copy (0.06 against 0.20 at 90 px), while detection on the full frame gave 0.14 and
   0.06; the cost of encoding does not depend on the frame size (dlib works on a 150x150 chip);
3. match: a face goes to the enrolled person at the smallest distance ``<= tolerance`` (the
   smallest over that person's templates); within one frame a person takes at most one face,
   assigned greedily by distance. Faces matching nobody are unknown;
4. unknown faces are grouped into people by single linkage at the same tolerance (two faces
   closer than ``tolerance`` are the same person; the groups are the connected components), so
   one stranger seen in five frames counts once. Two strangers closer than the tolerance count
   as one: the same limit the matching itself has.

Face templates are biometric data (PIPL arts. 28-29): results carry person references and
numbers only, never encodings or images; :func:`face_crops` makes images only when asked.

The engine is dlib's HOG detector (or its CNN detector), 5-point landmarks and ResNet encoder
with the model files of the ``face_recognition_models`` package: exactly what face_recognition's
``face_locations``/``face_encodings`` run, without importing face_recognition (see
:class:`_Engine` for why). Its package ``quit()``s the process (status 0) on import when
pkg_resources is missing (setuptools >= 81); we only read its model files, so that cannot happen.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import math
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ConfigError, InputError, NotFoundError, TiezhengError
from evidence.facekeys import InvalidTemplate, as_template
from evidence.video import (
    CorruptVideo,
    NotAVideo,
    VideoError,
    VideoNotFound,
    read_frame_at,
    sample_frames,
    u8,
)

__all__ = [
    "CorruptVideo",
    "FaceCheckResult",
    "FaceEngineUnavailable",
    "FaceError",
    "ImageNotFound",
    "InvalidTemplate",
    "MultipleFaces",
    "NoFaceFound",
    "NotAVideo",
    "NotAnImage",
    "PersonResult",
    "VideoError",
    "VideoNotFound",
    "check_video",
    "count_people",
    "detect_faces",
    "encode_enrolment_image",
    "encode_faces",
    "face_crops",
    "load_image",
]

Model = Literal["hog", "cnn"]
Box = tuple[int, int, int, int]  # (top, right, bottom, left), face_recognition's order
Progress = Callable[[int, int], None]
ImageInput = str | os.PathLike[str] | bytes | NDArray[Any]

MODELS: Final = ("hog", "cnn")
DEFAULT_TOLERANCE: Final = 0.6  # dlib's own threshold for its ResNet encoder
NUM_JITTERS: Final = 1
_PAYLOAD_DIGITS: Final = 4


class FaceError(TiezhengError):
    """Root of the errors about faces."""


class FaceEngineUnavailable(ConfigError, FaceError):
    """The face engine cannot be loaded: dlib or the face-recognition-models files are missing."""


class NotAnImage(InputError, FaceError):
    """An enrolment photo is not a readable image."""


class ImageNotFound(NotFoundError, FaceError):
    """An enrolment photo file does not exist."""


class NoFaceFound(InputError, FaceError):
    """An enrolment photo shows no face."""


class MultipleFaces(InputError, FaceError):
    """An enrolment photo shows more than one face."""


_MODEL_FILES: Final = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "encoder": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn": "mmod_human_face_detector.dat",
}


def _models_dir() -> Path:
    # find_spec locates the package without importing it: its __init__ needs pkg_resources.
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        models = Path(location) / "models"
        if all((models / name).is_file() for name in _MODEL_FILES.values()):
            return models
    raise FaceEngineUnavailable(
        "the face models are missing: install the face-recognition-models package"
    )


class _Engine:
    """dlib's HOG (or CNN) detector, 5-point landmarks and ResNet encoder.

    These are the models and calls of face_recognition's ``face_locations`` and
    ``face_encodings``, loaded directly: importing face_recognition also loads its 100 MB
    68-point predictor (0.8 s in every worker process) and quits the process when
    pkg_resources is missing. One engine per thread: dlib's networks keep per-call buffers.
    """

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as e:
            raise FaceEngineUnavailable(f"dlib is not installed: {e}") from e
        self._dlib = dlib
        self._models = _models_dir()
        self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(self._models / _MODEL_FILES["landmarks"]))
        self._encoder = dlib.face_recognition_model_v1(str(self._models / _MODEL_FILES["encoder"]))
        self._cnn: Any = None

    def detect(self, rgb: NDArray[np.uint8], model: str, upsample: int) -> list[Box]:
        """Face boxes, clipped to the image as face_recognition clips them."""
        if model == "cnn":
            if self._cnn is None:
                self._cnn = self._dlib.cnn_face_detection_model_v1(
                    str(self._models / _MODEL_FILES["cnn"])
                )
            rects = [m.rect for m in self._cnn(rgb, upsample)]
        else:
            rects = list(self._hog(rgb, upsample))
        h, w = rgb.shape[:2]
        return [
            (max(r.top(), 0), min(r.right(), w), min(r.bottom(), h), max(r.left(), 0))
            for r in rects
        ]

    def encode(self, rgb: NDArray[np.uint8], boxes: Sequence[Box]) -> list[NDArray[np.float64]]:
        """128-d encodings of the faces in ``boxes`` (same order)."""
        encodings = []
        for top, right, bottom, left in boxes:
            shape = self._landmarks(rgb, self._dlib.rectangle(left, top, right, bottom))
            descriptor = self._encoder.compute_face_descriptor(rgb, shape, NUM_JITTERS)
            encodings.append(np.array(descriptor, dtype=np.float64))
        return encodings


_engines = threading.local()


def _engine() -> _Engine:
    """This thread's engine (models load once per thread, about 0.2 s)."""
    engine: _Engine | None = getattr(_engines, "engine", None)
    if engine is None:
        engine = _Engine()
        _engines.engine = engine
    return engine


def engine_versions() -> dict[str, str]:
    """Versions of the parts whose behaviour a face check depends on (for the record)."""

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "dlib": dist("dlib-bin") if dist("dlib-bin") != "unknown" else dist("dlib"),
        "face_recognition_models": dist("face_recognition_models"),
        "opencv": str(cv2.__version__),
    }


# --- images and enrolment -------------------------------------------------------------------


def _as_rgb_array(array: NDArray[Any]) -> NDArray[np.uint8]:
    if array.dtype != np.uint8:
        raise NotAnImage(f"an image array must hold uint8 pixels, not {array.dtype}")
    if array.ndim == 2:
        return u8(cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_GRAY2RGB))
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise NotAnImage(f"an image array must be HxW, HxWx3 or HxWx4, not {array.shape}")
    # dlib refuses strided views (e.g. a channel-reversed [:, :, ::-1]): copy to C order.
    return np.ascontiguousarray(array)


def load_image(image: ImageInput) -> NDArray[np.uint8]:
    """Load a photo (path, bytes or array) as an upright RGB uint8 array.

    EXIF orientation is applied: phone photos are often stored sideways, and HOG finds no
    sideways face.
    """
    if isinstance(image, np.ndarray):
        return _as_rgb_array(image)
    if isinstance(image, bytes):
        source: Any = io.BytesIO(image)
        name = "the image"
    else:
        source = Path(image)
        name = source.name
        if not source.exists():
            raise ImageNotFound(f"no such image file: {name}")
        if not source.is_file():
            raise NotAnImage(f"{name} is not a file")
    try:
        with Image.open(source) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = upright.convert("RGB")
    except Image.DecompressionBombError as e:
        raise NotAnImage(f"{name} is too large to be a photo: {e}") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise NotAnImage(f"{name} is not a readable image") from e
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _check_model(model: str, upsample: int) -> None:
    if model not in MODELS:
        raise InputError(f"unknown face detection model {model!r}: use one of {', '.join(MODELS)}")
    if not isinstance(upsample, int) or isinstance(upsample, bool) or not 0 <= upsample <= 3:
        raise InputError(f"upsample must be an integer from 0 to 3, not {upsample!r}")


def detect_faces(
    rgb: NDArray[np.uint8],
    *,
    model: Model = "hog",
    upsample: int = 1,
    detect_max_side: int | None = 640,
) -> list[Box]:
    """Face boxes ``(top, right, bottom, left)`` in full-frame coordinates, found on a copy of
    the RGB image shrunk to ``detect_max_side`` (None: the image as it is)."""
    h, w = rgb.shape[:2]
    small = rgb
    if detect_max_side is not None and max(h, w) > detect_max_side:
        scale = detect_max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = u8(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
    sy, sx = h / small.shape[0], w / small.shape[1]
    boxes: list[Box] = []
    for top, right, bottom, left in _engine().detect(small, model, upsample):
        boxes.append(
            (
                max(0, round(top * sy)),
                min(w - 1, round(right * sx)),
                min(h - 1, round(bottom * sy)),
                max(0, round(left * sx)),
            )
        )
    return boxes


def encode_faces(rgb: NDArray[np.uint8], boxes: Sequence[Box]) -> list[NDArray[np.float64]]:
    """128-d encodings of the faces at ``boxes`` of an RGB image (same order)."""
    if not boxes:
        return []
    return _engine().encode(rgb, boxes)


def encode_enrolment_image(
    image: ImageInput,
    *,
    model: Model = "hog",
    upsample: int = 1,
    detect_max_side: int | None = 1024,
) -> NDArray[np.float64]:
    """Return the 128-d face encoding of the one person shown in an enrolment photo.

    ``image`` is a path, the file's bytes or an RGB array. Refuses a photo with no face
    (:class:`NoFaceFound`) or several (:class:`MultipleFaces`: crop it to the person) and
    anything that is not an image (:class:`NotAnImage`).
    """
    _check_model(model, upsample)
    rgb = load_image(image)
    boxes = detect_faces(rgb, model=model, upsample=upsample, detect_max_side=detect_max_side)
    if not boxes:
        raise NoFaceFound(
            "no face found in the enrolment photo: use a sharp, frontal, well-lit photo "
            "of the person's face"
        )
    if len(boxes) > 1:
        raise MultipleFaces(
            f"the enrolment photo shows {len(boxes)} faces (or face-like shapes): it must show "
            "exactly one; crop it to the person's face"
        )
    return as_template(encode_faces(rgb, boxes)[0])


# --- video checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonResult:
    """What a check found for one enrolled person."""

    ref: str
    matched: bool
    #: Smallest distance between the person's templates and any face detected (None: no face).
    distance: float | None
    #: Sampled frames in which a face was assigned to this person.
    frames: int
    first_seen_s: float | None
    last_seen_s: float | None
    #: Frame time and full-frame box of the closest assigned face (for crops; never logged).
    best_seen_s: float | None = None
    best_box: Box | None = None

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe summary for a log entry."""
        return {
            "ref": self.ref,
            "matched": self.matched,
            "distance": _round(self.distance),
            "frames": self.frames,
            "first_seen_s": _round(self.first_seen_s),
            "last_seen_s": _round(self.last_seen_s),
        }


@dataclass(frozen=True)
class FaceCheckResult:
    """The outcome of one face check of one video."""

    model: str
    parameters: dict[str, Any]
    frames_sampled: int
    duration_s: float
    persons: list[PersonResult]
    unknown_faces: int
    faces_detected: int
    engine: dict[str, str] = field(default_factory=dict)

    def person(self, ref: str) -> PersonResult:
        """The result for ``ref`` (KeyError if that person was not checked)."""
        for p in self.persons:
            if p.ref == ref:
                return p
        raise KeyError(ref)

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe dict for a ``face_check`` log entry: numbers and refs, no biometrics."""
        return {
            "model": self.model,
            "parameters": {
                k: _round(v) if isinstance(v, float) else v for k, v in self.parameters.items()
            },
            "engine": dict(self.engine),
            "frames_sampled": self.frames_sampled,
            "duration_s": _round(self.duration_s),
            "faces_detected": self.faces_detected,
            "persons": [p.to_payload() for p in self.persons],
            "unknown_faces": self.unknown_faces,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), _PAYLOAD_DIGITS)


@dataclass(frozen=True)
class _Sample:
    t: float
    boxes: list[Box]
    encodings: list[NDArray[np.float64]]


_T = TypeVar("_T")
_ITEM, _END, _FAILED = 0, 1, 2


@dataclass(frozen=True)
class _Settings:
    fps: float
    model: Model
    upsample: int
    detect_max_side: int | None


def _prefetch(items: Iterable[_T], depth: int = 2) -> Iterator[_T]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    OpenCV releases the GIL while it decodes and dlib does not: decoding the next frames
    while dlib works on this one saves the decoding time (about a tenth of a check at 1 fps).
    """
    channel: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(kind: int, value: Any) -> bool:
        while not stopped.is_set():
            try:
                channel.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(_ITEM, item):
                    return
            put(_END, None)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(_FAILED, e)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # releases the VideoCapture in the thread that used it

    thread = threading.Thread(target=produce, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == _ITEM:
                yield value
            elif kind == _FAILED:
                raise value
            else:
                return
    finally:
        stopped.set()
        thread.join()


def _scan(
    path: str, settings: _Settings, first: int, stop: int | None, tick: Callable[[], None]
) -> list[_Sample]:
    """Detect and encode faces on sample frames ``[first, stop)``; call ``tick`` per frame."""
    samples: list[_Sample] = []
    try:
        frames = sample_frames(path, settings.fps, first=first, stop=stop)
        for t, rgb in _prefetch(frames):
            boxes = detect_faces(
                rgb,
                model=settings.model,
                upsample=settings.upsample,
                detect_max_side=settings.detect_max_side,
            )
            samples.append(_Sample(t, boxes, encode_faces(rgb, boxes)))
            tick()
    except cv2.error as e:
        raise CorruptVideo(f"{Path(path).name}: the video could not be decoded: {e}") from None
    except RuntimeError as e:  # dlib reports its failures as RuntimeError
        raise FaceError(f"face detection failed on {Path(path).name}: {e}") from None
    return samples


_worker_queue: Any = None


def _worker_init(progress_queue: Any) -> None:
    global _worker_queue
    _worker_queue = progress_queue
    _engine()  # load the models before the first job, not inside its timing


def _scan_in_worker(path: str, settings: _Settings, first: int, stop: int) -> list[_Sample]:
    def tick() -> None:
        _worker_queue.put(1)

    try:
        return _scan(path, settings, first, stop, tick)
    except TiezhengError:
        raise
    except Exception as e:  # re-raised as our error: raw exceptions may not unpickle cleanly
        raise FaceError(f"the face check failed in a worker: {type(e).__name__}: {e}") from None


def _scan_parallel(
    path: str, settings: _Settings, total: int, workers: int, report: Callable[[int], None]
) -> list[_Sample]:
    # Contiguous time segments, each scanned from a seek to its start: this process takes the
    # first (its engine is loaded), worker processes the others. "spawn", not fork: forking a
    # process that holds OpenCV and FFmpeg threads can deadlock the child.
    bounds = [round(i * total / workers) for i in range(workers + 1)]
    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.Queue()
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        report(done)

    def drain() -> None:
        while True:
            try:
                progress_queue.get_nowait()
            except queue.Empty:
                return
            step()

    def own_tick() -> None:
        step()
        drain()

    try:
        with ProcessPoolExecutor(
            max_workers=workers - 1,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(progress_queue,),
        ) as pool:
            futures: list[Future[list[_Sample]]] = [
                pool.submit(_scan_in_worker, path, settings, bounds[i], bounds[i + 1])
                for i in range(1, workers)
            ]
            try:
                own = _scan(path, settings, bounds[0], bounds[1], own_tick)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            pending: set[Future[list[_Sample]]] = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                drain()
                for f in finished:
                    if f.exception() is not None:
                        for other in pending:
                            other.cancel()
                        f.result()  # raises the worker's error
            drain()
            return own + [s for f in futures for s in f.result()]
    except BrokenProcessPool as e:
        raise FaceError(f"a face-check worker process died: {e}") from e
    finally:
        progress_queue.close()


def _validated_templates(
    templates: Mapping[str, Sequence[Any]],
) -> tuple[list[str], NDArray[np.float64], NDArray[np.intp]]:
    refs: list[str] = []
    rows: list[NDArray[np.float64]] = []
    owners: list[int] = []
    for ref, encodings in templates.items():
        if not isinstance(ref, str) or not ref:
            raise InputError(f"a person reference must be a non-empty string, not {ref!r}")
        if len(encodings) == 0:
            raise InputError(f"person {ref!r} has no face template: enrol them first")
        for encoding in encodings:
            rows.append(as_template(encoding))
            owners.append(len(refs))
        refs.append(ref)
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), 128)
    return refs, matrix, np.array(owners, dtype=np.intp)


def _distances(faces: NDArray[np.float64], templates: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = np.linalg.norm(faces[:, None, :] - templates[None, :, :], axis=2)
    return result


def count_people(encodings: Sequence[NDArray[np.float64]], tolerance: float) -> int:
    """Number of distinct people among face encodings: connected components of the graph
    joining encodings at distance ``<= tolerance`` (single linkage), in O(n^2) distances."""
    n = len(encodings)
    if n == 0:
        return 0
    matrix = np.asarray(encodings, dtype=np.float64)
    labels = np.arange(n)
    for i in range(1, n):
        near = np.linalg.norm(matrix[:i] - matrix[i], axis=1) <= tolerance
        if not near.any():
            continue
        joined = np.unique(labels[:i][near])
        target = int(joined.min())
        labels[np.isin(labels, joined)] = target
        labels[i] = target
    return int(np.unique(labels).size)


def _assemble(
    samples: Iterable[_Sample],
    refs: list[str],
    templates: NDArray[np.float64],
    owners: NDArray[np.intp],
    tolerance: float,
) -> tuple[list[PersonResult], int, int]:
    count = len(refs)
    best = [math.inf] * count
    best_assigned = [math.inf] * count
    best_t: list[float | None] = [None] * count
    best_box: list[Box | None] = [None] * count
    frames = [0] * count
    first: list[float | None] = [None] * count
    last: list[float | None] = [None] * count
    unknown: list[NDArray[np.float64]] = []
    detected = 0
    for sample in sorted(samples, key=lambda s: s.t):
        if not sample.encodings:
            continue
        detected += len(sample.encodings)
        faces = np.asarray(sample.encodings, dtype=np.float64)
        per_person = np.full((len(faces), count), np.inf)
        if count:
            per_template = _distances(faces, templates)
            for p in range(count):
                per_person[:, p] = per_template[:, owners == p].min(axis=1)
                best[p] = min(best[p], float(per_person[:, p].min()))
        # Greedy by distance: each face to at most one person, each person to at most one face
        # of this frame (a person cannot be in two places of one picture).
        taken_faces: set[int] = set()
        taken_people: set[int] = set()
        candidates = sorted(
            (float(per_person[i, p]), i, p)
            for i in range(len(faces))
            for p in range(count)
            if per_person[i, p] <= tolerance
        )
        for d, i, p in candidates:
            if i in taken_faces or p in taken_people:
                continue
            taken_faces.add(i)
            taken_people.add(p)
            frames[p] += 1
            first[p] = sample.t if first[p] is None else first[p]
            last[p] = sample.t
            if d < best_assigned[p]:
                best_assigned[p] = d
                best_t[p] = sample.t
                best_box[p] = sample.boxes[i]
        unknown.extend(faces[i] for i in range(len(faces)) if i not in taken_faces)
    persons = [
        PersonResult(
            ref=refs[p],
            matched=frames[p] > 0,
            distance=None if math.isinf(best[p]) else best[p],
            frames=frames[p],
            first_seen_s=first[p],
            last_seen_s=last[p],
            best_seen_s=best_t[p],
            best_box=best_box[p],
        )
        for p in range(count)
    ]
    return persons, count_people(unknown, tolerance), detected


def check_video(
    path: str | os.PathLike[str],
    templates: Mapping[str, Sequence[Any]],
    *,
    fps: float = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
    model: Model = "hog",
    upsample: int = 1,
    detect_max_side: int | None = 640,
    workers: int = 1,
    progress: Progress | None = None,
) -> FaceCheckResult:
    """Check which of the enrolled people appear in a video.

    ``templates`` maps each person reference to that person's 128-d encodings. ``progress`` is
    called with ``(frames_done, frames_total)``; the total is known before decoding starts and the
    last call has ``frames_done == frames_total``. ``workers > 1`` splits the video's time range
    over that many processes (same result, faster on several cores); they are started with
    "spawn", so the calling program's main module must be import-safe (``if __name__ ==
    "__main__"``), as multiprocessing requires.

    A video without faces gives a result with no matches. Raises :class:`VideoNotFound`,
    :class:`NotAVideo`, :class:`CorruptVideo` (unreadable, truncated or damaged) and
    :class:`~core.errors.InputError` for bad parameters or templates.
    """
    _check_model(model, upsample)
    if isinstance(tolerance, bool) or not (
        isinstance(tolerance, int | float) and 0 < tolerance <= 1
    ):
        raise InputError(f"tolerance must be in (0, 1], not {tolerance!r}")
    if detect_max_side is not None and detect_max_side < 64:
        raise InputError(f"detect_max_side must be at least 64 pixels, not {detect_max_side}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be a positive integer, not {workers!r}")
    refs, matrix, owners = _validated_templates(templates)
    sampler = sample_frames(path, fps)  # checks the file and the rate before any work
    total = sampler.total
    settings = _Settings(sampler.rate, model, upsample, detect_max_side)
    last_report = (0, total)

    def report(done: int) -> None:
        nonlocal last_report
        last_report = (done, total)
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    _engine()
    workers = min(workers, max(1, total))
    if workers == 1:
        samples = _scan(str(path), settings, 0, None, lambda: report(last_report[0] + 1))
    else:
        samples = _scan_parallel(str(path), settings, total, workers, report)
    done = len(samples)
    if progress is not None and last_report != (done, done):
        progress(done, done)  # the stream ended a frame short of its declared length
    persons, unknown, detected = _assemble(samples, refs, matrix, owners, float(tolerance))
    return FaceCheckResult(
        model=model,
        parameters={
            "fps": sampler.rate,
            "tolerance": float(tolerance),
            "upsample": upsample,
            "detect_max_side": detect_max_side,
            "num_jitters": NUM_JITTERS,
            "landmarks": "5-point",
        },
        frames_sampled=done,
        duration_s=sampler.info.duration_s,
        persons=persons,
        unknown_faces=unknown,
        faces_detected=detected,
        engine=engine_versions(),
    )


def face_crops(
    path: str | os.PathLike[str],
    result: FaceCheckResult,
    *,
    max_side: int = 128,
    margin: float = 0.3,
    quality: int = 85,
) -> dict[str, bytes]:
    """Small JPEG crops of each matched person's closest face in the video, by person ref.

    Crops are biometric images: store them only as derived evidence of the checked video and
    delete them when the person withdraws consent. JPEGs from OpenCV carry no metadata.
    """
    if max_side < 16 or not 0 <= margin <= 1 or not 1 <= quality <= 100:
        raise InputError("face crops need max_side >= 16, margin in [0, 1], quality in [1, 100]")
    crops: dict[str, bytes] = {}
    frames: dict[float, NDArray[np.uint8]] = {}
    for person in result.persons:
        if not person.matched or person.best_seen_s is None or person.best_box is None:
            continue
        t = person.best_seen_s
        if t not in frames:
            frames[t] = read_frame_at(path, t)
        frame = frames[t]
        top, right, bottom, left = person.best_box
        pad_y = round((bottom - top) * margin)
        pad_x = round((right - left) * margin)
        h, w = frame.shape[:2]
        crop = frame[
            max(0, top - pad_y) : min(h, bottom + pad_y + 1),
            max(0, left - pad_x) : min(w, right + pad_x + 1),
        ]
        scale = max_side / max(crop.shape[:2])
        if scale < 1:
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = u8(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise FaceError(f"could not encode the face crop of {person.ref!r}")
        crops[person.ref] = jpeg.tobytes()
    return crops
