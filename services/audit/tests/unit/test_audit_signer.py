"""The file-backed checkpoint signer: created once with mode 0600, reloaded, refused when
others can read it; its signatures verify with the published public key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from paved_audit.adapters.file_signer import FileSigner, SignerKeyError, public_key_path
from paved_audit.domain.checkpoint import key_id_of, load_public_key, verify_signature
from paved_audit.ports import Signer

pytestmark = pytest.mark.unit


async def test_creates_a_private_key_0600_and_publishes_the_public_key(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "checkpoint.pem"
    signer = FileSigner(path, create_if_missing=True)
    assert not path.exists()  # nothing happens before first use
    assert isinstance(signer, Signer)
    signature = await signer.sign(b"message")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = load_public_key(public_key_path(path).read_text())
    assert public == await signer.public_key()
    assert signer.key_id == key_id_of(public)
    assert signer.key_id.startswith("ed25519:")
    assert len(signer.key_id) == 24
    assert verify_signature(public, b"message", signature)
    assert not verify_signature(public, b"messagE", signature)
    assert "PRIVATE" not in repr(signer)
    assert str(path) in repr(signer)


async def test_reloads_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = FileSigner(path, create_if_missing=True)
    first.load()
    again = FileSigner(path, create_if_missing=True)
    assert again.key_id == first.key_id
    assert await again.public_key() == await first.public_key()


def test_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    FileSigner(path, create_if_missing=True).load()
    os.chmod(path, 0o644)
    with pytest.raises(SignerKeyError, match=r"mode 0644: others can read it; run `chmod 600"):
        FileSigner(path, create_if_missing=True).load()


def test_refuses_a_key_that_is_not_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    with pytest.raises(SignerKeyError, match="PrivateKey, not an Ed25519 key"):
        FileSigner(path, create_if_missing=True).load()
    path.write_text("garbage")
    with pytest.raises(SignerKeyError, match="not an unencrypted PEM private key"):
        FileSigner(path, create_if_missing=True).load()


def test_a_missing_key_is_an_error_unless_creation_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "prod" / "checkpoint.pem"
    with pytest.raises(SignerKeyError) as refused:
        FileSigner(path).load()
    assert str(path) in str(refused.value)
    assert "docs/runbooks/audit-checkpoint-key.md" in str(refused.value)
    assert not path.exists()
    assert not public_key_path(path).exists()
    assert not path.parent.exists()  # nothing was created on the way


@pytest.mark.parametrize(
    ("environment", "creates"),
    [("dev", True), ("test", True), ("staging", False), ("prod", False)],
)
def test_only_dev_and_test_generate_the_checkpoint_key(
    tmp_path: Path, environment: str, creates: bool
) -> None:
    from paved_audit.bootstrap import make_signer
    from paved_audit.settings import AuditSettings

    path = tmp_path / "k.pem"
    extra = {} if environment in {"dev", "test"} else {
        "auth_mode": "oidc", "oidc_issuer": "https://sso.example/realms/paved",
        "oidc_audience": "paved-api", "kafka_security_protocol": "SASL_SSL",
    }  # fmt: skip
    settings = AuditSettings(
        environment=environment,
        audit_checkpoint_key_path=path,
        **extra,  # type: ignore[arg-type]
    )
    signer = make_signer(settings)
    assert isinstance(signer, FileSigner)
    if creates:
        signer.load()
        assert path.exists()
    else:
        with pytest.raises(SignerKeyError, match="keys are generated only in dev/test"):
            signer.load()
        assert not path.exists()
