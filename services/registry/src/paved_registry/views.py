"""What the API returns: read models of the catalog, documented for OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from paved_schemas.events import (
    DeploymentSpec,
    DeploymentStatus,
    DeploymentTarget,
    FieldChange,
    Framework,
    Lineage,
    ModelCard,
    ModelSignature,
    ModelState,
    RiskTier,
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
    created_via: Literal["api", "registration", "mlflow"] = Field(
        description="'api' when created with POST /models, 'mlflow' through the "
        "MLflow-compatible API, 'registration' when a pipeline's RegisterModelVersion "
        "command created it implicitly."
    )
    created_by: str = Field(description="User id of the creator.")
    created_by_name: str = Field(description="Printed name of the creator.")
    created_at: datetime = Field(description="When it was created, UTC.")
    latest_version: int | None = Field(description="Highest registered version number, if any.")
    revision: int = Field(
        default=1,
        description="Grows by one with every metadata change; the ETag is its quoted form.",
    )
    updated_at: datetime | None = Field(default=None, description="When metadata last changed.")
    aliases: dict[str, int] = Field(
        default_factory=dict, description="Alias -> version number.", examples=[{"champion": 3}]
    )


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
    description: str = Field(default="", description="What this version changes (editable).")
    risk_tier: RiskTier | None = Field(default=None, description="Risk tier from the model card.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels (editable).")


class VersionView(VersionSummary):
    """A model version with its full record, history and deployments."""

    artifact_uri: str = Field(description="Where the artifact is stored.")
    signature: ModelSignature = Field(description="Declared inputs and outputs.")
    model_card: ModelCard = Field(description="Model card.")
    lineage: Lineage | None = Field(description="Provenance, if given.")
    registered_by_name: str = Field(description="Printed name of the registrant.")
    request_id: str = Field(description="Idempotency key the version was registered with.")
    updated_at: datetime = Field(description="When the state last changed.")
    transitions: list[TransitionView] = Field(description="Every state transition, oldest first.")
    deployments: list[DeploymentView] = Field(description="Deployments of this version.")
    revision: int = Field(
        default=1,
        description="Grows by one with every annotation change; the ETag is its quoted form.",
    )
    aliases: list[str] = Field(default_factory=list, description="Aliases pointing here.")


class VersionHit(VersionSummary):
    """A version found by discovery, with what a catalog listing shows of its model."""

    owner_team: str = Field(description="Team that owns the model.")
    artifact_uri: str = Field(description="Where the artifact is stored.")
    updated_at: datetime = Field(description="When the state or annotations last changed.")


class VersionPage(View):
    """One page of a discovery query; follow ``next_cursor`` for the next one."""

    items: list[VersionHit] = Field(description="The versions on this page, in the sort order.")
    next_cursor: str | None = Field(
        description="Opaque cursor for the next page (same filters); null on the last page."
    )


class ModelPage(View):
    """One page of models; follow ``next_cursor`` for the next one."""

    items: list[ModelView] = Field(description="The models on this page, in the sort order.")
    next_cursor: str | None = Field(description="Cursor for the next page; null on the last.")


class AliasView(View):
    """An alias of a model and the version it points to."""

    model_name: str = Field(description="Model name.")
    alias: str = Field(description="Alias name.", examples=["champion"])
    version: int = Field(description="Version it points to.")
    protected: bool = Field(description="Points only to approved or deployed versions.")
    revision: int = Field(description="Grows with every move; the ETag is its quoted form.")
    state: ModelState = Field(description="Current state of that version.")
    artifact_digest: str = Field(description="Digest of that version's artifact.")
    updated_by: str = Field(description="User id of who last set it.")
    updated_by_name: str = Field(description="Printed name of who last set it.")
    updated_at: datetime = Field(description="When it was last set, UTC.")


class ChangeView(View):
    """One metadata change of the catalog (append-only), with old and new values."""

    id: int = Field(description="Position in the model's change history.")
    model_name: str = Field(description="Model name.")
    version: int | None = Field(description="Version, for version annotations.")
    alias: str | None = Field(description="Alias, for alias changes.")
    action: str = Field(description="model_created, model_updated, version_updated, alias_*.")
    changes: list[FieldChange] = Field(description="Each field with its old and new value.")
    reason: str | None = Field(description="Why, as given (or how it was changed).")
    actor: str = Field(description="'user:<id>' or 'service:<name>'.")
    actor_name: str = Field(description="Printed name of the actor.")
    event_id: str = Field(description="Id of the event announcing the change.")
    occurred_at: datetime = Field(description="When, UTC.")


class DeploymentAccepted(View):
    """A deployment request was recorded and sent to the target's deployer."""

    deployment_id: str = Field(description="Id to follow with GET /deployments/{id}.")


class UndeploymentAccepted(View):
    """An undeploy request was sent (through the outbox) to the deployment's deployer."""

    deployment_id: str = Field(description="The deployment being taken down.")
    request_event_id: str = Field(description="Id of the RequestUndeployment command sent.")


def as_dict(record: Any) -> dict[str, Any]:
    """An asyncpg record (or mapping) as a plain dict."""
    return dict(record.items()) if hasattr(record, "items") else dict(record)
