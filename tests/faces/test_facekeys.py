"""Face templates at rest: AES-256-GCM round trip, refusals, and the logged hash."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numpy.typing import NDArray

from core.errors import ConfigError, InputError
from evidence.facekeys import (
    KEY_BYTES,
    FaceKeyError,
    InvalidTemplate,
    TemplateDecryptError,
    decrypt_template,
    encrypt_template,
    generate_key,
    template_hash,
)

BLOB_BYTES = 12 + 128 * 8 + 16  # nonce, 128 float64, GCM tag


@pytest.fixture()
def template() -> NDArray[np.float64]:
    return np.random.default_rng(5).normal(scale=0.1, size=128)


def test_generate_key_is_random_256_bit() -> None:
    a, b = generate_key(), generate_key()
    assert len(a) == len(b) == KEY_BYTES == 32
    assert a != b


def test_round_trip_is_exact(template: NDArray[np.float64]) -> None:
    key = generate_key()
    blob = encrypt_template(key, template, "staff-7")
    assert len(blob) == BLOB_BYTES
    back = decrypt_template(key, blob, "staff-7")
    assert back.dtype == np.float64 and back.shape == (128,)
    assert np.array_equal(back, template)


def test_round_trip_of_a_real_enrolment(astronaut_template: NDArray[np.float64]) -> None:
    key = generate_key()
    blob = encrypt_template(key, astronaut_template, "owner-12")
    assert np.array_equal(decrypt_template(key, blob, "owner-12"), astronaut_template)
    assert astronaut_template.tobytes() not in blob  # not stored in the clear


def test_each_encryption_uses_a_fresh_nonce(template: NDArray[np.float64]) -> None:
    key = generate_key()
    one, two = (
        encrypt_template(key, template, "staff-7"),
        encrypt_template(key, template, "staff-7"),
    )
    assert one[:12] != two[:12] and one != two
    assert np.array_equal(decrypt_template(key, two, "staff-7"), template)


def test_blob_format_is_nonce_then_ciphertext_with_ref_bound(
    template: NDArray[np.float64],
) -> None:
    # Decrypt with cryptography directly, following the documented format.
    key = generate_key()
    blob = encrypt_template(key, template, "业主-12")
    plain = AESGCM(key).decrypt(
        blob[:12], blob[12:], b"tiezheng/face-template/v1\x00" + "业主-12".encode()
    )
    assert plain == struct.pack("<128d", *template)


def test_wrong_key_is_refused(template: NDArray[np.float64]) -> None:
    blob = encrypt_template(generate_key(), template, "staff-7")
    with pytest.raises(TemplateDecryptError, match="wrong key"):
        decrypt_template(generate_key(), blob, "staff-7")


def test_template_of_another_person_is_refused(template: NDArray[np.float64]) -> None:
    key = generate_key()
    blob = encrypt_template(key, template, "staff-7")
    with pytest.raises(TemplateDecryptError, match="staff-8"):
        decrypt_template(key, blob, "staff-8")


@pytest.mark.parametrize("position", [0, 11, 12, 500, BLOB_BYTES - 1])  # nonce, body, tag
def test_any_flipped_bit_is_refused(template: NDArray[np.float64], position: int) -> None:
    key = generate_key()
    blob = bytearray(encrypt_template(key, template, "staff-7"))
    blob[position] ^= 0x01
    with pytest.raises(TemplateDecryptError):
        decrypt_template(key, bytes(blob), "staff-7")


@pytest.mark.parametrize("cut", [0, 12, BLOB_BYTES - 1])
def test_truncated_or_padded_blobs_are_refused(template: NDArray[np.float64], cut: int) -> None:
    key = generate_key()
    blob = encrypt_template(key, template, "staff-7")
    with pytest.raises(TemplateDecryptError, match="damaged"):
        decrypt_template(key, blob[:cut], "staff-7")
    with pytest.raises(TemplateDecryptError, match="damaged"):
        decrypt_template(key, blob + b"\x00", "staff-7")


def test_bad_keys_are_configuration_errors(template: NDArray[np.float64]) -> None:
    for key in (b"", b"k" * 16, b"k" * 33, "k" * 32):
        with pytest.raises(FaceKeyError, match="32 bytes") as caught:
            encrypt_template(key, template, "staff-7")  # type: ignore[arg-type]
        assert isinstance(caught.value, ConfigError)
    blob = encrypt_template(generate_key(), template, "staff-7")
    with pytest.raises(FaceKeyError):
        decrypt_template(b"short", blob, "staff-7")


def test_bad_templates_and_refs_are_refused(template: NDArray[np.float64]) -> None:
    key = generate_key()
    with pytest.raises(InvalidTemplate, match="shape"):
        encrypt_template(key, template[:127], "staff-7")
    with pytest.raises(InvalidTemplate, match="finite"):
        encrypt_template(key, np.full(128, np.nan), "staff-7")
    with pytest.raises(InvalidTemplate, match="numeric"):
        encrypt_template(key, ["x"] * 128, "staff-7")
    with pytest.raises(InputError, match="person reference"):
        encrypt_template(key, template, "")


def test_authentic_blob_that_is_not_a_template_is_refused() -> None:
    # Encrypted with the right key and ref, but holding NaNs: a caller bypassed the checks.
    key = generate_key()
    nonce = b"\x01" * 12
    aad = b"tiezheng/face-template/v1\x00staff-7"
    blob = nonce + AESGCM(key).encrypt(nonce, struct.pack("<128d", *[float("nan")] * 128), aad)
    with pytest.raises(TemplateDecryptError, match="invalid"):
        decrypt_template(key, blob, "staff-7")


def test_template_hash_is_sha256_of_little_endian_float64(
    template: NDArray[np.float64],
) -> None:
    expected = hashlib.sha256(struct.pack("<128d", *template.tolist())).hexdigest()
    assert template_hash(template) == expected
    assert template_hash(template.tolist()) == expected
    assert template_hash(template.astype(">f8")) == expected  # byte order of the array is moot
    other = template.copy()
    other[0] = np.nextafter(other[0], 1.0)  # one ulp apart is another template
    assert template_hash(other) != expected


def test_template_hash_of_float32_is_that_of_its_float64_value(
    template: NDArray[np.float64],
) -> None:
    single = template.astype(np.float32)
    assert template_hash(single) == template_hash(single.astype(np.float64))


def test_template_hash_refuses_non_templates() -> None:
    with pytest.raises(InvalidTemplate):
        template_hash(np.zeros(129))
    with pytest.raises(InvalidTemplate):
        template_hash(np.zeros((2, 128)))
    with pytest.raises(InvalidTemplate):
        template_hash(np.full(128, np.inf))
