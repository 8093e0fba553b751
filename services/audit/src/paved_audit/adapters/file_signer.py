"""An Ed25519 key in a local file: the checkpoint signer for laptops and CI.

The private key is PKCS#8 PEM, never logged. When absent it is created on first use
(mode 0600, created exclusively so two starting replicas cannot both write one) only
if the signer was built with ``create_if_missing`` (dev/test); anywhere else a missing
key is an error naming the path and the runbook, and no file is written: a silently
generated key would sign checkpoints no auditor has pinned. A key file that others can
read is refused. The public key is written beside it (``<name>.pub.pem``) for auditors
to pin.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from paved_audit.domain.checkpoint import key_id_of, public_key_pem

log = logging.getLogger(__name__)


RUNBOOK = "docs/runbooks/audit-checkpoint-key.md"


class SignerKeyError(RuntimeError):
    """The key file cannot be used; says which file and why."""


def public_key_path(key_path: Path) -> Path:
    """Where the public key of ``key_path`` is written: ``<stem>.pub.pem`` beside it."""
    return key_path.with_name(f"{key_path.stem}.pub.pem")


class FileSigner:
    """``Signer`` backed by an Ed25519 PEM file; loads it on first use, and creates it when
    absent only with ``create_if_missing`` (dev/test)."""

    def __init__(self, path: Path, *, create_if_missing: bool = False) -> None:
        self.path = path
        self.create_if_missing = create_if_missing
        self._key: Ed25519PrivateKey | None = None
        self._public: bytes = b""

    def load(self) -> None:
        """Load the key; when the file does not exist create it (0600) if allowed, else
        raise ``SignerKeyError`` naming the path and the runbook. Idempotent."""
        if self._key is not None:
            return
        if not self.path.exists() and not self.create_if_missing:
            raise SignerKeyError(
                f"checkpoint key {self.path} does not exist, and keys are generated only in "
                "dev/test (PAVED_ENVIRONMENT); install the provisioned key there (or set "
                f"PAVED_AUDIT_CHECKPOINT_KEY_PATH to it) as {RUNBOOK} describes"
            )
        key = self._read() if self.path.exists() else self._create()
        self._key = key
        self._public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        pub = public_key_path(self.path)
        if not pub.exists():
            pub.write_text(public_key_pem(self._public))
        log.info("checkpoint key %s loaded from %s", key_id_of(self._public), self.path)

    def _read(self) -> Ed25519PrivateKey:
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise SignerKeyError(
                f"checkpoint key {self.path} has mode {mode:04o}: others can read it; "
                f"run `chmod 600 {self.path}`"
            )
        try:
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise SignerKeyError(
                f"checkpoint key {self.path} is not an unencrypted PEM private key: {exc}"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SignerKeyError(
                f"checkpoint key {self.path} is {type(key).__name__}, not an Ed25519 key"
            )
        return key

    def _create(self) -> Ed25519PrivateKey:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._read()  # another process created it first
        try:
            os.write(fd, pem)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        os.close(fd)
        log.info("created checkpoint key %s", self.path)
        return key

    def _loaded(self) -> Ed25519PrivateKey:
        self.load()
        assert self._key is not None
        return self._key

    @property
    def key_id(self) -> str:
        self._loaded()
        return key_id_of(self._public)

    async def sign(self, message: bytes) -> bytes:
        return self._loaded().sign(message)

    async def public_key(self) -> bytes:
        self._loaded()
        return self._public

    def __repr__(self) -> str:  # never show key material
        return f"FileSigner(path={str(self.path)!r})"
