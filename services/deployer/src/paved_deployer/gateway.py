"""The shared GenAI gateway: a LiteLLM proxy whose routes follow the GenAI deployments.

Deployers (`GatewayRoutes`) write one route file per ready GenAI deployment into the
gateway folder and delete it when the deployment is retired (retirement, revoked or
expired approval, failure). The supervisor, `python -m paved_deployer.gateway --dir
DIR --port PORT`, watches that folder, renders the LiteLLM config from its template
(`infra/litellm/config.template.yaml` or the packaged default) and restarts the
LiteLLM proxy on every change: LiteLLM's runtime admin API needs a Prisma database,
whose engines cannot be downloaded here, so regenerate-and-restart is the supported
way (ADR 0009). Clients use one OpenAI-compatible URL and the model's name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

ROUTES = "routes"
DEFAULT_TEMPLATE: dict[str, Any] = {
    "litellm_settings": {"drop_params": True, "telemetry": False},
    "general_settings": {},
}


class GatewayRoutes:
    """The deployer's side: one JSON file per GenAI deployment in `<dir>/routes/`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.routes_dir = folder / ROUTES

    async def add(self, deployment_id: str, model_name: str, api_base: str) -> None:
        """Route `model_name` to `api_base` (an OpenAI-compatible base URL); idempotent."""
        route = {"deployment_id": deployment_id, "model_name": model_name, "api_base": api_base}
        await asyncio.to_thread(self._write, deployment_id, route)

    def _write(self, deployment_id: str, route: dict[str, str]) -> None:
        self.routes_dir.mkdir(parents=True, exist_ok=True)
        path = self.routes_dir / f"{deployment_id}.json"
        text = json.dumps(route, sort_keys=True)
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                return
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        log.info("gateway route %s -> %s (%s)", model_name_of(route), route["api_base"],
                 deployment_id)  # fmt: skip

    async def remove(self, deployment_id: str) -> None:
        """Drop the deployment's route (idempotent)."""
        path = self.routes_dir / f"{deployment_id}.json"
        await asyncio.to_thread(path.unlink, missing_ok=True)

    def routes(self) -> list[dict[str, str]]:
        """Every route now (blocking)."""
        found = []
        for path in sorted(self.routes_dir.glob("*.json")) if self.routes_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found


def model_name_of(route: dict[str, str]) -> str:
    """The name clients ask the gateway for."""
    return route["model_name"]


def render_config(routes: list[dict[str, str]], template: dict[str, Any]) -> dict[str, Any]:
    """The LiteLLM proxy config: the template plus one `model_list` entry per route.

    Two deployments of one model share its name, so LiteLLM balances between them.
    """
    config: dict[str, Any] = json.loads(json.dumps(template))
    config["model_list"] = [
        {
            "model_name": model_name_of(route),
            "litellm_params": {
                "model": f"openai/{model_name_of(route)}",
                "api_base": route["api_base"],
                "api_key": "paved-no-key",
            },
            "model_info": {"id": route["deployment_id"]},
        }
        for route in routes
    ]
    return config


class Supervisor:
    """Runs the LiteLLM proxy and restarts it with a fresh config when routes change."""

    def __init__(
        self,
        folder: Path,
        *,
        host: str,
        port: int,
        template: dict[str, Any],
        litellm: str,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.routes = GatewayRoutes(folder)
        self.folder = folder
        self.host = host
        self.port = port
        self.template = template
        self.litellm = litellm
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.fingerprint: str | None = None

    def state_file(self) -> Path:
        """What the proxy serves now (`fingerprint`, `models`), for tests and operators."""
        return self.folder / "state.json"

    def apply(self) -> None:
        """Restart the proxy when the routes changed since the last start (blocking)."""
        routes = self.routes.routes()
        config = render_config(routes, self.template)
        fingerprint = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
        if fingerprint == self.fingerprint and self.proc is not None and self.proc.poll() is None:
            return
        config_file = self.folder / "litellm.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.stop()
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        env.pop("DATABASE_URL", None)
        with (self.folder / "litellm.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [self.litellm, "--config", str(config_file), "--host", self.host,
                 "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        self._wait_ready()
        self.fingerprint = fingerprint
        state = {"fingerprint": fingerprint, "models": [model_name_of(r) for r in routes],
                 "pid": self.proc.pid}  # fmt: skip
        tmp = self.state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file())
        log.info("gateway serves %s on %s:%d", state["models"], self.host, self.port)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        url = f"http://{self.host}:{self.port}/health/liveliness"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm exited with {self.proc.returncode}; see litellm.log")
            if _answers(url):
                return
            time.sleep(0.2)
        raise RuntimeError(f"litellm not ready within {self.ready_timeout_s:g} s")

    def stop(self) -> None:
        """Stop the proxy (blocking)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback URL
            return bool(answer.status == 200)
    except OSError:
        return False


def find_litellm() -> str:
    """The `litellm` command next to this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("litellm")
    if beside.exists():
        return str(beside)
    found = shutil.which("litellm")
    if found is None:
        raise SystemExit("litellm is not installed (pip install 'litellm[proxy]')")
    return found


def main(argv: list[str] | None = None) -> int:
    """Supervise the LiteLLM proxy until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m paved_deployer.gateway")
    parser.add_argument("--dir", required=True, type=Path, help="gateway folder (routes/)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--template", type=Path, help="LiteLLM config template (YAML)")
    parser.add_argument("--poll-s", type=float, default=0.5, help="route folder poll period")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    template = DEFAULT_TEMPLATE
    if args.template is not None:
        template = yaml.safe_load(args.template.read_text()) or {}
    args.dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(
        args.dir, host=args.host, port=args.port, template=template, litellm=find_litellm()
    )
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    (args.dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
    try:
        while not stopping:
            try:
                supervisor.apply()
            except RuntimeError as exc:
                log.error("gateway restart failed: %s; retrying", exc)
                supervisor.fingerprint = None
            time.sleep(args.poll_s)
    finally:
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
