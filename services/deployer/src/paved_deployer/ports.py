"""The port every deployment target implements (local processes today; AWS and GCP next)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from paved_schemas.events import DeploymentSpec, ModelSignature

from paved_deployer.domain.lifecycle import Probe

Handle = dict[str, Any]
"""What a target needs to find its serving resources again (JSON; stored with the deployment).

The local target records `pid`, `port`, `host`, `dir`; cloud targets will record resource names.
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


class ProvisionError(Exception):
    """Serving could not be started; the message is the reason published with `failed`."""


class DeployTarget(Protocol):
    """Starts, probes and stops model servers on one kind of infrastructure."""

    name: str
    """The `DeploymentTarget` value this adapter serves."""
    frameworks: frozenset[str]
    """Artifact frameworks this target can serve."""

    async def start(self, request: ProvisionRequest) -> Handle:
        """Fetch and verify the artifact, start serving; return the handle (maybe not ready)."""
        ...

    async def wait_ready(self, handle: Handle) -> str:
        """Wait until the server answers ready; return its endpoint URL or raise ProvisionError."""
        ...

    async def probe(self, handle: Handle) -> Probe:
        """Whether the server of `handle` still exists and is ready."""
        ...

    async def stop(self, handle: Handle) -> None:
        """Stop the server of `handle` (idempotent; never touches anything it does not own)."""
        ...

    async def stop_everything(self) -> list[Handle]:
        """Stop every server this target can find that it started; return their handles."""
        ...
