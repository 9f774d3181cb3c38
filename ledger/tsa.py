"""RFC 3161 time-stamp tokens: requests, our own token verifier, and a client for remote TSAs.

Every checkpoint of the log is timestamped: the token's message imprint is SHA-256 of the
checkpoint file's exact bytes, so ``openssl ts -verify -data checkpoint -in checkpoint.tsr
-CAfile ca.pem -untrusted tsa.pem`` checks it without this software.

Requests to remote TSAs are built with rfc3161ng (always SHA-256, a random nonce and certReq
set; its own defaults are SHA-1 and no nonce); rfc3161ng and requests are imported only then,
since together they cost 0.1 s of start-up that every command stamping with the built-in TSA
would otherwise pay. Tokens are never trusted to the client library: rfc3161ng
checks no certificate chain and verifies RSA only, so :func:`verify_response` does the whole
check itself with asn1crypto and cryptography: status, imprint, nonce, the CMS signature
(RSA PKCS#1 v1.5, RSA-PSS, ECDSA), the signed attributes, the ESS signing-certificate
attribute, the TSA certificate's extended key usage and its chain to a trust anchor at genTime.

:class:`BuiltinTSA` is the embedded default (its own CA, asn1crypto structures signed with
cryptography); it gives no time independent of the operator. :class:`RemoteTSA` asks licensed
third-party TSAs. Both implement the :class:`TimestampAuthority` protocol.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import ConfigError
from ledger.errors import TimestampError

__all__ = [
    "BUILTIN_TSA_FILES",
    "BUILTIN_TSA_POLICY",
    "HASH_ALGORITHMS",
    "ID_CT_TST_INFO",
    "PROJECT_OID_ARC",
    "QUERY_CONTENT_TYPE",
    "REPLY_CONTENT_TYPE",
    "BuiltinTSA",
    "Clock",
    "KeyType",
    "RemoteTSA",
    "StampResult",
    "TimeStampResp",
    "TimestampAuthority",
    "TokenInfo",
    "builtin_request",
    "gen_time_of",
    "load_pem_certificates",
    "make_request",
    "parse_tsa_urls",
    "response_from_token",
    "stamp_result",
    "token_from_response",
    "utc_now",
    "verify_response",
    "verify_token",
]

# Our own OID arc: a UUID-derived OID (ITU-T X.667 / RFC 4122 section 1, arc 2.25), which needs
# no registration and cannot collide with anyone else's. Sub-arc 1 holds timestamp policies.
PROJECT_OID_ARC = "2.25.331413799814730529143980913409064555702"
BUILTIN_TSA_POLICY = PROJECT_OID_ARC + ".1.1"
"""TSA policy of the built-in TSA, version 1: genTime is the operator's own system clock, no
accuracy is claimed, and no time source independent of the operator stands behind it."""

QUERY_CONTENT_TYPE = "application/timestamp-query"  # RFC 3161 section 3.4
REPLY_CONTENT_TYPE = "application/timestamp-reply"

HASH_ALGORITHMS: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}
"""Message-imprint and signature hash algorithms we accept, with their digest sizes. SHA-1 is
refused: a SHA-1 imprint can be matched by a chosen-prefix collision."""

_CRYPTO_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

ID_CT_TST_INFO = "1.2.840.113549.1.9.16.1.4"  # RFC 3161 section 2.4.2
_GRANTED = ("granted", "granted_with_mods")
_MAX_CHAIN_DEPTH = 8
_MAX_RESPONSE_BYTES = 1 << 20
# Exceptions asn1crypto raises (lazily, on first access) for malformed input.
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """TimeStampResp of RFC 3161 section 2.4.2, with ``timeStampToken`` OPTIONAL as the RFC says.

    asn1crypto's ``tsp.TimeStampResp`` declares the token required, so it can neither parse nor
    build a rejection; this class does both.
    """

    _fields = [  # noqa: RUF012 (asn1crypto's declarative spec)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class TokenInfo:
    """What a verified time-stamp token says, and who said it."""

    gen_time: datetime
    """genTime of the TSTInfo, an aware UTC datetime."""
    serial: int
    policy: str
    """The TSA policy OID, dotted."""
    nonce: int | None
    hash_algorithm: str
    """Message-imprint algorithm: ``sha256``, ``sha384`` or ``sha512``."""
    digest: bytes
    """The message imprint (equal to the digest that was verified)."""
    tsa_certificate: x509.Certificate
    chain: list[x509.Certificate] = field(hash=False)
    """Leaf (the TSA certificate) first, ending with the trust anchor it chains to."""
    tsa_name: str
    """RFC 4514 subject of the TSA certificate."""


@dataclass(frozen=True)
class StampResult:
    """A granted, verified timestamp and the certificates needed to check it offline."""

    response: bytes
    """DER TimeStampResp (status granted, with the token): the ``checkpoint.tsr`` file."""
    info: TokenInfo
    tsa_pem: bytes
    """The TSA certificate and any intermediates, PEM: the ``tsa.pem`` (``-untrusted``) file."""
    ca_pem: bytes
    """The trust anchor the chain ends in, PEM: the ``ca.pem`` (``-CAfile``) file."""
    source: str
    """Where the token came from: ``builtin`` or the URL of the remote TSA."""

    @property
    def token(self) -> bytes:
        """The bare TimeStampToken (DER ContentInfo) inside :attr:`response`."""
        return token_from_response(self.response)


@runtime_checkable
class TimestampAuthority(Protocol):
    """Anything that turns a SHA-256 digest into a verified RFC 3161 timestamp."""

    def stamp(self, digest: bytes) -> StampResult:
        """Timestamp ``digest`` (SHA-256, 32 bytes); raise TimestampError when it cannot."""
        ...


@contextmanager
def _parsing(what: str) -> Iterator[None]:
    """Turn asn1crypto's lazy parse errors into a TimestampError naming ``what``."""
    try:
        yield
    except _PARSE_ERRORS as exc:
        raise TimestampError(f"malformed {what}: {exc}") from None


# --- requests --------------------------------------------------------------------------------


def _check_request(digest: bytes, nonce: int, hash_algorithm: str) -> None:
    size = HASH_ALGORITHMS.get(hash_algorithm)
    if size is None:
        raise TimestampError(f"unsupported hash algorithm {hash_algorithm!r}")
    if len(digest) != size:
        raise TimestampError(f"a {hash_algorithm} digest has {size} bytes, not {len(digest)}")
    if nonce < 0:
        raise TimestampError("the nonce must not be negative")


def make_request(
    digest: bytes, *, nonce: int, hash_algorithm: str = "sha256", cert_req: bool = True
) -> bytes:
    """Return a DER TimeStampReq for ``digest`` (the hash itself, not the data).

    Built with rfc3161ng, then read back: rfc3161ng has put a SHA-1 digest under a SHA-256
    label before (``make_timestamp_request(data=...)``), so we check the imprint we send.
    """
    _check_request(digest, nonce, hash_algorithm)
    import rfc3161ng

    request = rfc3161ng.make_timestamp_request(
        digest=digest,
        hashname=hash_algorithm,
        include_tsa_certificate=cert_req,
        nonce=nonce,
    )
    der: bytes = rfc3161ng.encode_timestamp_request(request)
    parsed = tsp.TimeStampReq.load(der, strict=True)
    imprint = parsed["message_imprint"]
    if (
        imprint["hash_algorithm"]["algorithm"].native != hash_algorithm
        or imprint["hashed_message"].native != digest
        or parsed["nonce"].native != nonce
        or parsed["cert_req"].native is not cert_req
    ):
        raise TimestampError("the timestamp request was not built as asked")
    return der


def builtin_request(digest: bytes, *, nonce: int) -> bytes:
    """The DER TimeStampReq the built-in TSA answers in-process: SHA-256, ``nonce``, certReq.

    Built with asn1crypto, like the built-in TSA's tokens, so stamping never loads rfc3161ng;
    the bytes are those :func:`make_request` gives (a test compares them).
    """
    _check_request(digest, nonce, "sha256")
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                # Parameters absent, as RFC 5754 says for SHA-2 and rfc3161ng writes them.
                "hash_algorithm": {"algorithm": "sha256", "parameters": None},
                "hashed_message": digest,
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return bytes(request.dump())


# --- response helpers ------------------------------------------------------------------------


def _load_response(tsr_der: bytes) -> TimeStampResp:
    with _parsing("TimeStampResp"):
        resp: TimeStampResp = TimeStampResp.load(bytes(tsr_der), strict=True)
        resp["status"].native  # noqa: B018 (forces the lazy parse here)
    return resp


def _check_status(resp: TimeStampResp) -> cms.ContentInfo:
    """Return the token of a granted response; raise with the TSA's own words otherwise."""
    with _parsing("PKIStatusInfo"):
        info = resp["status"]
        status = info["status"].native
        texts = info["status_string"].native or []
        failures = sorted(info["fail_info"].native or [])
        token = resp["time_stamp_token"]
    if status not in _GRANTED:
        message = f"the TSA did not grant the timestamp: status {status}"
        if failures:
            message += f" ({', '.join(failures)})"
        if texts:
            message += ": " + "; ".join(str(text) for text in texts)
        raise TimestampError(message)
    if not isinstance(token, cms.ContentInfo):
        raise TimestampError("the response is granted but carries no timeStampToken")
    return token


def token_from_response(tsr_der: bytes) -> bytes:
    """Return the DER TimeStampToken of a granted TimeStampResp (not verified)."""
    token = _check_status(_load_response(tsr_der))
    return bytes(token.dump())


def response_from_token(token_der: bytes) -> bytes:
    """Wrap a DER TimeStampToken into a granted TimeStampResp (what ``openssl ts`` reads)."""
    with _parsing("TimeStampToken"):
        token = cms.ContentInfo.load(bytes(token_der), strict=True)
        token["content_type"].native  # noqa: B018
    resp = TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})
    return bytes(resp.dump())


def gen_time_of(tsr_der: bytes) -> datetime:
    """Return the genTime of a granted TimeStampResp, in UTC, WITHOUT verifying the token."""
    token = _check_status(_load_response(tsr_der))
    tst_info, _ = _tst_info(token)
    with _parsing("TSTInfo"):
        gen_time = tst_info["gen_time"].native
    return _utc(gen_time)


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Load one or more PEM certificates (a ``ca.pem`` / ``tsa.pem`` file)."""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TimestampError(f"not PEM certificates: {exc}") from None
    return certificates


def parse_tsa_urls(value: str) -> list[str]:
    """Split a comma-separated list of TSA URLs (``TIEZHENG_TSA_URL``) and check each."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    if not urls:
        raise ConfigError("no TSA URL given")
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"a TSA URL must be http:// or https://, not {url!r}")
    return urls


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TimestampError(f"not an aware time: {value!r}")
    return value.astimezone(UTC)


# --- the verifier ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cert:
    """One certificate seen by both libraries: cryptography checks, asn1crypto matches names."""

    crypto: x509.Certificate
    asn1: asn1_x509.Certificate

    @classmethod
    def of(cls, certificate: x509.Certificate) -> _Cert:
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(certificate, asn1_x509.Certificate.load(der))

    @classmethod
    def from_asn1(cls, certificate: asn1_x509.Certificate) -> _Cert:
        der = bytes(certificate.dump())
        try:
            crypto = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion) as exc:
            raise TimestampError(f"a certificate in the token is malformed: {exc}") from None
        return cls(crypto, asn1_x509.Certificate.load(der))

    @property
    def der(self) -> bytes:
        return self.crypto.public_bytes(serialization.Encoding.DER)

    @property
    def name(self) -> str:
        return self.crypto.subject.rfc4514_string()


def _tst_info(token: cms.ContentInfo) -> tuple[tsp.TSTInfo, bytes]:
    """Return the TSTInfo of a token and the exact eContent bytes it was parsed from."""
    with _parsing("TimeStampToken"):
        if token["content_type"].native != "signed_data":
            raise TimestampError("the token is not a CMS SignedData")
        encap = token["content"]["encap_content_info"]
        if encap["content_type"].dotted != ID_CT_TST_INFO:
            raise TimestampError(
                f"the token's eContentType is {encap['content_type'].dotted}, not id-ct-TSTInfo"
            )
        content = encap["content"]
        if not isinstance(content, core.ParsableOctetString | core.OctetString):
            raise TimestampError("the token carries no eContent (TSTInfo)")
        econtent = bytes(content)
    with _parsing("TSTInfo"):
        tst_info = tsp.TSTInfo.load(econtent, strict=True)
        tst_info.native  # noqa: B018
    return tst_info, econtent


def _signer_certificate(sid: cms.SignerIdentifier, candidates: Sequence[_Cert]) -> _Cert:
    with _parsing("signerInfo sid"):
        kind = sid.name
        if kind == "issuer_and_serial_number":
            issuer = sid.chosen["issuer"]
            serial = sid.chosen["serial_number"].native
            for cand in candidates:
                if cand.asn1.serial_number == serial and _same_name(cand.asn1.issuer, issuer):
                    return cand
            wanted = f"issuer {issuer.human_friendly}, serial {serial:x}"
        else:
            key_id = sid.chosen.native
            for cand in candidates:
                if cand.asn1.key_identifier == key_id:
                    return cand
            wanted = f"subject key identifier {bytes(key_id).hex()}"
    raise TimestampError(
        f"the TSA certificate ({wanted}) is neither in the token nor among the given certificates"
    )


def _same_name(a: asn1_x509.Name, b: asn1_x509.Name) -> bool:
    """Names equal by RFC 5280 section 7.1 comparison (identical encodings first: cheap)."""
    return bool(a.dump() == b.dump() or a == b)


def _attributes(signer_info: cms.SignerInfo) -> dict[str, Any]:
    """Signed attributes by type; each must appear once with one value (RFC 5652 section 11)."""
    with _parsing("signed attributes"):
        attrs = signer_info["signed_attrs"]
        if not isinstance(attrs, cms.CMSAttributes) or len(attrs) == 0:
            raise TimestampError("the token has no signed attributes (RFC 3161 requires them)")
        found: dict[str, Any] = {}
        for attr in attrs:
            kind = attr["type"].dotted if attr["type"].native is None else attr["type"].native
            if kind in found:
                raise TimestampError(f"signed attribute {kind} appears twice")
            values = attr["values"]
            if len(values) != 1:
                raise TimestampError(f"signed attribute {kind} must have exactly one value")
            found[kind] = values[0]
    return found


def _hash_name(algorithm: Any, what: str) -> str:
    name = algorithm["algorithm"].native
    if name not in HASH_ALGORITHMS:
        raise TimestampError(f"{what} {name} is not accepted (only SHA-256, SHA-384, SHA-512)")
    # RFC 5754 section 2: the parameters are absent or NULL, nothing else.
    if bytes(algorithm["parameters"].dump()) not in (b"", b"\x05\x00"):
        raise TimestampError(f"{what} {name} has parameters")
    return str(name)


def _verify_signature(signer_info: cms.SignerInfo, signed_attrs_der: bytes, signer: _Cert) -> None:
    """Check the signerInfo signature over the DER SET of signed attributes (RFC 5652 5.4)."""
    if not signed_attrs_der:
        raise TimestampError("the token has no signed attributes (RFC 3161 requires them)")
    with _parsing("signerInfo"):
        digest_name = _hash_name(signer_info["digest_algorithm"], "signer digest algorithm")
        # The signature covers the attributes with the universal SET tag, not the [0] tag.
        signed = b"\x31" + signed_attrs_der[1:]
        signature = bytes(signer_info["signature"].native)
        algorithm = signer_info["signature_algorithm"]
        kind = algorithm.signature_algo
        try:
            sig_hash = str(algorithm.hash_algo)
        except ValueError:
            sig_hash = digest_name  # rsaEncryption / id-ecPublicKey: the digest algorithm rules
    if sig_hash not in HASH_ALGORITHMS:
        raise TimestampError(f"signature hash {sig_hash} is not accepted")
    key = signer.crypto.public_key()
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), _CRYPTO_HASHES[sig_hash]())
        elif kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, _pss_padding(algorithm), _CRYPTO_HASHES[sig_hash]())
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(_CRYPTO_HASHES[sig_hash]()))
        else:
            raise TimestampError(
                f"signature algorithm {kind} does not fit the TSA's "
                f"{type(key).__name__.lstrip('_')} key or is not supported"
            )
    except InvalidSignature:
        raise TimestampError(
            f"the token's signature does not verify with the key of {signer.name}"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TimestampError(f"the token's signature cannot be checked: {exc}") from None


def _pss_padding(algorithm: Any) -> padding.PSS:
    with _parsing("RSASSA-PSS parameters"):
        params = algorithm["parameters"]
        mgf = params["mask_gen_algorithm"]
        if mgf["algorithm"].native != "mgf1":
            raise TimestampError("RSASSA-PSS with a mask generation other than MGF1")
        mgf_hash = _hash_name(mgf["parameters"], "MGF1 hash")
        if params["trailer_field"].native != "trailer_field_bc":
            raise TimestampError("RSASSA-PSS with an unknown trailer field")
        salt = int(params["salt_length"].native)
    return padding.PSS(mgf=padding.MGF1(_CRYPTO_HASHES[mgf_hash]()), salt_length=salt)


def _check_ess(attrs: dict[str, Any], signer: _Cert) -> None:
    """ESS signing-certificate attribute names the signer (RFC 3161 2.4.1, RFC 5816, 5035)."""
    v2 = attrs.get("signing_certificate_v2")
    v1 = attrs.get("signing_certificate")
    if v1 is None and v2 is None:
        # RFC 3161 section 2.4.1: the attribute MUST be included; OpenSSL refuses without it.
        raise TimestampError("the token has no ESS signing-certificate attribute")
    with _parsing("ESS signing-certificate attribute"):
        for value, version in ((v2, "V2"), (v1, "")):
            if value is None:
                continue
            cert_ids = value["certs"]
            if len(cert_ids) == 0:
                raise TimestampError(f"empty ESS signingCertificate{version}")
            first = cert_ids[0]  # the first ESSCertID identifies the signer
            if version:
                name = _hash_name(first["hash_algorithm"], "ESS certificate hash")
            else:
                name = "sha1"  # ESS v1 is SHA-1 by definition (RFC 2634 section 5.4)
            if hashlib.new(name, signer.der).digest() != bytes(first["cert_hash"].native):
                raise TimestampError(
                    f"ESS signingCertificate{version} does not name the certificate that "
                    f"signed ({signer.name})"
                )
            issuer_serial = first["issuer_serial"]
            if isinstance(issuer_serial, tsp.IssuerSerial):
                names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
                if issuer_serial["serial_number"].native != signer.asn1.serial_number or (
                    names and not any(_same_name(n, signer.asn1.issuer) for n in names)
                ):
                    raise TimestampError(
                        f"ESS signingCertificate{version} issuerSerial does not match {signer.name}"
                    )


def _check_tsa_usage(cert: x509.Certificate) -> None:
    """RFC 3161 section 2.3: EKU must be critical and only id-kp-timeStamping."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError(
            f"the TSA certificate {cert.subject.rfc4514_string()} has no extendedKeyUsage "
            "timeStamping"
        ) from None
    except ValueError as exc:
        raise TimestampError(f"the TSA certificate's extensions are malformed: {exc}") from None
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError(
            f"the TSA certificate {cert.subject.rfc4514_string()} has extendedKeyUsage "
            f"{', '.join(oid.dotted_string for oid in eku.value)}, not only timeStamping"
        )
    if not eku.critical:
        raise TimestampError("the TSA certificate's extendedKeyUsage timeStamping is not critical")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise TimestampError("the TSA certificate's keyUsage allows no digital signature")


def _valid_at(cert: x509.Certificate, when: datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _validity_text(cert: x509.Certificate) -> str:
    return f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}"


def _can_issue(cert: x509.Certificate, below: int, *, anchor: bool) -> str | None:
    """Why ``cert`` may not issue a chain with ``below`` CA certificates under it (or None)."""
    try:
        constraints: x509.BasicConstraints | None = cert.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value
    except x509.ExtensionNotFound:
        constraints = None
    except ValueError as exc:
        return f"malformed extensions ({exc})"
    # A configured anchor without basicConstraints (an old v1 root) is trusted as configured.
    if constraints is None and not anchor:
        return "no basicConstraints CA:TRUE"
    if constraints is not None:
        if not constraints.ca:
            return "basicConstraints CA:FALSE"
        if constraints.path_length is not None and below > constraints.path_length:
            return f"pathLenConstraint {constraints.path_length} exceeded"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if usage.key_cert_sign else "keyUsage without keyCertSign"


def _build_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    when: datetime,
) -> list[x509.Certificate]:
    """Find a path leaf -> ... -> anchor whose signatures, validity and CA flags all hold."""
    problems: list[str] = []

    def walk(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        cert = path[-1]
        if cert in anchors:
            return path
        if len(path) > _MAX_CHAIN_DEPTH:
            problems.append("chain too long")
            return None
        pool = [(c, True) for c in anchors] + [(c, False) for c in intermediates]
        for issuer, is_anchor in pool:
            if issuer in path or issuer.subject != cert.issuer:
                continue
            who = issuer.subject.rfc4514_string()
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                problems.append(f"{who} did not sign {cert.subject.rfc4514_string()}")
                continue
            reason = _can_issue(issuer, len(path) - 1, anchor=is_anchor)
            if reason is not None:
                problems.append(f"{who} may not issue certificates: {reason}")
                continue
            if not _valid_at(issuer, when):
                problems.append(
                    f"{who} is not valid at {when.isoformat()} (valid {_validity_text(issuer)})"
                )
                continue
            found = walk([*path, issuer])
            if found is not None:
                return found
        return None

    chain = walk([leaf])
    if chain is None:
        detail = "; ".join(dict.fromkeys(problems)) or (
            f"no trusted issuer named {leaf.issuer.rfc4514_string()}"
        )
        raise TimestampError(
            f"the TSA certificate {leaf.subject.rfc4514_string()} does not chain to a trust "
            f"anchor: {detail}"
        )
    return chain


def verify_token(
    token_der: bytes,
    *,
    digest: bytes,
    trust_anchors: Sequence[x509.Certificate],
    untrusted: Sequence[x509.Certificate] = (),
    nonce: int | None = None,
    at_time: datetime | None = None,
) -> TokenInfo:
    """Verify a bare DER TimeStampToken (ContentInfo); see :func:`verify_response`."""
    with _parsing("TimeStampToken"):
        token = cms.ContentInfo.load(bytes(token_der), strict=True)
        token["content_type"].native  # noqa: B018
    return _verify(token, digest, trust_anchors, untrusted, nonce, at_time)


def verify_response(
    tsr_der: bytes,
    *,
    digest: bytes,
    trust_anchors: Sequence[x509.Certificate],
    untrusted: Sequence[x509.Certificate] = (),
    nonce: int | None = None,
    at_time: datetime | None = None,
) -> TokenInfo:
    """Verify a DER TimeStampResp for ``digest``; return what it says or raise TimestampError.

    Checks, in order: status granted; the token is a SignedData over id-ct-TSTInfo; the message
    imprint is SHA-256/384/512 and equals ``digest``; the nonce, when given; the signer's
    certificate (from the token or ``untrusted``, found by the signerInfo sid); the signature
    over the signed attributes (RSA PKCS#1 v1.5, RSA-PSS, ECDSA); the contentType and
    messageDigest attributes; the ESS signing-certificate(-v2) attribute; extendedKeyUsage
    timeStamping (critical) and genTime within the TSA certificate's validity; a chain to one
    of ``trust_anchors`` valid at ``at_time`` (default: genTime, so tokens stay verifiable
    after the TSA certificate expires).
    """
    token = _check_status(_load_response(tsr_der))
    return _verify(token, digest, trust_anchors, untrusted, nonce, at_time)


def _verify(
    token: cms.ContentInfo,
    digest: bytes,
    trust_anchors: Sequence[x509.Certificate],
    untrusted: Sequence[x509.Certificate],
    nonce: int | None,
    at_time: datetime | None,
) -> TokenInfo:
    # Malformed certificates and keys surface lazily (on first use) in both libraries; the
    # verifier returns a TokenInfo or raises TimestampError, nothing else.
    try:
        return _verify_checked(token, digest, trust_anchors, untrusted, nonce, at_time)
    except (*_PARSE_ERRORS, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise TimestampError(f"malformed token or certificate: {exc}") from None


def _verify_checked(
    token: cms.ContentInfo,
    digest: bytes,
    trust_anchors: Sequence[x509.Certificate],
    untrusted: Sequence[x509.Certificate],
    nonce: int | None,
    at_time: datetime | None,
) -> TokenInfo:
    if not trust_anchors:
        raise TimestampError("no trust anchors given to verify the timestamp against")
    tst_info, econtent = _tst_info(token)
    with _parsing("TSTInfo"):
        version = tst_info["version"].native
        imprint = tst_info["message_imprint"]
        imprint_alg = imprint["hash_algorithm"]["algorithm"].native
        imprint_value = bytes(imprint["hashed_message"].native)
        token_nonce = tst_info["nonce"].native
        gen_time = _utc(tst_info["gen_time"].native)
        serial = int(tst_info["serial_number"].native)
        policy = str(tst_info["policy"].dotted)
        tsa_field = tst_info["tsa"]
    if version != "v1":
        raise TimestampError(f"TSTInfo version {version} is not v1")
    if imprint_alg not in HASH_ALGORITHMS:
        raise TimestampError(
            f"the message imprint uses {imprint_alg}, not SHA-256, SHA-384 or SHA-512"
        )
    if len(imprint_value) != HASH_ALGORITHMS[imprint_alg] or imprint_value != bytes(digest):
        raise TimestampError(
            f"message imprint mismatch: the token stamps {imprint_alg} {imprint_value.hex()}, "
            f"not {bytes(digest).hex()}"
        )
    if nonce is not None and token_nonce != nonce:
        raise TimestampError(f"nonce mismatch: sent {nonce}, the token has {token_nonce}")

    with _parsing("SignedData"):
        signed_data = token["content"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise TimestampError(f"the token has {len(signer_infos)} signers, not exactly one")
        signer_info = signer_infos[0]
        # The exact bytes the TSA signed, taken before anything is parsed: asn1crypto marks
        # parsed values as changed and would re-encode them on dump().
        signed_attrs_der = bytes(signer_info["signed_attrs"].dump())
        sid = signer_info["sid"]
        # RFC 5652 5.1 and 5.3: version 3 or more for a non-data eContentType; the signerInfo
        # version follows from the kind of sid.
        if signed_data["version"].native not in ("v3", "v4", "v5"):
            raise TimestampError(f"SignedData version {signed_data['version'].native} is not v3")
        sid_version = "v1" if sid.name == "issuer_and_serial_number" else "v3"
        if signer_info["version"].native != sid_version:
            raise TimestampError(
                f"signerInfo version {signer_info['version'].native} does not fit its sid"
            )
        listed = [_hash_name(a, "digest algorithm") for a in signed_data["digest_algorithms"]]
        if _hash_name(signer_info["digest_algorithm"], "signer digest algorithm") not in listed:
            raise TimestampError("the signer's digest algorithm is not in digestAlgorithms")
        token_certs = [
            choice.chosen
            for choice in (signed_data["certificates"] or [])
            if choice.name == "certificate"
        ]
    candidates = [_Cert.from_asn1(c) for c in token_certs] + [_Cert.of(c) for c in untrusted]
    signer = _signer_certificate(sid, candidates)
    _verify_signature(signer_info, signed_attrs_der, signer)

    attrs = _attributes(signer_info)
    with _parsing("signed attributes"):
        content_type = attrs.get("content_type")
        if content_type is None or content_type.dotted != ID_CT_TST_INFO:
            raise TimestampError("the contentType signed attribute is not id-ct-TSTInfo")
        signed_digest = attrs.get("message_digest")
        if signed_digest is None:
            raise TimestampError("the token has no messageDigest signed attribute")
        digest_name = _hash_name(signer_info["digest_algorithm"], "signer digest algorithm")
        if hashlib.new(digest_name, econtent).digest() != bytes(signed_digest.native):
            raise TimestampError("the messageDigest attribute does not match the TSTInfo")
    _check_ess(attrs, signer)

    tsa_cert = signer.crypto
    _check_tsa_usage(tsa_cert)
    if not _valid_at(tsa_cert, gen_time):
        raise TimestampError(
            f"genTime {gen_time.isoformat()} is outside the TSA certificate's validity "
            f"({_validity_text(tsa_cert)})"
        )
    with _parsing("TSTInfo tsa name"):
        # RFC 3161 2.4.2: the tsa field, when a directoryName, names the signer's subject.
        if (
            isinstance(tsa_field, asn1_x509.GeneralName)
            and tsa_field.name == "directory_name"
            and not _same_name(tsa_field.chosen, signer.asn1.subject)
        ):
            raise TimestampError(
                f"the TSTInfo names TSA {tsa_field.chosen.human_friendly}, but {signer.name} signed"
            )
    when = gen_time if at_time is None else _utc(at_time)
    if not _valid_at(tsa_cert, when):
        raise TimestampError(
            f"the TSA certificate is not valid at {when.isoformat()} "
            f"(valid {_validity_text(tsa_cert)})"
        )
    intermediates = [c.crypto for c in candidates if c.crypto != tsa_cert]
    chain = _build_chain(tsa_cert, intermediates, list(trust_anchors), when)
    return TokenInfo(
        gen_time=gen_time,
        serial=serial,
        policy=policy,
        nonce=token_nonce,
        hash_algorithm=str(imprint_alg),
        digest=imprint_value,
        tsa_certificate=tsa_cert,
        chain=chain,
        tsa_name=signer.name,
    )


def stamp_result(response: bytes, info: TokenInfo, source: str) -> StampResult:
    """Bundle a verified response with the PEMs of its chain (``tsa.pem``, ``ca.pem``)."""
    pem = serialization.Encoding.PEM
    untrusted = info.chain[:-1] or info.chain
    return StampResult(
        response=response,
        info=info,
        tsa_pem=b"".join(c.public_bytes(pem) for c in untrusted),
        ca_pem=info.chain[-1].public_bytes(pem),
        source=source,
    )


# --- the remote client -----------------------------------------------------------------------


class RemoteTSA:
    """An RFC 3161 client for one or more TSAs over HTTP (RFC 3161 section 3.4), tried in order.

    Every response is verified by :func:`verify_response` against ``trust_anchors``; a TSA that
    is down, slow, rejects, or answers with a token that does not verify is skipped.
    """

    def __init__(
        self,
        urls: Sequence[str],
        trust_anchors: Sequence[x509.Certificate],
        timeout: float = 10.0,
        *,
        untrusted: Sequence[x509.Certificate] = (),
    ) -> None:
        if isinstance(urls, str):
            urls = parse_tsa_urls(urls)
        if not urls:
            raise ConfigError("RemoteTSA needs at least one URL")
        if not trust_anchors:
            raise ConfigError("RemoteTSA needs trust anchors (the TSA's CA certificates)")
        if timeout <= 0:
            raise ConfigError("the TSA timeout must be positive")
        self.urls = parse_tsa_urls(",".join(urls))
        self.trust_anchors = list(trust_anchors)
        self.untrusted = list(untrusted)
        self.timeout = float(timeout)

    @classmethod
    def from_config(cls, urls: str, ca_file: Path, timeout: float = 10.0) -> RemoteTSA:
        """Build from ``TIEZHENG_TSA_URL`` (comma-separated) and ``TIEZHENG_TSA_CA_FILE``."""
        try:
            data = Path(ca_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the TSA CA file {ca_file}: {exc.strerror}") from None
        try:
            anchors = load_pem_certificates(data)
        except TimestampError as exc:
            raise ConfigError(f"the TSA CA file {ca_file}: {exc.message}") from None
        return cls(parse_tsa_urls(urls), anchors, timeout)

    def stamp(self, digest: bytes) -> StampResult:
        """Timestamp a SHA-256 ``digest`` at the first TSA that grants a token that verifies."""
        failures: list[str] = []
        for url in self.urls:
            nonce = secrets.randbits(64)
            request = make_request(digest, nonce=nonce)
            try:
                response = self._post(url, request)
                info = verify_response(
                    response,
                    digest=digest,
                    trust_anchors=self.trust_anchors,
                    untrusted=self.untrusted,
                    nonce=nonce,
                )
            except TimestampError as exc:
                failures.append(f"{url}: {exc.message}")
                continue
            return stamp_result(response, info, url)
        raise TimestampError("no TSA granted a valid timestamp: " + " | ".join(failures))

    def _post(self, url: str, request: bytes) -> bytes:
        import requests

        deadline = time.monotonic() + self.timeout
        try:
            with requests.post(
                url,
                data=request,
                headers={"Content-Type": QUERY_CONTENT_TYPE, "Accept": REPLY_CONTENT_TYPE},
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
            ) as reply:
                if reply.status_code != 200:
                    raise TimestampError(f"HTTP {reply.status_code} {reply.reason}")
                body = bytearray()
                for chunk in reply.iter_content(chunk_size=16384):
                    body += chunk
                    if len(body) > _MAX_RESPONSE_BYTES:
                        raise TimestampError("the response is larger than 1 MiB")
                    if time.monotonic() > deadline:
                        raise TimestampError(f"no complete answer within {self.timeout:g} s")
        except requests.Timeout:
            raise TimestampError(f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise TimestampError(f"cannot connect: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise TimestampError(f"request failed: {_reason(exc)}") from None
        return bytes(body)


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error (e.g. 'Connection refused'), not its wrapping."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = str(exc)
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]  # "[Errno 111] Connection refused"
    return text or type(exc).__name__


# --- the built-in TSA -------------------------------------------------------------------------
#
# It lets a fresh instance timestamp checkpoints with nothing else running, and its tokens
# verify with ``openssl ts -verify``. It gives no time independent of the operator: genTime is
# this machine's clock and the CA is the operator's own. For court use configure a third-party
# TSA (TIEZHENG_TSA_URL, TIEZHENG_TSA_CA_FILE).
#
# Keys: RSA-3072 by default. It is the algorithm every RFC 3161 verifier understands (rfc3161ng
# and many older tools verify RSA only) and gives about 128-bit security (NIST SP 800-57 part 1,
# table 2) for the certificates' 25 years. key_type="ec" (P-256) is much faster to create and
# gives smaller tokens.
#
# Directory layout: ca.pem, ca.key, tsa.pem, tsa.key (keys PKCS#8 PEM, mode 0600). The CA key is
# only used at creation; it stays in the directory so the operator can renew the TSA certificate.

Clock = Callable[[], datetime]
KeyType = Literal["rsa", "ec"]
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

BUILTIN_TSA_FILES = ("ca.pem", "ca.key", "tsa.pem", "tsa.key")
"""The files :meth:`BuiltinTSA.create` writes into its directory."""

_RSA_BITS = 3072
# Certificates start a little in the past so that a token made right after creation, or by a
# process whose clock is slightly behind, still falls inside their validity.
_BACKDATE = timedelta(minutes=5)


def utc_now() -> datetime:
    """The default clock: now, as an aware UTC datetime."""
    return datetime.now(UTC)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + years, day=28)


def _new_key(key_type: KeyType) -> SigningKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigError(f"unknown TSA key type {key_type!r} (use 'rsa' or 'ec')")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; O_EXCL so that nothing existing is ever overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not loosen or tighten it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _pem_key(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class BuiltinTSA:
    """An RFC 3161 TSA in-process: :meth:`respond` answers DER requests, :meth:`stamp` digests."""

    def __init__(
        self,
        *,
        ca_certificate: x509.Certificate,
        tsa_certificate: x509.Certificate,
        tsa_key: SigningKey,
        clock: Clock = utc_now,
        policy: str = BUILTIN_TSA_POLICY,
    ) -> None:
        if not isinstance(tsa_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError("the TSA key must be an RSA or EC private key")
        if tsa_key.public_key() != tsa_certificate.public_key():
            raise ConfigError("the TSA key does not belong to the TSA certificate")
        self.ca_certificate = ca_certificate
        self.tsa_certificate = tsa_certificate
        self._key = tsa_key
        self._clock = clock
        self.policy = policy
        der = tsa_certificate.public_bytes(serialization.Encoding.DER)
        self._tsa_der = der
        # asn1crypto parses lazily and caches inside its objects; tokens are built from fresh
        # copies of these bytes so that concurrent stamps share no mutable structure.
        parsed = asn1_x509.Certificate.load(der)
        self._subject_der = bytes(parsed.subject.dump())
        self._issuer_der = bytes(parsed.issuer.dump())
        self._serial = int(parsed.serial_number)

    # --- setup -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        name: str = "Tiezheng built-in TSA",
        years: int = 25,
        clock: Clock = utc_now,
        key_type: KeyType = "rsa",
    ) -> BuiltinTSA:
        """Create a CA and a TSA certificate (valid ``years``) in ``directory`` and load them.

        Refuses (ConfigError) if any of :data:`BUILTIN_TSA_FILES` already exists there.
        """
        directory = Path(directory)
        existing = [f for f in BUILTIN_TSA_FILES if (directory / f).exists()]
        if existing:
            raise ConfigError(
                f"refusing to overwrite the built-in TSA's {', '.join(existing)} in {directory}"
            )
        if years < 1:
            raise ConfigError("the TSA certificates must be valid for at least one year")
        start = clock().astimezone(UTC).replace(microsecond=0) - _BACKDATE
        end = _add_years(start, years)
        ca_key = _new_key(key_type)
        tsa_key = _new_key(key_type)
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tiezheng"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root CA"),
            ]
        )
        tsa_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tiezheng"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        tsa_cert = (
            x509.CertificateBuilder()
            .subject_name(tsa_name)
            .issuer_name(ca_name)
            .public_key(tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            # RFC 3161 section 2.3: only id-kp-timeStamping, and the extension MUST be critical.
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_new(directory / "ca.key", _pem_key(ca_key), 0o600)
            _write_new(directory / "tsa.key", _pem_key(tsa_key), 0o600)
            _write_new(directory / "ca.pem", ca_cert.public_bytes(pem), 0o644)
            _write_new(directory / "tsa.pem", tsa_cert.public_bytes(pem), 0o644)
        except FileExistsError as exc:
            raise ConfigError(f"refusing to overwrite {exc.filename}") from None
        except OSError as exc:
            raise ConfigError(f"cannot write the built-in TSA into {directory}: {exc}") from None
        return cls(ca_certificate=ca_cert, tsa_certificate=tsa_cert, tsa_key=tsa_key, clock=clock)

    @classmethod
    def load(cls, directory: Path, *, clock: Clock = utc_now) -> BuiltinTSA:
        """Load the TSA that :meth:`create` wrote into ``directory``."""
        directory = Path(directory)
        data: dict[str, bytes] = {}
        for file in ("ca.pem", "tsa.pem", "tsa.key"):
            try:
                data[file] = (directory / file).read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the built-in TSA's {file} in {directory}: {exc.strerror}"
                ) from None
        try:
            ca_cert = x509.load_pem_x509_certificate(data["ca.pem"])
            tsa_cert = x509.load_pem_x509_certificate(data["tsa.pem"])
            # OpenSSL's RSA key check costs 0.1 s, on every command that stamps. The key is
            # our own, written by create(); what matters is that it belongs to the TSA
            # certificate, which __init__ checks, and every token is verified before use.
            key = serialization.load_pem_private_key(
                data["tsa.key"], password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"the built-in TSA in {directory} is unreadable: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{directory / 'tsa.key'} is not an RSA or EC key")
        try:
            tsa_cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise ConfigError(
                f"{directory / 'tsa.pem'} was not issued by {directory / 'ca.pem'}"
            ) from None
        return cls(ca_certificate=ca_cert, tsa_certificate=tsa_cert, tsa_key=key, clock=clock)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM (``ca.pem``)."""
        return self.ca_certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def tsa_pem(self) -> bytes:
        """The TSA certificate, PEM (``tsa.pem``)."""
        return self.tsa_certificate.public_bytes(serialization.Encoding.PEM)

    # --- the TSA -----------------------------------------------------------------------------

    def stamp(self, digest: bytes) -> StampResult:
        """Timestamp a SHA-256 ``digest``: request (random nonce, certReq), respond, verify."""
        nonce = secrets.randbits(64)
        response = self.respond(builtin_request(digest, nonce=nonce))
        info = verify_response(
            response,
            digest=digest,
            trust_anchors=[self.ca_certificate],
            untrusted=[self.tsa_certificate],
            nonce=nonce,
        )
        return stamp_result(response, info, "builtin")

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp; never raises for bad input."""
        try:
            request = tsp.TimeStampReq.load(bytes(request_der), strict=True)
            version = request["version"].native
            imprint = request["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            parameters = imprint["hash_algorithm"]["parameters"].native
            hashed = imprint["hashed_message"].native
            policy = request["req_policy"].dotted if request["req_policy"].native else None
            nonce = request["nonce"].native
            cert_req = bool(request["cert_req"].native)
            extensions = request["extensions"].native
        except _PARSE_ERRORS:
            return _rejection("bad_data_format", "the request is not a DER TimeStampReq")
        if version != "v1":
            return _rejection("bad_data_format", f"TimeStampReq version {version} is not v1")
        if algorithm not in HASH_ALGORITHMS or parameters is not None:
            return _rejection("bad_alg", f"hash algorithm {algorithm} is not accepted; use SHA-256")
        if len(hashed) != HASH_ALGORITHMS[algorithm]:
            return _rejection(
                "bad_data_format", f"a {algorithm} imprint has {HASH_ALGORITHMS[algorithm]} bytes"
            )
        if policy is not None and policy != self.policy:
            return _rejection("unaccepted_policy", f"this TSA only issues policy {self.policy}")
        if extensions:
            return _rejection("unaccepted_extension", "this TSA accepts no request extensions")
        now = self._clock()
        if now.tzinfo is None:
            return _rejection("system_failure", "the TSA clock gives no time zone")
        token = self._token(imprint, nonce, cert_req, now.astimezone(UTC))
        return bytes(
            TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()
        )

    def _token(
        self, imprint: Any, nonce: int | None, cert_req: bool, now: datetime
    ) -> cms.ContentInfo:
        tst_fields: dict[str, Any] = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": tsp.MessageImprint(
                {
                    "hash_algorithm": {"algorithm": imprint["hash_algorithm"]["algorithm"].native},
                    "hashed_message": imprint["hashed_message"].native,
                }
            ),
            # RFC 3161 2.4.2: unique per TSA; 128 random bits, well under the 160-bit limit.
            "serial_number": secrets.randbits(128) | 1,
            "gen_time": core.GeneralizedTime(now),
            "tsa": asn1_x509.GeneralName(
                name="directory_name", value=asn1_x509.Name.load(self._subject_der)
            ),
        }
        if nonce is not None:
            tst_fields["nonce"] = nonce
        econtent = bytes(tsp.TSTInfo(tst_fields).dump())

        # RFC 5652 11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
        signing_time = now.replace(microsecond=0)
        time_choice = "utc_time" if 1950 <= signing_time.year < 2050 else "generalized_time"
        attributes = [
            {"type": "content_type", "values": [ID_CT_TST_INFO]},
            {"type": "message_digest", "values": [hashlib.sha256(econtent).digest()]},
            {"type": "signing_time", "values": [cms.Time(name=time_choice, value=signing_time)]},
            {
                # RFC 5816 / RFC 5035: ESSCertIDv2, SHA-256 (the default, so not encoded).
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                "cert_hash": hashlib.sha256(self._tsa_der).digest(),
                                "issuer_serial": {
                                    "issuer": [
                                        asn1_x509.GeneralName(
                                            name="directory_name",
                                            value=asn1_x509.Name.load(self._issuer_der),
                                        )
                                    ],
                                    "serial_number": self._serial,
                                },
                            }
                        ]
                    }
                ],
            },
        ]
        # DER SET OF: elements in ascending order of their encodings (X.690 section 11.6).
        encoded = sorted(bytes(cms.CMSAttribute(a).dump()) for a in attributes)
        signed_attrs = cms.CMSAttributes([cms.CMSAttribute.load(e) for e in encoded])
        signature_algorithm, signature = self._sign(bytes(signed_attrs.dump()))

        signed_data: dict[str, Any] = {
            "version": "v3",  # RFC 5652 5.1: eContentType is not id-data
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {
                "content_type": ID_CT_TST_INFO,
                "content": core.ParsableOctetString(econtent),
            },
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": cms.SignerIdentifier(
                        name="issuer_and_serial_number",
                        value={
                            "issuer": asn1_x509.Name.load(self._issuer_der),
                            "serial_number": self._serial,
                        },
                    ),
                    "digest_algorithm": {"algorithm": "sha256"},
                    "signed_attrs": signed_attrs,
                    "signature_algorithm": signature_algorithm,
                    "signature": signature,
                }
            ],
        }
        if cert_req:  # RFC 3161 2.4.1: the TSA certificate only when asked for
            signed_data["certificates"] = [asn1_x509.Certificate.load(self._tsa_der)]
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})

    def _sign(self, data: bytes) -> tuple[dict[str, str], bytes]:
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            # rsaEncryption in signatureAlgorithm, as RFC 3370 section 3.2 recommends.
            return {"algorithm": "rsassa_pkcs1v15"}, key.sign(
                data, padding.PKCS1v15(), hashes.SHA256()
            )
        return {"algorithm": "sha256_ecdsa"}, key.sign(data, ec.ECDSA(hashes.SHA256()))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _rejection(failure: str, text: str) -> bytes:
    """A TimeStampResp with status rejection and no token (RFC 3161 section 2.4.2)."""
    status = {"status": "rejection", "status_string": [text], "fail_info": {failure}}
    return bytes(TimeStampResp({"status": status}).dump())
