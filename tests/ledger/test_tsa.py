"""RFC 3161 timestamps: the built-in TSA, the remote client and our own token verifier.

Interop is checked both ways with the real ``openssl`` command: ``openssl ts -verify`` accepts
our tokens, and our client and verifier accept tokens from ``openssl ts -reply``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import ConfigError
from ledger.errors import TimestampError
from ledger.tsa import (
    BUILTIN_TSA_FILES,
    BUILTIN_TSA_POLICY,
    BuiltinTSA,
    RemoteTSA,
    StampResult,
    TimestampAuthority,
    TimeStampResp,
    builtin_request,
    gen_time_of,
    load_pem_certificates,
    make_request,
    parse_tsa_urls,
    response_from_token,
    token_from_response,
    verify_response,
    verify_token,
)
from tests.ledger.tsa_server import (
    QUERY_CONTENT_TYPE,
    TEST_POLICY,
    OpenSSLTSA,
    build_openssl_tsa,
    serve,
)

REPO = Path(__file__).resolve().parents[2]

CHECKPOINT = (
    b"tiezheng.example/log\n42\nq6rG2gXz3QpI1wTLJ8v2yw0f0y0pV1qJ9b3kq2rX4mE=\n\n\xe2\x80\x94 sig\n"
)
DIGEST = hashlib.sha256(CHECKPOINT).digest()


def run_openssl(*args: str | Path) -> tuple[int, str]:
    """Run openssl; return its exit code and stdout+stderr (failures are expected by callers)."""
    done = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, timeout=60, check=False
    )
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")


def _field(text: str, name: str) -> str:
    """The value of a ``Name: value`` line of ``openssl ts -text`` output."""
    for line in text.splitlines():
        if line.startswith(name + ": "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no {name!r} line in:\n{text}")


def write_stamp(directory: Path, result: StampResult) -> tuple[Path, Path, Path, Path]:
    """Write checkpoint, checkpoint.tsr, ca.pem and tsa.pem as the ledger does."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "checkpoint"
    tsr = directory / "checkpoint.tsr"
    ca = directory / "ca.pem"
    tsa = directory / "tsa.pem"
    data.write_bytes(CHECKPOINT)
    tsr.write_bytes(result.response)
    ca.write_bytes(result.ca_pem)
    tsa.write_bytes(result.tsa_pem)
    return data, tsr, ca, tsa


# --- a small PKI made with cryptography (EC keys: fast) for the refusal cases ---------------


@dataclass
class PKI:
    root: x509.Certificate
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    intermediates: list[x509.Certificate]
    issuer_key: ec.EllipticCurvePrivateKey
    """The key that signed the leaf (root or intermediate)."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    issuer: str,
    public_key: object,
    signing_key: ec.EllipticCurvePrivateKey,
    start: datetime,
    end: datetime,
    *,
    ca: bool,
    path_length: int | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    return builder.sign(signing_key, hashes.SHA256())


TIME_STAMPING = (ExtendedKeyUsageOID.TIME_STAMPING,)


def make_pki(
    *,
    eku: tuple[x509.ObjectIdentifier, ...] | None = TIME_STAMPING,
    eku_critical: bool = True,
    leaf_from: datetime = datetime(2020, 1, 1, tzinfo=UTC),
    leaf_to: datetime = datetime(2040, 1, 1, tzinfo=UTC),
    root_to: datetime = datetime(2045, 1, 1, tzinfo=UTC),
    intermediate: bool = False,
    intermediate_is_ca: bool = True,
    root_path_length: int | None = None,
    leaf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
) -> PKI:
    """Root (-> intermediate) -> TSA leaf; ``eku=None``: no extendedKeyUsage at all."""
    start = datetime(2019, 1, 1, tzinfo=UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert(
        "Test root", "Test root", root_key.public_key(), root_key, start, root_to,
        ca=True, path_length=root_path_length,
    )  # fmt: skip
    issuer_name, issuer_key, chain = "Test root", root_key, list[x509.Certificate]()
    if intermediate:
        mid_key = ec.generate_private_key(ec.SECP256R1())
        mid = _cert(
            "Test intermediate", "Test root", mid_key.public_key(), root_key, start, root_to,
            ca=intermediate_is_ca,
        )  # fmt: skip
        issuer_name, issuer_key, chain = "Test intermediate", mid_key, [mid]
    key = leaf_key or ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(
        "Test TSA", issuer_name, key.public_key(), issuer_key, leaf_from, leaf_to, ca=False,
        eku=None if eku is None else list(eku), eku_critical=eku_critical,
    )  # fmt: skip
    return PKI(root=root, leaf=leaf, leaf_key=key, intermediates=chain, issuer_key=issuer_key)


def pki_response(pki: PKI, moment: datetime, *, nonce: int = 7, cert_req: bool = True) -> bytes:
    """A response signed by ``pki``'s leaf at ``moment`` (our TSA code, someone else's PKI)."""
    tsa = BuiltinTSA(
        ca_certificate=pki.root,
        tsa_certificate=pki.leaf,
        tsa_key=pki.leaf_key,
        clock=lambda: moment,
    )
    return tsa.respond(make_request(DIGEST, nonce=nonce, cert_req=cert_req))


MOMENT = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


# --- fixtures: key generation stays out of the tests themselves -----------------------------


@pytest.fixture(scope="module")
def builtin_rsa(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuiltinTSA, Path]:
    directory = tmp_path_factory.mktemp("builtin-rsa") / "tsa"
    return BuiltinTSA.create(directory), directory


@pytest.fixture(scope="module")
def builtin_ec(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuiltinTSA, Path]:
    directory = tmp_path_factory.mktemp("builtin-ec") / "tsa"
    return BuiltinTSA.create(directory, key_type="ec", name="Test EC TSA"), directory


@pytest.fixture(scope="module", params=["rsa", "ec"])
def builtin(
    request: pytest.FixtureRequest,
    builtin_rsa: tuple[BuiltinTSA, Path],
    builtin_ec: tuple[BuiltinTSA, Path],
) -> BuiltinTSA:
    return (builtin_rsa if request.param == "rsa" else builtin_ec)[0]


@pytest.fixture(scope="module")
def openssl_rsa(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLTSA:
    # SHA-1 is allowed here only so that a SHA-1 token exists for the verifier to refuse.
    return build_openssl_tsa(
        tmp_path_factory.mktemp("openssl-rsa"), digests=("sha256", "sha384", "sha512", "sha1")
    )


@pytest.fixture(scope="module")
def openssl_ec(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLTSA:
    return build_openssl_tsa(tmp_path_factory.mktemp("openssl-ec"), key_type="ec")


@pytest.fixture(scope="module")
def rsa_url(openssl_rsa: OpenSSLTSA) -> Iterator[str]:
    with serve(openssl_rsa) as url:
        yield url


@pytest.fixture(scope="module")
def ec_url(openssl_ec: OpenSSLTSA) -> Iterator[str]:
    with serve(openssl_ec) as url:
        yield url


@pytest.fixture
def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def stamped(builtin_ec: tuple[BuiltinTSA, Path]) -> StampResult:
    return builtin_ec[0].stamp(DIGEST)


# --- built-in TSA: interop with openssl ------------------------------------------------------


def test_builtin_token_verifies_with_openssl_data_and_digest(
    builtin: BuiltinTSA, tmp_path: Path
) -> None:
    result = builtin.stamp(DIGEST)
    data, tsr, ca, tsa = write_stamp(tmp_path, result)

    code, out = run_openssl("ts", "-verify", "-data", data, "-in", tsr, "-CAfile", ca,
                            "-untrusted", tsa)  # fmt: skip
    assert code == 0 and "Verification: OK" in out, out
    code, out = run_openssl("ts", "-verify", "-digest", DIGEST.hex(), "-in", tsr, "-CAfile", ca,
                            "-untrusted", tsa)  # fmt: skip
    assert code == 0 and "Verification: OK" in out, out

    # The bare token verifies too (-token_in), and the verifier reads the same genTime.
    token = tmp_path / "checkpoint.tst"
    token.write_bytes(result.token)
    code, out = run_openssl("ts", "-verify", "-data", data, "-in", token, "-token_in",
                            "-CAfile", ca, "-untrusted", tsa)  # fmt: skip
    assert code == 0 and "Verification: OK" in out, out


def test_openssl_prints_nonce_policy_and_tsa_of_builtin_token(
    builtin: BuiltinTSA, tmp_path: Path
) -> None:
    result = builtin.stamp(DIGEST)
    _, tsr, _, _ = write_stamp(tmp_path, result)
    code, out = run_openssl("ts", "-reply", "-in", tsr, "-text")
    assert code == 0, out
    assert "Status: Granted." in out
    assert f"Policy OID: {BUILTIN_TSA_POLICY}" in out
    assert result.info.nonce is not None
    assert int(_field(out, "Nonce"), 16) == result.info.nonce
    assert "Hash Algorithm: sha256" in out
    assert int(_field(out, "Serial number"), 16) == result.info.serial
    cn = builtin.tsa_certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str)
    assert f"CN={cn}" in out
    assert result.info.policy == BUILTIN_TSA_POLICY
    assert result.info.hash_algorithm == "sha256"
    assert result.info.digest == DIGEST


def test_openssl_refuses_builtin_token_for_other_data(builtin: BuiltinTSA, tmp_path: Path) -> None:
    result = builtin.stamp(DIGEST)
    data, tsr, ca, tsa = write_stamp(tmp_path, result)
    data.write_bytes(CHECKPOINT + b"tampered")
    code, out = run_openssl("ts", "-verify", "-data", data, "-in", tsr, "-CAfile", ca,
                            "-untrusted", tsa)  # fmt: skip
    assert code != 0
    assert "Verification: FAILED" in out and "message imprint mismatch" in out


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_builtin_answers_openssl_queries(
    builtin_ec: tuple[BuiltinTSA, Path], tmp_path: Path, algorithm: str
) -> None:
    tsa, directory = builtin_ec
    data = tmp_path / "checkpoint"
    data.write_bytes(CHECKPOINT)
    query = tmp_path / "q.tsq"
    code, out = run_openssl("ts", "-query", "-data", data, f"-{algorithm}", "-cert",
                            "-out", query)  # fmt: skip
    assert code == 0, out
    reply = tmp_path / "r.tsr"
    reply.write_bytes(tsa.respond(query.read_bytes()))
    code, out = run_openssl("ts", "-verify", "-queryfile", query, "-in", reply,
                            "-CAfile", directory / "ca.pem")  # fmt: skip
    assert code == 0 and "Verification: OK" in out, out
    info = verify_response(
        reply.read_bytes(),
        digest=hashlib.new(algorithm, CHECKPOINT).digest(),
        trust_anchors=[tsa.ca_certificate],
    )
    assert info.hash_algorithm == algorithm


def test_builtin_includes_certificate_only_when_asked(stamped: StampResult) -> None:
    tsa_cert_der = stamped.info.tsa_certificate.public_bytes(serialization.Encoding.DER)
    with_cert = TimeStampResp.load(stamped.response)
    certs = with_cert["time_stamp_token"]["content"]["certificates"]
    assert [c.chosen.dump() for c in certs] == [tsa_cert_der]

    pki = make_pki()
    bare = pki_response(pki, MOMENT, cert_req=False)
    token = TimeStampResp.load(bare)["time_stamp_token"]
    assert token["content"]["certificates"].native is None
    # Without the certificate in the token, the caller must supply it.
    with pytest.raises(TimestampError, match="neither in the token"):
        verify_response(bare, digest=DIGEST, trust_anchors=[pki.root])
    info = verify_response(bare, digest=DIGEST, trust_anchors=[pki.root], untrusted=[pki.leaf])
    assert info.tsa_certificate == pki.leaf


def test_builtin_token_structure(builtin_ec: tuple[BuiltinTSA, Path]) -> None:
    tsa, directory = builtin_ec
    moment = tsa.tsa_certificate.not_valid_before_utc + timedelta(days=100, microseconds=123456)
    fixed = BuiltinTSA.load(directory, clock=lambda: moment)
    result = fixed.stamp(DIGEST)
    assert result.info.gen_time == moment
    assert gen_time_of(result.response) == moment

    token = TimeStampResp.load(result.response)["time_stamp_token"]
    signed_data = token["content"]
    assert signed_data["encap_content_info"]["content_type"].dotted == "1.2.840.113549.1.9.16.1.4"
    signer_info = signed_data["signer_infos"][0]
    attrs = signer_info["signed_attrs"]
    encodings = [a.dump() for a in attrs]
    assert encodings == sorted(encodings), "signed attributes are not in DER SET order"
    assert {a["type"].native for a in attrs} == {
        "content_type", "message_digest", "signing_time", "signing_certificate_v2",
    }  # fmt: skip
    values = {a["type"].native: a["values"][0] for a in attrs}
    assert values["signing_time"].native == moment.replace(microsecond=0)
    ess = values["signing_certificate_v2"]["certs"][0]
    tsa_der = tsa.tsa_certificate.public_bytes(serialization.Encoding.DER)
    assert ess["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"


def test_builtin_serials_are_unique_and_nonces_echoed(
    stamped: StampResult, builtin_ec: tuple[BuiltinTSA, Path]
) -> None:
    tsa = builtin_ec[0]
    results = [tsa.stamp(DIGEST) for _ in range(5)] + [stamped]
    assert len({r.info.serial for r in results}) == 6
    assert all(0 < r.info.serial < 2**128 for r in results)
    for nonce in (0, 1, 2**63 + 5):
        response = tsa.respond(make_request(DIGEST, nonce=nonce))
        info = verify_response(response, digest=DIGEST, trust_anchors=[tsa.ca_certificate],
                               nonce=nonce)  # fmt: skip
        assert info.nonce == nonce


@pytest.mark.parametrize(
    ("query_args", "failure", "text"),
    [
        (["-sha1"], "bad_alg", "unrecognized or unsupported algorithm identifier"),
        (["-sha256", "-tspolicy", "1.2.3.4.5"], "unaccepted_policy", "policy"),
    ],
)
def test_builtin_rejects_bad_algorithm_and_policy(
    builtin_ec: tuple[BuiltinTSA, Path],
    tmp_path: Path,
    query_args: list[str],
    failure: str,
    text: str,
) -> None:
    tsa = builtin_ec[0]
    data = tmp_path / "checkpoint"
    data.write_bytes(CHECKPOINT)
    query = tmp_path / "q.tsq"
    code, out = run_openssl("ts", "-query", "-data", data, *query_args, "-out", query)
    assert code == 0, out
    reply = tmp_path / "r.tsr"
    reply.write_bytes(tsa.respond(query.read_bytes()))
    code, out = run_openssl("ts", "-reply", "-in", reply, "-text")
    assert code == 0, out
    assert "Status: Rejected." in out
    assert text in out
    with pytest.raises(TimestampError, match=f"rejection \\({failure}\\)"):
        verify_response(reply.read_bytes(), digest=DIGEST, trust_anchors=[tsa.ca_certificate])


@pytest.mark.parametrize("request_der", [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30\x80"])
def test_builtin_answers_malformed_request_with_rejection(
    builtin_ec: tuple[BuiltinTSA, Path], tmp_path: Path, request_der: bytes
) -> None:
    tsa = builtin_ec[0]
    reply = tmp_path / "r.tsr"
    reply.write_bytes(tsa.respond(request_der))
    code, out = run_openssl("ts", "-reply", "-in", reply, "-text")
    assert code == 0, out
    assert "Status: Rejected." in out
    assert "the data submitted has the wrong format" in out
    assert "TST info:\nNot included." in out
    with pytest.raises(TimestampError) as caught:
        verify_response(reply.read_bytes(), digest=DIGEST, trust_anchors=[tsa.ca_certificate])
    assert "rejection (bad_data_format)" in caught.value.message
    assert "the request is not a DER TimeStampReq" in caught.value.message


def test_builtin_stamps_concurrently(builtin_ec: tuple[BuiltinTSA, Path]) -> None:
    tsa = builtin_ec[0]
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(tsa.stamp, digests))
    assert [r.info.digest for r in results] == digests
    assert len({r.info.serial for r in results}) == len(digests)
    for digest, result in zip(digests, results, strict=True):
        verify_response(result.response, digest=digest, trust_anchors=[tsa.ca_certificate])


def test_builtin_rejects_wrong_imprint_length(builtin_ec: tuple[BuiltinTSA, Path]) -> None:
    tsa = builtin_ec[0]
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                "hashed_message": b"\x01" * 20},
            "cert_req": True,
        }
    )  # fmt: skip
    reply = TimeStampResp.load(tsa.respond(request.dump()))
    assert reply["status"]["status"].native == "rejection"
    assert reply["status"]["fail_info"].native == {"bad_data_format"}


# --- built-in TSA: creation and loading ------------------------------------------------------


def test_create_writes_private_keys_0600(builtin_rsa: tuple[BuiltinTSA, Path]) -> None:
    _, directory = builtin_rsa
    assert sorted(p.name for p in directory.iterdir()) == sorted(BUILTIN_TSA_FILES)
    for key in ("ca.key", "tsa.key"):
        assert stat.S_IMODE(os.stat(directory / key).st_mode) == 0o600
    for cert in ("ca.pem", "tsa.pem"):
        assert stat.S_IMODE(os.stat(directory / cert).st_mode) == 0o644


def test_create_refuses_to_overwrite(builtin_rsa: tuple[BuiltinTSA, Path], tmp_path: Path) -> None:
    _, directory = builtin_rsa
    before = {f: (directory / f).read_bytes() for f in BUILTIN_TSA_FILES}
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        BuiltinTSA.create(directory, key_type="ec")
    assert {f: (directory / f).read_bytes() for f in BUILTIN_TSA_FILES} == before

    # One leftover file is enough to refuse, and nothing else gets written.
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "tsa.key").write_bytes(b"keep me")
    with pytest.raises(ConfigError, match=r"tsa\.key"):
        BuiltinTSA.create(partial, key_type="ec")
    assert [p.name for p in partial.iterdir()] == ["tsa.key"]
    assert (partial / "tsa.key").read_bytes() == b"keep me"


def test_certificates_valid_25_years_with_critical_timestamping_eku(
    builtin_rsa: tuple[BuiltinTSA, Path],
) -> None:
    tsa, directory = builtin_rsa
    for cert in (tsa.ca_certificate, tsa.tsa_certificate):
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        assert end == start.replace(year=start.year + 25)
        assert isinstance(cert.public_key(), rsa.RSAPublicKey)
        assert cert.public_key().key_size == 3072  # type: ignore[union-attr]
    eku = tsa.tsa_certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = tsa.tsa_certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    ca_bc = tsa.ca_certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_bc.critical and ca_bc.value.ca
    # OpenSSL agrees the certificate is fit to sign timestamps under this CA.
    code, out = run_openssl("verify", "-CAfile", directory / "ca.pem", "-purpose",
                            "timestampsign", directory / "tsa.pem")  # fmt: skip
    assert code == 0 and "OK" in out, out


def test_create_uses_the_clock(tmp_path: Path) -> None:
    moment = datetime(2031, 2, 28, 10, 30, 15, 999, tzinfo=UTC)
    tsa = BuiltinTSA.create(tmp_path / "t", key_type="ec", clock=lambda: moment, years=3)
    assert tsa.tsa_certificate.not_valid_before_utc == datetime(2031, 2, 28, 10, 25, 15, tzinfo=UTC)
    assert tsa.tsa_certificate.not_valid_after_utc == datetime(2034, 2, 28, 10, 25, 15, tzinfo=UTC)
    assert tsa.stamp(DIGEST).info.gen_time == moment


def test_load_round_trip_and_errors(builtin_rsa: tuple[BuiltinTSA, Path], tmp_path: Path) -> None:
    tsa, directory = builtin_rsa
    loaded = BuiltinTSA.load(directory)
    assert loaded.tsa_certificate == tsa.tsa_certificate
    assert loaded.ca_certificate == tsa.ca_certificate
    assert loaded.ca_pem == (directory / "ca.pem").read_bytes()
    assert loaded.tsa_pem == (directory / "tsa.pem").read_bytes()
    assert (
        verify_response(
            loaded.stamp(DIGEST).response, digest=DIGEST, trust_anchors=[tsa.ca_certificate]
        ).tsa_certificate
        == tsa.tsa_certificate
    )

    with pytest.raises(ConfigError, match=r"ca\.pem"):
        BuiltinTSA.load(tmp_path / "missing")

    # A key that belongs to another TSA is refused.
    other = tmp_path / "other"
    BuiltinTSA.create(other, key_type="ec")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in ("ca.pem", "tsa.pem"):
        (mixed / f).write_bytes((directory / f).read_bytes())
    (mixed / "tsa.key").write_bytes((other / "tsa.key").read_bytes())
    with pytest.raises(ConfigError, match="does not belong"):
        BuiltinTSA.load(mixed)
    # A TSA certificate from another CA is refused.
    (mixed / "tsa.key").write_bytes((other / "tsa.key").read_bytes())
    (mixed / "tsa.pem").write_bytes((other / "tsa.pem").read_bytes())
    with pytest.raises(ConfigError, match="was not issued by"):
        BuiltinTSA.load(mixed)


def test_both_authorities_implement_the_protocol(
    builtin_ec: tuple[BuiltinTSA, Path], rsa_url: str, openssl_rsa: OpenSSLTSA
) -> None:
    remote = RemoteTSA([rsa_url], [openssl_rsa.ca_certificate], 5)
    assert isinstance(builtin_ec[0], TimestampAuthority)
    assert isinstance(remote, TimestampAuthority)


# --- requests --------------------------------------------------------------------------------


def test_make_request_is_sha256_with_nonce_and_cert_req(tmp_path: Path) -> None:
    nonce = 0x1234_5678_9ABC_DEF0
    query = tmp_path / "q.tsq"
    query.write_bytes(make_request(DIGEST, nonce=nonce))
    code, out = run_openssl("ts", "-query", "-in", query, "-text")
    assert code == 0, out
    assert "Hash Algorithm: sha256" in out
    assert "Certificate required: yes" in out
    assert "Nonce: 0x123456789ABCDEF0" in out
    parsed = tsp.TimeStampReq.load(query.read_bytes())
    assert parsed["message_imprint"]["hashed_message"].native == DIGEST

    with pytest.raises(TimestampError, match="32 bytes"):
        make_request(DIGEST[:20], nonce=1)
    with pytest.raises(TimestampError, match="unsupported"):
        make_request(hashlib.sha1(CHECKPOINT).digest(), nonce=1, hash_algorithm="sha1")


@pytest.mark.parametrize("nonce", [0, 1, 0x7F, 0x80, 0x1234_5678_9ABC_DEF0, 2**64 - 1])
def test_the_builtin_request_is_the_bytes_rfc3161ng_builds(nonce: int) -> None:
    # The built-in TSA builds its in-process request with asn1crypto (no rfc3161ng import).
    digest = hashlib.sha256(nonce.to_bytes(8, "big")).digest()
    assert builtin_request(digest, nonce=nonce) == make_request(digest, nonce=nonce)
    with pytest.raises(TimestampError, match="32 bytes"):
        builtin_request(digest[:20], nonce=1)
    with pytest.raises(TimestampError, match="negative"):
        builtin_request(digest, nonce=-1)


def test_stamping_with_the_builtin_tsa_loads_neither_rfc3161ng_nor_requests(
        tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from ledger.tsa import BuiltinTSA;"
        f"tsa = BuiltinTSA.create(Path({str(tmp_path / 'tsa')!r}), key_type='ec');"
        "tsa.stamp(bytes(32));"
        "print(sorted(m for m in ('rfc3161ng', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_parse_tsa_urls() -> None:
    assert parse_tsa_urls(" http://a/tsr ,https://b ") == ["http://a/tsr", "https://b"]
    with pytest.raises(ConfigError):
        parse_tsa_urls(" , ")
    with pytest.raises(ConfigError, match="ftp://x"):
        parse_tsa_urls("http://a,ftp://x")


# --- remote TSA client against openssl ts -reply ---------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_remote_tsa_obtains_and_validates_openssl_tokens(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path
) -> None:
    server: OpenSSLTSA = request.getfixturevalue(f"openssl_{kind}")
    url: str = request.getfixturevalue(f"{kind}_url")
    remote = RemoteTSA([url], [server.ca_certificate], timeout=10)
    result = remote.stamp(DIGEST)
    assert result.source == url
    assert result.info.tsa_certificate == server.tsa_certificate
    assert result.info.chain == [server.tsa_certificate, server.ca_certificate]
    assert result.info.policy == TEST_POLICY
    assert result.info.digest == DIGEST
    assert abs(result.info.gen_time - datetime.now(UTC)) < timedelta(minutes=5)
    key = result.info.tsa_certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey if kind == "rsa" else ec.EllipticCurvePublicKey)
    assert load_pem_certificates(result.tsa_pem) == [server.tsa_certificate]
    assert load_pem_certificates(result.ca_pem) == [server.ca_certificate]
    # What the client wrote verifies with openssl as well.
    data, tsr, ca, tsa = write_stamp(tmp_path, result)
    code, out = run_openssl("ts", "-verify", "-data", data, "-in", tsr, "-CAfile", ca,
                            "-untrusted", tsa)  # fmt: skip
    assert code == 0 and "Verification: OK" in out, out


def test_verifier_accepts_ess_signing_certificate_v1(tmp_path: Path) -> None:
    server = build_openssl_tsa(tmp_path / "v1", key_type="ec", ess_cert_id_alg="sha1")
    response = server.reply(make_request(DIGEST, nonce=99))
    signer_info = TimeStampResp.load(response)["time_stamp_token"]["content"]["signer_infos"][0]
    kinds = {a["type"].native for a in signer_info["signed_attrs"]}
    assert "signing_certificate" in kinds and "signing_certificate_v2" not in kinds
    info = verify_response(response, digest=DIGEST, trust_anchors=[server.ca_certificate],
                           nonce=99)  # fmt: skip
    assert info.tsa_certificate == server.tsa_certificate


def test_remote_tsa_from_config(openssl_rsa: OpenSSLTSA, rsa_url: str, tmp_path: Path) -> None:
    remote = RemoteTSA.from_config(f" {rsa_url} ", openssl_rsa.ca_pem, timeout=5)
    assert remote.stamp(DIGEST).info.tsa_certificate == openssl_rsa.tsa_certificate
    with pytest.raises(ConfigError, match="cannot read"):
        RemoteTSA.from_config(rsa_url, tmp_path / "nope.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="not PEM"):
        RemoteTSA.from_config(rsa_url, bad)


def test_server_answers_415_without_the_query_content_type(rsa_url: str) -> None:
    query = make_request(DIGEST, nonce=3)
    wrong = requests.post(rsa_url, data=query, headers={"Content-Type": "text/plain"}, timeout=5)
    assert wrong.status_code == 415
    right = requests.post(rsa_url, data=query, headers={"Content-Type": QUERY_CONTENT_TYPE},
                          timeout=5)  # fmt: skip
    assert right.status_code == 200
    assert right.headers["Content-Type"] == "application/timestamp-reply"


def test_remote_tsa_down_fails_quickly(closed_url: str, openssl_rsa: OpenSSLTSA) -> None:
    remote = RemoteTSA([closed_url], [openssl_rsa.ca_certificate], timeout=5)
    started = time.monotonic()
    with pytest.raises(TimestampError) as caught:
        remote.stamp(DIGEST)
    # Refused at once: well within the 5 s timeout it was given (a bound, not a speed test).
    assert time.monotonic() - started < 4
    assert closed_url in caught.value.message
    assert "refused" in caught.value.message.lower()


def test_remote_tsa_that_never_answers_times_out(openssl_rsa: OpenSSLTSA) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts connections in the kernel, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        remote = RemoteTSA([url], [openssl_rsa.ca_certificate], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(TimestampError, match=r"no answer within 0\.5 s"):
            remote.stamp(DIGEST)
        assert time.monotonic() - started < 4  # gave up after its timeout, not much later


def test_remote_tsa_tries_urls_in_order(
    closed_url: str, rsa_url: str, openssl_rsa: OpenSSLTSA
) -> None:
    remote = RemoteTSA([closed_url, rsa_url + "error", rsa_url], [openssl_rsa.ca_certificate], 5)
    result = remote.stamp(DIGEST)
    assert result.source == rsa_url
    assert result.info.tsa_certificate == openssl_rsa.tsa_certificate


def test_remote_tsa_reports_every_failure(
    closed_url: str, rsa_url: str, ec_url: str, openssl_rsa: OpenSSLTSA
) -> None:
    urls = [closed_url, rsa_url + "error", rsa_url + "garbage", ec_url]
    remote = RemoteTSA(urls, [openssl_rsa.ca_certificate], timeout=5)
    with pytest.raises(TimestampError) as caught:
        remote.stamp(DIGEST)
    message = caught.value.message
    assert message.startswith("no TSA granted a valid timestamp")
    for url in urls:
        assert url in message
    assert "HTTP 500" in message
    assert "malformed TimeStampResp" in message
    # The EC server's token is fine, but its CA is not a trust anchor here.
    assert "does not chain to a trust anchor" in message


def test_remote_tsa_configuration_errors(openssl_rsa: OpenSSLTSA) -> None:
    with pytest.raises(ConfigError):
        RemoteTSA([], [openssl_rsa.ca_certificate], 5)
    with pytest.raises(ConfigError):
        RemoteTSA(["http://127.0.0.1:1/"], [], 5)
    with pytest.raises(ConfigError):
        RemoteTSA(["file:///etc/passwd"], [openssl_rsa.ca_certificate], 5)


# --- the verifier refuses --------------------------------------------------------------------


def test_verifier_accepts_the_genuine_token(
    stamped: StampResult, builtin_ec: tuple[BuiltinTSA, Path]
) -> None:
    tsa = builtin_ec[0]
    info = verify_response(stamped.response, digest=DIGEST, trust_anchors=[tsa.ca_certificate],
                           nonce=stamped.info.nonce)  # fmt: skip
    assert info == stamped.info
    assert info.chain == [tsa.tsa_certificate, tsa.ca_certificate]
    assert info.tsa_name == tsa.tsa_certificate.subject.rfc4514_string()
    assert info.gen_time.tzinfo is not None and info.gen_time.utcoffset() == timedelta(0)


def test_verifier_refuses_wrong_digest(stamped: StampResult) -> None:
    with pytest.raises(TimestampError, match="message imprint mismatch"):
        verify_response(stamped.response, digest=hashlib.sha256(b"other").digest(),
                        trust_anchors=[stamped.info.chain[-1]])  # fmt: skip


def test_verifier_refuses_wrong_nonce(stamped: StampResult) -> None:
    assert stamped.info.nonce is not None
    with pytest.raises(TimestampError, match="nonce mismatch"):
        verify_response(stamped.response, digest=DIGEST, trust_anchors=[stamped.info.chain[-1]],
                        nonce=stamped.info.nonce + 1)  # fmt: skip


def test_verifier_refuses_wrong_trust_anchor(
    stamped: StampResult, builtin_rsa: tuple[BuiltinTSA, Path], openssl_ec: OpenSSLTSA
) -> None:
    for anchor in (builtin_rsa[0].ca_certificate, openssl_ec.ca_certificate):
        with pytest.raises(TimestampError, match="does not chain to a trust anchor"):
            verify_response(stamped.response, digest=DIGEST, trust_anchors=[anchor])
    with pytest.raises(TimestampError, match="no trust anchors"):
        verify_response(stamped.response, digest=DIGEST, trust_anchors=[])


def test_verifier_refuses_anchor_with_the_right_name_but_another_key() -> None:
    genuine, impostor = make_pki(), make_pki()
    assert genuine.root.subject == impostor.root.subject
    response = pki_response(genuine, MOMENT)
    with pytest.raises(TimestampError, match="CN=Test root did not sign CN=Test TSA"):
        verify_response(response, digest=DIGEST, trust_anchors=[impostor.root])
    assert verify_response(response, digest=DIGEST, trust_anchors=[impostor.root, genuine.root])


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_verifier_refuses_tampered_signature(request: pytest.FixtureRequest, kind: str) -> None:
    tsa: BuiltinTSA = request.getfixturevalue(f"builtin_{kind}")[0]
    response = tsa.stamp(DIGEST).response
    signer_info = TimeStampResp.load(response)["time_stamp_token"]["content"]["signer_infos"][0]
    signature = signer_info["signature"].native
    at = response.rindex(signature)
    tampered = bytearray(response)
    tampered[at + len(signature) // 2] ^= 0x01
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_response(bytes(tampered), digest=DIGEST, trust_anchors=[tsa.ca_certificate])


def test_verifier_refuses_tampered_tst_info(stamped: StampResult) -> None:
    # Changing the serial inside the TSTInfo breaks the messageDigest signed attribute.
    serial = stamped.info.serial.to_bytes(17, "big").lstrip(b"\x00")
    at = stamped.response.index(serial)
    tampered = bytearray(stamped.response)
    tampered[at] ^= 0x01
    with pytest.raises(TimestampError, match="messageDigest attribute does not match"):
        verify_response(bytes(tampered), digest=DIGEST, trust_anchors=[stamped.info.chain[-1]])


@pytest.mark.parametrize(
    ("eku", "critical", "message"),
    [
        (None, True, "no extendedKeyUsage timeStamping"),
        ((ExtendedKeyUsageOID.CODE_SIGNING,), True, "not only timeStamping"),
        ((ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING), True,
         "not only timeStamping"),
        (TIME_STAMPING, False, "is not critical"),
    ],
)  # fmt: skip
def test_verifier_refuses_tsa_certificate_without_timestamping_eku(
    eku: tuple[x509.ObjectIdentifier, ...] | None, critical: bool, message: str
) -> None:
    pki = make_pki(eku=eku, eku_critical=critical)
    response = pki_response(pki, MOMENT)
    with pytest.raises(TimestampError, match=message):
        verify_response(response, digest=DIGEST, trust_anchors=[pki.root])


def test_verifier_refuses_expired_tsa_certificate_at_gen_time() -> None:
    pki = make_pki(
        leaf_from=datetime(2020, 1, 1, tzinfo=UTC), leaf_to=datetime(2025, 1, 1, tzinfo=UTC)
    )
    response = pki_response(pki, datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(TimestampError, match="outside the TSA certificate's validity"):
        verify_response(response, digest=DIGEST, trust_anchors=[pki.root])
    # Not yet valid is refused the same way.
    early = pki_response(pki, datetime(2019, 6, 1, tzinfo=UTC))
    with pytest.raises(TimestampError, match="outside the TSA certificate's validity"):
        verify_response(early, digest=DIGEST, trust_anchors=[pki.root])
    # Inside the validity it verifies, and stays verifiable after expiry (checked at genTime).
    good = pki_response(pki, datetime(2024, 6, 1, tzinfo=UTC))
    info = verify_response(good, digest=DIGEST, trust_anchors=[pki.root])
    assert info.gen_time == datetime(2024, 6, 1, tzinfo=UTC)
    # ... unless the caller asks for validity at a later time.
    with pytest.raises(TimestampError, match="not valid at 2046"):
        verify_response(good, digest=DIGEST, trust_anchors=[pki.root],
                        at_time=datetime(2046, 1, 1, tzinfo=UTC))  # fmt: skip


def test_verifier_refuses_root_expired_at_gen_time() -> None:
    pki = make_pki(root_to=datetime(2030, 1, 1, tzinfo=UTC))
    response = pki_response(pki, datetime(2031, 1, 1, tzinfo=UTC))
    with pytest.raises(TimestampError, match="Test root is not valid at 2031"):
        verify_response(response, digest=DIGEST, trust_anchors=[pki.root])


def test_verifier_refuses_sha1_imprint(openssl_rsa: OpenSSLTSA, tmp_path: Path) -> None:
    sha1 = hashlib.sha1(CHECKPOINT).digest()
    query = tmp_path / "q.tsq"
    code, out = run_openssl("ts", "-query", "-digest", sha1.hex(), "-sha1", "-cert", "-out", query)
    assert code == 0, out
    response = openssl_rsa.reply(query.read_bytes())
    code, out = run_openssl("ts", "-reply", "-in", _write(tmp_path / "r.tsr", response), "-text")
    assert "Status: Granted." in out and "Hash Algorithm: sha1" in out  # openssl grants it
    with pytest.raises(TimestampError, match="uses sha1, not SHA-256"):
        verify_response(response, digest=sha1, trust_anchors=[openssl_rsa.ca_certificate])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"garbage", b"\x30\x82\xff\xff", b"\x30\x00"])
def test_verifier_refuses_garbage(garbage: bytes, stamped: StampResult) -> None:
    with pytest.raises(TimestampError, match="malformed"):
        verify_response(garbage, digest=DIGEST, trust_anchors=[stamped.info.chain[-1]])
    with pytest.raises(TimestampError, match="malformed"):
        verify_token(garbage, digest=DIGEST, trust_anchors=[stamped.info.chain[-1]])


def test_verifier_refuses_trailing_bytes(stamped: StampResult) -> None:
    with pytest.raises(TimestampError, match="malformed"):
        verify_response(stamped.response + b"\x00", digest=DIGEST,
                        trust_anchors=[stamped.info.chain[-1]])  # fmt: skip


def test_verifier_reports_rejection_status_text(builtin_ec: tuple[BuiltinTSA, Path]) -> None:
    tsa = builtin_ec[0]
    rejection = tsa.respond(b"not a request")
    with pytest.raises(TimestampError) as caught:
        verify_response(rejection, digest=DIGEST, trust_anchors=[tsa.ca_certificate])
    assert caught.value.message == (
        "the TSA did not grant the timestamp: status rejection (bad_data_format): "
        "the request is not a DER TimeStampReq"
    )
    with pytest.raises(TimestampError, match="status rejection"):
        token_from_response(rejection)


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_every_bit_flip_is_refused_cleanly(stamped: StampResult) -> None:
    """Corruption anywhere but the (unsigned) status is refused, and only as TimestampError."""
    anchor = stamped.info.chain[-1]
    # SEQUENCE header (4 bytes), then PKIStatusInfo 30 03 02 01 00: bytes 4..8.
    assert stamped.response[4:9] == bytes.fromhex("3003020100")
    accepted = []
    for at in range(len(stamped.response)):
        for bit in (0x01, 0x80):
            corrupt = bytearray(stamped.response)
            corrupt[at] ^= bit
            try:
                info = verify_response(bytes(corrupt), digest=DIGEST, trust_anchors=[anchor])
            except TimestampError:
                continue
            accepted.append(at)
            assert info.digest == DIGEST and info.serial == stamped.info.serial
    assert all(at < 9 for at in accepted), accepted


def test_token_helpers_round_trip(stamped: StampResult) -> None:
    anchor = stamped.info.chain[-1]
    token = token_from_response(stamped.response)
    assert token == stamped.token
    assert verify_token(token, digest=DIGEST, trust_anchors=[anchor]) == stamped.info
    assert response_from_token(token) == stamped.response
    assert gen_time_of(stamped.response) == stamped.info.gen_time
    with pytest.raises(TimestampError, match="malformed"):
        response_from_token(b"\x01\x02")


def test_verifier_follows_intermediates() -> None:
    pki = make_pki(intermediate=True)
    response = pki_response(pki, MOMENT)
    with pytest.raises(TimestampError, match="does not chain"):
        verify_response(response, digest=DIGEST, trust_anchors=[pki.root])
    info = verify_response(response, digest=DIGEST, trust_anchors=[pki.root],
                           untrusted=pki.intermediates)  # fmt: skip
    assert info.chain == [pki.leaf, *pki.intermediates, pki.root]

    limited = make_pki(intermediate=True, root_path_length=0)
    with pytest.raises(TimestampError, match="pathLenConstraint 0 exceeded"):
        verify_response(
            pki_response(limited, MOMENT),
            digest=DIGEST,
            trust_anchors=[limited.root],
            untrusted=limited.intermediates,
        )
    not_ca = make_pki(intermediate=True, intermediate_is_ca=False)
    with pytest.raises(TimestampError, match="basicConstraints CA:FALSE"):
        verify_response(pki_response(not_ca, MOMENT), digest=DIGEST,
                        trust_anchors=[not_ca.root], untrusted=not_ca.intermediates)  # fmt: skip


def test_verifier_refuses_ess_naming_another_certificate() -> None:
    """Same key, another certificate: the signature holds, the ESS attribute does not."""
    pki = make_pki()
    twin = _cert("Test TSA", "Test root", pki.leaf_key.public_key(), pki.issuer_key,
                 datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC), ca=False,
                 eku=[ExtendedKeyUsageOID.TIME_STAMPING])  # fmt: skip
    response = pki_response(PKI(pki.root, twin, pki.leaf_key, [], pki.issuer_key), MOMENT)
    resp = TimeStampResp.load(response)
    signed_data = resp["time_stamp_token"]["content"]
    # Point the token at the original certificate (sid and certificates), keep the signature.
    asn1_leaf = _asn1_cert(pki.leaf)
    signed_data["certificates"] = [asn1_leaf]
    signer_info = signed_data["signer_infos"][0]
    signer_info["sid"] = cms.SignerIdentifier(
        name="issuer_and_serial_number",
        value={"issuer": asn1_leaf.issuer, "serial_number": asn1_leaf.serial_number},
    )
    forged = resp.dump(force=True)
    with pytest.raises(TimestampError, match="ESS signingCertificateV2 does not name"):
        verify_response(forged, digest=DIGEST, trust_anchors=[pki.root])


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def test_verifier_accepts_rsa_pss_signatures() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pki = make_pki(leaf_key=key)
    resp = TimeStampResp.load(pki_response(pki, MOMENT))
    signer_info = resp["time_stamp_token"]["content"]["signer_infos"][0]
    signed = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    signer_info["signature_algorithm"] = {
        "algorithm": "rsassa_pss",
        "parameters": {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32,
        },
    }
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signer_info["signature"] = key.sign(signed, pss, hashes.SHA256())
    good = resp.dump(force=True)
    info = verify_response(good, digest=DIGEST, trust_anchors=[pki.root])
    assert info.tsa_certificate == pki.leaf
    signer_info["signature"] = key.sign(signed + b"x", pss, hashes.SHA256())
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_response(resp.dump(force=True), digest=DIGEST, trust_anchors=[pki.root])
