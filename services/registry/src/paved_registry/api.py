"""HTTP API ``/api/v1``: thin routes over ``paved_registry.catalog``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from paved_schemas._types import (
    SLUG_PATTERN,
    Identifier,
    LongText,
    PositiveVersion,
    ShortText,
    Uri,
)
from paved_schemas.events import (
    ArtifactDigest,
    DeploymentSpec,
    DeploymentTarget,
    Framework,
    Lineage,
    ModelCard,
    ModelName,
    ModelSignature,
    ModelState,
    RegisterModelVersion,
    Tags,
)
from paved_shared.db import Connection
from paved_shared.service import ServiceRuntime
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from paved_registry import catalog
from paved_registry.auth import current_actor
from paved_registry.catalog import Actor
from paved_registry.domain.errors import StateConflictError
from paved_registry.problems import Problem
from paved_registry.views import (
    DeploymentAccepted,
    DeploymentView,
    ModelView,
    VersionSummary,
    VersionView,
)

PREFIX = "/api/v1"

NamePath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=128, description="Model name.")]
VersionPath = Annotated[int, Path(ge=1, description="Version number.")]
CurrentActor = Annotated[Actor, Depends(current_actor)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 404, 409, 422)
}


class Body(BaseModel):
    """A request body: unknown fields are refused, so a misspelt field is reported."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class CreateModel(Body):
    """A new model (versions are registered under it)."""

    name: ModelName
    description: Annotated[str, StringConstraints(max_length=10_000)] = Field(
        default="", description="What the model is for."
    )
    owner_team: ShortText = Field(description="Team that owns the model.", examples=["retention"])
    tags: Tags = Field(default_factory=dict)


class RegisterVersion(Body):
    """A new version of a registered model."""

    version: PositiveVersion | None = Field(
        default=None,
        description="Version number; the next free one (highest + 1) when absent.",
        examples=[None, 3],
    )
    artifact_uri: Uri = Field(description="Where the artifact is stored.")
    artifact_digest: ArtifactDigest
    framework: Framework = Field(description="Artifact format.")
    signature: ModelSignature = Field(description="Declared inputs and outputs.")
    model_card: ModelCard = Field(description="Model card shown to approvers.")
    lineage: Lineage | None = Field(default=None, description="Provenance, if known.")
    tags: Tags = Field(default_factory=dict)


class RequestDeploymentBody(Body):
    """Deploy this version to a target."""

    target: DeploymentTarget = Field(description="Where to deploy.")
    spec: DeploymentSpec = Field(
        default_factory=DeploymentSpec, description="Replicas, resources, rollout."
    )


class Retire(Body):
    """Retire this version; its deployments are torn down by the deployers."""

    reason: LongText = Field(description="Why the version is retired (required).")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the reason must not be blank")
        return value.strip()


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


@asynccontextmanager
async def _write(request: Request) -> AsyncIterator[Connection]:
    async with _runtime(request).pool.acquire() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def _read(request: Request) -> AsyncIterator[Connection]:
    # One snapshot, so a version and its history are read consistently.
    async with (
        _runtime(request).pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        yield conn


def build_router() -> APIRouter:
    """The ``/api/v1`` routes."""
    router = APIRouter(prefix=PREFIX, responses=_ERRORS)

    @router.post("/models", status_code=201, tags=["models"])
    async def create_model(
        body: CreateModel, request: Request, response: Response, actor: CurrentActor
    ) -> ModelView:
        """Create a model; 409 if the name is taken."""
        async with _write(request) as conn:
            await catalog.create_model(
                conn, name=body.name, description=body.description,
                owner_team=body.owner_team, tags=body.tags, actor=actor,
            )  # fmt: skip
            model = await catalog.get_model(conn, body.name)
        response.headers["Location"] = f"{PREFIX}/models/{body.name}"
        return model

    @router.get("/models", tags=["models"])
    async def list_models(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[ModelView]:
        """Models by name."""
        async with _read(request) as conn:
            return await catalog.list_models(conn, limit=limit, offset=offset)

    @router.get("/models/{name}", tags=["models"])
    async def get_model(name: NamePath, request: Request) -> ModelView:
        """One model."""
        async with _read(request) as conn:
            return await catalog.get_model(conn, name)

    @router.post("/models/{name}/versions", status_code=201, tags=["versions"])
    async def register_version(
        name: NamePath,
        body: RegisterVersion,
        request: Request,
        response: Response,
        actor: CurrentActor,
        idempotency_key: Annotated[
            Identifier | None,
            Header(
                alias="Idempotency-Key",
                description="Makes a retry safe: the same key with the same body returns the "
                "version registered first (200); with another body, 409.",
            ),
        ] = None,
    ) -> VersionView:
        """Register a version of a registered model (404 if the model is not registered).

        Registering the same version number with the same digest again returns it (200);
        with another digest, 409.
        """
        command = RegisterModelVersion(
            request_id=idempotency_key or str(uuid.uuid4()),
            model_name=name,
            version=body.version,
            artifact_uri=body.artifact_uri,
            artifact_digest=body.artifact_digest,
            framework=body.framework,
            signature=body.signature,
            model_card=body.model_card,
            lineage=body.lineage,
            tags=body.tags,
            registered_by=actor.id,
            registered_by_name=actor.name,
        )
        async with _write(request) as conn:
            result = await catalog.register_version(conn, _runtime(request), command, actor=actor)
            view = await catalog.get_version(conn, result.model_name, result.version)
        if not result.created:
            response.status_code = 200
        response.headers["Location"] = f"{PREFIX}/models/{name}/versions/{result.version}"
        return view

    @router.get("/models/{name}/versions", tags=["versions"])
    async def list_versions(name: NamePath, request: Request) -> list[VersionSummary]:
        """The versions of a model, oldest first."""
        async with _read(request) as conn:
            return await catalog.list_versions(conn, name)

    @router.get("/models/{name}/versions/{version}", tags=["versions"])
    async def get_version(name: NamePath, version: VersionPath, request: Request) -> VersionView:
        """A version with its state, transition history and deployments."""
        async with _read(request) as conn:
            return await catalog.get_version(conn, name, version)

    @router.post(
        "/models/{name}/versions/{version}/deployments", status_code=202, tags=["deployments"]
    )
    async def request_deployment(
        name: NamePath,
        version: VersionPath,
        body: RequestDeploymentBody,
        request: Request,
        response: Response,
        actor: CurrentActor,
    ) -> DeploymentAccepted:
        """Ask the target's deployer to deploy this version (409 unless approved or deployed)."""
        async with _write(request) as conn:
            deployment_id = await catalog.request_deployment(
                conn, _runtime(request), name=name, version=version,
                target=body.target, spec=body.spec, actor=actor,
            )  # fmt: skip
        response.headers["Location"] = f"{PREFIX}/deployments/{deployment_id}"
        return DeploymentAccepted(deployment_id=deployment_id)

    @router.post("/models/{name}/versions/{version}/retire", status_code=202, tags=["versions"])
    async def retire_version(
        name: NamePath, version: VersionPath, body: Retire, request: Request, actor: CurrentActor
    ) -> VersionView:
        """Retire a version now (409 if already retired); deployers then tear it down."""
        async with _write(request) as conn:
            changed = await catalog.retire_version(
                conn, _runtime(request), name=name, version=version, reason=body.reason,
                retired_by=actor.id, actor=actor,
            )  # fmt: skip
            if not changed:
                raise StateConflictError(name, version, ModelState.RETIRED, "retire it again")
            return await catalog.get_version(conn, name, version)

    @router.get("/deployments/{deployment_id}", tags=["deployments"])
    async def get_deployment(deployment_id: str, request: Request) -> DeploymentView:
        """One deployment, as last reported by its deployer."""
        async with _read(request) as conn:
            return await catalog.get_deployment(conn, deployment_id)

    @router.get("/deployments", tags=["deployments"])
    async def list_deployments(
        request: Request,
        model: Annotated[str | None, Query(description="Only this model's.")] = None,
        version: Annotated[int | None, Query(ge=1, description="Only this version's.")] = None,
    ) -> list[DeploymentView]:
        """Deployments, optionally of one model (and version)."""
        async with _read(request) as conn:
            return await catalog.list_deployments(conn, model=model, version=version)

    return router
