"""Canonicalisation (RFC 8785) and the chain hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from paved_audit.domain.chain import (
    GENESIS_HASH,
    CanonicalizationError,
    canonicalize,
    chain_hash,
)

pytestmark = pytest.mark.unit


def test_rfc8785_sample_from_the_rfc() -> None:
    # RFC 8785 §3.2.2 input, and its §3.2.3 output.
    raw = (
        b'{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n'
        b'  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n'
        b'  "literals": [null, true, false]\n}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonicalize(raw) == expected


def test_key_order_and_whitespace_do_not_change_the_bytes() -> None:
    a = canonicalize(b'{"b": 1, "a": {"y": [1, 2], "x": "\\u00e9"}}')
    b = canonicalize('{"a":{"x":"é","y":[1,2]},"b":1.0}'.encode())
    assert a == b == '{"a":{"x":"é","y":[1,2]},"b":1}'.encode()


def test_envelope_as_received_keeps_unknown_attributes(make_envelopes: Any) -> None:
    env = make_envelopes("m")[0]
    document = json.loads(env.to_json_bytes())
    document["futureext"] = "kept"
    document["data"]["future_field"] = {"nested": True}
    canonical = canonicalize(json.dumps(document, indent=2).encode())
    parsed = json.loads(canonical)
    assert parsed["futureext"] == "kept"
    assert parsed["data"]["future_field"] == {"nested": True}
    assert parsed == json.loads(env.to_json_bytes()) | {
        "futureext": "kept",
        "data": {**json.loads(env.to_json_bytes())["data"], "future_field": {"nested": True}},
    }


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b"{not json", "not valid JSON"),
        (b'{"n": NaN}', "NaN is not a JSON number"),
        (b'{"n": 9007199254740993}', "cannot canonicalise"),
        (b'{"s": "\\ud800"}', "cannot canonicalise"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_refuses_what_rfc8785_cannot_represent(raw: bytes, why: str) -> None:
    with pytest.raises(CanonicalizationError, match=why):
        canonicalize(raw)


def test_chain_hash_is_sha256_of_prev_bytes_and_record() -> None:
    record = b'{"id":"x"}'
    expected = hashlib.sha256(b"\x00" * 32 + record).hexdigest()
    assert chain_hash(GENESIS_HASH, record) == expected
    second = chain_hash(expected, b'{"id":"y"}')
    assert second == hashlib.sha256(bytes.fromhex(expected) + b'{"id":"y"}').hexdigest()
    with pytest.raises(ValueError, match="64 lowercase hex"):
        chain_hash("ABC", record)
