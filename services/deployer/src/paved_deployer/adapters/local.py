"""The `local` target: each deployment revision is a model-server process on 127.0.0.1.

A revision gets its own folder under the run dir (model copy, signature, log, pid
file). The server runs in its own session, so it outlives a killed deployer; the
handle (pid, port, folder) is stored with the deployment and a restarted deployer
adopts the server when the pid still is that server and it answers ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import httpx
from paved_shared.artifacts import ArtifactError, sha256_file, store_for

from paved_deployer.domain.lifecycle import Probe
from paved_deployer.ports import Handle, ProvisionError, ProvisionRequest

log = logging.getLogger(__name__)

SERVER_MODULE = "paved_deployer.modelserver"
LOG_TAIL_CHARS = 1500
_PROC = Path("/proc")


def free_port(host: str) -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(folder: Path, limit: int = LOG_TAIL_CHARS) -> str:
    """The end of a server's log, for failure reasons."""
    path = folder / "server.log"
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            text = f.read().decode(errors="replace").strip()
    except OSError:
        return "(no server log)"
    return text or "(server log is empty)"


def is_server(pid: int, folder: str) -> bool:
    """True if `pid` is alive, not a zombie, and is the model server of `folder`.

    Checking the command line guards against a recycled pid: we never signal a
    process that is not ours.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    if not _PROC.is_dir():
        return True
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return SERVER_MODULE.encode() in cmdline and folder.encode() in cmdline


def terminate(pid: int, folder: str, grace_s: float = 10.0) -> bool:
    """Stop the server `pid` of `folder` (SIGTERM to its session, SIGKILL after grace).

    Returns True if a process was signalled. Blocking; call through a thread from async code.
    """
    if not is_server(pid, folder):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_server(pid, folder):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and is_server(pid, folder):
        time.sleep(0.05)
    return True


def stop_servers_under(run_dir: Path) -> list[int]:
    """Stop every model server whose folder lies under `run_dir`; return their pids.

    Blocking. Used on shutdown and by tests' teardown, so nothing outlives them.
    """
    stopped: list[int] = []
    if not run_dir.is_dir():
        return stopped
    for pid_file in sorted(run_dir.glob("*/*/server.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if terminate(pid, str(pid_file.parent)):
            stopped.append(pid)
    return stopped


class LocalTarget:
    """Model servers as local processes speaking the Open Inference Protocol v2."""

    name = "local"
    frameworks = frozenset({"sklearn"})

    def __init__(
        self,
        run_dir: Path,
        *,
        host: str = "127.0.0.1",
        ready_timeout_s: float = 60.0,
        artifact_root: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self.artifact_root = artifact_root
        self.python = python

    # -- start -----------------------------------------------------------------------

    async def start(self, request: ProvisionRequest) -> Handle:
        folder = (
            self.run_dir / request.deployment_id / f"r{request.revision}-{uuid.uuid4().hex[:8]}"
        )
        try:
            store = store_for(request.artifact_uri, local_root=self.artifact_root)
            model_file = await store.fetch(request.artifact_uri, folder)
        except (ArtifactError, OSError) as exc:
            raise ProvisionError(
                f"cannot fetch artifact {request.artifact_uri} ({request.artifact_digest}): {exc}"
            ) from exc
        digest = await asyncio.to_thread(sha256_file, model_file)
        if digest != request.artifact_digest:
            raise ProvisionError(
                f"artifact {request.artifact_uri} has digest {digest}, not the approved "
                f"{request.artifact_digest}; refusing to serve it"
            )
        signature_file = folder / "signature.json"
        await asyncio.to_thread(
            signature_file.write_text, request.signature.model_dump_json(indent=2)
        )
        port = free_port(self.host)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAVED_")}
        env.update(request.spec.env)
        env["PYTHONUNBUFFERED"] = "1"
        args = [
            "-m", SERVER_MODULE,
            "--name", request.model_name,
            "--version", str(request.version),
            "--model-file", str(model_file),
            "--signature-file", str(signature_file),
            "--digest", request.artifact_digest,
            "--host", self.host,
            "--port", str(port),
        ]  # fmt: skip
        log_file = await asyncio.to_thread((folder / "server.log").open, "ab")
        with log_file:
            proc = await asyncio.create_subprocess_exec(
                self.python,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                cwd=folder,
                env=env,
                start_new_session=True,
            )
        await asyncio.to_thread((folder / "server.pid").write_text, f"{proc.pid}\n")
        log.info(
            "started model server for %s r%d: pid %d port %d",
            request.deployment_id, request.revision, proc.pid, port,
        )  # fmt: skip
        return {
            "pid": proc.pid,
            "port": port,
            "host": self.host,
            "dir": str(folder),
            "model_name": request.model_name,
            "version": request.version,
        }

    @staticmethod
    def endpoint_url(handle: Handle) -> str:
        """The OIP v2 model URL of a handle."""
        return f"http://{handle['host']}:{handle['port']}/v2/models/{handle['model_name']}"

    async def _ready(self, client: httpx.AsyncClient, handle: Handle) -> bool:
        try:
            live = await client.get(f"http://{handle['host']}:{handle['port']}/v2/health/ready")
            if live.status_code != 200:
                return False
            model = await client.get(f"{self.endpoint_url(handle)}/ready")
        except httpx.HTTPError:
            return False
        return model.status_code == 200

    async def wait_ready(self, handle: Handle) -> str:
        folder = Path(handle["dir"])
        deadline = time.monotonic() + self.ready_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not await asyncio.to_thread(is_server, handle["pid"], handle["dir"]):
                    raise ProvisionError(
                        f"model server (pid {handle['pid']}) exited while starting: "
                        f"{log_tail(folder)}"
                    )
                if await self._ready(client, handle):
                    return self.endpoint_url(handle)
                if time.monotonic() > deadline:
                    raise ProvisionError(
                        f"model server (pid {handle['pid']}) not ready within "
                        f"{self.ready_timeout_s:g} s: {log_tail(folder)}"
                    )
                await asyncio.sleep(0.1)

    # -- probe and stop ------------------------------------------------------------------

    async def probe(self, handle: Handle) -> Probe:
        if not await asyncio.to_thread(is_server, handle["pid"], handle["dir"]):
            return Probe.GONE
        async with httpx.AsyncClient(timeout=2.0) as client:
            return Probe.READY if await self._ready(client, handle) else Probe.NOT_READY

    async def stop(self, handle: Handle) -> None:
        if await asyncio.to_thread(terminate, handle["pid"], handle["dir"]):
            log.info("stopped model server pid %d (%s)", handle["pid"], handle["dir"])

    async def stop_everything(self) -> list[Handle]:
        pids = await asyncio.to_thread(stop_servers_under, self.run_dir)
        return [{"pid": pid} for pid in pids]
