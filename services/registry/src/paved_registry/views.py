"""What the API returns: read models of the catalog, documented for OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from paved_schemas.events import (
    DeploymentSpec,
    DeploymentStatus,
    DeploymentTarget,
    Framework,
    Lineage,
    ModelCard,
    ModelSignature,
    ModelState,
)
from pydantic import BaseModel, ConfigDict, Field


class View(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class ModelView(View):
    """A registered model: the name its versions share."""

    name: str = Field(description="Model name.", examples=["churn-classifier"])
    description: str = Field(description="What the model is for.")
    owner_team: str = Field(description="Team that owns the model.", examples=["retention"])
    tags: dict[str, str] = Field(description="Free-form labels.")
    created_via: Literal["api", "registration"] = Field(
        description="'api' when created with POST /models, 'registration' when a pipeline's "
        "RegisterModelVersion command created it implicitly."
    )
    created_by: str = Field(description="User id of the creator.")
    created_by_name: str = Field(description="Printed name of the creator.")
    created_at: datetime = Field(description="When it was created, UTC.")
    latest_version: int | None = Field(description="Highest registered version number, if any.")


class TransitionView(View):
    """One lifecycle transition of a version (append-only history)."""

    from_state: ModelState | None = Field(description="State before; null for the first.")
    to_state: ModelState = Field(description="State after.")
    reason: str | None = Field(description="Why the state changed.")
    actor: str = Field(description="Who caused it: 'user:<id>' or 'service:<name>'.")
    actor_name: str = Field(description="Printed name of the actor.")
    occurred_at: datetime = Field(description="When, UTC.")
    event_id: str = Field(description="Id of the ModelVersionStateChanged event announcing it.")
    cause_event_id: str | None = Field(description="Id of the event that caused it, if any.")


class DeploymentView(View):
    """A deployment of a model version, as last reported."""

    deployment_id: str = Field(description="Deployment id.")
    model_name: str = Field(description="Model name.")
    version: int = Field(description="Model version.")
    artifact_digest: str = Field(description="Digest of the deployed artifact.")
    target: DeploymentTarget = Field(description="Where it runs.")
    spec: DeploymentSpec | None = Field(description="Requested spec (null if not requested here).")
    status: Literal["requested"] | DeploymentStatus = Field(
        description="Last status a deployer reported; 'requested' until the first report."
    )
    revision: int | None = Field(description="Deployment revision, once reported.")
    endpoint_url: str | None = Field(description="Inference endpoint once ready.")
    reason: str | None = Field(description="Why the status last changed.")
    requested_by: str | None = Field(description="User id of the requester, if requested here.")
    requested_at: datetime | None = Field(description="When it was requested here.")
    updated_at: datetime = Field(description="When this record last changed.")


class VersionSummary(View):
    """A model version in a listing."""

    model_name: str = Field(description="Model name.")
    version: int = Field(description="Version number.")
    state: ModelState = Field(description="Current lifecycle state.")
    artifact_digest: str = Field(description="SHA-256 of the artifact (immutable).")
    framework: Framework = Field(description="Artifact format.")
    registered_by: str = Field(description="User id of the registrant.")
    registered_at: datetime = Field(description="When it was registered, UTC.")


class VersionView(VersionSummary):
    """A model version with its full record, history and deployments."""

    artifact_uri: str = Field(description="Where the artifact is stored.")
    signature: ModelSignature = Field(description="Declared inputs and outputs.")
    model_card: ModelCard = Field(description="Model card.")
    lineage: Lineage | None = Field(description="Provenance, if given.")
    tags: dict[str, str] = Field(description="Free-form labels.")
    registered_by_name: str = Field(description="Printed name of the registrant.")
    request_id: str = Field(description="Idempotency key the version was registered with.")
    updated_at: datetime = Field(description="When the state last changed.")
    transitions: list[TransitionView] = Field(description="Every state transition, oldest first.")
    deployments: list[DeploymentView] = Field(description="Deployments of this version.")


class DeploymentAccepted(View):
    """A deployment request was recorded and sent to the target's deployer."""

    deployment_id: str = Field(description="Id to follow with GET /deployments/{id}.")


def as_dict(record: Any) -> dict[str, Any]:
    """An asyncpg record (or mapping) as a plain dict."""
    return dict(record.items()) if hasattr(record, "items") else dict(record)
