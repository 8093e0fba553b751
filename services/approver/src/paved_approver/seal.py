"""Seals on e-signature records: Ed25519 over the RFC 8785 canonical record.

A signature record names the exact version it signs (``version_hash``). The seal
makes the record tamper-evident wherever it travels (API, events, exports): change a
byte — the reason, the time, or the version hash to move it to another version — and
the seal no longer verifies. Staging/prod load the key from a file
(``PAVED_APPROVER_SEAL_KEY_FILE``); dev/test create one and keep it in the database.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paved_shared.db import Connection

from paved_approver.domain.approval import Signature
from paved_approver.domain.canonical import canonical_json

SEAL_FIELDS = (
    "signature_id", "approval_id", "model_name", "version", "artifact_digest", "version_hash",
    "signer_id", "printed_name", "signed_at", "meaning", "reason", "signer_roles",
    "auth_mode", "auth_time", "issuer", "policy_version",
)  # fmt: skip
"""What a seal covers: the whole signature record, and what it is bound to."""


def _utc(ts: datetime | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signature_record(
    sig: Signature, *, approval_id: str, model_name: str, version: int, artifact_digest: str
) -> dict[str, Any]:
    """The sealed document of one signature (JSON values only, fixed field set)."""
    return {
        "signature_id": sig.signature_id,
        "approval_id": approval_id,
        "model_name": model_name,
        "version": version,
        "artifact_digest": artifact_digest,
        "version_hash": sig.version_hash,
        "signer_id": sig.signer_id,
        "printed_name": sig.printed_name,
        "signed_at": _utc(sig.signed_at),
        "meaning": sig.meaning.value,
        "reason": sig.reason,
        "signer_roles": list(sig.signer_roles),
        "auth_mode": sig.auth_mode,
        "auth_time": _utc(sig.auth_time),
        "issuer": sig.issuer,
        "policy_version": sig.policy_version,
    }


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class Sealer:
    """Seals records with one private key."""

    key_id: str
    private_key: Ed25519PrivateKey

    def seal(self, record: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(self.private_key.sign(canonical_json(record))).decode()


def seal_verifies(record: dict[str, Any], seal: str, public_pem_text: str) -> bool:
    """True if ``seal`` is a valid Ed25519 signature of ``record`` under the key."""
    try:
        key = serialization.load_pem_public_key(public_pem_text.encode())
        if not isinstance(key, Ed25519PublicKey):
            return False
        key.verify(base64.urlsafe_b64decode(seal.encode()), canonical_json(record))
    except (InvalidSignature, ValueError):
        return False
    return True


async def load_sealer(conn: Connection, key_file: Path | None) -> Sealer:
    """The sealing key: from ``key_file`` (PEM, PKCS#8), or the dev key kept in the DB.

    Every key's public half is recorded in ``seal_keys`` so old seals keep verifying.
    """
    if key_file is not None:
        pem = await asyncio.to_thread(key_file.read_bytes)
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"seal key file {str(key_file)!r} is not an Ed25519 private key")
        kid = key_id_of(loaded.public_key())
        await conn.execute(
            "INSERT INTO seal_keys (key_id, public_pem) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            kid, public_pem(loaded.public_key()),
        )  # fmt: skip
        return Sealer(kid, loaded)
    async with conn.transaction():
        await conn.execute("LOCK TABLE seal_keys IN SHARE ROW EXCLUSIVE MODE")
        row = await conn.fetchrow(
            "SELECT key_id, private_pem FROM seal_keys WHERE private_pem IS NOT NULL "
            "ORDER BY created_at DESC LIMIT 1"
        )
        if row is not None:
            key = serialization.load_pem_private_key(row["private_pem"].encode(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            return Sealer(row["key_id"], key)
        key = Ed25519PrivateKey.generate()
        kid = key_id_of(key.public_key())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        await conn.execute(
            "INSERT INTO seal_keys (key_id, public_pem, private_pem) VALUES ($1, $2, $3)",
            kid, public_pem(key.public_key()), private,
        )  # fmt: skip
        return Sealer(kid, key)


async def public_keys(conn: Connection) -> dict[str, str]:
    """Every sealing key's public PEM by key id."""
    rows = await conn.fetch("SELECT key_id, public_pem FROM seal_keys ORDER BY created_at")
    return {r["key_id"]: r["public_pem"] for r in rows}
