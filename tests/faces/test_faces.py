"""Face enrolment, frame sampling and face checks on real photographs and real codecs."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rfc8785
from numpy.typing import NDArray
from PIL import Image

from core.errors import InputError, NotFoundError
from evidence.facekeys import InvalidTemplate
from evidence.faces import (
    CorruptVideo,
    FaceCheckResult,
    ImageNotFound,
    MultipleFaces,
    NoFaceFound,
    NotAnImage,
    NotAVideo,
    VideoNotFound,
    check_video,
    count_people,
    detect_faces,
    encode_enrolment_image,
    encode_faces,
    face_crops,
)
from evidence.video import probe_video, read_frame_at, sample_frames, u8
from tests.faces.conftest import FPS, SECONDS, Videos, write_portrait_video, write_video

Template = NDArray[np.float64]
ProgressLog = tuple[list[tuple[int, int]], Callable[[int, int], None]]


def distance(a: Template, b: Template) -> float:
    return float(np.linalg.norm(a - b))


# --- enrolment ------------------------------------------------------------------------------


def test_enrolment_gives_a_template_that_tells_the_two_people_apart(
    astronaut_template: Template, hopper_template: Template
) -> None:
    assert astronaut_template.shape == (128,)
    assert astronaut_template.dtype == np.float64
    assert np.all(np.isfinite(astronaut_template))
    # dlib's encoder: different people are further apart than the 0.6 tolerance (~0.69 here).
    assert distance(astronaut_template, hopper_template) > 0.6


def test_enrolment_from_path_and_bytes_equals_enrolment_from_array(
    tmp_path: Path, astronaut_head: NDArray[np.uint8], astronaut_template: Template
) -> None:
    png = tmp_path / "head.png"
    Image.fromarray(astronaut_head).save(png)  # lossless: the very same pixels
    assert np.array_equal(encode_enrolment_image(png), astronaut_template)
    assert np.array_equal(encode_enrolment_image(str(png)), astronaut_template)
    assert np.array_equal(encode_enrolment_image(png.read_bytes()), astronaut_template)


def test_enrolment_accepts_channel_reversed_views(
    astronaut_head: NDArray[np.uint8], astronaut_template: Template
) -> None:
    bgr = cv2.cvtColor(astronaut_head, cv2.COLOR_RGB2BGR)
    view = bgr[:, :, ::-1]  # RGB again, but a strided view that dlib refuses as such
    assert not view.flags["C_CONTIGUOUS"]
    assert np.array_equal(encode_enrolment_image(view), astronaut_template)


def test_enrolment_applies_exif_orientation(
    tmp_path: Path, astronaut_head: NDArray[np.uint8], astronaut_template: Template
) -> None:
    sideways = np.ascontiguousarray(np.rot90(astronaut_head))  # stored turned 90° to the left
    assert detect_faces(sideways) == []  # HOG finds no sideways face: the test is meaningful
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(sideways).save(path, quality=95, exif=exif)
    assert distance(encode_enrolment_image(path), astronaut_template) < 0.15


def test_enrolment_accepts_grayscale(
    astronaut_head: NDArray[np.uint8], astronaut_template: Template
) -> None:
    gray = cv2.cvtColor(astronaut_head, cv2.COLOR_RGB2GRAY)
    assert distance(encode_enrolment_image(gray), astronaut_template) < 0.3


def test_enrolment_refuses_the_full_astronaut_image_with_its_mission_patch(
    astronaut_full: NDArray[np.uint8],
) -> None:
    with pytest.raises(MultipleFaces, match="2 faces") as caught:
        encode_enrolment_image(astronaut_full)
    assert isinstance(caught.value, InputError)


def test_enrolment_refuses_a_photo_without_a_face() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(NoFaceFound, match="no face found"):
        encode_enrolment_image(noise)


@pytest.mark.parametrize(
    "content",
    [b"", b"this is a consent letter, not a photo\n" * 20, b"\xff\xd8\xff\xe0" + os.urandom(500)],
    ids=["empty", "text", "broken-jpeg"],
)
def test_enrolment_refuses_what_is_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(NotAnImage) as caught:
        encode_enrolment_image(path)
    assert isinstance(caught.value, InputError)
    with pytest.raises(NotAnImage):
        encode_enrolment_image(content)


def test_enrolment_refuses_bad_arrays_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(NotAnImage, match="uint8"):
        encode_enrolment_image(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(NotAnImage, match="HxW"):
        encode_enrolment_image(np.zeros((64, 64, 2), dtype=np.uint8))
    with pytest.raises(ImageNotFound) as caught:
        encode_enrolment_image(tmp_path / "nobody.jpg")
    assert isinstance(caught.value, NotFoundError)
    with pytest.raises(NotAnImage, match="not a file"):
        encode_enrolment_image(tmp_path)


def test_enrolment_refuses_unknown_models(astronaut_head: NDArray[np.uint8]) -> None:
    with pytest.raises(InputError, match="unknown face detection model"):
        encode_enrolment_image(astronaut_head, model="mtcnn")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="upsample"):
        encode_enrolment_image(astronaut_head, upsample=7)


def test_engine_computes_what_face_recognition_computes(
    astronaut_head: NDArray[np.uint8], astronaut_template: Template
) -> None:
    # Our engine loads dlib's models directly; it must agree with face_recognition's API.
    import face_recognition

    theirs = face_recognition.face_locations(astronaut_head, number_of_times_to_upsample=1)
    ours = detect_faces(astronaut_head, detect_max_side=None)
    assert ours == [tuple(box) for box in theirs]
    their_encoding = face_recognition.face_encodings(astronaut_head, theirs)[0]
    assert np.allclose(encode_faces(astronaut_head, ours)[0], their_encoding, atol=1e-9)
    assert np.allclose(astronaut_template, their_encoding, atol=1e-9)


def test_cnn_detector_enrols_the_same_person(
    astronaut_head: NDArray[np.uint8], astronaut_template: Template, hopper_template: Template
) -> None:
    cnn = encode_enrolment_image(astronaut_head, model="cnn", upsample=0)
    assert distance(cnn, astronaut_template) < 0.15
    assert distance(cnn, hopper_template) > 0.6


# --- frame sampling -------------------------------------------------------------------------


def test_sampler_reports_total_up_front_and_yields_rgb_frames(videos: Videos) -> None:
    sampler = sample_frames(videos.astronaut, fps=1.0)
    assert sampler.total == SECONDS
    assert sampler.info.frame_count == FPS * SECONDS
    assert sampler.info.fps == pytest.approx(FPS)
    assert sampler.info.duration_s == pytest.approx(SECONDS)
    frames = list(sampler)
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    for _, frame in frames:
        assert frame.shape == (480, 640, 3)
        assert frame.dtype == np.uint8
        assert frame.flags["C_CONTIGUOUS"]


def test_sampler_rates_and_downscaling(videos: Videos) -> None:
    half = list(sample_frames(videos.hopper, fps=2.0, max_side=320))
    assert [t for t, _ in half] == [i / 2 for i in range(12)]
    assert all(frame.shape == (240, 320, 3) for _, frame in half)
    slow = sample_frames(videos.hopper, fps=0.3)
    assert slow.total == 2
    assert [t for t, _ in slow] == [0.0, 3.4]  # the first frame at or after 10/3 s
    every = sample_frames(videos.hopper, fps=100.0)  # capped at the video's 10 fps
    assert every.rate == FPS
    times = [t for t, _ in every]
    assert len(times) == FPS * SECONDS == every.total
    assert times == pytest.approx([i / FPS for i in range(FPS * SECONDS)])


def test_sampler_yields_rgb_not_bgr(tmp_path: Path) -> None:
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(10):
        writer.write(np.full((48, 64, 3), (0, 0, 255), dtype=np.uint8))  # BGR red
    writer.release()
    (_, frame), *_ = list(sample_frames(path))
    red, green, blue = (float(frame[:, :, c].mean()) for c in range(3))
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("name", ["astronaut", "hopper"])  # mp4v and MJPG
def test_sampler_segments_after_seeking_equal_the_sequential_pass(
    videos: Videos, name: str
) -> None:
    path = getattr(videos, name)
    whole = list(sample_frames(path, fps=2.0))
    parts = [list(sample_frames(path, fps=2.0, first=a, stop=b)) for a, b in ((0, 5), (5, 12))]
    joined = parts[0] + parts[1]
    assert [t for t, _ in joined] == [t for t, _ in whole]
    for (_, a), (_, b) in zip(joined, whole, strict=True):
        assert np.array_equal(a, b)


def test_read_frame_at_returns_the_sampled_frame(videos: Videos) -> None:
    frames = dict(sample_frames(videos.sequence, fps=1.0))
    for t in (0.0, 4.0):
        assert np.array_equal(read_frame_at(videos.sequence, t), frames[t])
    with pytest.raises(CorruptVideo, match="no frame"):
        read_frame_at(videos.sequence, 4.05)


# --- face checks ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both_templates(
    astronaut_template: Template, hopper_template: Template
) -> dict[str, list[Template]]:
    return {"staff-7": [astronaut_template], "owner-12": [hopper_template]}


@pytest.fixture(scope="module")
def sequence_result(videos: Videos, both_templates: dict[str, list[Template]]) -> FaceCheckResult:
    """Astronaut 0-3 s then Hopper 3-6 s, both enrolled, sampled at 2 fps in this process."""
    return check_video(videos.sequence, both_templates, fps=2.0)


def test_enrolled_astronaut_is_found_in_her_video(
    videos: Videos, astronaut_template: Template, progress_log: ProgressLog
) -> None:
    calls, progress = progress_log
    result = check_video(videos.astronaut, {"staff-7": [astronaut_template]}, progress=progress)
    assert result.frames_sampled == SECONDS
    assert result.duration_s == pytest.approx(SECONDS)
    astronaut = result.person("staff-7")
    assert astronaut.matched
    assert astronaut.frames == SECONDS
    assert astronaut.first_seen_s == 0.0
    assert astronaut.last_seen_s == 5.0
    assert astronaut.distance is not None and astronaut.distance < 0.3
    assert result.unknown_faces == 0
    assert result.faces_detected == SECONDS
    # Progress: announced total first, one step per frame, ends at the total.
    assert calls[0] == (0, SECONDS)
    assert calls[-1] == (SECONDS, SECONDS)
    assert [done for done, _ in calls] == list(range(SECONDS + 1))
    assert {total for _, total in calls} == {SECONDS}


def test_astronaut_is_not_matched_in_hoppers_video(
    videos: Videos, astronaut_template: Template
) -> None:
    result = check_video(videos.hopper, {"staff-7": [astronaut_template]})
    astronaut = result.person("staff-7")
    assert not astronaut.matched
    assert astronaut.frames == 0
    assert astronaut.first_seen_s is None and astronaut.last_seen_s is None
    assert astronaut.distance is not None and 0.6 < astronaut.distance < 0.8  # ~0.67: a stranger
    assert result.faces_detected == SECONDS
    assert result.unknown_faces == 1  # six detections of one stranger


def test_unknown_faces_count_people_not_detections(
    videos: Videos, astronaut_template: Template, hopper_template: Template
) -> None:
    # Hopper is on screen from 0.5 s to 5.5 s: sampled at 1..5 s, five detections.
    result = check_video(videos.hopper_brief, {"staff-7": [astronaut_template]})
    assert result.faces_detected == 5
    assert result.unknown_faces == 1
    enrolled = check_video(
        videos.hopper_brief, {"staff-7": [astronaut_template], "owner-12": [hopper_template]}
    )
    hopper = enrolled.person("owner-12")
    assert (hopper.matched, hopper.frames, hopper.first_seen_s, hopper.last_seen_s) == (
        True,
        5,
        1.0,
        5.0,
    )
    assert enrolled.unknown_faces == 0


def test_first_and_last_seen_follow_who_is_on_screen(
    videos: Videos, astronaut_template: Template, sequence_result: FaceCheckResult
) -> None:
    result = sequence_result
    astronaut, hopper = result.person("staff-7"), result.person("owner-12")
    assert (astronaut.first_seen_s, astronaut.last_seen_s, astronaut.frames) == (0.0, 2.5, 6)
    assert (hopper.first_seen_s, hopper.last_seen_s, hopper.frames) == (3.0, 5.5, 6)
    assert result.frames_sampled == 12
    assert result.unknown_faces == 0
    only_astronaut = check_video(videos.sequence, {"staff-7": [astronaut_template]})
    assert only_astronaut.person("staff-7").frames == 3
    assert only_astronaut.unknown_faces == 1


def test_two_people_at_once(
    videos: Videos, astronaut_template: Template, hopper_template: Template
) -> None:
    templates = {"staff-7": [astronaut_template], "owner-12": [hopper_template]}
    result = check_video(videos.both, templates)
    assert result.faces_detected == 2 * SECONDS
    assert [(p.ref, p.matched, p.frames) for p in result.persons] == [
        ("staff-7", True, SECONDS),
        ("owner-12", True, SECONDS),
    ]
    assert result.unknown_faces == 0
    only_astronaut = check_video(videos.both, {"staff-7": [astronaut_template]})
    assert only_astronaut.person("staff-7").frames == SECONDS
    assert only_astronaut.unknown_faces == 1


def test_one_face_goes_to_one_person_only(videos: Videos, astronaut_template: Template) -> None:
    # The same template under two refs: each face is assigned once, never to both.
    twin = astronaut_template.copy()
    result = check_video(videos.astronaut, {"a": [astronaut_template], "b": [twin]})
    assert sum(p.frames for p in result.persons) == SECONDS
    assert [p.matched for p in result.persons].count(True) == 1
    assert result.person("a").distance == result.person("b").distance  # reported for both


def test_several_templates_per_person_take_the_closest(
    videos: Videos, astronaut_template: Template, hopper_template: Template
) -> None:
    result = check_video(videos.hopper, {"owner-12": [astronaut_template, hopper_template]})
    owner = result.person("owner-12")
    assert owner.matched and owner.frames == SECONDS
    assert owner.distance is not None and owner.distance < 0.2


def test_tolerance_decides_what_matches(videos: Videos, astronaut_template: Template) -> None:
    # At 0.75 the stranger (~0.67 away) passes as the astronaut: the parameter is applied.
    loose = check_video(videos.hopper, {"staff-7": [astronaut_template]}, tolerance=0.75)
    assert loose.person("staff-7").matched
    assert loose.unknown_faces == 0
    assert loose.parameters["tolerance"] == 0.75


def test_video_without_faces_is_a_clear_result(
    videos: Videos, astronaut_template: Template, progress_log: ProgressLog
) -> None:
    calls, progress = progress_log
    result = check_video(videos.empty, {"staff-7": [astronaut_template]}, progress=progress)
    assert result.frames_sampled == SECONDS > 0
    assert result.faces_detected == 0
    assert result.unknown_faces == 0
    nobody = result.person("staff-7")
    assert (nobody.matched, nobody.distance, nobody.frames, nobody.first_seen_s) == (
        False,
        None,
        0,
        None,
    )
    assert calls[-1] == (SECONDS, SECONDS)


def test_check_without_templates_still_counts_people(videos: Videos) -> None:
    result = check_video(videos.both, {})
    assert result.persons == []
    assert result.unknown_faces == 2


def test_payload_is_json_safe_and_carries_no_biometrics(
    sequence_result: FaceCheckResult,
) -> None:
    result = sequence_result
    payload = result.to_payload()
    assert set(payload) == {
        "model",
        "parameters",
        "engine",
        "frames_sampled",
        "duration_s",
        "faces_detected",
        "persons",
        "unknown_faces",
    }
    assert payload["model"] == "hog"
    assert payload["parameters"] == {
        "fps": 2.0,
        "tolerance": 0.6,
        "upsample": 1,
        "detect_max_side": 640,
        "num_jitters": 1,
        "landmarks": "5-point",
    }
    assert set(payload["engine"]) == {"dlib", "face_recognition_models", "opencv"}
    assert [set(p) for p in payload["persons"]] == [
        {"ref", "matched", "distance", "frames", "first_seen_s", "last_seen_s"}
    ] * 2
    astronaut = payload["persons"][0]
    assert astronaut["ref"] == "staff-7"
    assert astronaut["distance"] == round(result.person("staff-7").distance or -1, 4)
    json.dumps(payload, allow_nan=False)
    assert json.loads(rfc8785.dumps(payload)) == payload

    def walk(value: Any) -> None:
        assert isinstance(value, str | int | float | bool | dict | list | type(None))
        if isinstance(value, float):
            assert math.isfinite(value) and round(value, 4) == value
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        if isinstance(value, list):
            assert len(value) < 100  # no encodings smuggled in as lists
            for item in value:
                walk(item)

    walk(payload)


def test_two_workers_give_the_same_result(
    videos: Videos,
    both_templates: dict[str, list[Template]],
    sequence_result: FaceCheckResult,
    progress_log: ProgressLog,
) -> None:
    calls, progress = progress_log
    one = sequence_result
    two = check_video(videos.sequence, both_templates, fps=2.0, workers=2, progress=progress)
    assert two.to_payload() == one.to_payload()
    assert two.persons == one.persons  # best frames and boxes too
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_portrait_phone_video_is_turned_upright(
    tmp_path: Path, astronaut_head: NDArray[np.uint8], astronaut_template: Template
) -> None:
    path = write_portrait_video(tmp_path / "portrait.mp4", astronaut_head)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    ok, stored = cap.read()
    cap.release()
    assert ok and stored.shape == (480, 640, 3)
    assert detect_faces(u8(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))) == []  # sideways as stored
    (_, frame), *_ = list(sample_frames(path))
    assert frame.shape == (640, 480, 3)
    result = check_video(path, {"staff-7": [astronaut_template]})
    assert result.person("staff-7").frames == 2


def test_worker_errors_reach_the_caller(broken_files: dict[str, Path]) -> None:
    # The second half of the truncated AVI fails inside a worker process.
    with pytest.raises(CorruptVideo, match=r"truncated\.avi"):
        check_video(broken_files["truncated.avi"], {}, workers=2)


def test_cnn_model_on_video(videos: Videos, astronaut_template: Template) -> None:
    result = check_video(
        videos.astronaut,
        {"staff-7": [astronaut_template]},
        model="cnn",
        upsample=0,
        fps=0.2,
        detect_max_side=None,
    )
    assert result.model == "cnn"
    assert result.frames_sampled == 2
    astronaut = result.person("staff-7")
    assert (astronaut.matched, astronaut.first_seen_s, astronaut.last_seen_s) == (True, 0.0, 5.0)


def test_face_crops_show_the_matched_people(
    videos: Videos,
    astronaut_template: Template,
    hopper_template: Template,
    sequence_result: FaceCheckResult,
) -> None:
    crops = face_crops(videos.sequence, sequence_result, max_side=128)
    assert set(crops) == {"staff-7", "owner-12"}
    for ref, template in (("staff-7", astronaut_template), ("owner-12", hopper_template)):
        assert crops[ref][:3] == b"\xff\xd8\xff"
        with Image.open(io.BytesIO(crops[ref])) as img:
            assert max(img.size) <= 128
            assert not img.getexif()
            rgb = np.asarray(img.convert("RGB"))
        # Small as it is, the crop still shows that person (and not the other one).
        crop_template = encode_enrolment_image(rgb)
        assert distance(crop_template, template) < 0.45
    unmatched = check_video(videos.hopper, {"staff-7": [astronaut_template]})
    assert face_crops(videos.hopper, unmatched) == {}


# --- refusals -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory: pytest.TempPathFactory, videos: Videos) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broken")
    mp4 = videos.astronaut.read_bytes()
    avi = videos.hopper.read_bytes()
    files = {
        "truncated.mp4": mp4[: len(mp4) // 2],  # mp4v writes its index (moov) at the end
        "garbage.mp4": mp4[:32] + os.urandom(50_000),
        "random.mp4": os.urandom(50_000),
        "truncated.avi": avi[: len(avi) // 2],  # header intact: decodes half, then stops
    }
    paths = {}
    for name, content in files.items():
        paths[name] = d / name
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize("name", ["truncated.mp4", "garbage.mp4", "random.mp4", "truncated.avi"])
def test_corrupt_videos_are_refused(
    broken_files: dict[str, Path], astronaut_template: Template, name: str
) -> None:
    with pytest.raises(CorruptVideo) as caught:
        check_video(broken_files[name], {"staff-7": [astronaut_template]})
    assert isinstance(caught.value, InputError)
    assert name in caught.value.message


def test_truncated_avi_says_where_decoding_stopped(broken_files: dict[str, Path]) -> None:
    sampler = sample_frames(broken_files["truncated.avi"])
    assert sampler.total == SECONDS  # the header still declares the full length
    with pytest.raises(CorruptVideo, match=r"decoding stopped at \d\.\d s of 6\.0 s"):
        list(sampler)


def _jpeg(_: Path) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _png(_: Path) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "what"),
    [
        ("photo.mp4", _jpeg, "JPEG"),
        ("photo.png", _png, "PNG"),
        ("notes.mp4", lambda _: "催缴记录\n".encode() * 50, "text"),
        ("empty.mp4", lambda _: b"", "empty"),
        ("call.wav", lambda _: b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), "WAV"),
        ("call.amr", lambda _: b"#!AMR\n" + bytes(100), "AMR"),
        ("photo.heic", lambda _: b"\x00\x00\x00\x18ftypheic" + bytes(100), "HEIF"),
    ],
)
def test_non_videos_are_refused_as_such(
    tmp_path: Path, name: str, make: Callable[[Path], bytes], what: str
) -> None:
    path = tmp_path / name
    path.write_bytes(make(path))
    with pytest.raises(NotAVideo, match=what) as caught:
        check_video(path, {})
    assert isinstance(caught.value, InputError)


def test_missing_video_and_directory(tmp_path: Path) -> None:
    with pytest.raises(VideoNotFound) as caught:
        check_video(tmp_path / "gone.mp4", {})
    assert isinstance(caught.value, NotFoundError)
    with pytest.raises(NotAVideo, match="directory"):
        probe_video(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tolerance": 0.0}, "tolerance"),
        ({"tolerance": 1.5}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"fps": 0.0}, "sampling rate"),
        ({"fps": float("inf")}, "sampling rate"),
        ({"workers": 0}, "workers"),
        ({"model": "yolo"}, "model"),
        ({"upsample": -1}, "upsample"),
        ({"detect_max_side": 10}, "detect_max_side"),
    ],
)
def test_bad_parameters_are_refused(
    videos: Videos, astronaut_template: Template, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        check_video(videos.empty, {"staff-7": [astronaut_template]}, **kwargs)


def test_bad_templates_are_refused(videos: Videos, astronaut_template: Template) -> None:
    with pytest.raises(InvalidTemplate, match="shape"):
        check_video(videos.empty, {"staff-7": [astronaut_template[:64]]})
    with pytest.raises(InputError, match="no face template"):
        check_video(videos.empty, {"staff-7": []})
    with pytest.raises(InputError, match="person reference"):
        check_video(videos.empty, {"": [astronaut_template]})


def test_count_people_is_connected_components() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=128), rng.normal(size=128)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)  # ~1.4 apart
    step = (b - a) / 4  # 0.35 per step: a chain a -> b of links under 0.6
    chain = [a + i * step for i in range(5)]
    assert count_people([], 0.6) == 0
    assert count_people([a, a + 0.001, b], 0.6) == 2
    assert count_people(chain, 0.6) == 1  # single linkage joins the chain end to end
    assert count_people(chain[::-1], 0.6) == 1  # in any order
    assert count_people([chain[0], chain[4], chain[2]], 0.6) == 3
    assert count_people([chain[0], chain[4], chain[2], chain[1], chain[3]], 0.6) == 1


def test_write_video_helper_makes_what_the_tests_assume(tmp_path: Path) -> None:
    path = write_video(tmp_path / "blank.avi", "MJPG", [], frames=7)
    info = probe_video(path)
    assert (info.frame_count, info.width, info.height) == (7, 640, 480)
