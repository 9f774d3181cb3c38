"""Test helper: an RFC 3161 TSA made of ``openssl ts -reply`` behind a small HTTP server.

:func:`build_openssl_tsa` makes a CA and a TSA certificate (critical EKU timeStamping) with the
``openssl`` command and writes an ``openssl.cnf`` with a ``[tsa]`` section; :func:`serve` runs a
``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) that answers RFC 3161 section 3.4 POSTs.
Paths other than ``/`` simulate broken TSAs: ``/error`` answers 500, ``/garbage`` answers 200
with bytes that are no TimeStampResp.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509

QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
TEST_POLICY = "1.2.3.4.1"  # OpenSSL's example policy: for tests only


def openssl(*args: str | Path, cwd: Path | None = None, input: bytes | None = None) -> str:
    """Run ``openssl`` with ``args``; return stdout+stderr as text, raise on a non-zero exit."""
    done = subprocess.run(
        ["openssl", *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{output}")
    return output


_EXTENSIONS = """\
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[tsa_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[no_eku_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
"""

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/{signer_cert}
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
other_policies = 1.2.3.4.5
digests = {digests}
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_cert_id_alg}
"""


def _key_args(key_type: str) -> list[str]:
    if key_type == "rsa":
        return ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    if key_type == "ec":
        return ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    raise ValueError(f"unknown key type {key_type!r}")


@dataclass
class OpenSSLTSA:
    """A TSA configured for ``openssl ts -reply`` in ``directory``."""

    directory: Path
    config: Path
    policy: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ca_pem(self) -> Path:
        """The CA certificate file (``-CAfile``)."""
        return self.directory / "ca.pem"

    @property
    def tsa_pem(self) -> Path:
        """The TSA certificate file (``-untrusted``)."""
        return self.directory / "tsa.pem"

    @property
    def ca_certificate(self) -> x509.Certificate:
        """The CA certificate, parsed."""
        return x509.load_pem_x509_certificate(self.ca_pem.read_bytes())

    @property
    def tsa_certificate(self) -> x509.Certificate:
        """The TSA certificate, parsed."""
        return x509.load_pem_x509_certificate(self.tsa_pem.read_bytes())

    def reply(self, query: bytes) -> bytes:
        """Answer a DER TimeStampReq with ``openssl ts -reply``; return the DER TimeStampResp."""
        # One reply at a time: openssl reads and rewrites the serial file without locking.
        with self._lock, tempfile.TemporaryDirectory(dir=self.directory) as work:
            query_file = Path(work) / "query.tsq"
            reply_file = Path(work) / "reply.tsr"
            query_file.write_bytes(query)
            openssl(
                "ts", "-reply", "-config", self.config, "-section", "tsa_config",
                "-queryfile", query_file, "-out", reply_file,
            )  # fmt: skip
            return reply_file.read_bytes()


def build_openssl_tsa(
    directory: Path,
    *,
    key_type: str = "rsa",
    digests: Sequence[str] = ("sha256", "sha384", "sha512"),
    eku: bool = True,
    policy: str = TEST_POLICY,
    ess_cert_id_alg: str = "sha256",
) -> OpenSSLTSA:
    """Create a CA, a TSA certificate (``eku=False``: without timeStamping) and the config.

    ``ess_cert_id_alg="sha1"`` makes openssl sign an ESS signingCertificate (v1) attribute
    instead of signingCertificateV2.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ext.cnf").write_text(_EXTENSIONS)
    openssl("genpkey", *_key_args(key_type), "-out", "ca.key", cwd=directory)
    openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
        "-subj", f"/O=Test/CN=OpenSSL test TSA root ({key_type})",
        "-config", "ext.cnf", "-extensions", "ca_ext", "-out", "ca.pem",
        cwd=directory,
    )  # fmt: skip
    openssl("genpkey", *_key_args(key_type), "-out", "tsa.key", cwd=directory)
    openssl(
        "req", "-new", "-key", "tsa.key", "-subj", f"/O=Test/CN=OpenSSL test TSA ({key_type})",
        "-config", "ext.cnf", "-out", "tsa.csr",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "4096", "-days", "3650", "-sha256",
        "-extfile", "ext.cnf", "-extensions", "tsa_ext" if eku else "no_eku_ext",
        "-out", "tsa.pem",
        cwd=directory,
    )  # fmt: skip
    (directory / "serial").write_text("01\n")
    config = directory / "openssl.cnf"
    config.write_text(
        _CONFIG.format(
            dir=directory,
            signer_cert="tsa.pem",
            policy=policy,
            digests=", ".join(digests),
            ess_cert_id_alg=ess_cert_id_alg,
        )
    )
    return OpenSSLTSA(directory=directory, config=config, policy=policy)


class _Handler(BaseHTTPRequestHandler):
    tsa: OpenSSLTSA  # set on the subclass made by serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/error":
            self._answer(500, b"internal error", "text/plain")
        elif self.path == "/garbage":
            self._answer(200, b"this is not a TimeStampResp", REPLY_CONTENT_TYPE)
        elif self.path != "/":
            self._answer(404, b"not found", "text/plain")
        elif self.headers.get("Content-Type") != QUERY_CONTENT_TYPE:
            self._answer(415, b"expected application/timestamp-query", "text/plain")
        else:
            try:
                reply = self.tsa.reply(body)
            except RuntimeError as exc:
                self._answer(500, str(exc).encode(), "text/plain")
            else:
                self._answer(200, reply, REPLY_CONTENT_TYPE)

    def _answer(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def serve(tsa: OpenSSLTSA) -> Iterator[str]:
    """Serve ``tsa`` on 127.0.0.1 (ephemeral port); yield its URL; stop on exit."""
    handler = type("Handler", (_Handler,), {"tsa": tsa})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="openssl-tsa", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def running_openssl_tsa(
    directory: Path, *, key_type: str = "rsa"
) -> Iterator[tuple[OpenSSLTSA, str]]:
    """Build an OpenSSL TSA in ``directory`` and serve it; yield the TSA and its URL."""
    tsa = build_openssl_tsa(directory, key_type=key_type)
    with serve(tsa) as url:
        yield tsa, url
