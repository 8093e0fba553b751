"""Shared fixtures of the deployer tests: a tiny trained model, its signature, events."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from paved_deployer.adapters.local import free_port, stop_servers_under
from paved_deployer.bootstrap import create_deployer
from paved_deployer.deployer import Deployer
from paved_deployer.settings import DeployerSettings
from paved_schemas import topics
from paved_schemas.envelope import Envelope, parse_envelope_as
from paved_schemas.events import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    DeploymentStatusChanged,
    DeploymentTarget,
    ESignature,
    Framework,
    ModelCard,
    ModelSignature,
    ModelVersionRegistered,
    ModelVersionRetired,
    RequestDeployment,
    RiskTier,
    SignatureMeaning,
)
from paved_shared.artifacts import sha256_file
from paved_shared.kafka import make_broker
from paved_shared.testing import unique
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression

SIGNATURE = ModelSignature.model_validate(
    {
        "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
        ],
    }
)


@dataclass(frozen=True)
class TrainedModel:
    """A pickled LogisticRegression and what tests need to check its answers."""

    path: Path
    digest: str
    model: Any
    sample: np.ndarray

    @property
    def uri(self) -> str:
        return self.path.as_uri()


def train(folder: Path, seed: int = 7) -> TrainedModel:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 3]], dtype=float)
    y = np.repeat(np.arange(3), 30)
    x = centers[y] + rng.normal(scale=0.8, size=(90, 4))
    model = LogisticRegression(max_iter=500).fit(x, y)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return TrainedModel(path, sha256_file(path), model, x[::9][:8])


@pytest.fixture
def trained(tmp_path: Path) -> TrainedModel:
    return train(tmp_path / "artifacts")


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """The deployer's run dir; every model server under it is stopped at teardown."""
    folder = tmp_path / "run"
    folder.mkdir()
    try:
        yield folder
    finally:
        stop_servers_under(folder)


@dataclass
class RunningServer:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path


def start_server(
    folder: Path, trained: TrainedModel, *, digest: str | None = None, name: str = "iris"
) -> RunningServer:
    """A real model-server process on a free port (not waited for)."""
    signature_file = folder / "signature.json"
    signature_file.write_text(SIGNATURE.model_dump_json())
    port = free_port("127.0.0.1")
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paved_deployer.modelserver", "--name", name, "--version",
             "3", "--model-file", str(trained.path), "--signature-file", str(signature_file),
             "--digest", digest or trained.digest, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return RunningServer(f"http://127.0.0.1:{port}", proc, log)


def wait_ready(server: RunningServer, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited: {server.log.read_text()}")
        try:
            if httpx.get(f"{server.base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready: {server.log.read_text()}")


def stop_server(server: RunningServer) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


# --------------------------------------------------------------------------- stack helpers

ACTOR = {"source": "/paved/test", "actor": "user:carol", "actorname": "Carol Example"}
CARD = {
    "description": "Three blobs.", "intended_use": "Tests.", "limitations": "Synthetic data.",
    "risk_tier": "low", "data_classification": "public", "license": "Apache-2.0",
}  # fmt: skip


def registered(trained: TrainedModel, model: str, version: int = 1) -> Envelope[Any]:
    return Envelope.new(
        ModelVersionRegistered(
            model_name=model, version=version, artifact_uri=trained.uri,
            artifact_digest=trained.digest, framework=Framework.SKLEARN, signature=SIGNATURE,
            model_card=ModelCard.model_validate(CARD), registered_by="alice",
            registered_by_name="Alice Scientist", request_id=str(uuid.uuid4()),
        ),
        **ACTOR,
    )  # fmt: skip


def granted(model: str, digest: str, version: int = 1) -> Envelope[Any]:
    return Envelope.new(
        ApprovalGranted(
            model_name=model, version=version, artifact_digest=digest, approval_id="apr-1",
            risk_tier=RiskTier.LOW, policy_version="2025-03-01", signatures=[],
            auto_approved=True,
        ),
        **ACTOR,
    )  # fmt: skip


def rejected(model: str, digest: str, version: int = 1) -> Envelope[Any]:
    signature = ESignature(
        signer_id="bob", printed_name="Bob Reviewer", signed_at=datetime.now(UTC),
        meaning=SignatureMeaning.REJECTION, reason="Limitations too broad.",
        version_hash=digest,
    )  # fmt: skip
    return Envelope.new(
        ApprovalRejected(
            model_name=model, version=version, artifact_digest=digest, approval_id="apr-2",
            risk_tier=RiskTier.MEDIUM, policy_version="2025-03-01", signatures=[signature],
        ),
        **ACTOR,
    )  # fmt: skip


def expired(model: str, digest: str, version: int = 1) -> Envelope[Any]:
    return Envelope.new(
        ApprovalExpired(
            model_name=model, version=version, artifact_digest=digest, approval_id="apr-1",
            risk_tier=RiskTier.LOW, policy_version="2025-03-01", expired_at=datetime.now(UTC),
        ),
        **ACTOR,
    )  # fmt: skip


def request(
    deployment_id: str, model: str, digest: str, version: int = 1, target: str = "local"
) -> Envelope[Any]:
    return Envelope.new(
        RequestDeployment(
            deployment_id=deployment_id, model_name=model, version=version,
            artifact_digest=digest, target=DeploymentTarget(target), requested_by="carol",
        ),
        **ACTOR,
    )  # fmt: skip


def retired(model: str, version: int = 1) -> Envelope[Any]:
    return Envelope.new(
        ModelVersionRetired(
            model_name=model, version=version, reason="superseded by version 2",
            retired_by="alice",
        ),
        **ACTOR,
    )  # fmt: skip


async def publish(bootstrap: str, *events: Envelope[Any]) -> None:
    broker = make_broker(bootstrap, client_id="deployer-test", metrics_registry=CollectorRegistry())
    await broker.start()
    try:
        for event in events:
            data = event.data
            await broker.publish(event.to_json_bytes(), topic=data.TOPIC, key=data.key().encode())
    finally:
        await broker.stop()


async def statuses(
    bootstrap: str,
    deployment_id: str,
    until: Callable[[list[DeploymentStatusChanged]], bool],
    timeout_s: float = 60.0,
) -> list[DeploymentStatusChanged]:
    """Status events of one deployment, read from the start, until `until` holds."""
    consumer = AIOKafkaConsumer(
        topics.DEPLOYMENT_STATUS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    seen: list[DeploymentStatusChanged] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    if record.key != deployment_id.encode():
                        continue
                    seen.append(parse_envelope_as(record.value, DeploymentStatusChanged).data)
            if until(seen):
                return seen
    finally:
        await consumer.stop()
    raise AssertionError(
        f"timed out waiting on {deployment_id}; saw {[(s.status.value, s.reason) for s in seen]}"
    )


def settings(stack: Any, run_dir: Path, **overrides: Any) -> DeployerSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": stack.bootstrap,
        "database_url": stack.dsn,
        "deployer_db_schema": unique("t_deployer"),
        "deployer_consumer_group": unique("t-deployer"),
        "deployer_run_dir": run_dir,
        "deployer_stop_servers_on_exit": True,
        "deployer_reconcile_interval_s": 0.5,
        "db_pool_max": 5,
    }
    values.update(overrides)
    return DeployerSettings(**values)


def deployer(config: DeployerSettings) -> Deployer:
    return create_deployer(config, metrics_registry=CollectorRegistry())


class Kit:
    """The helpers above, for test modules (conftest cannot be imported under importlib mode)."""

    SIGNATURE = SIGNATURE
    TrainedModel = TrainedModel
    RunningServer = RunningServer
    train = staticmethod(train)
    start_server = staticmethod(start_server)
    wait_ready = staticmethod(wait_ready)
    stop_server = staticmethod(stop_server)
    registered = staticmethod(registered)
    granted = staticmethod(granted)
    rejected = staticmethod(rejected)
    expired = staticmethod(expired)
    request = staticmethod(request)
    retired = staticmethod(retired)
    publish = staticmethod(publish)
    statuses = staticmethod(statuses)
    settings = staticmethod(settings)
    deployer = staticmethod(deployer)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit
