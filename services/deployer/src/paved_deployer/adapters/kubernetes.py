"""The Kubernetes half of the `aws` and `gcp` targets (EKS and GKE), on kubernetes-asyncio.

A revision is a Deployment + HPA + PDB (rendered by `paved_deployer.k8s`, applied
with server-side apply, field manager `paved-deployer`); the endpoint is a Service +
NetworkPolicy. Readiness is the Deployment's rollout status as Kubernetes reports it
(observed generation, updated and available replicas); a rollout whose `Progressing`
condition turns false (`ProgressDeadlineExceeded`) fails at once with Kubernetes'
message. Before anything is applied the artifact is staged in the cloud's bucket
(S3 through aioboto3, GCS through gcloud-aio-storage, both via
`paved_shared.artifacts`) and its sha256 there is checked against the approved digest.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from paved_shared.artifacts import (
    ArtifactError,
    ArtifactStoreConfig,
    sha256_file,
    store_for,
)

from paved_deployer import k8s
from paved_deployer.domain.lifecycle import Probe
from paved_deployer.modelserver.loaders import SERVABLE
from paved_deployer.ports import Backend, Endpoint, Handle, ProvisionError, ProvisionRequest

log = logging.getLogger(__name__)

APPLY = "application/apply-patch+yaml"


class KubeConfig:
    """How to reach the API server: URL + token + CA, a kubeconfig, or in-cluster."""

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        ca_file: Path | None = None,
        kubeconfig: Path | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.ca_file = ca_file
        self.kubeconfig = kubeconfig

    async def client(self) -> ApiClient:
        """A connected-on-demand API client."""
        configuration = client.Configuration()
        if self.url is not None:
            configuration.host = self.url
            if self.token is not None:
                configuration.api_key = {"BearerToken": self.token}
                configuration.api_key_prefix = {"BearerToken": "Bearer"}
            if self.ca_file is not None:
                configuration.ssl_ca_cert = str(self.ca_file)
        elif self.kubeconfig is not None:
            await config.load_kube_config(
                config_file=str(self.kubeconfig), client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return ApiClient(configuration)


class KubernetesTarget:
    """Model servers as Kubernetes workloads; artifacts staged in the cloud's object store."""

    name = "kubernetes"
    scheme = ""
    frameworks = SERVABLE

    def __init__(
        self,
        kube: KubeConfig,
        *,
        namespace: str,
        image: str,
        bucket: str | None,
        store_config: ArtifactStoreConfig,
        artifact_root: Path | None = None,
        ready_timeout_s: float = 600.0,
        poll_s: float = 0.5,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.image = image
        self.bucket = bucket
        self.store_config = store_config
        self.artifact_root = artifact_root
        self.ready_timeout_s = ready_timeout_s
        self.poll_s = poll_s
        self._api: ApiClient | None = None
        self._namespace_ready = False

    # -- API plumbing ----------------------------------------------------------------------

    async def api(self) -> ApiClient:
        """The shared API client (created on first use, inside the event loop)."""
        if self._api is None:
            self._api = await self.kube.client()
        return self._api

    async def close(self) -> None:
        """Close the API client's connections."""
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def _ensure_namespace(self) -> None:
        if self._namespace_ready:
            return
        core = client.CoreV1Api(await self.api())
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        try:
            await core.create_namespace(body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 409:
                raise ProvisionError(f"cannot create namespace {self.namespace}: {exc}") from exc
        self._namespace_ready = True

    async def apply(self, manifest: dict[str, Any]) -> None:
        """Server-side apply one object (creates or updates; idempotent)."""
        api = await self.api()
        kind = manifest["kind"]
        name = manifest["metadata"]["name"]
        ns = manifest["metadata"]["namespace"]
        options: dict[str, Any] = {
            "field_manager": k8s.MANAGED_BY,
            "force": True,
            "_content_type": APPLY,
        }
        calls = {
            "Deployment": client.AppsV1Api(api).patch_namespaced_deployment,
            "HorizontalPodAutoscaler": (
                client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler
            ),
            "PodDisruptionBudget": client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget,
            "Service": client.CoreV1Api(api).patch_namespaced_service,
            "NetworkPolicy": client.NetworkingV1Api(api).patch_namespaced_network_policy,
        }
        try:
            await calls[kind](name, ns, manifest, **options)
        except ApiException as exc:
            raise ProvisionError(
                f"Kubernetes refused {kind} {ns}/{name}: {exc.status} {exc.reason}: "
                f"{str(exc.body or '')[:500]}"
            ) from exc

    async def delete(self, kind: str, name: str, namespace: str) -> None:
        """Delete one object; a missing one is fine."""
        api = await self.api()
        calls = {
            "Deployment": client.AppsV1Api(api).delete_namespaced_deployment,
            "HorizontalPodAutoscaler": (
                client.AutoscalingV2Api(api).delete_namespaced_horizontal_pod_autoscaler
            ),
            "PodDisruptionBudget": client.PolicyV1Api(api).delete_namespaced_pod_disruption_budget,
            "Service": client.CoreV1Api(api).delete_namespaced_service,
            "NetworkPolicy": client.NetworkingV1Api(api).delete_namespaced_network_policy,
        }
        try:
            await calls[kind](name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _deployment(self, handle: Handle) -> Any | None:
        apps = client.AppsV1Api(await self.api())
        try:
            return await apps.read_namespaced_deployment(handle["name"], handle["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # -- artifacts ---------------------------------------------------------------------------

    async def stage(self, request: ProvisionRequest) -> str:
        """The artifact's URI in this cloud's bucket, verified against the approved digest."""
        uri = request.artifact_uri
        digest = request.artifact_digest
        try:
            if urlparse(uri).scheme == self.scheme:
                staged = uri
            else:
                if not self.bucket:
                    raise ProvisionError(
                        f"artifact {uri} is not in {self.scheme}:// and no staging bucket is "
                        "set; set PAVED_DEPLOYER_ARTIFACT_BUCKET"
                    )
                file_name = uri.rstrip("/").rsplit("/", 1)[-1] or "model"
                staged = (
                    f"{self.scheme}://{self.bucket}/paved/models/{request.model_name}/"
                    f"{request.version}/{digest.removeprefix('sha256:')}/{file_name}"
                )
                await self._copy_verified(uri, staged, digest)
            found = await store_for(staged, config=self.store_config).sha256(staged)
        except ArtifactError as exc:
            raise ProvisionError(f"cannot stage artifact {uri} ({digest}): {exc}") from exc
        if found != digest:
            raise ProvisionError(
                f"artifact {staged} has digest {found}, not the approved {digest}; "
                "refusing to serve it"
            )
        return staged

    async def _copy_verified(self, source: str, staged: str, digest: str) -> None:
        target = store_for(staged, config=self.store_config)
        if await target.exists(staged) and await target.sha256(staged) == digest:
            return
        origin = store_for(source, local_root=self.artifact_root, config=self.store_config)
        with tempfile.TemporaryDirectory(prefix="paved-stage-") as tmp:
            local = await origin.fetch(source, Path(tmp))
            found = await asyncio.to_thread(sha256_file, local)
            if found != digest:
                raise ProvisionError(
                    f"artifact {source} has digest {found}, not the approved {digest}; "
                    "refusing to stage it"
                )
            await target.put(local, staged)
        log.info("staged %s at %s", source, staged)

    # -- revisions ---------------------------------------------------------------------------

    def manifests(self, request: ProvisionRequest, artifact_uri: str) -> list[dict[str, Any]]:
        """The revision's objects (for tests and `paved`'s dry runs)."""
        return k8s.render_revision(
            request, namespace=self.namespace, image=self.image, artifact_uri=artifact_uri
        )

    async def start(self, request: ProvisionRequest) -> Handle:
        staged = await self.stage(request)
        await self._ensure_namespace()
        for manifest in self.manifests(request, staged):
            await self.apply(manifest)
        name = k8s.revision_name(request.deployment_id, request.revision)
        log.info("applied %s/%s for %s r%d", self.namespace, name, request.deployment_id,
                 request.revision)  # fmt: skip
        return {
            "kind": "kubernetes",
            "namespace": self.namespace,
            "name": name,
            "deployment_id": request.deployment_id,
            "revision": request.revision,
            "artifact_uri": staged,
            "model_name": request.model_name,
        }

    @staticmethod
    def rollout(deployment: Any) -> tuple[Probe, str | None]:
        """(READY | NOT_READY, failure message or None) from a Deployment's status."""
        status = deployment.status
        wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
        for condition in (status.conditions or []) if status else []:
            if (
                condition.type == "Progressing"
                and condition.status == "False"
                and condition.reason == "ProgressDeadlineExceeded"
            ):
                return Probe.NOT_READY, condition.message or "progress deadline exceeded"
        if status is None:
            return Probe.NOT_READY, None
        observed = (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
        updated = (status.updated_replicas or 0) >= wanted
        available = (status.available_replicas or 0) >= wanted
        return (Probe.READY if observed and updated and available else Probe.NOT_READY), None

    async def wait_ready(self, handle: Handle) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        what = f"Deployment {handle['namespace']}/{handle['name']}"
        while True:
            deployment = await self._deployment(handle)
            if deployment is None:
                raise ProvisionError(f"{what} disappeared while rolling out")
            probe, failure = self.rollout(deployment)
            if failure is not None:
                raise ProvisionError(f"{what} failed to roll out: {failure}")
            if probe is Probe.READY:
                return
            if time.monotonic() > deadline:
                raise ProvisionError(f"{what} not available within {self.ready_timeout_s:g} s")
            await asyncio.sleep(self.poll_s)

    async def probe(self, handle: Handle) -> Probe:
        deployment = await self._deployment(handle)
        if deployment is None:
            return Probe.GONE
        return self.rollout(deployment)[0]

    async def stop(self, handle: Handle) -> None:
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment"):
            await self.delete(kind, handle["name"], handle["namespace"])

    # -- endpoint ------------------------------------------------------------------------------

    async def route(
        self,
        deployment_id: str,
        *,
        model_name: str,
        genai: bool,
        backends: list[Backend],
        endpoint: Handle | None,
    ) -> Endpoint:
        await self._ensure_namespace()
        for manifest in k8s.render_endpoint(
            deployment_id, namespace=self.namespace, backends=backends
        ):
            await self.apply(manifest)
        url = k8s.endpoint_url(deployment_id, self.namespace, model_name, genai=genai)
        handle = {
            "kind": "kubernetes",
            "namespace": self.namespace,
            "name": k8s.endpoint_name(deployment_id),
            "url": url,
        }
        return Endpoint(handle, url)

    async def endpoint_alive(self, endpoint: Handle) -> bool:
        core = client.CoreV1Api(await self.api())
        try:
            await core.read_namespaced_service(endpoint["name"], endpoint["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def unroute(self, endpoint: Handle) -> None:
        for kind in ("NetworkPolicy", "Service"):
            await self.delete(kind, endpoint["name"], endpoint["namespace"])

    async def stop_everything(self) -> list[Handle]:
        """Delete every object this deployer manages in its namespace."""
        api = await self.api()
        selector = f"app.kubernetes.io/managed-by={k8s.MANAGED_BY}"
        apps = client.AppsV1Api(api)
        found = await apps.list_namespaced_deployment(self.namespace, label_selector=selector)
        handles: list[Handle] = []
        for deployment in found.items:
            handle = {"namespace": self.namespace, "name": deployment.metadata.name}
            await self.stop(handle)
            handles.append(handle)
        services = await client.CoreV1Api(api).list_namespaced_service(
            self.namespace, label_selector=selector
        )
        for service in services.items:
            await self.unroute({"namespace": self.namespace, "name": service.metadata.name})
        return handles
