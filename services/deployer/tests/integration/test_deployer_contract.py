"""One contract, three targets: the same deployment scenarios give the same status events
on `local` (real model-server processes), `aws` (S3 on moto server + a real
kube-apiserver) and `gcp` (GCS emulator + the same kube-apiserver).

Each target gets a `World` that checks what really runs: on `local` the answers that
come back through the deployment's endpoint (the traffic split is exact: smooth
weighted round robin), on the clouds the objects in the Kubernetes API server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from paved_deployer.adapters.local import is_server, replicas_of
from paved_schemas.events import DeploymentStatus as S
from paved_shared.artifacts import store_for
from paved_shared.testing import unique, wait_for

pytestmark = pytest.mark.integration

TARGETS = ["local", "aws", "gcp"]


def statuses_of(seen: list[Any]) -> list[tuple[str, int]]:
    return [(s.status.value, s.revision) for s in seen]


async def serving(deployer: Any, dep: str) -> list[dict[str, Any]]:
    async with deployer.runtime.pool.acquire() as conn:
        rows: list[dict[str, Any]] = await conn.fetchval(
            "SELECT serving FROM deployments WHERE deployment_id = $1", dep
        )
    return rows


def at(status: S, revision: int | None = None) -> Any:
    """`statuses` predicate: the last event has this status (and revision)."""

    def check(seen: list[Any]) -> bool:
        return (
            bool(seen)
            and seen[-1].status is status
            and (revision is None or seen[-1].revision == revision)
        )

    return check


def split_of(entries: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """revision -> (version, weight)."""
    return {e["revision"]: (e["version"], e["weight"]) for e in entries}


@dataclass
class World:
    """What a target really runs, and how to break it behind the deployer's back."""

    target: str
    settings: dict[str, Any]
    kube: Any = None
    kubelet: Any = None
    namespace: str | None = None
    store_config: Any = None
    bucket: str | None = None

    async def artifact_uri(self, trained: Any, name: str) -> str:
        """Where the registration says the artifact is: S3 for aws (already there);
        a local file for gcp and local (gcp stages it in its bucket itself)."""
        if self.target != "aws":
            return str(trained.uri)
        uri = f"s3://{self.bucket}/registered/{name}/{trained.path.name}"
        await store_for(uri, config=self.store_config).put(trained.path, uri)
        return uri

    async def _k8s(self) -> Any:
        from paved_deployer.adapters.kubernetes import KubeConfig

        return await KubeConfig(
            url=self.kube.url, token=self.kube.token, ca_file=self.kube.ca_file
        ).client()

    async def objects(self, dep: str) -> dict[str, Any]:
        """Deployments (name -> replicas, version) and Services of `dep` in the cluster."""
        from kubernetes_asyncio import client

        api = await self._k8s()
        try:
            selector = f"paved.dev/deployment={dep.replace('_', '-')}"
            deployments = await client.AppsV1Api(api).list_namespaced_deployment(
                self.namespace, label_selector=selector
            )
            services = await client.CoreV1Api(api).list_namespaced_service(
                self.namespace, label_selector=selector
            )
            policies = await client.NetworkingV1Api(api).list_namespaced_network_policy(
                self.namespace, label_selector=selector
            )
            hpas = await client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(
                self.namespace, label_selector=selector
            )
            pdbs = await client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(
                self.namespace, label_selector=selector
            )
        finally:
            await api.close()
        return {
            "deployments": {
                int(d.metadata.labels["paved.dev/revision"]): (
                    d.spec.replicas,
                    int(d.metadata.labels["paved.dev/version"]),
                )
                for d in deployments.items
            },
            "services": [(s.metadata.annotations, s.spec.selector) for s in services.items],
            "policies": len(policies.items),
            "hpas": len(hpas.items),
            "pdbs": len(pdbs.items),
        }

    async def check_serving(
        self, deployer: Any, dep: str, endpoint: str, expected: dict[int, tuple[int, int]],
        models: dict[int, Any], replicas: dict[int, int],
    ) -> None:  # fmt: skip
        """The serving revisions are `expected` (revision -> (version, weight)), really."""
        entries = await serving(deployer, dep)
        assert split_of(entries) == expected
        if self.target == "local":
            for entry in entries:
                assert len(replicas_of(entry["handle"])) == replicas[entry["revision"]]
                for replica in replicas_of(entry["handle"]):
                    assert is_server(replica["pid"], entry["handle"]["dir"])
            await self._check_traffic(endpoint, expected, models)
            return
        wanted = {rev: (replicas[rev], version) for rev, (version, _) in expected.items()}

        async def converged() -> bool:
            # Replaced revisions are deleted by the reconciler's next step, after `ready`.
            return (await self.objects(dep))["deployments"] == wanted

        await wait_for(converged, timeout_s=30, what=f"Deployments {wanted} only")
        found = await self.objects(dep)
        assert found["hpas"] == found["pdbs"] == len(expected)
        assert found["policies"] == 1
        [(annotations, selector)] = found["services"]
        traffic = {int(k): v for k, v in __import__("json").loads(
            annotations["paved.dev/traffic"]).items()}  # fmt: skip
        assert traffic == {rev: weight for rev, (_, weight) in expected.items()}
        if len(expected) == 1:
            assert selector["paved.dev/revision"] == str(next(iter(expected)))
        assert endpoint == (
            f"http://{entries[0]['handle']['name'].rsplit('-r', 1)[0]}.{self.namespace}"
            f".svc.cluster.local/v2/models/{entries[0]['model_name']}"
        )

    async def _check_traffic(
        self, endpoint: str, expected: dict[int, tuple[int, int]], models: dict[int, Any]
    ) -> None:
        """100 requests through the endpoint: each version answers exactly its weight."""
        sample = next(iter(models.values())).sample
        body = {"inputs": [{"name": "features", "shape": list(sample.shape), "datatype": "FP64",
                            "data": sample.tolist()}]}  # fmt: skip
        answered: Counter[int] = Counter()
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(100):
                response = await client.post(f"{endpoint}/infer", json=body)
                assert response.status_code == 200, response.text
                out = response.json()
                version = int(out["model_version"])
                answered[version] += 1
                assert out["outputs"][0]["data"] == models[version].model.predict(sample).tolist()
        want: Counter[int] = Counter()
        for version, weight in expected.values():
            want[version] += weight
        assert answered == +want

    async def nothing_left(self, deployer: Any, dep: str, run_dir: Path) -> None:
        """Nothing of `dep` is recorded as running, and nothing is."""
        async with deployer.runtime.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT serving, endpoint, handle, retiring FROM deployments "
                "WHERE deployment_id = $1", dep,
            )  # fmt: skip
        assert row["serving"] == []
        assert row["endpoint"] is None
        assert row["handle"] is None
        await self.nothing_runs(dep, run_dir)

    async def nothing_runs(self, dep: str, run_dir: Path) -> None:
        """Every server, endpoint and object of `dep` is gone."""
        if self.target == "local":
            pid_files = await asyncio.to_thread(lambda: list((run_dir / dep).glob("*/*.pid")))
            live = [p for p in pid_files if is_server(int(p.read_text()), str(p.parent))]
            assert live == [], f"still running: {live}"
            return
        found = await self.objects(dep)
        assert found == {"deployments": {}, "services": [], "policies": 0, "hpas": 0, "pdbs": 0}

    async def sabotage(self, entries: list[dict[str, Any]]) -> Any:
        """Break the serving revision behind the deployer's back; return what was there."""
        [entry] = entries
        handle = entry["handle"]
        if self.target == "local":
            for replica in replicas_of(handle):
                os.killpg(replica["pid"], signal.SIGKILL)
            return handle
        from kubernetes_asyncio import client

        api = await self._k8s()
        try:
            await client.AppsV1Api(api).delete_namespaced_deployment(
                handle["name"], handle["namespace"]
            )
        finally:
            await api.close()
        return handle

    async def repaired(self, deployer: Any, dep: str, old: Any) -> bool:
        [entry] = await serving(deployer, dep)
        handle = entry["handle"]
        if self.target == "local":
            return handle != old and all(
                is_server(r["pid"], handle["dir"]) for r in replicas_of(handle)
            )
        found = await self.objects(dep)
        return entry["revision"] in found["deployments"]


@pytest.fixture(params=TARGETS)
async def world(request: pytest.FixtureRequest, kit: Any, tmp_path: Path) -> AsyncIterator[World]:
    target = request.param
    if target == "local":
        yield World("local", {})
        return
    kube = request.getfixturevalue("kube_api")
    namespace = f"paved-t-{uuid.uuid4().hex[:10]}"
    if target == "aws":
        cloud = request.getfixturevalue("moto_server")
        store_config = cloud.store_config()
        cloud_settings: dict[str, Any] = {
            "artifact_s3_endpoint_url": store_config.s3_endpoint_url,
            "artifact_s3_region": store_config.s3_region,
            "artifact_aws_access_key_id": store_config.aws_access_key_id,
            "artifact_aws_secret_access_key": store_config.aws_secret_access_key,
        }
    else:
        cloud = request.getfixturevalue("gcs_emulator")
        store_config = cloud.store_config()
        cloud_settings = {"artifact_gcs_endpoint_url": store_config.gcs_endpoint_url}
    bucket = cloud.create_bucket()
    settings = {
        "deployer_target": target,
        "deployer_kube_url": kube.url,
        "deployer_kube_token": kube.token,
        "deployer_kube_ca_file": kube.ca_file,
        "deployer_kube_namespace": namespace,
        "deployer_artifact_bucket": bucket,
        "deployer_ready_timeout_s": 30,
        **cloud_settings,
    }
    kubelet = kit.Kubelet(kube, namespace, store_config, tmp_path / "kubelet")
    kubelet.start()
    try:
        yield World(target, settings, kube, kubelet, namespace, store_config, bucket)
    finally:
        await kubelet.stop()


def broken_model(folder: Path) -> Any:
    """A file registered as a scikit-learn model that no server can load."""
    from paved_shared.artifacts import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    path.write_bytes(b"this is not a pickle")

    @dataclass(frozen=True)
    class Broken:
        path: Path
        digest: str

        @property
        def uri(self) -> str:
            return self.path.as_uri()

    return Broken(path, sha256_file(path))


async def test_deploy_scale_canary_rollback_retire(
    stack: Any, kit: Any, world: World, tmp_path: Path, run_dir: Path
) -> None:
    model, dep = unique("churn"), unique("dep")
    v1 = kit.train(tmp_path / "v1", seed=7)
    v2 = kit.train(tmp_path / "v2", seed=11)
    broken = broken_model(tmp_path / "v3")
    models = {1: v1, 2: v2}
    events = []
    for version, trained in ((1, v1), (2, v2), (3, broken)):
        uri = await world.artifact_uri(trained, f"{model}-{version}")
        events += [kit.registered(trained, model, version, uri=uri),
                   *kit.approved(model, trained.digest, version)]  # fmt: skip
    target = world.target
    config = kit.settings(stack, run_dir, **world.settings)

    await kit.start_at_end(stack.bootstrap, config.consumer_group)

    deployer = kit.deployer(config)
    await deployer.start()
    try:
        await kit.publish(stack.bootstrap, *events, kit.request(dep, model, v1.digest, 1, target))
        seen = await kit.statuses(stack.bootstrap, dep, at(S.READY))
        assert statuses_of(seen) == [("pending", 1), ("provisioning", 1), ("ready", 1)]
        endpoint = seen[-1].endpoint_url
        await world.check_serving(deployer, dep, endpoint, {1: (1, 100)}, models, {1: 1})

        # Scale: a new revision with two replicas replaces the first, same endpoint.
        await kit.publish(
            stack.bootstrap, kit.request(dep, model, v1.digest, 1, target, replicas=2)
        )
        seen = await kit.statuses(stack.bootstrap, dep, at(S.READY, 2))  # fmt: skip
        assert statuses_of(seen)[3:] == [("pending", 2), ("provisioning", 2), ("ready", 2)]
        assert seen[-1].endpoint_url == endpoint
        await world.check_serving(deployer, dep, endpoint, {2: (1, 100)}, models, {2: 2})

        # Canary: version 2 takes 25 % of the traffic; revision 2 keeps 75 %.
        await kit.publish(
            stack.bootstrap, kit.request(dep, model, v2.digest, 2, target, canary_weight=25)
        )
        seen = await kit.statuses(stack.bootstrap, dep, at(S.READY, 3))  # fmt: skip
        assert statuses_of(seen)[6:] == [("pending", 3), ("provisioning", 3), ("ready", 3)]
        assert "revision 2: 75%" in (seen[-1].reason or "")
        await world.check_serving(
            deployer, dep, endpoint, {2: (1, 75), 3: (2, 25)}, models, {2: 2, 3: 1}
        )

        # A rollout that cannot start rolls back: the canary split keeps serving.
        await kit.publish(stack.bootstrap, kit.request(dep, model, broken.digest, 3, target))
        seen = await kit.statuses(stack.bootstrap, dep, at(S.ROLLED_BACK, 4))  # fmt: skip
        assert statuses_of(seen)[9:] == [
            ("pending", 4), ("provisioning", 4), ("rolled_back", 4),
        ]  # fmt: skip
        reason = seen[-1].reason or ""
        assert "revision 4 failed" in reason, reason
        assert "refusing to start" in reason, reason
        assert "revision 2 (v1, 75%) and revision 3 (v2, 25%)" in reason
        assert seen[-1].endpoint_url == endpoint
        await world.check_serving(
            deployer, dep, endpoint, {2: (1, 75), 3: (2, 25)}, models, {2: 2, 3: 1}
        )

        # Retiring a serving version takes the whole deployment down.
        await kit.publish(stack.bootstrap, kit.retired(model, 2))
        seen = await kit.statuses(stack.bootstrap, dep, at(S.RETIRED))
        assert statuses_of(seen)[12:] == [("retired", 4)]
        assert "superseded by version 2" in (seen[-1].reason or "")
        await world.nothing_left(deployer, dep, run_dir)
        if target == "local":
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.HTTPError):
                    await client.get(endpoint.split("/v2/")[0] + "/v2/health/ready")
    finally:
        await deployer.stop_all()


async def test_restart_reconciles_desired_and_actual_state(
    stack: Any, kit: Any, world: World, tmp_path: Path, run_dir: Path
) -> None:
    model, dep = unique("churn"), unique("dep")
    v1 = kit.train(tmp_path / "v1", seed=7)
    uri = await world.artifact_uri(v1, f"{model}-1")
    config = kit.settings(stack, run_dir, deployer_stop_servers_on_exit=False, **world.settings)
    await kit.start_at_end(stack.bootstrap, config.consumer_group)
    first = kit.deployer(config)
    await first.start()
    try:
        await kit.publish(
            stack.bootstrap,
            kit.registered(v1, model, 1, uri=uri),
            *kit.approved(model, v1.digest, 1),
            kit.request(dep, model, v1.digest, 1, world.target),
        )
        seen = await kit.statuses(stack.bootstrap, dep, at(S.READY))
        assert statuses_of(seen) == [("pending", 1), ("provisioning", 1), ("ready", 1)]
        endpoint = seen[-1].endpoint_url
        before = await serving(first, dep)
    finally:
        await first.stop()  # servers keep running: nothing is torn down on exit

    # While no deployer runs: the serving revision breaks and a scale-up is requested.
    await world.sabotage(before)
    await kit.publish(
        stack.bootstrap, kit.request(dep, model, v1.digest, 1, world.target, replicas=2)
    )
    second = kit.deployer(config)
    await second.start()
    try:
        seen = await kit.statuses(stack.bootstrap, dep, at(S.READY, 2))  # fmt: skip
        assert statuses_of(seen) == [
            ("pending", 1), ("provisioning", 1), ("ready", 1),
            ("pending", 2), ("provisioning", 2), ("ready", 2),
        ]  # fmt: skip
        assert seen[-1].endpoint_url == endpoint
        await world.check_serving(second, dep, endpoint, {2: (1, 100)}, {1: v1}, {2: 2})

        # Broken again while the deployer runs: replaced, with no status change.
        old = await world.sabotage(await serving(second, dep))

        async def repaired() -> bool:
            replaced = second.reconciler.restarts >= 1
            return replaced and await world.repaired(second, dep, old)

        await wait_for(repaired, timeout_s=60, what="the broken revision to be replaced")
        async with second.runtime.pool.acquire() as conn:
            transitions = await conn.fetchval(
                "SELECT count(*) FROM deployment_transitions WHERE deployment_id = $1", dep
            )
        assert transitions == 6, "a repair publishes nothing"
        await world.check_serving(second, dep, endpoint, {2: (1, 100)}, {1: v1}, {2: 2})
    finally:
        await second.stop_all()
    await world.nothing_runs(dep, run_dir)


async def test_undeploy_takes_one_deployment_down(
    stack: Any, kit: Any, world: World, tmp_path: Path, run_dir: Path
) -> None:
    """The same undeploy request gives the same statuses on every target, and leaves
    nothing running; the version itself stays approved for other deployments."""
    from paved_schemas.envelope import Envelope
    from paved_schemas.events import DeploymentTarget, RequestUndeployment

    model, dep = unique("churn"), unique("dep")
    v1 = kit.train(tmp_path / "v1", seed=5)
    uri = await world.artifact_uri(v1, f"{model}-1")
    target = world.target
    config = kit.settings(stack, run_dir, **world.settings)
    await kit.start_at_end(stack.bootstrap, config.consumer_group)
    deployer = kit.deployer(config)
    await deployer.start()
    try:
        await kit.publish(
            stack.bootstrap,
            kit.registered(v1, model, 1, uri=uri),
            *kit.approved(model, v1.digest, 1),
            kit.request(dep, model, v1.digest, 1, target),
        )
        seen = await kit.statuses(stack.bootstrap, dep, at(S.READY))
        assert statuses_of(seen) == [("pending", 1), ("provisioning", 1), ("ready", 1)]
        undeploy = Envelope.new(
            RequestUndeployment(
                deployment_id=dep, target=DeploymentTarget(target),
                reason="traffic moved to the champion", requested_by="carol",
            ),
            source="/paved/registry", actor="user:carol", actorname="Carol Example",
        )  # fmt: skip
        await kit.publish(stack.bootstrap, undeploy)
        seen = await kit.statuses(stack.bootstrap, dep, at(S.RETIRED))
        assert statuses_of(seen)[3:] == [("retired", 1)]
        assert "undeployed by carol: traffic moved to the champion" in (seen[-1].reason or "")
        await world.nothing_left(deployer, dep, run_dir)
    finally:
        await deployer.stop_all()
