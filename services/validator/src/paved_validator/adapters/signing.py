"""OpenSSF model signing (``model-signing``): key-based verification, offline.

Trusted keys are PEM public keys (ECDSA) configured on the validator. A signature
bundle names the hash of the key that made it; the verifier tries that key only.
Sigstore (keyless) verification needs the internet and is not used here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from paved_validator.ports import SignatureResult, SignatureVerdict

MAX_BUNDLE_BYTES = 1024 * 1024


def key_id(pem: bytes) -> str:
    """sha256 (hex) of the key's canonical PEM: the ``hint`` model-signing puts in bundles."""
    key = serialization.load_pem_public_key(pem)
    canonical = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(canonical).hexdigest()


class ModelSigningVerifier:
    """Verifies bundles made by ``model_signing sign key`` against a set of trusted keys."""

    def __init__(self, public_keys: Sequence[Path]) -> None:
        self._keys: dict[str, Path] = {}
        for path in public_keys:
            self._keys[key_id(path.read_bytes())] = path

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    async def verify(self, model_file: Path, signature_file: Path) -> SignatureResult:
        return await asyncio.to_thread(self._verify, model_file, signature_file)

    def _verify(self, model_file: Path, signature_file: Path) -> SignatureResult:
        from model_signing import verifying

        raw = signature_file.read_bytes()
        if len(raw) > MAX_BUNDLE_BYTES:
            return SignatureResult(SignatureVerdict.INVALID, f"bundle is {len(raw)} bytes")
        hint = _hint(raw)
        if hint is None:
            return SignatureResult(
                SignatureVerdict.INVALID,
                "not an OpenSSF model-signing bundle (no public-key hint in it)",
            )
        key = self._keys.get(hint)
        if key is None:
            return SignatureResult(
                SignatureVerdict.INVALID,
                f"signed by key {hint[:16]}…, which is not a trusted key "
                f"(trusted: {', '.join(k[:16] + '…' for k in self.key_ids) or 'none'})",
            )
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=key).verify(  # type: ignore[no-untyped-call]
                model_file, signature_file
            )
        except Exception as exc:  # model-signing raises ValueError and others for bad bundles
            text = str(exc)
            if "Hash mismatch" in text or "Signature mismatch" in text:
                text = "the artifact's bytes are not the ones that were signed"
            return SignatureResult(
                SignatureVerdict.INVALID, f"signature does not verify: {text[:500]}", hint
            )
        return SignatureResult(SignatureVerdict.VERIFIED, f"verified with key {hint}", hint)


def _hint(raw: bytes) -> str | None:
    try:
        bundle = json.loads(raw)
        hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(hint, str) and len(hint) == 64:
        return hint.lower()
    # Some writers base64-encode the hash.
    try:
        return base64.b64decode(hint).hex() if isinstance(hint, str) else None
    except ValueError:
        return None
