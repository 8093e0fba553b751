"""HTTP API ``/api/v1``: thin routes over ``paved_registry.catalog``.

Every route needs an authenticated caller (the router's dependency) and asks
``paved_registry.access`` whether that caller may do this to this model, inside the
same transaction as the change; lists and searches are filtered to the caller's
visible teams in SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from paved_schemas._types import (
    SLUG_PATTERN,
    Identifier,
    LongText,
    PositiveVersion,
    ShortText,
    TagKey,
    TagValue,
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
    RequestUndeployment,
    RiskTier,
    Tags,
)
from paved_shared.db import Connection
from paved_shared.http import authenticated_router, problem_responses
from paved_shared.service import ServiceRuntime
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from paved_registry import catalog, curation, search
from paved_registry.access import (
    Action,
    check_alias,
    check_create,
    check_deployment,
    check_model,
    readable_teams,
)
from paved_registry.auth import CurrentActor, CurrentPrincipal, current_principal
from paved_registry.domain.errors import BadQueryError, StateConflictError
from paved_registry.settings import RegistrySettings
from paved_registry.views import (
    AliasView,
    ChangeView,
    DeploymentAccepted,
    DeploymentView,
    ModelView,
    UndeploymentAccepted,
    VersionPage,
    VersionSummary,
    VersionView,
)

PREFIX = "/api/v1"
_VERSION_ORDER = search.Sort(("v.version",), ("int",), False)

NamePath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=128, description="Model name.")]
VersionPath = Annotated[int, Path(ge=1, description="Version number.")]
AliasPath = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Alias name, e.g. champion.")
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The ETag you read; the change is refused (412) if the record changed since.",
    ),
]
MAX_LIMIT = 1000
"""The largest page any list route returns (a larger ``limit`` is 422)."""
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (at most {MAX_LIMIT}).")]

_ERRORS: dict[int | str, dict[str, Any]] = problem_responses(400, 404, 409, 412, 422, 428)


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
    description: Annotated[str, StringConstraints(max_length=10_000)] = Field(
        default="", description="What this version changes (editable later)."
    )


class RequestDeploymentBody(Body):
    """Deploy this version to a target."""

    target: DeploymentTarget = Field(description="Where to deploy.")
    spec: DeploymentSpec = Field(
        default_factory=DeploymentSpec, description="Replicas, resources, rollout."
    )


class ReasonBody(Body):
    """A change that needs a reason (21 CFR 11.10(e): the audit trail says why)."""

    reason: LongText = Field(description="Why (required).")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the reason must not be blank")
        return value.strip()


class Retire(ReasonBody):
    """Retire this version; its deployments are torn down by the deployers."""

    reason: LongText = Field(description="Why the version is retired (required).")


class Undeploy(ReasonBody):
    """Take one deployment down (its deployer stops it and reports ``retired``)."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="Why it is taken down (recorded in the audit trail).",
        examples=["replaced by the champion deployment"],
    )


TagPatch = Annotated[
    dict[TagKey, TagValue | None],
    Field(
        max_length=64,
        description="Tags to set (a value) or remove (null); tags not named are kept.",
        examples=[{"stage": "production", "obsolete": None}],
    ),
]
OptionalReason = Annotated[
    str | None,
    Field(default=None, max_length=4000, description="Why (kept in the change history)."),
]


class UpdateModel(Body):
    """Change a model's metadata (only the fields sent)."""

    description: Annotated[str, StringConstraints(max_length=10_000)] | None = Field(
        default=None, description="New description."
    )
    owner_team: ShortText | None = Field(default=None, description="New owner team.")
    tags: TagPatch | None = None
    reason: OptionalReason = None


class UpdateVersion(Body):
    """Change a version's annotations (its registered record never changes)."""

    description: Annotated[str, StringConstraints(max_length=10_000)] | None = Field(
        default=None, description="New description."
    )
    tags: TagPatch | None = None
    reason: OptionalReason = None


class Transition(ReasonBody):
    """Move a version to a state a person may request: 'deprecated' or 'retired'."""

    to_state: ModelState = Field(description="Target state.", examples=["deprecated"])


class SetAlias(Body):
    """Point an alias at a version."""

    version: PositiveVersion = Field(description="Version the alias should point to.")
    protected: bool = Field(
        default=False,
        description="Protect it: from now on it only points to approved or deployed versions. "
        "Configured aliases (champion, production, prod) are always protected.",
    )
    reason: OptionalReason = None


def _settings(request: Request) -> RegistrySettings:
    settings: RegistrySettings = _runtime(request).settings  # type: ignore[assignment]
    return settings


def parse_tag_filters(values: list[str] | None, parameter: str = "tag") -> dict[str, str | None]:
    """``key:value`` (tag equals) or ``key`` (tag present) filters."""
    tags: dict[str, str | None] = {}
    for value in values or []:
        key, sep, tag_value = value.partition(":")
        if not key:
            raise BadQueryError(parameter, value, "expected 'key:value' or 'key'")
        tags[key] = tag_value if sep else None
    return tags


def _next_link(request: Request, response: Response, cursor: str | None) -> None:
    """RFC 8288 ``Link: <...>; rel="next"`` (and X-Next-Cursor) for list endpoints that
    return a plain JSON array, so the array stays as it was."""
    if cursor is None:
        return
    url = request.url.include_query_params(cursor=cursor).remove_query_params("offset")
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    response.headers["X-Next-Cursor"] = cursor


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


def build_router() -> APIRouter:  # noqa: PLR0915
    """The ``/api/v1`` routes."""
    router = authenticated_router(current_principal, prefix=PREFIX, responses=_ERRORS)

    @router.post("/models", status_code=201, tags=["models"])
    async def create_model(
        body: CreateModel,
        request: Request,
        response: Response,
        actor: CurrentActor,
        principal: CurrentPrincipal,
    ) -> ModelView:
        """Create a model owned by one of your teams (403 otherwise); 409 if the name is
        taken."""
        check_create(principal, body.name, body.owner_team)
        async with _write(request) as conn:
            await catalog.create_model(
                conn, _runtime(request), name=body.name, description=body.description,
                owner_team=body.owner_team, tags=body.tags, actor=actor,
            )  # fmt: skip
            model = await catalog.get_model(conn, body.name)
        response.headers["Location"] = f"{PREFIX}/models/{body.name}"
        return model

    @router.get("/models", tags=["models"])
    async def list_models(
        request: Request,
        response: Response,
        principal: CurrentPrincipal,
        q: Annotated[str | None, Query(max_length=500, description="Full-text search.")] = None,
        owner_team: Annotated[str | None, Query(description="Only this team's.")] = None,
        name_prefix: Annotated[str | None, Query(description="Names starting so.")] = None,
        tag: Annotated[
            list[str] | None, Query(description="'key:value' (equals) or 'key' (has); repeatable.")
        ] = None,
        sort: Annotated[str, Query(description=", ".join(search.MODEL_SORTS))] = "name",
        limit: Limit = 100,
        cursor: Annotated[str | None, Query(description="From the previous page.")] = None,
        offset: Annotated[int, Query(ge=0, description="Deprecated: use cursor.")] = 0,
    ) -> list[ModelView]:
        """Models of your teams (filtered, sorted); the next page's link is in the ``Link``
        header."""
        query = search.ModelQuery(
            q=q, owner_team=owner_team, tags=parse_tag_filters(tag), sort=sort, limit=limit,
            cursor=cursor, offset=offset, teams=readable_teams(principal),
            name_like=search.like_prefix(name_prefix) if name_prefix else None,
        )  # fmt: skip
        async with _read(request) as conn:
            models, next_cursor = await search.search_models(conn, query)
        _next_link(request, response, next_cursor)
        return models

    @router.get("/models/{name}", tags=["models"])
    async def get_model(
        name: NamePath, request: Request, response: Response, principal: CurrentPrincipal
    ) -> ModelView:
        """One model, with its aliases; the ``ETag`` is what a PATCH sends as If-Match."""
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            model = await catalog.get_model(conn, name)
        response.headers["ETag"] = curation.etag(model.revision)
        return model

    @router.patch("/models/{name}", tags=["models"])
    async def update_model(
        name: NamePath,
        body: UpdateModel,
        request: Request,
        response: Response,
        actor: CurrentActor,
        principal: CurrentPrincipal,
        if_match: IfMatch = None,
    ) -> ModelView:
        """Change description, owner team or tags; needs If-Match (428 without, 412 stale).
        A scientist of the owning team changes description and tags; only an admin moves
        the model to another team."""
        async with _write(request) as conn:
            team = await check_model(conn, principal, name, Action.UPDATE_MODEL, lock=True)
            if body.owner_team is not None and body.owner_team != team:
                await check_model(conn, principal, name, Action.CHANGE_OWNER)
            model = await curation.update_model(
                conn, _runtime(request), name=name, actor=actor, description=body.description,
                owner_team=body.owner_team, tags=body.tags, reason=body.reason,
                if_match=if_match, require_match=_settings(request).registry_require_if_match,
            )  # fmt: skip
        response.headers["ETag"] = curation.etag(model.revision)
        return model

    @router.get("/models/{name}/changes", tags=["models"])
    async def list_changes(
        name: NamePath,
        request: Request,
        principal: CurrentPrincipal,
        after: Annotated[int, Query(ge=0, description="Changes after this id.")] = 0,
        limit: Limit = 100,
    ) -> list[ChangeView]:
        """Every metadata change of the model (and its versions and aliases), oldest first."""
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            return await curation.list_changes(conn, name, after=after, limit=limit)

    @router.get("/models/{name}/aliases", tags=["aliases"])
    async def list_aliases(
        name: NamePath, request: Request, principal: CurrentPrincipal, limit: Limit = MAX_LIMIT
    ) -> list[AliasView]:
        """The model's aliases and the versions they point to."""
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            return (await curation.list_aliases(conn, name))[:limit]

    @router.get("/models/{name}/aliases/{alias}", tags=["aliases"])
    async def get_alias(
        name: NamePath,
        alias: AliasPath,
        request: Request,
        response: Response,
        principal: CurrentPrincipal,
    ) -> AliasView:
        """Where an alias points (404 if the model has no such alias)."""
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            view = await curation.get_alias(conn, name, alias)
        response.headers["ETag"] = curation.etag(view.revision)
        return view

    @router.put("/models/{name}/aliases/{alias}", tags=["aliases"])
    async def set_alias(
        name: NamePath,
        alias: AliasPath,
        body: SetAlias,
        request: Request,
        response: Response,
        actor: CurrentActor,
        principal: CurrentPrincipal,
        if_match: IfMatch = None,
    ) -> AliasView:
        """Point an alias at a version. A protected alias moves only to an approved or
        deployed version (409), only with a reason (422) and only by a deployer of the
        owning team (403)."""
        protected_names = _settings(request).registry_protected_aliases
        async with _write(request) as conn:
            await check_alias(
                conn, principal, name, alias, protected_names=protected_names,
                protect=body.protected,
            )  # fmt: skip
            view = await curation.set_alias(
                conn, _runtime(request), name=name, alias=alias, version=body.version,
                actor=actor, protected_names=protected_names, protect=body.protected,
                reason=body.reason, if_match=if_match,
            )  # fmt: skip
        response.headers["ETag"] = curation.etag(view.revision)
        return view

    @router.delete("/models/{name}/aliases/{alias}", status_code=204, tags=["aliases"])
    async def remove_alias(
        name: NamePath,
        alias: AliasPath,
        request: Request,
        actor: CurrentActor,
        principal: CurrentPrincipal,
        reason: Annotated[
            str | None, Query(max_length=4000, description="Why (required if protected).")
        ] = None,
        if_match: IfMatch = None,
    ) -> Response:
        """Remove an alias (a protected one needs a reason and a deployer of the team)."""
        async with _write(request) as conn:
            await check_alias(
                conn, principal, name, alias,
                protected_names=_settings(request).registry_protected_aliases,
            )  # fmt: skip
            await curation.remove_alias(
                conn, _runtime(request), name=name, alias=alias, actor=actor, reason=reason,
                if_match=if_match,
            )  # fmt: skip
        return Response(status_code=204)

    @router.get("/versions", tags=["discovery"])
    async def search_versions(
        request: Request,
        principal: CurrentPrincipal,
        q: Annotated[
            str | None,
            Query(
                max_length=500,
                description="Full-text search over names, descriptions and model cards "
                '(web search syntax: "quoted phrase", or, -exclude).',
            ),
        ] = None,
        name: Annotated[str | None, Query(description="Only this model's versions.")] = None,
        name_prefix: Annotated[
            str | None, Query(description="Models whose name starts so.")
        ] = None,
        owner_team: Annotated[str | None, Query(description="Only this team's models.")] = None,
        state: Annotated[list[ModelState] | None, Query(description="Any of these states.")] = None,
        framework: Annotated[list[Framework] | None, Query(description="Any of these.")] = None,
        risk_tier: Annotated[list[RiskTier] | None, Query(description="Any of these.")] = None,
        tag: Annotated[
            list[str] | None, Query(description="'key:value' (equals) or 'key' (has); repeatable.")
        ] = None,
        sort: Annotated[str, Query(description=", ".join(search.VERSION_SORTS))] = "-registered_at",
        limit: Limit = 50,
        cursor: Annotated[
            str | None, Query(description="next_cursor of the previous page.")
        ] = None,
    ) -> VersionPage:
        """Discover versions across models: filters, full-text search, sorting, cursor pages."""
        query = search.VersionQuery(
            q=q, name=name, owner_team=owner_team, states=tuple(state or ()),
            frameworks=tuple(f.value for f in framework or ()),
            risk_tiers=tuple(r.value for r in risk_tier or ()), tags=parse_tag_filters(tag),
            sort=sort, limit=limit, cursor=cursor, teams=readable_teams(principal),
            name_like=search.like_prefix(name_prefix) if name_prefix else None,
        )  # fmt: skip
        async with _read(request) as conn:
            items, next_cursor = await search.search_versions(conn, query)
        return VersionPage(items=items, next_cursor=next_cursor)

    @router.post("/models/{name}/versions", status_code=201, tags=["versions"])
    async def register_version(
        name: NamePath,
        body: RegisterVersion,
        request: Request,
        response: Response,
        actor: CurrentActor,
        principal: CurrentPrincipal,
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
            await check_model(conn, principal, name, Action.REGISTER_VERSION, lock=True)
            result = await catalog.register_version(
                conn, _runtime(request), command, actor=actor, description=body.description
            )
            view = await catalog.get_version(conn, result.model_name, result.version)
        if not result.created:
            response.status_code = 200
        response.headers["Location"] = f"{PREFIX}/models/{name}/versions/{result.version}"
        response.headers["ETag"] = curation.etag(view.revision)
        return view

    @router.get("/models/{name}/versions", tags=["versions"])
    async def list_versions(
        name: NamePath,
        request: Request,
        response: Response,
        principal: CurrentPrincipal,
        state: Annotated[ModelState | None, Query(description="Only in this state.")] = None,
        limit: Limit = MAX_LIMIT,
        cursor: Annotated[str | None, Query(description="From the Link header.")] = None,
    ) -> list[VersionSummary]:
        """The versions of a model, oldest first (``limit`` per page; the next page's link
        is in the ``Link`` header)."""
        after = search.decode_cursor(cursor, "version", _VERSION_ORDER)[0] if cursor else 0
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            rows = await catalog.list_versions(
                conn, name, state=state, after=after, limit=limit + 1
            )
        if len(rows) > limit:
            rows = rows[:limit]
            _next_link(request, response, search.encode_cursor("version", [rows[-1].version]))
        return rows

    @router.get("/models/{name}/versions/{version}", tags=["versions"])
    async def get_version(
        name: NamePath,
        version: VersionPath,
        request: Request,
        response: Response,
        principal: CurrentPrincipal,
    ) -> VersionView:
        """A version with its state, transition history, deployments and aliases."""
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            view = await catalog.get_version(conn, name, version)
        response.headers["ETag"] = curation.etag(view.revision)
        return view

    @router.patch("/models/{name}/versions/{version}", tags=["versions"])
    async def update_version(
        name: NamePath,
        version: VersionPath,
        body: UpdateVersion,
        request: Request,
        response: Response,
        actor: CurrentActor,
        principal: CurrentPrincipal,
        if_match: IfMatch = None,
    ) -> VersionView:
        """Change a version's description or tags; needs If-Match (428 without, 412 stale)."""
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_VERSION, lock=True)
            view = await curation.update_version(
                conn, _runtime(request), name=name, version=version, actor=actor,
                description=body.description, tags=body.tags, reason=body.reason,
                if_match=if_match, require_match=_settings(request).registry_require_if_match,
            )  # fmt: skip
        response.headers["ETag"] = curation.etag(view.revision)
        return view

    @router.post("/models/{name}/versions/{version}/transitions", tags=["versions"])
    async def transition(
        name: NamePath,
        version: VersionPath,
        body: Transition,
        request: Request,
        actor: CurrentActor,
        principal: CurrentPrincipal,
    ) -> VersionView:
        """Request 'deprecated' or 'retired' (every other state follows from the platform's
        events); 409 names the current state when the lifecycle does not allow it."""
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.RETIRE_VERSION, lock=True)
            await catalog.transition_version(
                conn, _runtime(request), name=name, version=version, to_state=body.to_state,
                reason=body.reason, actor=actor,
            )  # fmt: skip
            return await catalog.get_version(conn, name, version)

    @router.post("/models/{name}/versions/{version}/deprecate", tags=["versions"])
    async def deprecate(
        name: NamePath,
        version: VersionPath,
        body: ReasonBody,
        request: Request,
        actor: CurrentActor,
        principal: CurrentPrincipal,
    ) -> VersionView:
        """deployed -> deprecated, with a reason (409 from any other state)."""
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.RETIRE_VERSION, lock=True)
            await catalog.transition_version(
                conn, _runtime(request), name=name, version=version,
                to_state=ModelState.DEPRECATED, reason=body.reason, actor=actor,
            )  # fmt: skip
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
        principal: CurrentPrincipal,
    ) -> DeploymentAccepted:
        """Ask the target's deployer to deploy this version (409 unless approved or
        deployed); needs the deployer role in the owning team."""
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.REQUEST_DEPLOYMENT, lock=True)
            deployment_id = await catalog.request_deployment(
                conn, _runtime(request), name=name, version=version,
                target=body.target, spec=body.spec, actor=actor,
            )  # fmt: skip
        response.headers["Location"] = f"{PREFIX}/deployments/{deployment_id}"
        return DeploymentAccepted(deployment_id=deployment_id)

    @router.post("/models/{name}/versions/{version}/retire", status_code=202, tags=["versions"])
    async def retire_version(
        name: NamePath,
        version: VersionPath,
        body: Retire,
        request: Request,
        actor: CurrentActor,
        principal: CurrentPrincipal,
    ) -> VersionView:
        """Retire a version now (409 if already retired); deployers then tear it down."""
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.RETIRE_VERSION, lock=True)
            changed = await catalog.retire_version(
                conn, _runtime(request), name=name, version=version, reason=body.reason,
                retired_by=actor.id, actor=actor,
            )  # fmt: skip
            if not changed:
                raise StateConflictError(name, version, ModelState.RETIRED, "retire it again")
            return await catalog.get_version(conn, name, version)

    @router.get("/deployments/{deployment_id}", tags=["deployments"])
    async def get_deployment(
        deployment_id: str, request: Request, principal: CurrentPrincipal
    ) -> DeploymentView:
        """One deployment, as last reported by its deployer."""
        async with _read(request) as conn:
            await check_deployment(conn, principal, deployment_id, Action.READ)
            return await catalog.get_deployment(conn, deployment_id)

    @router.post("/deployments/{deployment_id}/undeploy", status_code=202, tags=["deployments"])
    async def undeploy(
        deployment_id: str,
        body: Undeploy,
        request: Request,
        actor: CurrentActor,
        principal: CurrentPrincipal,
    ) -> UndeploymentAccepted:
        """Take one deployment down: the registry sends ``RequestUndeployment`` to its
        target's deployer (through the outbox), which stops it and reports ``retired``.
        Needs the deployer role in the owning team."""
        async with _write(request) as conn:
            row = await check_deployment(conn, principal, deployment_id, Action.UNDEPLOY)
            runtime = _runtime(request)
            event = runtime.new_event(
                RequestUndeployment(
                    deployment_id=deployment_id, target=DeploymentTarget(row["target"]),
                    reason=body.reason, requested_by=actor.id,
                ),
                actor=actor.principal, actorname=actor.name,
            )  # fmt: skip
            await runtime.emit(conn, event)
        return UndeploymentAccepted(deployment_id=deployment_id, request_event_id=event.id)

    @router.get("/deployments", tags=["deployments"])
    async def list_deployments(
        request: Request,
        principal: CurrentPrincipal,
        model: Annotated[str | None, Query(description="Only this model's.")] = None,
        version: Annotated[int | None, Query(ge=1, description="Only this version's.")] = None,
        limit: Limit = MAX_LIMIT,
    ) -> list[DeploymentView]:
        """Deployments of your teams' models, optionally of one model (and version)."""
        teams = readable_teams(principal)
        async with _read(request) as conn:
            return await catalog.list_deployments(
                conn, model=model, version=version, teams=teams, limit=limit
            )

    return router
