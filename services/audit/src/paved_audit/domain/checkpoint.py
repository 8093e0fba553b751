"""Signed checkpoints of the audit trail: what is signed, and how a signature is checked.

A checkpoint commits to the first ``tree_size`` records twice: by the RFC 6962 Merkle
root over their canonical bytes (so inclusion and consistency proofs work) and by the
hash-chain head (``record_hash`` of record ``tree_size - 1``). Its body also embeds the
previous checkpoint's signature, so checkpoints form a chain: removing, reordering or
replacing one breaks the next.

The signed message is the RFC 8785 canonical JSON of the body (``CheckpointBody``),
exactly as carried in ``AuditCheckpointSigned.signed_body``. Ed25519 only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from paved_audit.domain.chain import is_hex_sha256

FORMAT: Final = "paved.audit.checkpoint.v1"
ALGORITHM: Final = "Ed25519"


class CheckpointError(ValueError):
    """A checkpoint body or signature is malformed or does not verify; says why."""


def key_id_of(raw_public_key: bytes) -> str:
    """``ed25519:`` and the first 16 hex digits of SHA-256 of the raw 32-byte public key."""
    return "ed25519:" + hashlib.sha256(raw_public_key).hexdigest()[:16]


def load_public_key(text: str | bytes) -> bytes:
    """Raw 32-byte Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64 of the raw key.

    Raises ``CheckpointError`` naming what the input was when it is neither.
    """
    data = text.encode() if isinstance(text, str) else text
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(stripped)
        except ValueError as exc:
            raise CheckpointError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointError(f"public key is {type(key).__name__}, not Ed25519")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(stripped, validate=True)
    except binascii.Error as exc:
        raise CheckpointError(f"public key is neither PEM nor base64: {stripped[:40]!r}") from exc
    if len(raw) != 32:
        raise CheckpointError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return raw


def public_key_pem(raw_public_key: bytes) -> str:
    """PEM (SubjectPublicKeyInfo) of a raw Ed25519 public key."""
    key = Ed25519PublicKey.from_public_bytes(raw_public_key)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verify_signature(raw_public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CheckpointBody:
    """What a checkpoint signs."""

    origin: str
    """Which trail: the audit topic's name."""
    index: int
    """0-based position among the trail's checkpoints."""
    tree_size: int
    root_hash: str
    """RFC 6962 root over records 0..tree_size-1, hex."""
    chain_head: str
    """record_hash of record tree_size-1; 64 zeros for an empty trail."""
    previous_signature: str | None
    """base64 signature of checkpoint ``index - 1``; None for the first."""
    issued_at: str
    """RFC 3339 UTC time of signing."""
    key_id: str
    format: str = FORMAT
    algorithm: str = ALGORITHM

    def canonical(self) -> bytes:
        """The signed bytes: RFC 8785 JSON of every field."""
        return rfc8785.dumps(asdict(self))

    @classmethod
    def parse(cls, signed_body: bytes | str) -> CheckpointBody:
        """Read a signed body back; ``CheckpointError`` when it is not exactly canonical."""
        raw = signed_body.encode() if isinstance(signed_body, str) else signed_body
        try:
            document: Any = json.loads(raw)
        except ValueError as exc:
            raise CheckpointError(f"signed body is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise CheckpointError("signed body is not a JSON object")
        try:
            body = cls(**document)
        except TypeError as exc:
            raise CheckpointError(f"signed body has the wrong fields: {exc}") from exc
        problems = body.problems()
        if problems:
            raise CheckpointError("; ".join(problems))
        if body.canonical() != raw:
            raise CheckpointError("signed body is not in RFC 8785 canonical form")
        return body

    def problems(self) -> list[str]:
        """What is wrong with the fields on their own (empty when nothing)."""
        found: list[str] = []
        if self.format != FORMAT:
            found.append(f"format {self.format!r} is not {FORMAT!r}")
        if self.algorithm != ALGORITHM:
            found.append(f"algorithm {self.algorithm!r} is not {ALGORITHM!r}")
        for name in ("index", "tree_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                found.append(f"{name} {value!r} is not a non-negative integer")
        for name in ("root_hash", "chain_head"):
            value = getattr(self, name)
            if not isinstance(value, str) or not is_hex_sha256(value):
                found.append(f"{name} {value!r} is not 64 lowercase hex digits")
        if (self.index == 0) != (self.previous_signature is None):
            found.append(
                "previous_signature must be null exactly for checkpoint 0 "
                f"(index {self.index}, previous_signature {self.previous_signature!r})"
            )
        return found


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint body with its signature, as stored and published."""

    body: CheckpointBody
    signed_body: bytes
    signature: bytes
    public_key: bytes
    """Raw public key as published with it (informative; verifiers pin their own)."""
    location: str = ""
    """Where it was read (topic offset, table row), for messages; not signed."""

    @property
    def signature_b64(self) -> str:
        return base64.b64encode(self.signature).decode()

    def verify(self, trusted_public_key: bytes) -> None:
        """Raise ``CheckpointError`` unless ``trusted_public_key`` signed ``signed_body``."""
        if key_id_of(trusted_public_key) != self.body.key_id:
            raise CheckpointError(
                f"checkpoint {self.body.index} names key {self.body.key_id}, "
                f"the trusted key is {key_id_of(trusted_public_key)}"
            )
        if not verify_signature(trusted_public_key, self.signed_body, self.signature):
            raise CheckpointError(
                f"checkpoint {self.body.index} (size {self.body.tree_size}): the Ed25519 "
                f"signature does not verify with key {self.body.key_id}"
            )

    def to_json(self) -> dict[str, Any]:
        """A self-contained JSON form (export bundles, API, saved witness copies)."""
        return {
            "signed_body": self.signed_body.decode(),
            "signature": self.signature_b64,
            "public_key": base64.b64encode(self.public_key).decode(),
        }

    @classmethod
    def from_json(cls, document: Any, location: str = "") -> SignedCheckpoint:
        """Inverse of ``to_json``; ``CheckpointError`` naming the problem."""
        if not isinstance(document, dict):
            raise CheckpointError("a checkpoint is a JSON object")
        try:
            signed_body = str(document["signed_body"]).encode()
            signature = base64.b64decode(str(document["signature"]), validate=True)
            public_key = base64.b64decode(str(document.get("public_key", "")), validate=True)
        except (KeyError, binascii.Error) as exc:
            raise CheckpointError(f"checkpoint JSON lacks or garbles {exc}") from exc
        return cls(CheckpointBody.parse(signed_body), signed_body, signature, public_key, location)
