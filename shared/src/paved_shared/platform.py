"""Run the Paved services as local processes (``make up``, end-to-end tests).

Each service is ``python -m paved_<svc>``: its own process, own consumer group, own
schema. A service counts as started when its HTTP port (API services) or its
metrics port (workers) answers. Pids and logs live under ``<run_dir>/services``.

``python -m paved_shared.platform up|down|status|env`` uses the same ports as
``make up`` (``PAVED_REGISTRY_HTTP_PORT``, ``PAVED_APPROVER_HTTP_PORT``, ...).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from paved_shared.devstack import (
    DevStack,
    DevStackError,
    _pid_alive,
    _read_pid,
    free_port,
    port_open,
)
from paved_shared.kafka_acl import SecretsDir

_KAFKA_AUTH_PREFIX = "PAVED_KAFKA_SASL_"


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service process and how to tell it is up."""

    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str | None = None  # HTTP path answering 200 when ready; None: port open


@dataclass
class Platform:
    """The set of service processes of one local platform."""

    run_dir: Path
    base_env: dict[str, str]
    specs: dict[str, ServiceSpec]
    kafka_secrets: SecretsDir | None = None
    """Where each service's Kafka password is (the service name is its principal)."""
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per-service secrets, e.g. its own database role (``provision_database_roles``)."""

    @property
    def folder(self) -> Path:
        return self.run_dir / "services"

    def pidfile(self, name: str) -> Path:
        return self.folder / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.specs[name].port}"

    def running(self, name: str) -> bool:
        pid = _read_pid(self.pidfile(name))
        return pid is not None and _pid_alive(pid)

    def start(self, name: str, *, extra_env: dict[str, str] | None = None,
              timeout_s: float = 60.0) -> None:  # fmt: skip
        """Start one service (no-op when it runs) and wait until it answers."""
        if self.running(name):
            return
        spec = self.specs[name]
        self.folder.mkdir(parents=True, exist_ok=True)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_KAFKA_AUTH_PREFIX)}
        env = {**inherited, **self.base_env, **self._kafka_env(name),
               **self.service_env.get(name, {}), **spec.env, **(extra_env or {})}  # fmt: skip
        log = self.logfile(name).open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.pidfile(name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DevStackError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if self._ready(spec):
                return
            time.sleep(0.2)
        raise DevStackError(f"{name} not ready in {timeout_s:.0f}s:\n{self.log_tail(name)}")

    def _kafka_env(self, name: str) -> dict[str, str]:
        """The service's own principal: a password file, never another principal's secret."""
        if self.kafka_secrets is None:
            return {}
        auth = self.kafka_secrets.auth(name)
        return {
            "PAVED_KAFKA_SECURITY_PROTOCOL": auth.protocol,
            "PAVED_KAFKA_SASL_MECHANISM": auth.mechanism,
            "PAVED_KAFKA_SASL_USERNAME": auth.username or "",
            "PAVED_KAFKA_SASL_PASSWORD_FILE": str(self.kafka_secrets.file(name)),
        }

    def _ready(self, spec: ServiceSpec) -> bool:
        if not port_open(spec.port):
            return False
        if spec.ready_path is None:
            return True
        try:
            url = f"http://127.0.0.1:{spec.port}{spec.ready_path}"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, name: str, *, sig: signal.Signals = signal.SIGTERM,
             grace_s: float = 20.0) -> bool:  # fmt: skip
        """Stop one service; SIGKILL when ``sig`` is SIGKILL or it outlives ``grace_s``."""
        pidfile = self.pidfile(name)
        pid = _read_pid(pidfile)
        if pid is None:
            return False
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + grace_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.05)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        pidfile.unlink(missing_ok=True)
        return True

    def kill(self, name: str) -> bool:
        """SIGKILL one service: no chance to clean up (crash tests)."""
        return self.stop(name, sig=signal.SIGKILL, grace_s=5.0)

    def start_all(self) -> None:
        for name in self.specs:
            self.start(name)

    def stop_all(self) -> None:
        for name in reversed(list(self.specs)):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        try:
            return "\n".join(self.logfile(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


SERVICE_SCHEMAS = {
    "registry": "registry",
    "validator": "validator",
    "approver": "approver",
    "deployer-local": "deployer_local",
    "audit": "audit",
}
"""Each local service's database schema (its runtime role may touch only that one)."""


def provision_database_roles(admin_dsn: str, secrets: SecretsDir) -> dict[str, dict[str, str]]:
    """The owner role and one runtime role per service (``paved_shared.dbroles``), with
    passwords kept in ``secrets`` so a restart keeps them; each service's database env."""
    import asyncio

    from paved_shared.dbroles import OWNER_ROLE, provision_roles, runtime_role_name

    roles = [OWNER_ROLE, *(runtime_role_name(s) for s in SERVICE_SCHEMAS)]
    passwords = {r: secrets.password(r) for r in roles}
    dsns = asyncio.run(provision_roles(admin_dsn, SERVICE_SCHEMAS, passwords))
    return {name: d.env() for name, d in dsns.items()}


def default_specs(*, ports: dict[str, int] | None = None,
                  deployer_run_dir: Path | None = None) -> dict[str, ServiceSpec]:  # fmt: skip
    """The five services of the walking skeleton (deployer target: local)."""
    p = ports or {}

    def port(name: str, env: str, default: int) -> int:
        return p.get(name) or int(os.environ.get(env, str(default)))

    registry = port("registry", "PAVED_REGISTRY_HTTP_PORT", 8080)
    approver = port("approver", "PAVED_APPROVER_HTTP_PORT", 8081)
    validator = port("validator", "PAVED_VALIDATOR_METRICS_PORT", 9101)
    deployer = port("deployer-local", "PAVED_DEPLOYER_METRICS_PORT", 9102)
    audit = port("audit", "PAVED_AUDIT_HTTP_PORT", 8082)
    deployer_env = {"PAVED_DEPLOYER_TARGET": "local", "PAVED_METRICS_PORT": str(deployer)}
    if deployer_run_dir is not None:
        deployer_env["PAVED_DEPLOYER_RUN_DIR"] = str(deployer_run_dir)
    return {
        "registry": ServiceSpec(
            "registry", "paved_registry", registry,
            {"PAVED_REGISTRY_HTTP_PORT": str(registry), "PAVED_SERVICE_NAME": "registry"},
            "/readyz",
        ),
        "validator": ServiceSpec(
            "validator", "paved_validator", validator,
            {"PAVED_METRICS_PORT": str(validator), "PAVED_SERVICE_NAME": "validator"},
        ),
        "approver": ServiceSpec(
            "approver", "paved_approver", approver,
            {"PAVED_APPROVER_HTTP_PORT": str(approver), "PAVED_SERVICE_NAME": "approver"},
            "/readyz",
        ),
        "deployer-local": ServiceSpec(
            "deployer-local", "paved_deployer", deployer,
            {**deployer_env, "PAVED_SERVICE_NAME": "deployer-local"},
        ),
        "audit": ServiceSpec(
            "audit", "paved_audit", audit,
            {"PAVED_AUDIT_HTTP_PORT": str(audit), "PAVED_SERVICE_NAME": "audit"},
            "/readyz",
        ),
    }  # fmt: skip


def ephemeral_specs(deployer_run_dir: Path) -> dict[str, ServiceSpec]:
    """The same services on free ports (tests)."""
    names = ("registry", "approver", "validator", "deployer-local", "audit")
    return default_specs(ports={n: free_port() for n in names}, deployer_run_dir=deployer_run_dir)


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "status"
    stack = DevStack.from_env()
    run_dir = stack.kafka.run_dir
    base_env = {
        "PAVED_KAFKA_BOOTSTRAP": stack.kafka.bootstrap,
        "PAVED_DATABASE_URL": stack.postgres.dsn,
        "PAVED_ENVIRONMENT": "dev",
        "PAVED_VALIDATOR_EVIDENCE_DIR": str(run_dir / "evidence"),
        # `make down` stops the model servers with their deployer.
        "PAVED_DEPLOYER_STOP_SERVERS_ON_EXIT": "true",
    }
    platform = Platform(
        run_dir,
        base_env,
        default_specs(deployer_run_dir=run_dir / "deployments"),
        kafka_secrets=stack.kafka.secrets,
    )
    if cmd == "up":
        # Migrations run as the owner role, each service serves as its own runtime role.
        pg_secrets = SecretsDir(run_dir / "secrets" / "postgres")
        platform.service_env = provision_database_roles(stack.postgres.dsn, pg_secrets)
    try:
        if cmd == "up":
            for name in platform.specs:
                platform.start(name)
                print(f"{name}: up ({platform.url(name)})")
        elif cmd == "down":
            for name in reversed(list(platform.specs)):
                print(f"{name}: {'stopped' if platform.stop(name) else 'not running'}")
        elif cmd == "status":
            for name in platform.specs:
                state = "up" if platform.running(name) else "down"
                print(f"{name}: {state} ({platform.url(name)}) log {platform.logfile(name)}")
        elif cmd == "env":
            print(f"export PAVED_REGISTRY_URL={platform.url('registry')}")
            print(f"export PAVED_APPROVER_URL={platform.url('approver')}")
            print(f"export PAVED_AUDIT_URL={platform.url('audit')}")
            # Tools you run act as a pipeline on Kafka (its own principal, never a service's).
            print("export PAVED_KAFKA_SASL_USERNAME=paved-pipeline")
            print(f"export PAVED_KAFKA_SASL_PASSWORD_FILE={stack.kafka.secrets.file('pipeline')}")
            for k, v in base_env.items():
                print(f"export {k}={v}")
        else:
            print(f"unknown command {cmd!r}; use up, down, status or env", file=sys.stderr)
            return 2
    except DevStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
