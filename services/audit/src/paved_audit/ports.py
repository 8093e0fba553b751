"""Ports of the audit service: what it needs from the outside, as typed protocols."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Signer(Protocol):
    """Signs checkpoints and export bundles; shaped like a cloud KMS asymmetric key.

    A local Ed25519 file key implements it (``adapters.file_signer``); AWS KMS
    (``Sign`` with ``ED25519_SHA_512``) or Cloud KMS (``EC_SIGN_ED25519``) adapters
    would keep the private key in the HSM and implement the same three members.
    """

    @property
    def key_id(self) -> str:
        """Stable id of the key: ``ed25519:`` + 16 hex digits of SHA-256(raw public key)."""
        ...

    async def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature (64 bytes) of ``message``."""
        ...

    async def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        ...
