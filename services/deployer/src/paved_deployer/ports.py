"""The port every deployment target implements (local processes, AWS, GCP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from paved_schemas.events import DeploymentSpec, ModelSignature

from paved_deployer.domain.lifecycle import Probe

Handle = dict[str, Any]
"""What a target needs to find its serving resources again (JSON; stored with the deployment).

The local target records the replicas' pids and ports and the revision folder; the
Kubernetes targets record namespace and object names.
"""


@dataclass(frozen=True)
class ProvisionRequest:
    """Everything a target needs to serve one revision of one deployment."""

    deployment_id: str
    revision: int
    model_name: str
    version: int
    artifact_uri: str
    artifact_digest: str
    framework: str
    signature: ModelSignature
    spec: DeploymentSpec
    genai: bool = False


@dataclass(frozen=True)
class Backend:
    """One revision behind a deployment's endpoint and its share of the traffic (percent)."""

    revision: int
    weight: int
    handle: Handle


@dataclass(frozen=True)
class Endpoint:
    """Where a deployment is reached: the resource serving it and its URL."""

    handle: Handle
    url: str


class ProvisionError(Exception):
    """Serving could not be started; the message is the reason published with the status."""


class DeployTarget(Protocol):
    """Starts, probes, routes to and stops model servers on one kind of infrastructure.

    A *revision* (`start` .. `stop`) is one version and spec with its replicas; the
    *endpoint* (`route`, `unroute`) is the stable address of a deployment that splits
    traffic between its serving revisions by weight.
    """

    name: str
    """The `DeploymentTarget` value this adapter serves."""
    frameworks: frozenset[str]
    """Artifact frameworks this target can serve."""

    async def start(self, request: ProvisionRequest) -> Handle:
        """Fetch and verify the artifact, start the revision's replicas; return the handle."""
        ...

    async def wait_ready(self, handle: Handle) -> None:
        """Wait until every replica of the revision answers ready, or raise ProvisionError."""
        ...

    async def probe(self, handle: Handle) -> Probe:
        """Whether the revision of `handle` still exists and all its replicas are ready."""
        ...

    async def stop(self, handle: Handle) -> None:
        """Stop the revision of `handle` (idempotent; never touches anything it does not own)."""
        ...

    async def route(
        self,
        deployment_id: str,
        *,
        model_name: str,
        genai: bool,
        backends: list[Backend],
        endpoint: Handle | None,
    ) -> Endpoint:
        """Point the deployment's endpoint at `backends` (creating it if needed); the
        split is in effect when this returns."""
        ...

    async def endpoint_alive(self, endpoint: Handle) -> bool:
        """Whether the endpoint resource still exists."""
        ...

    async def unroute(self, endpoint: Handle) -> None:
        """Remove the deployment's endpoint (idempotent)."""
        ...

    async def stop_everything(self) -> list[Handle]:
        """Stop every server this target can find that it started; return their handles."""
        ...

    async def close(self) -> None:
        """Release clients and connections (servers keep running)."""
        ...
