"""The bubblewrap sandbox against hostile models, each with a positive control.

Every hostile payload is also run WITHOUT the sandbox (unpickled in this process), and
that control must show the effect; otherwise a passing test would prove nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paved_validator.adapters.sandbox import Sandbox, default_masks
from paved_validator.domain.smoke import runner_request
from paved_validator.ports import INPUT_DIR, SandboxStatus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _bubblewrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (apt-get install -y bubblewrap); the sandbox "
                    "tests refuse to skip")  # fmt: skip


def _sandbox(**overrides: Any) -> Sandbox:
    options: dict[str, Any] = {"timeout_s": 60, "memory_mb": 1024, "cpu_s": 60}
    options.update(overrides)
    return Sandbox(masks=default_masks(), **options)


def _scratch(tmp_path: Path, obj: Any, vt) -> tuple[Path, dict[str, Any]]:
    scratch = tmp_path / f"scratch-{uuid.uuid4().hex[:6]}"
    (scratch / INPUT_DIR).mkdir(parents=True)
    (scratch / INPUT_DIR / "model.pkl").write_bytes(pickle.dumps(obj))
    request = runner_request(
        model_file="model.pkl",
        framework="sklearn",
        signature=vt.registration("file:///m.pkl", "sha256:" + "0" * 64).signature,
        latency_calls=5,
        memory_mb=1024,
        cpu_s=60,
    )
    return scratch, request


async def _load_error(sandbox, tmp_path: Path, obj: Any, vt) -> str:
    """Run `obj` in the sandbox; the report must say its load failed; return the error."""
    scratch, request = _scratch(tmp_path, obj, vt)
    run = await sandbox.run(scratch, request)
    assert run.status is SandboxStatus.COMPLETED, run.detail
    assert run.report is not None
    assert run.report.load is not None
    assert not run.report.load.ok
    return run.report.load.error or ""


def _unsandboxed(obj: Any) -> Exception | None:
    """The positive control: unpickle the same bytes right here, without any sandbox."""
    try:
        pickle.loads(pickle.dumps(obj))
    except Exception as exc:
        return exc
    return None


# --------------------------------------------------------------------------- contract


@pytest.fixture(params=["fake", "bubblewrap"])
def any_sandbox(request, vt):
    """The contract suite runs against the in-process fake and the real sandbox."""
    return vt.FakeSandbox() if request.param == "fake" else _sandbox()


async def test_contract_benign_model_is_loaded_and_called(any_sandbox, tmp_path, vt) -> None:
    scratch, request = _scratch(tmp_path, vt.train_model(), vt)
    run = await any_sandbox.run(scratch, request)
    assert run.status is SandboxStatus.COMPLETED, run.detail
    assert run.report is not None
    assert run.report.load is not None
    assert run.report.load.ok
    assert run.report.inference is not None
    assert [(o.dtype_kind, o.shape) for o in run.report.inference.outputs] == [
        ("i", [1]),
        ("f", [1, 2]),
    ]
    assert run.report.latency is not None
    assert len(run.report.latency.samples_ms) == 5


async def test_contract_a_failing_load_is_reported(any_sandbox, tmp_path, vt) -> None:
    payload = vt.Payload("raise ValueError('model refuses to load')")
    scratch, request = _scratch(tmp_path, payload, vt)
    run = await any_sandbox.run(scratch, request)
    assert run.status is SandboxStatus.COMPLETED, run.detail
    assert run.report is not None
    assert run.report.load is not None
    assert run.report.load.error == "ValueError: model refuses to load"
    assert run.report.inference is None


# --------------------------------------------------------------------------- isolation


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1: any connection attempt that reaches it is queued."""
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


async def test_no_network_inside_the_sandbox(canary, tmp_path, vt) -> None:
    port = canary.getsockname()[1]
    payload = vt.Payload(
        f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3).close()"
    )
    error = await _load_error(_sandbox(), tmp_path, payload, vt)
    # It tried: inside, 127.0.0.1 is the sandbox's own empty loopback, not the host's.
    assert "[Errno" in error, error
    assert await asyncio.to_thread(_connections, canary) == 0

    assert _unsandboxed(payload) is None
    assert await asyncio.to_thread(_connections, canary) == 1, "the control must connect"


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host folder outside /tmp (the sandbox has a private /tmp, so that would prove less)."""
    path = Path("/var/tmp") / f"paved-canary-{uuid.uuid4().hex[:10]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_host_writes_fail_inside_the_sandbox(host_dir, tmp_path, vt) -> None:
    targets = [host_dir / "pwned.txt", tmp_path / "pwned.txt"]
    code = "\n".join(
        [
            "errors = []",
            *(
                f"try:\n    open({str(t)!r}, 'w').write('pwned')\n"
                f"except OSError as e:\n    errors.append(e.errno)"
                for t in targets
            ),
            "raise RuntimeError(f'write errors {errors}')",
        ]
    )
    payload = vt.Payload(code)
    error = await _load_error(_sandbox(), tmp_path, payload, vt)
    assert error.startswith("RuntimeError: write errors ["), error
    assert "30" in error, "the host folder is read-only (EROFS) inside"
    assert not any(t.exists() for t in targets)

    assert "write errors []" in str(_unsandboxed(payload)), "the control must write"
    assert all(t.read_text() == "pwned" for t in targets)


async def test_secrets_in_the_environment_are_absent(monkeypatch, tmp_path, vt) -> None:
    secret = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("PAVED_DATABASE_PASSWORD", secret)
    payload = vt.Payload("import os; raise RuntimeError(repr(sorted(os.environ.items())))")
    error = await _load_error(_sandbox(), tmp_path, payload, vt)
    assert "'PATH'" in error, error  # the payload did dump the environment
    assert secret not in error
    assert "AWS_SECRET_ACCESS_KEY" not in error

    assert secret in str(_unsandboxed(payload)), "the control must see the secret"


async def test_runs_unprivileged_with_no_capabilities(tmp_path, vt) -> None:
    payload = vt.Payload(
        "import os\n"
        "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
        "raise RuntimeError(f'uid={os.getuid()} gid={os.getgid()} capeff={caps[0]}')"
    )
    error = await _load_error(_sandbox(), tmp_path, payload, vt)
    assert error == "RuntimeError: uid=65534 gid=65534 capeff=0000000000000000"


async def test_a_memory_hog_hits_the_address_space_limit(tmp_path, vt) -> None:
    payload = vt.Payload("blob = bytearray(3 * 1024 ** 3)")
    error = await _load_error(_sandbox(memory_mb=512), tmp_path, payload, vt)
    assert error.startswith("MemoryError"), error


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
    return found


async def test_a_never_ending_model_is_killed_with_its_children(tmp_path, vt) -> None:
    marker = str(900_000 + uuid.uuid4().int % 99_999)  # a unique `sleep` argument
    payload = vt.Payload(
        f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\nwhile True:\n    pass"
    )
    scratch, request = _scratch(tmp_path, payload, vt)
    run = await _sandbox(timeout_s=3).run(scratch, request)
    assert run.status is SandboxStatus.TIMEOUT
    assert "3 s wall-clock limit" in run.detail
    for _ in range(50):  # the sandbox's PID namespace is torn down right after its init dies
        if not _processes_with(f"sleep\x00{marker}"):
            break
        await asyncio.sleep(0.1)
    assert _processes_with(f"sleep\x00{marker}") == [], "a child outlived the sandbox"


async def test_a_runner_that_dies_without_a_report_is_a_crash(tmp_path, vt) -> None:
    payload = vt.Payload("import os; os._exit(7)")
    scratch, request = _scratch(tmp_path, payload, vt)
    run = await _sandbox().run(scratch, request)
    assert run.status is SandboxStatus.CRASHED
    assert "status 7" in run.detail
