"""Real cloud stand-ins on loopback for tests: ``moto_server`` (AWS) and the GCS emulator.

Each runs as its own process on a free 127.0.0.1 port, with obviously fake
credentials, and is stopped (process group killed) by ``stop()``. Nothing in the
runtime imports this module; the root ``conftest.py`` wraps it in session fixtures.

    with MotoServer.start() as aws:
        aws.create_bucket("artifacts")
        store = store_for("s3://artifacts/m.pkl", config=aws.store_config())
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from paved_shared.artifacts import ArtifactStoreConfig

FAKE_AWS_ACCESS_KEY_ID = "paved-test-fake-access-key"
FAKE_AWS_SECRET_ACCESS_KEY = "paved-test-fake-secret-key-not-a-real-secret"  # noqa: S105
FAKE_AWS_REGION = "us-east-1"
FAKE_GCP_PROJECT = "paved-test-fake-project"
START_TIMEOUT_S = 30.0


class EmulatorError(RuntimeError):
    """An emulator did not start or answer."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    """The console script ``name`` next to this interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise EmulatorError(f"{name!r} is not installed (uv sync installs it as a dev dependency)")
    return found


def _http_ok(url: str, method: str = "GET") -> bool:
    try:
        request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback only
        with urllib.request.urlopen(request, timeout=1) as response:  # noqa: S310
            return 200 <= int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


@dataclass
class _Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_url: str) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmulatorError(
                    f"{self.name} exited with {self.proc.returncode} while starting: "
                    f"{self.log.read_text(errors='replace')[-2000:]}"
                )
            if _http_ok(ready_url):
                return
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"{self.name} did not answer at {ready_url} in {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _clean_env() -> dict[str, str]:
    """The parent's environment minus any real cloud credentials."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "STORAGE_EMULATOR"))
    }


@dataclass
class MotoServer:
    """A real ``moto_server`` (S3, STS, IAM, SageMaker, ... in one process) on loopback."""

    port: int
    workdir: Path
    _process: _Process | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        """Pass as ``endpoint_url`` to boto3/aioboto3 clients."""
        return f"http://127.0.0.1:{self.port}"

    region: str = FAKE_AWS_REGION
    access_key_id: str = FAKE_AWS_ACCESS_KEY_ID
    secret_access_key: str = FAKE_AWS_SECRET_ACCESS_KEY

    @classmethod
    def start(cls, workdir: Path | None = None) -> MotoServer:
        """Start one on a free port and wait until it answers."""
        workdir = workdir or Path(tempfile.mkdtemp(prefix="paved-moto-"))
        server = cls(port=free_port(), workdir=workdir)
        process = _Process(
            "moto_server",
            [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(server.port)],
            _clean_env(),
            workdir,
            workdir / "moto.log",
        )
        server._process = process
        process.start(f"{server.endpoint_url}/moto-api/")
        return server

    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK at this server with fake credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def store_config(self) -> ArtifactStoreConfig:
        """An artifact-store config for ``s3://`` URIs served by this server."""
        return ArtifactStoreConfig(
            s3_endpoint_url=self.endpoint_url,
            s3_region=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name by default); return its name."""
        name = name or f"paved-test-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.endpoint_url}/{name}", method="PUT"
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if int(response.status) >= 300:
                raise EmulatorError(f"moto refused bucket {name!r}: HTTP {response.status}")
        return name

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.endpoint_url}/moto-api/reset", method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310

    def stop(self) -> None:
        """Stop the server (its whole process group)."""
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class GCSEmulator:
    """A real ``gcp-storage-emulator`` (GCS JSON API) on loopback, data on disk."""

    port: int
    data_dir: Path
    _process: _Process | None = field(default=None, repr=False)
    project: str = FAKE_GCP_PROJECT

    @property
    def endpoint_url(self) -> str:
        """The API root: ``api_root=`` of gcloud-aio-storage, ``STORAGE_EMULATOR_HOST``."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, data_dir: Path | None = None) -> GCSEmulator:
        """Start one on a free port and wait until it answers."""
        data_dir = (data_dir or Path(tempfile.mkdtemp(prefix="paved-gcs-"))).resolve()
        server = cls(port=free_port(), data_dir=data_dir)
        argv = [_bin("gcp-storage-emulator"), "-d", str(data_dir), "start", "--quiet"]
        argv += ["--host", "127.0.0.1", "--port", str(server.port)]
        process = _Process(
            "gcp-storage-emulator",
            argv,
            _clean_env(),
            data_dir,
            data_dir / "emulator.log",
        )
        server._process = process
        process.start(f"{server.endpoint_url}/storage/v1/b?project={server.project}")
        return server

    def env(self) -> dict[str, str]:
        """Environment variables that point Google's SDKs at this emulator."""
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint_url,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def store_config(self) -> ArtifactStoreConfig:
        """An artifact-store config for ``gs://`` URIs served by this emulator."""
        return ArtifactStoreConfig(gcs_endpoint_url=self.endpoint_url)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name by default); return its name.

        gcloud-aio-storage has no create-bucket call; this is the JSON API's POST.
        """
        import json

        name = name or f"paved-test-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.endpoint_url}/storage/v1/b?project={self.project}",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if int(response.status) >= 300:
                raise EmulatorError(f"the GCS emulator refused bucket {name!r}: {response.status}")
        return name

    def stop(self) -> None:
        """Stop the emulator (its whole process group)."""
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
