"""Entries: canonical bytes exactly as RFC 8785 writes them, strict parsing."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entry import ZERO_HASH, EntryError, canonical_json, decode_entry, encode_entry

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises((rfc8785.CanonicalizationError, ValueError, UnicodeEncodeError)):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "😀 outside the BMP sorts differently", "a😀": 1, "a\uffff": 2},
        {"x": 1.5e-7, "y": 1.0},
        {"big": 2**60},
        {"ctl": "\x00\x1f\x7f\u2028", "quote": '"\\'},
    ],
)
def test_tricky_payloads_round_trip(payload: dict[str, Any]) -> None:
    try:
        data = encode_entry(
            index=3, type="note", time="t", actor="a", prev=ZERO_HASH, payload=payload
        )
    except EntryError:
        with pytest.raises(rfc8785.CanonicalizationError):
            rfc8785.dumps(payload)
        return
    assert data == rfc8785.dumps(
        {
            "v": 1,
            "index": 3,
            "type": "note",
            "time": "t",
            "actor": "a",
            "prev": ZERO_HASH,
            "payload": payload,
        }
    )
    assert decode_entry(data).payload == payload


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"v":1}',
        b'{"actor":"a","index":0,"payload":{},"prev":"'
        + b"0" * 64
        + b'","time":"t","type":"note","v":1,"extra":1}',
        b'{"actor":"a","index":-1,"payload":{},"prev":"'
        + b"0" * 64
        + b'","time":"t","type":"note","v":1}',
        b'{"actor":"a","index":0,"payload":{},"prev":"'
        + b"0" * 64
        + b'","time":"t","type":"bogus","v":1}',
        b'{"actor":"a", "index":0,"payload":{},"prev":"'
        + b"0" * 64
        + b'","time":"t","type":"note","v":1}',
        b'{"index":0,"actor":"a","payload":{},"prev":"'
        + b"0" * 64
        + b'","time":"t","type":"note","v":1}',
    ],
    ids=[
        "garbage",
        "array",
        "missing-keys",
        "extra-key",
        "negative-index",
        "bad-type",
        "whitespace",
        "unsorted",
    ],
)
def test_decode_refuses_malformed_or_non_canonical(data: bytes) -> None:
    with pytest.raises(EntryError):
        decode_entry(data)
