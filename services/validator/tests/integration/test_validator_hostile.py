"""Hostile models through the whole validator: real scanners, real bubblewrap sandbox.

Each one must be rejected with a precise reason, and nothing may be harmed. Every
harmful payload is also unpickled here WITHOUT the validator (the positive control):
it must do its harm there, or the test would prove nothing.

Two configurations:
- the production one (modelscan + picklescan + Paved's import allowlist + sandbox):
  hostile pickles are rejected by the scan, before anything loads them;
- a "scanners bypassed" one (modelscan + picklescan only) fed payloads that really do
  pass both scanners (a scikit-learn test helper that runs a Python script): the
  sandbox alone must contain them. Scanners can be bypassed; the sandbox is the line.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import shutil
import socket
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paved_schemas.events import CheckOutcome
from paved_validator.adapters.sandbox import Sandbox, default_masks
from paved_validator.adapters.scanners import ImportAllowlist, ModelScan, PickleScan
from paved_validator.adapters.signing import ModelSigningVerifier
from paved_validator.validation import ValidationResult, Validator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _bubblewrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail(
            "bubblewrap is not installed (apt-get install -y bubblewrap); the sandbox "
            "tests refuse to skip"
        )


class Reduce:
    """Pickles to ``fn(*args)``: what a malicious model runs when it is unpickled."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.fn, self.args)


def scanner_bypass(code: str) -> Reduce:
    """A payload that passes modelscan AND picklescan: scikit-learn's test helper that runs
    ``code`` in a Python subprocess, imported from inside the trusted-looking sklearn package.
    """
    from sklearn.utils import _testing

    return Reduce(_testing.assert_run_python_script_without_output, code)


def _artifact(folder: Path, obj: Any, name: str = "model.pkl") -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(pickle.dumps(obj))
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _validator(*, scanners: list[Any] | None = None, timeout_s: float = 60, **kw: Any) -> Validator:
    return Validator(
        sandbox=Sandbox(timeout_s=timeout_s, memory_mb=768, cpu_s=30, masks=default_masks()),
        scanners=scanners
        if scanners is not None
        else [ModelScan(), PickleScan(), ImportAllowlist()],
        latency_calls=3,
        memory_mb=768,
        **kw,
    )


def _bypassed(timeout_s: float = 60) -> Validator:
    """The deny-list scanners only: what an attacker who beats them faces (the sandbox)."""
    return _validator(scanners=[ModelScan(), PickleScan()], timeout_s=timeout_s)


def _outcome(result: ValidationResult, name: str) -> CheckOutcome:
    return next(c.outcome for c in result.checks if c.name == name)


def _unsandboxed(path: Path) -> BaseException | None:
    """The positive control: load the same bytes right here, without any protection."""
    try:
        pickle.loads(path.read_bytes())
    except BaseException as exc:
        return exc
    return None


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host folder outside /tmp (the sandbox has a private /tmp, so that would prove less)."""
    path = Path("/var/tmp") / f"paved-hostile-{uuid.uuid4().hex[:10]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ rejected by the scan


async def test_an_os_system_pickle_is_rejected_by_every_scanner(vt, tmp_path, host_dir) -> None:
    import os

    marker = host_dir / "os-system"
    path, digest = _artifact(tmp_path, Reduce(os.system, f"touch {marker}"))
    result = await _validator().validate(vt.registration(path.as_uri(), digest))

    assert not result.passed
    assert _outcome(result, "scan") is CheckOutcome.FAILED
    reason = result.reasons[0]
    assert "modelscan: found (CRITICAL: Use of unsafe operator 'system' from module 'posix')" in (
        reason
    )
    assert "picklescan: found (dangerous: dangerous import 'posix system' FOUND)" in reason
    assert "import-allowlist: found (not allowed: imports 'posix.system'" in reason
    assert _outcome(result, "smoke_inference") is CheckOutcome.SKIPPED
    assert not marker.exists(), "nothing ran"

    assert _unsandboxed(path) is None
    assert marker.exists(), "the control must run the command"


@pytest.mark.parametrize("builtin", ["exec", "eval"])
async def test_eval_and_exec_payloads_are_rejected(vt, tmp_path, host_dir, builtin) -> None:
    marker = host_dir / builtin
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    import builtins

    path, digest = _artifact(tmp_path, Reduce(getattr(builtins, builtin), code))
    result = await _validator().validate(vt.registration(path.as_uri(), digest))

    assert _outcome(result, "scan") is CheckOutcome.FAILED
    assert f"imports 'builtins.{builtin}'" in result.reasons[0]
    assert "modelscan: found" in result.reasons[0]
    assert "picklescan: found" in result.reasons[0]
    assert not marker.exists()

    assert _unsandboxed(path) is None
    assert marker.read_text() == "pwned", "the control must write"


async def test_an_import_based_scanner_bypass_is_caught_by_the_allowlist(
    vt, tmp_path, host_dir
) -> None:
    marker = host_dir / "bypass"
    path, digest = _artifact(tmp_path, scanner_bypass(f"open({str(marker)!r}, 'w').write('pwned')"))
    result = await _validator().validate(vt.registration(path.as_uri(), digest))

    scans = {s["scanner"]: s["status"] for s in result.details["scan"]}
    assert scans == {"modelscan": "clean", "picklescan": "clean", "import-allowlist": "found"}, (
        "both deny-list scanners are bypassed; only the allowlist sees it"
    )
    assert (
        "import-allowlist: found (not allowed: imports "
        "'sklearn.utils._testing.assert_run_python_script_without_output' from a module never "
        "allowed (_testing))" in result.reasons[0]
    )
    assert not marker.exists()

    assert _unsandboxed(path) is None
    assert marker.read_text() == "pwned", "the control must write"


async def test_a_zip_bomb_is_rejected_before_anything_reads_it(vt, tmp_path) -> None:
    path = tmp_path / "model.pkl"  # a zip container, as PyTorch/Keras files are
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.pkl", b"\0" * (300 * 2**20))
    assert path.stat().st_size < 2 * 2**20
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    result = await _validator().validate(vt.registration(path.as_uri(), digest))

    assert _outcome(result, "size") is CheckOutcome.FAILED
    assert result.reasons[0].startswith("size: artifact: zip 'model.pkl' unpacks ")
    assert "compression-ratio limit: a decompression bomb" in result.reasons[0]
    assert all(c.outcome is CheckOutcome.SKIPPED for c in result.checks[1:])


async def test_a_digest_mismatch_is_rejected(vt, tmp_path) -> None:
    path, digest = vt.write_artifact(tmp_path, vt.train_model())
    path.write_bytes(path.read_bytes() + b"\0")  # swapped after registration
    result = await _validator().validate(vt.registration(path.as_uri(), digest))
    assert _outcome(result, "digest") is CheckOutcome.FAILED
    observed = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.reasons == [
        f"digest: fetched artifact has digest {observed}, but the registered digest is {digest}"
    ]


# ------------------------------------------------------------------ signatures


def _keypair(folder: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _sign(model: Path, private: Path, signature: Path) -> None:
    from model_signing import signing

    signing.Config().use_elliptic_key_signer(private_key=private).sign(model, signature)


async def test_signatures_good_bad_untrusted_and_missing(vt, tmp_path) -> None:
    trusted_key, trusted_pub = _keypair(tmp_path, "trusted")
    rogue_key, _ = _keypair(tmp_path, "rogue")
    validator = _validator(verifier=ModelSigningVerifier([trusted_pub]))

    path, digest = vt.write_artifact(tmp_path / "good", vt.train_model())
    _sign(path, trusted_key, Path(f"{path}.sig"))
    good = await validator.validate(vt.registration(path.as_uri(), digest, risk_tier="high"))
    assert good.passed, good.reasons
    assert good.details["signature"]["verdict"] == "verified"
    assert _outcome(good, "signature") is CheckOutcome.PASSED

    # A signature over other bytes, next to an artifact whose own digest is registered.
    other, other_digest = vt.write_artifact(tmp_path / "other", vt.train_model())
    other.write_bytes(other.read_bytes() + b"\0")
    other_digest = "sha256:" + hashlib.sha256(other.read_bytes()).hexdigest()
    shutil.copy(f"{path}.sig", f"{other}.sig")
    bad = await validator.validate(vt.registration(other.as_uri(), other_digest, risk_tier="low"))
    assert bad.reasons == [
        "signature: signature does not verify: the artifact's bytes are not the ones that were "
        "signed"
    ], "a present signature is verified at every tier"

    rogue, rogue_digest = vt.write_artifact(tmp_path / "rogue", vt.train_model())
    _sign(rogue, rogue_key, Path(f"{rogue}.sig"))
    untrusted = await validator.validate(
        vt.registration(rogue.as_uri(), rogue_digest, risk_tier="high")
    )
    assert untrusted.reasons[0].startswith("signature: signed by key ")
    assert "which is not a trusted key" in untrusted.reasons[0]

    unsigned, unsigned_digest = vt.write_artifact(tmp_path / "unsigned", vt.train_model())
    missing = await validator.validate(
        vt.registration(unsigned.as_uri(), unsigned_digest, risk_tier="critical")
    )
    assert missing.reasons == [
        "signature: risk tier 'critical' requires an OpenSSF model signature (from 'high' up); "
        f"none found at {unsigned.as_uri()}.sig"
    ]
    low = await validator.validate(
        vt.registration(unsigned.as_uri(), unsigned_digest, risk_tier="low")
    )
    assert low.passed, low.reasons
    assert _outcome(low, "signature") is CheckOutcome.SKIPPED


# ------------------------------------------------------------------ contained by the sandbox


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A TCP listener on the host's 127.0.0.1: any connection that reaches it is queued."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(1.0)
    try:
        yield listener
    finally:
        listener.close()


def _connections(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return count
        conn.close()
        count += 1


async def test_a_model_that_phones_home_reaches_no_one(vt, tmp_path, canary) -> None:
    port = canary.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3).close()"
    path, digest = _artifact(tmp_path, scanner_bypass(code))
    result = await _bypassed().validate(vt.registration(path.as_uri(), digest))

    assert _outcome(result, "scan") is CheckOutcome.PASSED, "the payload beat both scanners"
    assert _outcome(result, "smoke_inference") is CheckOutcome.FAILED
    assert result.reasons[0].startswith("smoke_inference: model could not be loaded: ")
    assert "[Errno 111] Connection refused" in result.reasons[0] or (
        "[Errno 101] Network is unreachable" in result.reasons[0]
    ), result.reasons[0]
    assert await asyncio.to_thread(_connections, canary) == 0

    assert _unsandboxed(path) is None
    assert await asyncio.to_thread(_connections, canary) == 1, "the control must connect"


async def test_a_model_that_writes_to_the_host_writes_nothing(vt, tmp_path, host_dir) -> None:
    marker = host_dir / "written"
    path, digest = _artifact(tmp_path, scanner_bypass(f"open({str(marker)!r}, 'w').write('x')"))
    result = await _bypassed().validate(vt.registration(path.as_uri(), digest))

    assert "[Errno 30] Read-only file system" in result.reasons[0], result.reasons
    assert not marker.exists()

    assert _unsandboxed(path) is None
    assert marker.exists(), "the control must write"


async def test_a_model_that_reads_secrets_finds_none(vt, tmp_path, monkeypatch) -> None:
    secret = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("PAVED_DATABASE_PASSWORD", secret)
    code = "import os; print(sorted(os.environ))"  # any output fails the helper: it is shown
    path, digest = _artifact(tmp_path, scanner_bypass(code))
    result = await _bypassed().validate(vt.registration(path.as_uri(), digest))

    reason = result.reasons[0]
    assert "'PATH'" in reason, reason  # the payload did list the environment
    assert "AWS_SECRET_ACCESS_KEY" not in reason
    assert "PAVED_DATABASE_PASSWORD" not in reason

    control = _unsandboxed(path)
    assert "AWS_SECRET_ACCESS_KEY" in str(control), "the control must see the secrets"


async def test_a_memory_hog_hits_the_limit(vt, tmp_path) -> None:
    path, digest = _artifact(tmp_path, scanner_bypass("blob = bytearray(3 * 1024 ** 3)"))
    result = await _bypassed().validate(vt.registration(path.as_uri(), digest))
    assert _outcome(result, "smoke_inference") is CheckOutcome.FAILED
    assert "MemoryError" in result.reasons[0], result.reasons
    # Control: the same allocation is fine without the limit (3 GiB of virtual memory).
    blob = bytearray(3 * 1024**3)
    assert len(blob) == 3 * 1024**3
    del blob


async def test_a_model_that_never_ends_is_killed(vt, tmp_path) -> None:
    path, digest = _artifact(tmp_path, scanner_bypass("while True:\n    pass"))
    result = await _bypassed(timeout_s=4).validate(vt.registration(path.as_uri(), digest))
    assert result.reasons == ["smoke_inference: killed after the 4 s wall-clock limit"]
