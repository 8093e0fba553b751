"""The registry's use cases, on one database connection inside the caller's transaction.

HTTP routes and Kafka handlers are thin shims over these functions, so a version
registered through the API and one registered by a pipeline's command follow the
same rules. Each function writes its state change and the events announcing it
(through the outbox) on the same connection: they commit together or not at all.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import asyncpg
from paved_schemas.base import Contract
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    DeploymentSpec,
    DeploymentStatusChanged,
    DeploymentTarget,
    FieldChange,
    ModelAliasChanged,
    ModelState,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionStateChanged,
    RegisteredModelCreated,
    RegisterModelVersion,
    RequestDeployment,
)
from paved_shared.db import Connection

from paved_registry.domain import lifecycle
from paved_registry.domain.errors import (
    DigestMismatchError,
    IdempotencyConflictError,
    ManualTransitionError,
    ModelExistsError,
    StateConflictError,
    UnknownDeploymentError,
    UnknownModelError,
    UnknownVersionError,
    VersionConflictError,
)
from paved_registry.domain.lifecycle import Fact
from paved_registry.domain.registration import implicit_owner_team, request_fingerprint
from paved_registry.views import (
    DeploymentView,
    ModelView,
    TransitionView,
    VersionSummary,
    VersionView,
)

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Builds envelopes and writes them to the outbox (``ServiceRuntime`` is one)."""

    def new_event(
        self,
        data: Contract,
        *,
        cause: Envelope[Any] | None = None,
        actor: str | None = None,
        actorname: str | None = None,
    ) -> Envelope[Any]: ...

    async def emit(self, conn: Connection, event: Envelope[Any]) -> int: ...


@dataclass(frozen=True)
class Actor:
    """A person (or service) acting through the API."""

    id: str
    name: str
    kind: Literal["user", "service"] = "user"

    @property
    def principal(self) -> str:
        """The envelope's ``actor`` attribute: ``user:<id>``."""
        return f"{self.kind}:{self.id}"


CreatedVia = Literal["api", "registration", "mlflow"]


@dataclass(frozen=True)
class Registration:
    """Outcome of a registration: the version, and whether this call created it."""

    model_name: str
    version: int
    created: bool


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- models


async def create_model(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    description: str,
    owner_team: str,
    tags: dict[str, str],
    actor: Actor,
    via: CreatedVia = "api",
    cause: Envelope[Any] | None = None,
    exists_ok: bool = False,
) -> bool:
    """Create a model, announce it (``RegisteredModelCreated``) and log the change.

    Returns False when the name is taken and ``exists_ok``; otherwise a taken name
    raises ``ModelExistsError``.
    """
    event = sink.new_event(
        RegisteredModelCreated(
            model_name=name,
            description=description,
            owner_team=owner_team,
            tags=tags,
            created_via=via,
            created_by=actor.id,
            created_by_name=actor.name,
        ),
        cause=cause,
        actor=actor.principal,
        actorname=actor.name,
    )
    created = await conn.fetchval(
        "INSERT INTO models (name, description, owner_team, tags, created_via, created_by, "
        "created_by_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) "
        "ON CONFLICT (name) DO NOTHING RETURNING true",
        name, description, owner_team, tags, via, actor.id, actor.name, event.time,
    )  # fmt: skip
    if not created:
        if exists_ok:
            return False
        raise ModelExistsError(name)
    changes = [FieldChange(field="description", new=description)] if description else []
    changes.append(FieldChange(field="owner_team", new=owner_team))
    changes += [FieldChange(field=f"tags.{k}", new=v) for k, v in sorted(tags.items())]
    await log_change(
        conn, event, action="model_created", model_name=name, changes=changes,
        reason=f"created via {via}",
    )  # fmt: skip
    await sink.emit(conn, event)
    return True


async def log_change(
    conn: Connection,
    event: Envelope[Any],
    *,
    action: str,
    model_name: str,
    changes: list[FieldChange],
    reason: str | None,
    version: int | None = None,
    alias: str | None = None,
) -> None:
    """Append one metadata change (old and new values) to ``catalog_changes``."""
    await conn.execute(
        "INSERT INTO catalog_changes (model_name, version, alias, action, changes, reason, "
        "actor, actor_name, event_id, occurred_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        model_name, version, alias, action, [c.model_dump(mode="json") for c in changes],
        reason, event.actor, event.actorname, event.id, event.time,
    )  # fmt: skip


async def _lock_model(conn: Connection, name: str) -> bool:
    """Lock the model row (serialises registrations of one model); False if none."""
    return bool(await conn.fetchval("SELECT true FROM models WHERE name = $1 FOR UPDATE", name))


# --------------------------------------------------------------------------- registration


async def register_version(
    conn: Connection,
    sink: EventSink,
    command: RegisterModelVersion,
    *,
    cause: Envelope[Any] | None = None,
    actor: Actor | None = None,
    create_missing_model: bool = False,
    description: str = "",
) -> Registration:
    """Register a version (shared by the HTTP API and the ``RegisterModelVersion`` consumer).

    Idempotent: the same ``request_id`` with the same request, or the same version number
    with the same digest, returns the existing version and emits nothing. The same
    ``request_id`` with another request raises ``IdempotencyConflictError``; the same version
    with another digest ``VersionConflictError``. An unknown model raises ``UnknownModelError``
    unless ``create_missing_model`` (pipelines do not pre-create models).
    """
    name = command.model_name
    if not await _lock_model(conn, name):
        if not create_missing_model:
            raise UnknownModelError(name)
        creator = actor or Actor(command.registered_by, command.registered_by_name)
        await create_model(
            conn, sink, name=name, description="", owner_team=implicit_owner_team(command),
            tags={}, actor=creator, via="registration", cause=cause, exists_ok=True,
        )  # fmt: skip
        await _lock_model(conn, name)

    fingerprint = request_fingerprint(command)
    prior = await conn.fetchrow(
        "SELECT model_name, version, request_hash FROM model_versions WHERE request_id = $1",
        command.request_id,
    )
    if prior is not None:
        if prior["request_hash"] != fingerprint:
            raise IdempotencyConflictError(
                command.request_id, f"model {prior['model_name']!r} version {prior['version']}"
            )
        return Registration(prior["model_name"], prior["version"], created=False)

    if command.version is not None:
        existing = await conn.fetchrow(
            "SELECT artifact_digest FROM model_versions WHERE model_name = $1 AND version = $2",
            name, command.version,
        )  # fmt: skip
        if existing is not None:
            if existing["artifact_digest"] != command.artifact_digest:
                raise VersionConflictError(
                    name, command.version, existing["artifact_digest"], command.artifact_digest
                )
            return Registration(name, command.version, created=False)
        version = command.version
    else:
        version = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_name = $1", name
        )

    registered = ModelVersionRegistered(
        model_name=name,
        version=version,
        artifact_uri=command.artifact_uri,
        artifact_digest=command.artifact_digest,
        framework=command.framework,
        signature=command.signature,
        model_card=command.model_card,
        lineage=command.lineage,
        tags=command.tags,
        registered_by=command.registered_by,
        registered_by_name=command.registered_by_name,
        request_id=command.request_id,
    )
    registered_env = sink.new_event(
        registered,
        cause=cause,
        actor=actor.principal if actor else None,
        actorname=actor.name if actor else None,
    )
    try:
        await conn.execute(
            "INSERT INTO model_versions (model_name, version, state, artifact_uri, "
            "artifact_digest, framework, signature, model_card, lineage, tags, request_id, "
            "request_hash, registered_by, registered_by_name, registered_event_id, "
            "registered_at, updated_at, description) "
            "VALUES ($1, $2, 'registered', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
            "$14, $15, $15, $16)",
            name, version, command.artifact_uri, command.artifact_digest,
            command.framework.value, command.signature.model_dump(mode="json"),
            command.model_card.model_dump(mode="json"),
            command.lineage.model_dump(mode="json") if command.lineage else None,
            command.tags, command.request_id, fingerprint, command.registered_by,
            command.registered_by_name, registered_env.id, registered_env.time, description,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        # Only a concurrent use of the same request id on another model can get here:
        # one model's registrations are serialised by the model row lock.
        raise IdempotencyConflictError(command.request_id, "a concurrent registration") from exc
    await sink.emit(conn, registered_env)
    # Later events of this registration continue its workflow (correlation id).
    chain = cause if cause is not None else registered_env
    await _enter(
        conn, sink, name, version, None, ModelState.REGISTERED,
        reason=f"registered by {command.registered_by} with digest {command.artifact_digest}",
        cause=chain,
    )  # fmt: skip
    await _enter(
        conn, sink, name, version, ModelState.REGISTERED, ModelState.VALIDATING,
        reason="awaiting validation of the registered artifact", cause=chain,
    )  # fmt: skip
    return Registration(name, version, created=True)


# --------------------------------------------------------------------------- lifecycle


async def _enter(
    conn: Connection,
    sink: EventSink,
    name: str,
    version: int,
    from_state: ModelState | None,
    to_state: ModelState,
    *,
    reason: str,
    cause: Envelope[Any] | None,
    actor: Actor | None = None,
) -> None:
    """Record one legal transition, set the state, and emit ``ModelVersionStateChanged``."""
    lifecycle.check_transition(from_state, to_state)
    event = sink.new_event(
        ModelVersionStateChanged(
            model_name=name,
            version=version,
            from_state=from_state,
            to_state=to_state,
            reason=reason[:4000],
        ),
        cause=cause,
        actor=actor.principal if actor else None,
        actorname=actor.name if actor else None,
    )
    # One round trip for the history row and the state (registration runs two of these).
    await conn.execute(
        "WITH history AS (INSERT INTO state_transitions (model_name, version, from_state, "
        "to_state, reason, actor, actor_name, event_id, cause_event_id, occurred_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)) "
        "UPDATE model_versions SET state = $4, updated_at = $10 "
        "WHERE model_name = $1 AND version = $2",
        name, version, from_state.value if from_state else None, to_state.value, reason,
        event.actor, event.actorname, event.id, cause.id if cause else None, event.time,
    )  # fmt: skip
    await sink.emit(conn, event)
    # Only an approved or deployed version can hold a protected alias.
    if from_state in lifecycle.ALIAS_PROTECTABLE and to_state not in lifecycle.ALIAS_PROTECTABLE:
        await _release_protected_aliases(
            conn, sink, name, version, to_state, cause=event, actor=actor
        )


async def _release_protected_aliases(
    conn: Connection,
    sink: EventSink,
    name: str,
    version: int,
    state: ModelState,
    *,
    cause: Envelope[Any],
    actor: Actor | None,
) -> None:
    """A protected alias never points to a version that is not approved (or deployed):
    when its version leaves those states, the alias is removed, logged and announced."""
    released = await conn.fetch(
        "DELETE FROM aliases WHERE model_name = $1 AND version = $2 AND protected "
        "RETURNING alias",
        name, version,
    )  # fmt: skip
    for row in released:
        reason = f"released: version {version} is now {state.value!r}, no longer approved"
        event = sink.new_event(
            ModelAliasChanged(
                model_name=name, alias=row["alias"], from_version=version, to_version=None,
                protected=True, reason=reason,
                changed_by=actor.id if actor else cause.actor.split(":", 1)[-1],
            ),
            cause=cause,
            actor=actor.principal if actor else None,
            actorname=actor.name if actor else None,
        )  # fmt: skip
        await log_change(
            conn, event, action="alias_removed", model_name=name, alias=row["alias"],
            changes=[FieldChange(field="version", old=str(version), new=None)], reason=reason,
        )  # fmt: skip
        await sink.emit(conn, event)


async def _lock_version(conn: Connection, name: str, version: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT state, artifact_digest FROM model_versions "
        "WHERE model_name = $1 AND version = $2 FOR UPDATE",
        name, version,
    )  # fmt: skip
    if row is None:
        raise UnknownVersionError(name, version)
    return row


async def _approval_lapsed(conn: Connection, name: str, version: int) -> bool:
    lapsed = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM state_transitions WHERE model_name = $1 "
        "AND version = $2 AND to_state = 'validated' "
        "AND from_state IN ('pending_approval', 'approved', 'deployed'))",
        name,
        version,
    )
    return bool(lapsed)


async def apply_fact(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    version: int,
    digest: str | None,
    fact: Fact,
    reason: str,
    cause: Envelope[Any],
) -> list[ModelState]:
    """Move a version as ``fact`` implies (intermediate states first); return states entered.

    A stale fact changes nothing. ``UnknownVersionError`` for a version the registry does not
    know; ``DigestMismatchError`` when the event is about another artifact.
    """
    row = await _lock_version(conn, name, version)
    if digest is not None and digest != row["artifact_digest"]:
        raise DigestMismatchError(name, version, row["artifact_digest"], digest)
    current = ModelState(row["state"])
    lapsed = fact is Fact.DEPLOYMENT_READY and await _approval_lapsed(conn, name, version)
    plan = lifecycle.plan(current, fact, approval_lapsed=lapsed)
    if not plan.changes:
        log.info("%s %s/%d: %s ignored: %s", cause.type, name, version, fact.value, plan.ignored)
        return []
    before = current
    for step in plan.steps:
        is_target = step is plan.steps[-1]
        why = reason if is_target else lifecycle.implied_reason(step, cause.type, cause.id)
        await _enter(conn, sink, name, version, before, step, reason=why, cause=cause)
        before = step
    return list(plan.steps)


async def retire_version(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    version: int,
    reason: str,
    retired_by: str,
    cause: Envelope[Any] | None = None,
    actor: Actor | None = None,
) -> bool:
    """Retire a version: state -> retired, emit ``ModelVersionRetired`` and the state change.

    Returns False (and changes nothing) when it is already retired.
    """
    row = await _lock_version(conn, name, version)
    current = ModelState(row["state"])
    plan = lifecycle.plan(current, Fact.RETIREMENT)
    if not plan.changes:
        return False
    retired = sink.new_event(
        ModelVersionRetired(model_name=name, version=version, reason=reason, retired_by=retired_by),
        cause=cause,
        actor=actor.principal if actor else None,
        actorname=actor.name if actor else None,
    )
    await sink.emit(conn, retired)
    await _enter(
        conn, sink, name, version, current, ModelState.RETIRED,
        reason=reason, cause=cause if cause is not None else retired, actor=actor,
    )  # fmt: skip
    return True


async def transition_version(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    version: int,
    to_state: ModelState,
    reason: str,
    actor: Actor,
) -> None:
    """A state change a person asks for (deprecate or retire); ``IllegalTransitionError``
    unless the lifecycle allows it from the current state, naming both states."""
    if to_state not in lifecycle.MANUAL_TARGETS:
        raise ManualTransitionError(to_state)
    if to_state is ModelState.RETIRED:
        if not await retire_version(
            conn, sink, name=name, version=version, reason=reason, retired_by=actor.id,
            actor=actor,
        ):  # fmt: skip
            raise lifecycle.IllegalTransitionError(ModelState.RETIRED, ModelState.RETIRED)
        return
    row = await _lock_version(conn, name, version)
    current = ModelState(row["state"])
    lifecycle.check_transition(current, to_state)
    await _enter(
        conn, sink, name, version, current, to_state, reason=reason, cause=None, actor=actor
    )


# --------------------------------------------------------------------------- deployments


def _new_deployment_id(name: str, version: int, target: DeploymentTarget) -> str:
    return f"{name[:80]}-v{version}-{target.value}-{uuid.uuid4().hex[:8]}"


async def request_deployment(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    version: int,
    target: DeploymentTarget,
    spec: DeploymentSpec,
    actor: Actor,
) -> str:
    """Record a deployment request and emit ``RequestDeployment``; return its id.

    Only an approved or deployed version can be deployed (``StateConflictError`` otherwise).
    """
    row = await _lock_version(conn, name, version)
    state = ModelState(row["state"])
    if state not in lifecycle.DEPLOYABLE:
        raise StateConflictError(
            name, version, state, "request a deployment before the version is approved"
        )
    deployment_id = _new_deployment_id(name, version, target)
    event = sink.new_event(
        RequestDeployment(
            deployment_id=deployment_id,
            model_name=name,
            version=version,
            artifact_digest=row["artifact_digest"],
            target=target,
            spec=spec,
            requested_by=actor.id,
        ),
        actor=actor.principal,
        actorname=actor.name,
    )
    await conn.execute(
        "INSERT INTO deployments (deployment_id, model_name, version, artifact_digest, target, "
        "spec, status, requested_by, requested_at, request_event_id, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8, $9, $8)",
        deployment_id, name, version, row["artifact_digest"], target.value,
        spec.model_dump(mode="json"), actor.id, event.time, event.id,
    )  # fmt: skip
    await sink.emit(conn, event)
    return deployment_id


async def record_deployment_status(
    conn: Connection, sink: EventSink, env: Envelope[DeploymentStatusChanged]
) -> list[ModelState]:
    """Keep the deployment's last status; a ``ready`` deployment makes the version deployed.

    A deployment retired (or failed) changes no version state: retirement is the
    registry's own decision, and a retired version stays retired.
    """
    data = env.data
    row = await _lock_version(conn, data.model_name, data.version)
    if data.artifact_digest != row["artifact_digest"]:
        raise DigestMismatchError(
            data.model_name, data.version, row["artifact_digest"], data.artifact_digest
        )
    await conn.execute(
        "INSERT INTO deployments (deployment_id, model_name, version, artifact_digest, target, "
        "status, revision, endpoint_url, reason, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (deployment_id) DO UPDATE SET model_name = EXCLUDED.model_name, "
        "version = EXCLUDED.version, artifact_digest = EXCLUDED.artifact_digest, "
        "status = EXCLUDED.status, revision = EXCLUDED.revision, "
        "endpoint_url = coalesce(EXCLUDED.endpoint_url, deployments.endpoint_url), "
        "reason = EXCLUDED.reason, updated_at = EXCLUDED.updated_at",
        data.deployment_id, data.model_name, data.version, data.artifact_digest,
        data.target.value, data.status.value, data.revision, data.endpoint_url, data.reason,
        env.time,
    )  # fmt: skip
    if data.status.value != "ready":
        return []
    return await apply_fact(
        conn,
        sink,
        name=data.model_name,
        version=data.version,
        digest=data.artifact_digest,
        fact=Fact.DEPLOYMENT_READY,
        reason=f"deployment {data.deployment_id} is ready on {data.target.value}"
        + (f" at {data.endpoint_url}" if data.endpoint_url else ""),
        cause=env,
    )


# --------------------------------------------------------------------------- queries

MODEL_COLUMNS = (
    "m.name, m.description, m.owner_team, m.tags, m.created_via, m.created_by, "
    "m.created_by_name, m.created_at, m.updated_at, m.revision, "
    "(SELECT max(version) FROM model_versions v WHERE v.model_name = m.name) AS latest_version, "
    "(SELECT coalesce(jsonb_object_agg(a.alias, a.version), '{}'::jsonb) FROM aliases a "
    "WHERE a.model_name = m.name) AS aliases"
)
_SUMMARY_COLUMNS = (
    "model_name, version, state, artifact_digest, framework, registered_by, registered_at, "
    "description, risk_tier, tags"
)


async def get_model(conn: Connection, name: str) -> ModelView:
    row = await conn.fetchrow(f"SELECT {MODEL_COLUMNS} FROM models m WHERE m.name = $1", name)  # noqa: S608
    if row is None:
        raise UnknownModelError(name)
    return ModelView.model_validate(dict(row.items()))


async def list_models(conn: Connection, *, limit: int, offset: int) -> list[ModelView]:
    rows = await conn.fetch(
        f"SELECT {MODEL_COLUMNS} FROM models m ORDER BY m.name LIMIT $1 OFFSET $2",  # noqa: S608
        limit, offset,
    )  # fmt: skip
    return [ModelView.model_validate(dict(r.items())) for r in rows]


async def list_versions(
    conn: Connection,
    name: str,
    *,
    state: ModelState | None = None,
    after: int = 0,
    limit: int | None = None,
) -> list[VersionSummary]:
    """A model's versions, oldest first (``after`` a version number, at most ``limit``)."""
    await get_model(conn, name)
    rows = await conn.fetch(
        f"SELECT {_SUMMARY_COLUMNS} FROM model_versions WHERE model_name = $1 "  # noqa: S608
        "AND version > $2 AND ($3::text IS NULL OR state = $3) ORDER BY version LIMIT $4",
        name, after, state.value if state else None, limit,
    )  # fmt: skip
    return [VersionSummary.model_validate(dict(r.items())) for r in rows]


async def get_version(conn: Connection, name: str, version: int) -> VersionView:
    row = await conn.fetchrow(
        "SELECT * FROM model_versions WHERE model_name = $1 AND version = $2", name, version
    )
    if row is None:
        await get_model(conn, name)
        raise UnknownVersionError(name, version)
    aliases = await conn.fetch(
        "SELECT alias FROM aliases WHERE model_name = $1 AND version = $2 ORDER BY alias",
        name, version,
    )  # fmt: skip
    transitions = await conn.fetch(
        "SELECT from_state, to_state, reason, actor, actor_name, occurred_at, event_id, "
        "cause_event_id FROM state_transitions WHERE model_name = $1 AND version = $2 "
        "ORDER BY id",
        name, version,
    )  # fmt: skip
    return VersionView.model_validate(
        {
            **dict(row.items()),
            "transitions": [TransitionView.model_validate(dict(t.items())) for t in transitions],
            "deployments": await list_deployments(conn, model=name, version=version),
            "aliases": [r["alias"] for r in aliases],
        }
    )


async def get_deployment(conn: Connection, deployment_id: str) -> DeploymentView:
    row = await conn.fetchrow("SELECT * FROM deployments WHERE deployment_id = $1", deployment_id)
    if row is None:
        raise UnknownDeploymentError(deployment_id)
    return DeploymentView.model_validate(dict(row.items()))


async def list_deployments(
    conn: Connection,
    *,
    model: str | None = None,
    version: int | None = None,
    teams: frozenset[str] | None = None,
    limit: int | None = None,
) -> list[DeploymentView]:
    """Deployments (of one model and version), oldest update first; only models of
    ``teams`` when given (filtered in SQL, before ``limit``)."""
    rows = await conn.fetch(
        "SELECT d.* FROM deployments d LEFT JOIN models m ON m.name = d.model_name "
        "WHERE ($1::text IS NULL OR d.model_name = $1) AND ($2::int IS NULL OR d.version = $2) "
        "AND ($3::text[] IS NULL OR m.owner_team = ANY($3::text[])) "
        "ORDER BY d.updated_at, d.deployment_id LIMIT $4",
        model, version, sorted(teams) if teams is not None else None, limit,
    )  # fmt: skip
    return [DeploymentView.model_validate(dict(r.items())) for r in rows]
