"""Tests of ledger.note: C2SP signed notes and tlog-checkpoint bodies."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError, NoteError
from ledger.note import (
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    key_id,
    open_note,
    parse_signed_note,
)

VECTORS = Path(__file__).parents[1] / "vectors"
SPEC = json.loads((VECTORS / "signed-note.json").read_text())
SPEC_TEXT = "This is an example message.\n"
ROOT = hashlib.sha256(b"root").digest()


def _seeded_signer(name: str, seed: int) -> NoteSigner:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"seed %d" % seed).digest())
    return NoteSigner(name, key)


# --- the signed-note specification example --------------------------------------------------


def test_spec_vkey_parses_and_key_id_recomputes() -> None:
    verifier = NoteVerifier.from_vkey(SPEC["vkey"])
    assert verifier.name == "example.com/foo"
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.vkey() == SPEC["vkey"]
    raw = base64.b64decode(SPEC["vkey"].split("+", 2)[2])
    assert raw[0] == 0x01
    assert key_id("example.com/foo", 1, raw[1:]).hex() == "530d903a"
    assert key_id("example.com/foo", 4, raw[1:]).hex() != "530d903a"


def test_spec_note_opens() -> None:
    verifier = NoteVerifier.from_vkey(SPEC["vkey"])
    note = open_note(SPEC["note"], [verifier])
    assert note.text == SPEC_TEXT
    assert note.verified_by == ("example.com/foo",)
    assert len(note.signatures) == 1
    sig = note.signatures[0]
    assert sig.name == "example.com/foo" and sig.key_id.hex() == "530d903a"
    assert verifier.verify(SPEC_TEXT.encode(), sig.signature)
    # Bytes in, same result.
    assert open_note(SPEC["note"].encode("utf-8"), [verifier]) == note


def test_spec_note_tampered_text_fails() -> None:
    verifier = NoteVerifier.from_vkey(SPEC["vkey"])
    sig = parse_signed_note(SPEC["note"]).signatures[0].signature
    assert not verifier.verify(b"This is an example message!\n", sig)
    tampered = SPEC["note"].replace("example message", "example massage")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(tampered, [verifier])


# --- signing round trips --------------------------------------------------------------------


def test_generate_sign_open_round_trip() -> None:
    signer = NoteSigner.generate("log.example/tiezheng")
    text = Checkpoint("log.example/tiezheng", 42, ROOT).to_text()
    note = signer.sign(text)
    assert note.startswith(text + "\n\u2014 log.example/tiezheng ")
    assert note.endswith("\n")
    verifier = NoteVerifier.from_vkey(signer.vkey())
    assert verifier.key_id == signer.key_id
    opened = open_note(note, [verifier])
    assert opened.text == text
    assert opened.verified_by == ("log.example/tiezheng",)
    assert Checkpoint.from_text(opened.text) == Checkpoint("log.example/tiezheng", 42, ROOT)
    # Another key under the same name does not open it.
    other = NoteVerifier.from_vkey(NoteSigner.generate("log.example/tiezheng").vkey())
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(note, [other])


def test_pem_round_trip(tmp_path: Path) -> None:
    signer = _seeded_signer("log.example", 1)
    path = tmp_path / "log.key"
    path.write_bytes(signer.to_pem())
    path.chmod(0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = NoteSigner.from_pem(path.read_bytes(), "log.example")
    assert loaded.vkey() == signer.vkey()
    assert loaded.sign("x\n") == signer.sign("x\n")  # Ed25519 is deterministic


def test_from_pem_refuses_other_keys() -> None:
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(NoteError, match="not an Ed25519 key"):
        NoteSigner.from_pem(ec, "log.example")
    with pytest.raises(NoteError):
        NoteSigner.from_pem(b"not a key", "log.example")
    encrypted = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(NoteError):
        NoteSigner.from_pem(encrypted, "log.example")


def test_vkey_whose_base64_contains_plus() -> None:
    seed = 0
    while "+" not in _seeded_signer("a.example/log", seed).vkey().split("+", 2)[2]:
        seed += 1
    signer = _seeded_signer("a.example/log", seed)
    vkey = signer.vkey()
    assert vkey.count("+") > 2
    verifier = NoteVerifier.from_vkey(vkey)
    assert verifier.name == "a.example/log"
    assert verifier.key_id == signer.key_id
    assert verifier.vkey() == vkey
    assert open_note(signer.sign("hello\n"), [verifier]).verified_by == ("a.example/log",)


def test_unknown_signers_are_ignored_and_all_signatures_kept() -> None:
    log = _seeded_signer("log.example", 2)
    witness = _seeded_signer("witness.example", 3)
    text = "some text\n\nwith a blank line inside\n"
    note = log.sign(text) + witness.signature_line(text)
    opened = open_note(note, [NoteVerifier.from_vkey(log.vkey())])
    assert opened.text == text
    assert [s.name for s in opened.signatures] == ["log.example", "witness.example"]
    assert opened.verified_by == ("log.example",)
    both = open_note(note, [NoteVerifier.from_vkey(v.vkey()) for v in (witness, log)])
    assert both.verified_by == ("log.example", "witness.example")
    only_witness = open_note(note, [NoteVerifier.from_vkey(witness.vkey())])
    assert only_witness.verified_by == ("witness.example",)


def test_wrong_key_id_is_an_unknown_key() -> None:
    signer = _seeded_signer("log.example", 4)
    note = signer.sign("text\n")
    line = note.splitlines()[-1]
    raw = base64.b64decode(line.split(" ")[-1])
    forged = bytes([raw[0] ^ 1]) + raw[1:]
    bad = note.replace(line, f"\u2014 log.example {base64.b64encode(forged).decode()}")
    verifier = NoteVerifier.from_vkey(signer.vkey())
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(bad, [verifier])
    assert parse_signed_note(bad).signatures[0].key_id == forged[:4]


def test_known_key_with_bad_signature_fails_even_with_a_good_one() -> None:
    a = _seeded_signer("a.example", 5)
    b = _seeded_signer("b.example", 6)
    text = "text\n"
    line = b.signature_line(text)
    raw = base64.b64decode(line.split(" ")[-1])
    broken = raw[:10] + bytes([raw[10] ^ 0x80]) + raw[11:]
    note = a.sign(text) + f"\u2014 b.example {base64.b64encode(broken).decode()}\n"
    verifiers = [NoteVerifier.from_vkey(a.vkey()), NoteVerifier.from_vkey(b.vkey())]
    with pytest.raises(NoteError, match=r"b\.example"):
        open_note(note, verifiers)
    assert open_note(note, verifiers[:1]).verified_by == ("a.example",)


def test_duplicate_known_signature_refused() -> None:
    a = _seeded_signer("a.example", 7)
    note = a.sign("t\n") + a.signature_line("t\n")
    with pytest.raises(NoteError, match="two signatures"):
        open_note(note, [NoteVerifier.from_vkey(a.vkey())])


def test_signature_count_limit() -> None:
    a = _seeded_signer("a.example", 8)
    filler = "\u2014 other.example " + base64.b64encode(b"\x00" * 68).decode() + "\n"
    ok = a.sign("t\n") + filler * 99
    assert open_note(ok, [NoteVerifier.from_vkey(a.vkey())]).verified_by == ("a.example",)
    with pytest.raises(NoteError, match="more than 100"):
        open_note(ok + filler, [NoteVerifier.from_vkey(a.vkey())])


# --- malformed notes ------------------------------------------------------------------------

GOOD = _seeded_signer("log.example", 9)
GOOD_NOTE = GOOD.sign("origin\n5\n" + base64.b64encode(ROOT).decode() + "\n")
GOOD_LINE = GOOD_NOTE.splitlines()[-1]


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GOOD_NOTE.replace("\n\n", "\n"), "no empty line"),
        (GOOD_NOTE.split("\n\n")[0] + "\n\n", "no signatures"),
        (GOOD_NOTE[:-1], "end with a newline"),
        (GOOD_NOTE.replace("\n", "\r\n"), "control character"),
        (GOOD_NOTE.replace("origin", "ori\x07gin"), "control character"),
        (GOOD_NOTE.replace("origin", "ori\x7fgin"), "control character"),
        (GOOD_NOTE.replace(GOOD_LINE, GOOD_LINE[:-4] + "!!!="), "base64"),
        (GOOD_NOTE.replace(GOOD_LINE, GOOD_LINE + "A"), "base64"),
        (GOOD_NOTE.replace("\u2014 ", "- "), "em dash"),
        (GOOD_NOTE.replace("\u2014 log.example ", "\u2014 log.example"), "'— name signature'"),
        (GOOD_NOTE.replace("\u2014 log.example", "\u2014 log+example"), "'\\+'"),
        (GOOD_NOTE.replace(GOOD_LINE, "\u2014 log.example AAAA"), "too short"),
        (GOOD_NOTE + "\n", "no signatures"),
        (GOOD_NOTE + "trailing\n", "em dash"),
    ],
)
def test_malformed_notes(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message) as info:
        open_note(note, [NoteVerifier.from_vkey(GOOD.vkey())])
    assert isinstance(info.value, LedgerError)


def test_note_bytes_must_be_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(GOOD_NOTE.encode().replace(b"origin", b"orig\xffn"), [])
    with pytest.raises(NoteError, match="UTF-8"):
        parse_signed_note("text\ud800\n\n" + GOOD_LINE + "\n")


def test_good_note_opens() -> None:
    # The fixture the malformed cases are built from is itself valid.
    opened = open_note(GOOD_NOTE, [NoteVerifier.from_vkey(GOOD.vkey())])
    assert opened.verified_by == ("log.example",)
    assert opened.signatures == (
        NoteSignature("log.example", GOOD.key_id, base64.b64decode(GOOD_LINE.split()[-1])[4:]),
    )


def test_sign_refuses_bad_text() -> None:
    for text in ("no newline", "cr\r\n", "tab\there\n"):
        with pytest.raises(NoteError):
            GOOD.sign(text)


# --- keys and verifier keys -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "a+b", "tab\tname", "nbsp\u00a0name", "nl\n"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        NoteSigner(name, Ed25519PrivateKey.generate())


def test_vkey_strict_parsing() -> None:
    good = GOOD.vkey()
    name, hex_id, encoded = good.split("+", 2)
    raw = base64.b64decode(encoded)
    bad = [
        "",
        name,
        f"{name}+{hex_id}",
        f"{name}+{hex_id}+",
        f"+{hex_id}+{encoded}",
        f"{name}+{hex_id[:6]}+{encoded}",
        f"{name}+{hex_id}00+{encoded}",
        f"{name}+zzzzzzzz+{encoded}",
        f"{name}+{(int(hex_id, 16) ^ 1):08x}+{encoded}",  # key ID does not match
        f"other+{hex_id}+{encoded}",  # key ID is bound to the name
        f"{name}+{hex_id}+{encoded[:-4]}",
        f"{name}+{hex_id}+{encoded} ",
        f"{name}+{hex_id}+" + base64.b64encode(b"\x04" + raw[1:]).decode(),  # cosignature type
        f"{name}+{hex_id}+" + base64.b64encode(raw + b"\x00").decode(),
    ]
    for vkey in bad:
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(vkey)
    assert NoteVerifier.from_vkey(good).vkey() == good


def test_verify_rejects_wrong_lengths() -> None:
    verifier = NoteVerifier.from_vkey(GOOD.vkey())
    sig = parse_signed_note(GOOD_NOTE).signatures[0].signature
    text = parse_signed_note(GOOD_NOTE).text.encode()
    assert verifier.verify(text, sig)
    assert not verifier.verify(text, sig[:-1])
    assert not verifier.verify(text, sig + b"\x00")


# --- checkpoints ----------------------------------------------------------------------------

_LINE = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    origin=_LINE,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=3).map(tuple),
)
def test_checkpoint_round_trip(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    cp = Checkpoint(origin, size, root, extensions)
    text = cp.to_text()
    assert text.count("\n") == 3 + len(extensions)
    assert Checkpoint.from_text(text) == cp


def test_checkpoint_spec_example() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.from_text(text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.to_text() == text


@pytest.mark.parametrize(
    "text",
    [
        "o\n012\n{root}\n",  # leading zero
        "o\n00\n{root}\n",
        "o\n-1\n{root}\n",
        "o\n+1\n{root}\n",
        "o\n 1\n{root}\n",
        "o\n1.0\n{root}\n",
        "o\n\u0661\n{root}\n",  # Arabic-Indic digit one: not ASCII decimal
        "o\n18446744073709551616\n{root}\n",  # 2**64
        "o\n1\n{root}",  # no trailing newline
        "o\n1\n{root}\r\n",
        "o\n1\n{short}\n",  # 31-byte root
        "o\n1\n{long}\n",  # 33-byte root
        "o\n1\n{root_nopad}\n",
        "o\n1\n{root_url}\n",  # URL-safe alphabet
        "\n1\n{root}\n",  # empty origin
        "o\n1\n",  # no root line
        "o\n1\n{root}\n\n",  # empty extension line
        "o\r\n1\n{root}\n",
    ],
)
def test_checkpoint_strict_refusals(text: str) -> None:
    root = bytes(range(250, 256)) + ROOT[6:]  # has 0xfb/0xff bytes: '+' and '/' in base64
    b64 = base64.b64encode(root).decode()
    assert "+" in b64 or "/" in b64
    filled = text.format(
        root=b64,
        short=base64.b64encode(root[:31]).decode(),
        long=base64.b64encode(root + b"\x00").decode(),
        root_nopad=b64.rstrip("="),
        root_url=base64.urlsafe_b64encode(root).decode(),
    )
    with pytest.raises(NoteError):
        Checkpoint.from_text(filled)
    # The same template with a good size and root parses, so each case fails for its reason.
    assert Checkpoint.from_text(f"o\n1\n{b64}\n").root == root


def test_checkpoint_constructor_validates() -> None:
    with pytest.raises(NoteError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(NoteError):
        Checkpoint("o\nx", 1, ROOT)
    with pytest.raises(NoteError):
        Checkpoint("o", -1, ROOT)
    with pytest.raises(NoteError):
        Checkpoint("o", 1, ROOT[:31])
    with pytest.raises(NoteError):
        Checkpoint("o", 1, ROOT, ("",))
    with pytest.raises(NoteError):
        Checkpoint("o", True, ROOT)


def _non_canonical(b64: str) -> str:
    # Set the unused low bits of the last data character: decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = b64.rstrip("=")
    last = alphabet[alphabet.index(body[-1]) | 1]
    out = body[:-1] + last + "=" * (len(b64) - len(body))
    assert out != b64 and base64.b64decode(out) == base64.b64decode(b64)
    return out


def test_non_canonical_base64_refused() -> None:
    b64 = base64.b64encode(ROOT).decode()
    with pytest.raises(NoteError, match="canonical"):
        Checkpoint.from_text(f"o\n1\n{_non_canonical(b64)}\n")
    with pytest.raises(NoteError, match="canonical"):
        open_note(GOOD_NOTE.replace(GOOD_LINE, GOOD_LINE[:-4] + _non_canonical(GOOD_LINE[-4:])), [])
