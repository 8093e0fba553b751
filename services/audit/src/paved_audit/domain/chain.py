"""The audit record and its hash chain, as defined by the audit service.

What is hashed (and stored, byte for byte):

- ``canonical`` is the RFC 8785 (JSON Canonicalization Scheme) serialisation of the
  envelope *as received*: the Kafka record's value is parsed as a JSON object and
  re-serialised canonically. Nothing is added or dropped, so attributes this release
  does not know (extensions, fields added later to ``data``) are covered by the hash.
  It is not ``Envelope.model_dump()``, which would drop unknown fields and could change
  spellings between releases.
- ``record_hash = sha256(bytes.fromhex(prev_hash) + canonical)``, lowercase hex;
  ``prev_hash`` of sequence 0 is 64 zeros (``GENESIS_HASH``).
- ``sequence`` is dense and 0-based: the n-th sealed record has sequence n.

The Kafka coordinates, ``sealed_at`` and the other columns are metadata next to the
record; they are not covered by the hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final

import rfc8785

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first record (sequence 0)."""

_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CanonicalizationError(ValueError):
    """A message cannot be turned into a canonical audit record; says which value and why."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _shorten(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def parse_json_object(raw: bytes | str) -> dict[str, Any]:
    """Parse strict JSON (no NaN/Infinity) that must be an object; raise CanonicalizationError."""
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CanonicalizationError(f"not valid JSON ({exc}): {_shorten(raw)}") from exc
    if not isinstance(document, dict):
        raise CanonicalizationError(f"not a JSON object: {_shorten(document)}")
    return document


def canonicalize(raw: bytes | str) -> bytes:
    """RFC 8785 canonical bytes of the JSON object in ``raw`` (the envelope as received).

    Raises ``CanonicalizationError`` for input outside I-JSON (RFC 7493), which RFC 8785
    cannot represent: not an object, NaN/Infinity, integers beyond ±(2**53-1), lone
    surrogates.
    """
    document = parse_json_object(raw)
    return canonicalize_value(document)


def canonicalize_value(value: Any) -> bytes:
    """RFC 8785 canonical bytes of an already-parsed JSON value."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, TypeError) as exc:
        raise CanonicalizationError(f"cannot canonicalise (RFC 8785): {exc}") from exc


def is_hex_sha256(value: str) -> bool:
    """True for 64 lowercase hex digits."""
    return bool(_HEX_SHA256.match(value))


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """``sha256(bytes.fromhex(prev_hash) + canonical)`` as lowercase hex."""
    if not is_hex_sha256(prev_hash):
        raise ValueError(f"prev_hash must be 64 lowercase hex digits, got {_shorten(prev_hash)}")
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()
