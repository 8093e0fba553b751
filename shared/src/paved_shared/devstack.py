"""Local infrastructure for development, tests and the demo: a real Apache Kafka
(one KRaft node, broker + controller) and a real PostgreSQL 15 cluster.

Both run as child processes with their data under a run folder (``.run/`` by
default, ignored by git). ``up`` is idempotent: a component whose pid file points
at a live process that answers on its port is left alone. ``down`` stops exactly
what ``up`` started (the pids it recorded), nothing else.

Usage: ``python -m paved_shared.devstack up|down|status|env``; ports come from
``PAVED_KAFKA_PORT`` / ``PAVED_KAFKA_CONTROLLER_PORT`` / ``PAVED_PG_PORT``, the run
folder from ``PAVED_RUN_DIR``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paved_shared.kafka import KafkaAuth
    from paved_shared.kafka_acl import SecretsDir

KAFKA_POM = "infra/kafka/pom.xml"
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


class DevStackError(RuntimeError):
    """A local component could not be fetched, started or reached."""


def repo_root() -> Path:
    """The repository root: ``PAVED_HOME`` or the nearest parent holding ``uv.lock``."""
    if home := os.environ.get("PAVED_HOME"):
        return Path(home).resolve()
    here = Path(__file__).resolve()
    for parent in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        if (parent / KAFKA_POM).exists():
            return parent
    raise DevStackError(f"cannot find the repository root (no {KAFKA_POM}); set PAVED_HOME")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_pid(pidfile: Path, name: str, grace_s: float = 20.0) -> bool:
    """SIGTERM the process group recorded in pidfile, SIGKILL after grace_s."""
    pid = _read_pid(pidfile)
    if pid is None:
        return False
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if _pid_alive(pid):
            print(f"{name}: did not stop in {grace_s:.0f}s, killing", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


@dataclass
class KafkaNode:
    """One Apache Kafka KRaft node (broker + controller) on 127.0.0.1."""

    run_dir: Path
    port: int
    controller_port: int
    heap: str = "512m"
    root: Path = field(default_factory=repo_root)
    secrets_dir: Path | None = None
    """Where the generated SCRAM passwords live (default ``<run_dir>/secrets/kafka``)."""

    @property
    def home(self) -> Path:
        return self.run_dir / "kafka"

    @property
    def libs(self) -> Path:
        return self.run_dir / "kafka-libs"

    @property
    def pidfile(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secrets(self) -> SecretsDir:
        """Generated SCRAM passwords of the broker, the administrator and every principal."""
        from paved_shared.kafka_acl import SecretsDir

        return SecretsDir(self.secrets_dir or self.run_dir / "secrets" / "kafka")

    def admin_auth(self) -> KafkaAuth:
        """The cluster administrator (a super user): provisioning only, never a service."""
        return self.secrets.auth("admin")

    def auth(self, principal: str) -> KafkaAuth:
        """The credentials of one Paved principal (``registry``, ``pipeline``, ...)."""
        return self.secrets.auth(principal)

    def fetch(self) -> None:
        """Copy the pinned Kafka jars from Maven Central (once)."""
        marker = self.libs / ".complete"
        if marker.exists():
            return
        if shutil.which("mvn") is None:
            raise DevStackError("Maven (mvn) is required to fetch Apache Kafka; install maven")
        self.libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn", "-q", "-B", "-f", str(self.root / KAFKA_POM),
            "dependency:copy-dependencies", f"-DoutputDirectory={self.libs}",
            "-DincludeScope=runtime",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevStackError(f"fetching Kafka jars failed: {result.stdout}{result.stderr}")
        marker.touch()

    def _write_config(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        from paved_shared.kafka_acl import ADMIN_USER, BROKER_USER

        broker_pw = self.secrets.password(BROKER_USER)
        # Clients (services, pipelines, auditors) authenticate with SCRAM on BROKER; the
        # controller listener takes PLAIN for the broker itself only (KRaft cannot use
        # SCRAM there: the credentials live in the metadata it serves). Nothing is
        # anonymous, and the StandardAuthorizer refuses whatever no ACL allows.
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"BROKER://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"BROKER://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "BROKER",
            "listener.security.protocol.map": "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.broker.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
            **{
                f"listener.name.broker.{mech}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{BROKER_USER}" password="{broker_pw}";'
                )
                for mech in ("scram-sha-512", "scram-sha-256")
            },
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{BROKER_USER}" password="{broker_pw}" '
                f'user_{BROKER_USER}="{broker_pw}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{BROKER_USER};User:{ADMIN_USER}",
            "log.dirs": str(data),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "-1",
            "min.insync.replicas": "1",
        }
        cfg = self.home / "server.properties"
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a password
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{k}={v}\n" for k, v in props.items()))
        log_cfg = self.home / "log4j2.properties"
        log_cfg.write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {self.home / 'server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = warn\n"
            "rootLogger.appenderRef.file.ref = file\n"
        )
        return cfg

    def _java(self, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp", f"{self.libs}/*", *args,
        ]  # fmt: skip

    def running(self) -> bool:
        pid = _read_pid(self.pidfile)
        return pid is not None and _pid_alive(pid) and port_open(self.port)

    def start(self, timeout_s: float = 90.0) -> None:
        """Fetch, format (first time) and start the node; wait until it serves metadata."""
        if self.running():
            return
        if port_open(self.port):
            raise DevStackError(f"port {self.port} is taken by something else (PAVED_KAFKA_PORT)")
        self.fetch()
        from paved_shared.kafka_acl import ADMIN_USER, BROKER_USER, provision

        cfg = self._write_config()
        data = self.home / "data"
        marker = self.home / ".scram-bootstrapped"
        if (data / "meta.properties").exists() and not marker.exists():
            # A data folder from before Kafka had users: its metadata has no SCRAM
            # credentials and cannot be given any offline. Dev data only; start afresh.
            print(f"kafka: {data} predates SASL; formatting it afresh", file=sys.stderr)
            shutil.rmtree(data)
            data.mkdir(parents=True)
        if not (data / "meta.properties").exists():
            bootstrap_users = {
                BROKER_USER: self.secrets.password(BROKER_USER),
                ADMIN_USER: self.secrets.password("admin"),
            }
            scram = [
                arg
                for user, pw in bootstrap_users.items()
                for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={pw}]")
            ]
            fmt = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", _kafka_cluster_id(),
                           "-c", str(cfg), *scram),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                detail = f"{fmt.stdout}{fmt.stderr}"
                for pw in bootstrap_users.values():
                    detail = detail.replace(pw, "***")
                raise DevStackError(f"kafka storage format failed: {detail}")
            marker.touch()
        out = (self.home / "stdout.log").open("ab")
        proc = subprocess.Popen(
            self._java("kafka.Kafka", str(cfg)),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DevStackError(
                    f"kafka exited with {proc.returncode}; see {self.home / 'stdout.log'}"
                )
            if port_open(self.port) and _kafka_ready(self.bootstrap, self.admin_auth()):
                provision(self.bootstrap, self.admin_auth(), self.secrets)
                return
            time.sleep(0.3)
        raise DevStackError(f"kafka did not become ready in {timeout_s:.0f}s")

    def stop(self) -> bool:
        return _stop_pid(self.pidfile, "kafka")


def _kafka_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID), never starting with '-'
    (StorageTool would read that as an option)."""
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _kafka_ready(bootstrap: str, auth: KafkaAuth) -> bool:
    """True when the broker answers a metadata request (controller elected, broker registered)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=3000, **auth.aiokafka()
        )
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return asyncio.run(probe())


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of our own (never the system one) on 127.0.0.1."""

    run_dir: Path
    port: int
    database: str = "paved"

    @property
    def data(self) -> Path:
        return self.run_dir / "postgres" / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "postgres" / "postmaster.pid.paved"

    @staticmethod
    def bindir() -> Path:
        for cand in PG_BIN_CANDIDATES:
            if Path(cand, "initdb").exists():
                return Path(cand)
        if (cfg := shutil.which("pg_config")) is not None:
            out = subprocess.run([cfg, "--bindir"], capture_output=True, text=True, check=True)
            return Path(out.stdout.strip())
        raise DevStackError("PostgreSQL server binaries not found; apt-get install postgresql-15")

    def _as_owner(self, cmd: list[str]) -> list[str]:
        # initdb and the postmaster refuse to run as root.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def running(self) -> bool:
        pid = _read_pid(self.pidfile)
        return pid is not None and _pid_alive(pid) and port_open(self.port)

    def start(self, timeout_s: float = 60.0) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise DevStackError(f"port {self.port} is taken by something else (PAVED_PG_PORT)")
        bindir = self.bindir()
        self.data.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.data.parent, pg.pw_uid, pg.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            res = subprocess.run(
                self._as_owner([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                "--auth=trust", "-E", "UTF8", "--no-instructions"]),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if res.returncode != 0:
                raise DevStackError(f"initdb failed: {res.stdout}{res.stderr}")
        log = self.data.parent / "server.log"
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=on -c max_connections=200 "
            "-c shared_buffers=128MB"
        )
        res = subprocess.run(
            self._as_owner([str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log),
                            "-o", opts, "-w", "-t", str(int(timeout_s)), "start"]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            raise DevStackError(f"pg_ctl start failed: {res.stdout}{res.stderr}; see {log}")
        pid_line = (self.data / "postmaster.pid").read_text().splitlines()[0]
        self.pidfile.write_text(pid_line.strip())
        self._ensure_database()

    def _ensure_database(self) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = await asyncpg.connect(
                        f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
                    )
                    break
                except (OSError, asyncpg.PostgresError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            try:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", self.database
                )
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        asyncio.run(create())

    def stop(self) -> bool:
        if _read_pid(self.pidfile) is None:
            return False
        subprocess.run(
            self._as_owner([str(self.bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                            "-w", "stop"]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return _stop_pid(self.pidfile, "postgres")


@dataclass
class DevStack:
    """Kafka + PostgreSQL with their ports and run folder."""

    kafka: KafkaNode
    postgres: PostgresCluster

    @classmethod
    def from_env(cls) -> DevStack:
        root = repo_root()
        run_dir = Path(os.environ.get("PAVED_RUN_DIR", root / ".run")).resolve()
        return cls(
            kafka=KafkaNode(
                run_dir=run_dir,
                port=int(os.environ.get("PAVED_KAFKA_PORT", "9092")),
                controller_port=int(os.environ.get("PAVED_KAFKA_CONTROLLER_PORT", "9093")),
                heap=os.environ.get("PAVED_KAFKA_HEAP", "512m"),
                root=root,
            ),
            postgres=PostgresCluster(
                run_dir=run_dir, port=int(os.environ.get("PAVED_PG_PORT", "5433"))
            ),
        )

    @classmethod
    def ephemeral(cls, run_dir: Path) -> DevStack:
        """A stack on free ports in its own folder: what a test session uses."""
        return cls(
            kafka=KafkaNode(run_dir=run_dir, port=free_port(), controller_port=free_port(),
                            root=repo_root()),
            postgres=PostgresCluster(run_dir=run_dir, port=free_port()),
        )  # fmt: skip

    def up(self) -> None:
        self.postgres.start()
        self.kafka.start()

    def down(self) -> None:
        self.kafka.stop()
        self.postgres.stop()

    def env(self) -> dict[str, str]:
        """Where the stack listens (credentials stay in the secrets folder)."""
        return {
            "PAVED_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "PAVED_KAFKA_SECRETS_DIR": str(self.kafka.secrets.path),
            "PAVED_DATABASE_URL": self.postgres.dsn,
        }


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "status"
    stack = DevStack.from_env()
    try:
        if cmd == "up":
            stack.up()
            for k, v in stack.env().items():
                print(f"{k}={v}")
        elif cmd == "down":
            kafka, pg = stack.kafka.stop(), stack.postgres.stop()
            print(f"kafka: {'stopped' if kafka else 'not running'}")
            print(f"postgres: {'stopped' if pg else 'not running'}")
        elif cmd == "status":
            print(f"kafka {stack.kafka.bootstrap}: {'up' if stack.kafka.running() else 'down'}")
            print(f"postgres {stack.postgres.dsn}: {'up' if stack.postgres.running() else 'down'}")
        elif cmd == "env":
            for k, v in stack.env().items():
                print(f"export {k}={v}")
        elif cmd == "fetch":
            stack.kafka.fetch()
        else:
            print(f"unknown command {cmd!r}; use up, down, status, env or fetch", file=sys.stderr)
            return 2
    except DevStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
