"""Shared fixtures of the deployer tests: a tiny trained model, its signature, events."""

from __future__ import annotations

import os
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
    DeploymentSpec,
    DeploymentStatusChanged,
    DeploymentTarget,
    ESignature,
    Framework,
    ModelCard,
    ModelSignature,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RequestDeployment,
    RiskTier,
    SignatureMeaning,
)
from paved_shared.artifacts import sha256_file
from paved_shared.kafka import kafka_auth, make_broker
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

ACTOR = {"actor": "user:carol", "actorname": "Carol Example"}


def _owned(data: Any, **kw: Any) -> Envelope[Any]:
    """An envelope from the service that owns ``data``'s topic (consumers refuse others)."""
    source = f"/paved/{topics.TOPIC_WRITERS[data.TOPIC][0]}"
    return Envelope.new(data, source=source, **kw)


CARD = {
    "description": "Three blobs.", "intended_use": "Tests.", "limitations": "Synthetic data.",
    "risk_tier": "low", "data_classification": "public", "license": "Apache-2.0",
}  # fmt: skip


def registered(
    trained: Any,
    model: str,
    version: int = 1,
    *,
    uri: str | None = None,
    framework: Framework = Framework.SKLEARN,
    signature: ModelSignature = SIGNATURE,
    genai: bool = False,
) -> Envelope[Any]:
    """`ModelVersionRegistered` for `trained` (anything with `.uri` and `.digest`)."""
    card = ModelCard.model_validate({**CARD, "genai": genai})
    return _owned(
        ModelVersionRegistered(
            model_name=model, version=version, artifact_uri=uri or trained.uri,
            artifact_digest=trained.digest, framework=framework, signature=signature,
            model_card=card, registered_by="alice", registered_by_name="Alice Scientist",
            request_id=str(uuid.uuid4()),
        ),
        **ACTOR,
    )  # fmt: skip


def validated(model: str, digest: str, version: int = 1, *, passed: bool = True) -> Envelope[Any]:
    """`ModelVersionValidated` for the digest (what the validator publishes)."""
    outcome = "passed" if passed else "failed"
    return _owned(
        ModelVersionValidated(
            model_name=model, version=version, artifact_digest=digest, passed=passed,
            reasons=[] if passed else ["scan: os.system found in the pickle"],
            checks=[{"name": "scan", "outcome": outcome, "duration_ms": 3}],
            evidence_uri=f"file:///evidence/{model}/{version}.json",
            evidence_digest="sha256:" + "0" * 64, validator_version="0.1.0",
        ),
        **ACTOR,
    )  # fmt: skip


def approved(model: str, digest: str, version: int = 1) -> list[Envelope[Any]]:
    """What admission needs besides the registration: a passed validation and a grant."""
    return [validated(model, digest, version), granted(model, digest, version)]


def granted(model: str, digest: str, version: int = 1) -> Envelope[Any]:
    return _owned(
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
    return _owned(
        ApprovalRejected(
            model_name=model, version=version, artifact_digest=digest, approval_id="apr-2",
            risk_tier=RiskTier.MEDIUM, policy_version="2025-03-01", signatures=[signature],
        ),
        **ACTOR,
    )  # fmt: skip


def expired(model: str, digest: str, version: int = 1) -> Envelope[Any]:
    return _owned(
        ApprovalExpired(
            model_name=model, version=version, artifact_digest=digest, approval_id="apr-1",
            risk_tier=RiskTier.LOW, policy_version="2025-03-01", expired_at=datetime.now(UTC),
        ),
        **ACTOR,
    )  # fmt: skip


def request(
    deployment_id: str,
    model: str,
    digest: str,
    version: int = 1,
    target: str = "local",
    **spec: Any,
) -> Envelope[Any]:
    return _owned(
        RequestDeployment(
            deployment_id=deployment_id, model_name=model, version=version,
            artifact_digest=digest, target=DeploymentTarget(target), requested_by="carol",
            spec=DeploymentSpec.model_validate(spec),
        ),
        **ACTOR,
    )  # fmt: skip


def retired(model: str, version: int = 1) -> Envelope[Any]:
    return _owned(
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
        topics.DEPLOYMENT_STATUS, bootstrap_servers=bootstrap, **kafka_auth().aiokafka(),
        auto_offset_reset="earliest",
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


async def start_at_end(bootstrap: str, group: str) -> None:
    """Commit `group`'s offsets at the end of the deployer's topics, so a new deployer acts
    only on what its test publishes, not on other tests' history (approved requests of
    other tests would otherwise be deployed again in this test's run dir)."""
    from aiokafka import TopicPartition
    from paved_shared.kafka import ensure_topics

    await ensure_topics(bootstrap, topics.ALL_TOPICS)
    names = (topics.DEPLOYMENT_REQUESTS, topics.MODEL_EVENTS, topics.APPROVAL_EVENTS,
             topics.VALIDATION_EVENTS)  # fmt: skip
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_auth().aiokafka(),
                                group_id=group, enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()


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
    validated = staticmethod(validated)
    approved = staticmethod(approved)
    rejected = staticmethod(rejected)
    expired = staticmethod(expired)
    request = staticmethod(request)
    retired = staticmethod(retired)
    publish = staticmethod(publish)
    statuses = staticmethod(statuses)
    settings = staticmethod(settings)
    deployer = staticmethod(deployer)
    start_at_end = staticmethod(start_at_end)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit


# --------------------------------------------------------------------------- Kubernetes

REPO = Path(__file__).resolve().parents[3]
BUILD_KUBE = REPO / "services" / "deployer" / "scripts" / "build-kube-apiserver.sh"
KUBE_TOKEN = "paved-test-token"


@dataclass(frozen=True)
class KubeAPI:
    """A real kube-apiserver (and etcd) on loopback, for the aws/gcp targets.

    There are no controllers and no kubelet: Deployments are stored, validated and
    served exactly like on a cluster, but nothing runs pods. `Kubelet` below plays
    that part in the tests.
    """

    url: str
    token: str
    ca_file: Path


def _spawn(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    """Build (once, cached under .run/k8s) and start etcd + kube-apiserver on free ports."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    subprocess.run(["bash", str(BUILD_KUBE)], check=True, timeout=3600)
    bin_dir = Path(os.environ.get("PAVED_KUBE_BIN") or REPO / ".run" / "k8s" / "bin")
    if run_dir_env := os.environ.get("PAVED_RUN_DIR"):
        bin_dir = Path(os.environ.get("PAVED_KUBE_BIN") or Path(run_dir_env) / "k8s" / "bin")
    folder = tmp_path_factory.mktemp("kube")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "sa.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (folder / "sa.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (folder / "tokens.csv").write_text(f"{KUBE_TOKEN},paved-test,paved-test,system:masters\n")
    client_port, peer_port, api_port = (free_port("127.0.0.1") for _ in range(3))
    etcd = _spawn(
        [str(bin_dir / "etcd"), "--data-dir", str(folder / "etcd"),
         "--listen-client-urls", f"http://127.0.0.1:{client_port}",
         "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"],
        folder / "etcd.log", folder,
    )  # fmt: skip
    apiserver = _spawn(
        [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{client_port}",
         f"--secure-port={api_port}", "--bind-address=127.0.0.1",
         "--advertise-address=127.0.0.1",
         "--service-account-issuer=https://kubernetes.default.svc",
         f"--service-account-key-file={folder / 'sa.pub'}",
         f"--service-account-signing-key-file={folder / 'sa.key'}",
         f"--token-auth-file={folder / 'tokens.csv'}", "--authorization-mode=RBAC",
         f"--cert-dir={folder / 'certs'}", "--service-cluster-ip-range=10.96.0.0/24",
         "--enable-priority-and-fairness=false"],
        folder / "kube-apiserver.log", folder,
    )  # fmt: skip
    url = f"https://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if apiserver.poll() is not None or etcd.poll() is not None:
                raise AssertionError(
                    "kube-apiserver/etcd exited: "
                    + (folder / "kube-apiserver.log").read_text()[-2000:]
                    + (folder / "etcd.log").read_text()[-1000:]
                )
            try:
                answer = httpx.get(
                    f"{url}/readyz", headers={"Authorization": f"Bearer {KUBE_TOKEN}"},
                    verify=False, timeout=2,
                )  # fmt: skip
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("kube-apiserver not ready within 120 s")
            time.sleep(0.3)
        yield KubeAPI(url, KUBE_TOKEN, folder / "certs" / "apiserver.crt")
    finally:
        _stop(apiserver)
        _stop(etcd)


class Kubelet:
    """Plays the Deployment controller and kubelet for one namespace of the test API server.

    For every Deployment whose status is behind its spec it runs what a pod would: the
    init container's fetch (`paved_deployer.fetch`: artifact from S3/GCS, digest check)
    and the model server's loader on the fetched file. If both succeed, the Deployment
    reports all replicas available; if not, `Progressing=False
    (ProgressDeadlineExceeded)` with the error, as Kubernetes reports a crash-looping
    rollout. Nothing else is faked: objects, validation and status live in the real
    API server.
    """

    def __init__(self, api: KubeAPI, namespace: str, store_config: Any, workdir: Path) -> None:
        self.api = api
        self.namespace = namespace
        self.store_config = store_config
        self.workdir = workdir
        self.rollouts: list[str] = []
        self._task: Any = None

    async def _client(self) -> Any:
        from paved_deployer.adapters.kubernetes import KubeConfig

        return await KubeConfig(url=self.api.url, token=self.api.token,
                                ca_file=self.api.ca_file).client()  # fmt: skip

    async def _pod_outcome(self, deployment: Any) -> str | None:
        """Run what the pod would: its init container, then the model server's loader."""
        import asyncio

        from paved_deployer.fetch import fetch
        from paved_deployer.modelserver.loaders import load

        notes = deployment.metadata.annotations or {}
        framework = notes["paved.dev/framework"]
        init = deployment.spec.template.spec.init_containers[0].args
        uri = init[init.index("--uri") + 1]
        digest = init[init.index("--digest") + 1]
        signature_json = init[init.index("--signature-json") + 1]
        signature = ModelSignature.model_validate_json(signature_json)
        folder = self.workdir / uuid.uuid4().hex[:8]
        try:
            path = await fetch(uri, digest, folder, signature_json, config=self.store_config)
        except Exception as exc:  # the init container exits non-zero
            return f"init container fetch-model: refusing to serve: {exc}"
        try:
            await asyncio.to_thread(
                load, framework, path, expected_digest=digest, signature=signature
            )
        except Exception as exc:  # the model server exits before it is ready
            return f"container modelserver: refusing to start: {exc}"
        return None

    async def run(self) -> None:
        import asyncio

        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        api = await self._client()
        apps = client.AppsV1Api(api)
        try:
            while True:
                found = await apps.list_namespaced_deployment(self.namespace)
                for item in found.items:
                    status = item.status
                    if status is not None and (status.observed_generation or 0) >= (
                        item.metadata.generation or 0
                    ):
                        continue
                    failure = await self._pod_outcome(item)
                    replicas = item.spec.replicas
                    if failure is None:
                        patch = {"status": {
                            "observedGeneration": item.metadata.generation, "replicas": replicas,
                            "updatedReplicas": replicas, "readyReplicas": replicas,
                            "availableReplicas": replicas,
                            "conditions": [{"type": "Available", "status": "True",
                                            "reason": "MinimumReplicasAvailable"}]}}  # fmt: skip
                    else:
                        patch = {"status": {
                            "observedGeneration": item.metadata.generation, "replicas": replicas,
                            "updatedReplicas": replicas, "unavailableReplicas": replicas,
                            "conditions": [{"type": "Progressing", "status": "False",
                                            "reason": "ProgressDeadlineExceeded",
                                            "message": failure[:1000]}]}}  # fmt: skip
                    try:
                        await apps.patch_namespaced_deployment_status(
                            item.metadata.name, self.namespace, patch,
                            _content_type="application/merge-patch+json",
                        )  # fmt: skip
                    except ApiException as exc:
                        if exc.status not in (404, 409):  # deleted or changed meanwhile
                            raise
                        continue
                    self.rollouts.append(item.metadata.name)
                await asyncio.sleep(0.2)
        finally:
            await api.close()

    def start(self) -> None:
        import asyncio

        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        import asyncio
        import contextlib

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


Kit.KubeAPI = KubeAPI  # type: ignore[attr-defined]
Kit.Kubelet = Kubelet  # type: ignore[attr-defined]
