"""The `local` target: model-server processes on 127.0.0.1 behind a router per deployment.

A revision gets its own folder under the run dir (model copy, signature, one log and
pid file per replica) and `replicas` server processes on free ports. The deployment's
endpoint is a router process (`python -m paved_deployer.router`) on a port of its own,
which splits traffic between the serving revisions by weight. Every process runs in
its own session, so it outlives a killed deployer; handles (pids, ports, folders) are
stored with the deployment and a restarted deployer adopts processes whose pid still
is that process (checked in /proc, never signalling a recycled pid) and that answer.

Model servers load untrusted bytes, so each replica runs under the shared bubblewrap
profile (`paved_shared.sandbox`, ADR 0012): no inherited environment (only PATH, HOME
and the allowlisted `spec.env`), uid 65534 with no capabilities, read-only root, the
deployer's run dir and artifact root masked, the revision folder bound read-only at
`/tmp/model`, and its own empty network namespace. It serves on a listening socket
the deployer binds on the host and passes in (`--listen-fd`). Without bubblewrap no
model is served (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from paved_schemas.limits import DEFAULT_ENV_ALLOWLIST, env_problems
from paved_shared.artifacts import ArtifactError, sha256_file, store_for
from paved_shared.sandbox import SANDBOX_PATH, Mount, bwrap_command, default_masks, find_bwrap

from paved_deployer.domain.lifecycle import Probe, replicas_for
from paved_deployer.modelserver.http import DEFAULT_MAX_BODY
from paved_deployer.modelserver.loaders import SERVABLE
from paved_deployer.ports import Backend, Endpoint, Handle, ProvisionError, ProvisionRequest
from paved_deployer.router import CONTROL_PATH

log = logging.getLogger(__name__)

SERVER_MODULE = "paved_deployer.modelserver"
ROUTER_MODULE = "paved_deployer.router"
LOG_TAIL_CHARS = 1500
_PROC = Path("/proc")
SANDBOX_MODEL_DIR = "/tmp/model"  # noqa: S108 - inside the sandbox's private tmpfs
"""Where a replica sees its revision folder (model file, signature), read-only."""
KEEPER = '"$@"; exit $?'
"""`sh -c KEEPER name bwrap ...`: a shell that stays bwrap's parent (it does not exec the
last command) in the replica's own session. bwrap runs with --die-with-parent, so
signalling the session kills the sandbox, yet a killed deployer leaves it serving."""


def listening_socket(host: str) -> socket.socket:
    """A TCP socket bound to a free port on `host` and listening, to pass to a server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def free_port(host: str) -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def log_tail(path: Path, limit: int = LOG_TAIL_CHARS) -> str:
    """The end of a process log, for failure reasons."""
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
    """True if `pid` is alive, not a zombie, and is a Paved server process of `folder`.

    Checking the command line guards against a recycled pid: we never signal a
    process that is not ours.
    """
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
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
    ours = SERVER_MODULE.encode() in cmdline or ROUTER_MODULE.encode() in cmdline
    return ours and folder.encode() in cmdline


def terminate_many(processes: list[tuple[int, str]], grace_s: float = 10.0) -> list[int]:
    """Stop server processes (SIGTERM to their sessions, SIGKILL after grace).

    Returns the pids that were signalled. Blocking; call through a thread from async code.
    """
    live = [(pid, folder) for pid, folder in processes if is_server(pid, folder)]
    for pid, _ in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_server(p, f) for p, f in live):
        time.sleep(0.05)
    for pid, folder in live:
        if is_server(pid, folder):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_server(p, f) for p, f in live):
        time.sleep(0.05)
    return [pid for pid, _ in live]


def terminate(pid: int, folder: str, grace_s: float = 10.0) -> bool:
    """Stop one server process; True if it was signalled."""
    return bool(terminate_many([(pid, folder)], grace_s))


def stop_servers_under(run_dir: Path) -> list[int]:
    """Stop every model server and router whose folder lies under `run_dir`; return pids.

    Blocking. Used on shutdown, by `make down` and by tests' teardown.
    """
    if not run_dir.is_dir():
        return []
    found: list[tuple[int, str]] = []
    for pid_file in sorted(run_dir.glob("*/*/*.pid")):
        try:
            found.append((int(pid_file.read_text().strip()), str(pid_file.parent)))
        except (OSError, ValueError):
            continue
    return terminate_many(found)


def replicas_of(handle: Handle) -> list[dict[str, Any]]:
    """The replicas of a revision handle (a walking-skeleton handle is one replica)."""
    if "replicas" in handle:
        return list(handle["replicas"])
    return [{"pid": handle["pid"], "port": handle["port"]}]


class LocalTarget:
    """Model servers as local processes speaking the Open Inference Protocol v2."""

    name = "local"
    frameworks = SERVABLE

    def __init__(
        self,
        run_dir: Path,
        *,
        host: str = "127.0.0.1",
        ready_timeout_s: float = 60.0,
        artifact_root: Path | None = None,
        python: str = sys.executable,
        bwrap: str = "bwrap",
        env_allowlist: Sequence[str] = DEFAULT_ENV_ALLOWLIST,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self.artifact_root = artifact_root
        self.python = python
        self.bwrap = bwrap
        self.env_allowlist = tuple(env_allowlist)
        self.max_body_bytes = max_body_bytes
        hidden = [self.run_dir, *([artifact_root.resolve()] if artifact_root else [])]
        self.masks = default_masks(hidden)

    def _env(self, request: ProvisionRequest) -> dict[str, str]:
        """The replica's whole environment; refuses any variable outside the allowlist
        (the contract already refused it: this is defence in depth)."""
        problems = env_problems(request.spec.env, self.env_allowlist)
        if problems:
            raise ProvisionError(f"{'; '.join(problems)}; no model server was started")
        return {"PATH": SANDBOX_PATH, "HOME": "/tmp", **request.spec.env}  # noqa: S108

    def _sandboxed(
        self, bwrap_path: str, folder: Path, args: list[str], env: dict[str, str]
    ) -> list[str]:
        """The command line of one replica: the model server under the sandbox profile."""
        command = [self.python, "-I", "-u", "-m", SERVER_MODULE, *args]
        argv = bwrap_command(
            bwrap_path,
            command,
            env=env,
            mounts=[Mount(folder, SANDBOX_MODEL_DIR)],
            masks=self.masks,
            chdir="/tmp",  # noqa: S108 - the sandbox's private tmpfs
        )
        return ["/bin/sh", "-c", KEEPER, "paved-sandbox", *argv]

    async def _spawn(
        self,
        argv: list[str],
        folder: Path,
        stem: str,
        *,
        pass_fds: Sequence[int] = (),
    ) -> int:
        log_file = await asyncio.to_thread((folder / f"{stem}.log").open, "ab")
        with log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                cwd=folder,
                # Nothing of the deployer's environment (database URL, cloud credentials).
                env={"PATH": os.environ.get("PATH", SANDBOX_PATH), "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )
        await asyncio.to_thread((folder / f"{stem}.pid").write_text, f"{proc.pid}\n")
        return proc.pid

    # -- revisions -----------------------------------------------------------------------

    async def start(self, request: ProvisionRequest) -> Handle:
        env = self._env(request)
        bwrap_path = find_bwrap(self.bwrap)
        if bwrap_path is None:
            raise ProvisionError(
                f"bubblewrap ({self.bwrap!r}) is not installed or not on PATH; refusing to serve "
                "untrusted model bytes without a sandbox (install the 'bubblewrap' package)"
            )
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
        # Readable by the sandbox user also when the run dir is on a volume with other owners.
        await asyncio.to_thread(_share_read_only, folder)
        inside = f"{SANDBOX_MODEL_DIR}/{model_file.relative_to(folder).as_posix()}"
        spec = request.spec
        count = replicas_for(spec.replicas, spec.min_replicas, spec.max_replicas)
        replicas = []
        for index in range(count):
            with listening_socket(self.host) as sock:
                port = sock.getsockname()[1]
                args = [
                    "--name", request.model_name,
                    "--version", str(request.version),
                    "--model-file", inside,
                    "--signature-file", f"{SANDBOX_MODEL_DIR}/signature.json",
                    "--digest", request.artifact_digest,
                    "--framework", request.framework,
                    "--listen-fd", str(sock.fileno()),
                    "--max-body-bytes", str(self.max_body_bytes),
                ]  # fmt: skip
                if request.genai:
                    args.append("--genai")
                argv = self._sandboxed(bwrap_path, folder, args, env)
                pid = await self._spawn(argv, folder, f"replica-{index}", pass_fds=(sock.fileno(),))
            replicas.append({"pid": pid, "port": port})
        log.info(
            "started %d model server(s) for %s r%d: %s",
            count, request.deployment_id, request.revision, replicas,
        )  # fmt: skip
        return {
            "dir": str(folder),
            "host": self.host,
            "model_name": request.model_name,
            "version": request.version,
            "revision": request.revision,
            "replicas": replicas,
        }

    async def _replica_ready(
        self, client: httpx.AsyncClient, host: str, port: int, model_name: str
    ) -> bool:
        try:
            live = await client.get(f"http://{host}:{port}/v2/health/ready")
            if live.status_code != 200:
                return False
            model = await client.get(f"http://{host}:{port}/v2/models/{model_name}/ready")
        except httpx.HTTPError:
            return False
        return model.status_code == 200

    async def wait_ready(self, handle: Handle) -> None:
        folder = Path(handle["dir"])
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = dict(enumerate(replicas_of(handle)))
        async with httpx.AsyncClient(timeout=2.0) as client:
            while waiting:
                for index, replica in list(waiting.items()):
                    if not await asyncio.to_thread(is_server, replica["pid"], handle["dir"]):
                        tail = log_tail(folder / f"replica-{index}.log")
                        if index == 0 and "replicas" not in handle:
                            tail = log_tail(folder / "server.log")
                        raise ProvisionError(
                            f"model server (pid {replica['pid']}) exited while starting: {tail}"
                        )
                    if await self._replica_ready(
                        client, handle["host"], replica["port"], handle["model_name"]
                    ):
                        del waiting[index]
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    index = next(iter(waiting))
                    raise ProvisionError(
                        f"model server (pid {waiting[index]['pid']}) not ready within "
                        f"{self.ready_timeout_s:g} s: {log_tail(folder / f'replica-{index}.log')}"
                    )
                await asyncio.sleep(0.1)

    async def probe(self, handle: Handle) -> Probe:
        replicas = replicas_of(handle)
        for replica in replicas:
            if not await asyncio.to_thread(is_server, replica["pid"], handle["dir"]):
                return Probe.GONE
        async with httpx.AsyncClient(timeout=2.0) as client:
            for replica in replicas:
                if not await self._replica_ready(
                    client, handle["host"], replica["port"], handle["model_name"]
                ):
                    return Probe.NOT_READY
        return Probe.READY

    async def stop(self, handle: Handle) -> None:
        processes = [(r["pid"], handle["dir"]) for r in replicas_of(handle)]
        stopped = await asyncio.to_thread(terminate_many, processes)
        if stopped:
            log.info("stopped model server(s) %s (%s)", stopped, handle["dir"])

    # -- the endpoint (router) -------------------------------------------------------------

    def endpoint_url(self, port: int, model_name: str, *, genai: bool) -> str:
        """The URL clients use: OIP v2 model URL, or the OpenAI-compatible base URL."""
        base = f"http://{self.host}:{port}"
        return f"{base}/v1" if genai else f"{base}/v2/models/{model_name}"

    async def route(
        self,
        deployment_id: str,
        *,
        model_name: str,
        genai: bool,
        backends: list[Backend],
        endpoint: Handle | None,
    ) -> Endpoint:
        folder = self.run_dir / deployment_id / "endpoint"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        routes_file = folder / "routes.json"
        generation = await asyncio.to_thread(_generation, routes_file) + 1
        document = {
            "generation": generation,
            "routes": [
                {
                    "revision": b.revision,
                    "weight": b.weight,
                    "backends": [f"{b.handle['host']}:{r['port']}" for r in replicas_of(b.handle)],
                }
                for b in backends
            ],
        }
        await asyncio.to_thread(_write_atomically, routes_file, json.dumps(document, indent=2))
        alive = endpoint is not None and await asyncio.to_thread(
            is_server, endpoint["pid"], endpoint["dir"]
        )
        if alive:
            assert endpoint is not None
            pid, port = endpoint["pid"], endpoint["port"]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        else:
            wanted = endpoint["port"] if endpoint is not None else None
            port = wanted if wanted and port_free(self.host, wanted) else free_port(self.host)
            # The router loads no model bytes (it needs the host's loopback to reach the
            # replicas), so it runs unsandboxed, but with no inherited environment.
            argv = [self.python, "-I", "-m", ROUTER_MODULE, "--routes", str(routes_file),
                    "--host", self.host, "--port", str(port),
                    "--max-body-bytes", str(self.max_body_bytes)]  # fmt: skip
            pid = await self._spawn(argv, folder, "router")
        handle = {
            "pid": pid,
            "port": port,
            "host": self.host,
            "dir": str(folder),
            "url": self.endpoint_url(port, model_name, genai=genai),
        }
        await self._await_generation(handle, generation, folder)
        return Endpoint(handle, handle["url"])

    async def _await_generation(self, handle: Handle, generation: int, folder: Path) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        url = f"http://{self.host}:{handle['port']}{CONTROL_PATH}"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not await asyncio.to_thread(is_server, handle["pid"], handle["dir"]):
                    raise ProvisionError(
                        f"router (pid {handle['pid']}) exited: {log_tail(folder / 'router.log')}"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = await client.get(url)
                    if answer.json().get("generation", 0) >= generation:
                        return
                    # A SIGHUP sent while the router was still starting may be lost.
                    os.kill(handle["pid"], signal.SIGHUP)
                if time.monotonic() > deadline:
                    raise ProvisionError(
                        f"router (pid {handle['pid']}) did not apply routes generation "
                        f"{generation} within {self.ready_timeout_s:g} s"
                    )
                await asyncio.sleep(0.05)

    async def endpoint_alive(self, endpoint: Handle) -> bool:
        return await asyncio.to_thread(is_server, endpoint["pid"], endpoint["dir"])

    async def unroute(self, endpoint: Handle) -> None:
        if await asyncio.to_thread(terminate, endpoint["pid"], endpoint["dir"]):
            log.info("stopped router pid %d (%s)", endpoint["pid"], endpoint["dir"])

    async def stop_everything(self) -> list[Handle]:
        pids = await asyncio.to_thread(stop_servers_under, self.run_dir)
        return [{"pid": pid} for pid in pids]

    async def close(self) -> None:
        """Nothing to release: every process is tracked by its handle."""


def _share_read_only(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644)


def _generation(routes_file: Path) -> int:
    try:
        return int(json.loads(routes_file.read_text()).get("generation", 0))
    except (OSError, ValueError):
        return 0


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
