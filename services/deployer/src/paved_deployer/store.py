"""The deployer's tables: deployments (desired vs actual), approvals, validations, versions.

`StatusWriter.transition` is the one way a status changes: it checks the rule, updates
the row, records the transition and writes the `DeploymentStatusChanged` event to the
outbox — all on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    DeploymentStatus,
    DeploymentStatusChanged,
    DeploymentTarget,
    ModelSignature,
)
from paved_shared.db import Connection

from paved_deployer.domain.lifecycle import (
    Admission,
    Approval,
    Registration,
    Validation,
    admission,
    check_transition,
)
from paved_deployer.ports import Handle

Emit = Callable[[Connection, Envelope[Any]], Awaitable[int]]

_KEEP: Any = object()


@dataclass(frozen=True)
class Deployment:
    """One row of `deployments`, plus how long it has waited since the request."""

    deployment_id: str
    target: str
    model_name: str
    version: int
    artifact_digest: str
    spec: dict[str, Any]
    requested_by: str
    desired: str
    status: DeploymentStatus
    revision: int
    reason: str | None
    stop_reason: str | None
    endpoint_url: str | None
    handle: Handle | None
    retiring: list[Handle]
    correlation_id: str
    causation_id: str
    actor: str
    actorname: str
    waited_s: float
    serving: list[dict[str, Any]] = field(default_factory=list)
    """Serving revisions: {revision, weight, handle, model_name, version, artifact_digest, spec}."""
    endpoint: Handle | None = None
    genai: bool = False

    @property
    def serving_handles(self) -> list[Handle]:
        """Handles of the serving revisions."""
        return [entry["handle"] for entry in self.serving]

    def describe_serving(self) -> str:
        """`revision 2 (v1, 90%) and revision 3 (v2, 10%)`, for reasons."""
        parts = [
            f"revision {e['revision']} (v{e['version']}, {e['weight']}%)" for e in self.serving
        ]
        return " and ".join(parts) or "nothing"

    def same_generation(self, other: Deployment) -> bool:
        """True if nothing that decides the reconciler's action changed in between."""
        return (self.revision, self.status, self.desired) == (
            other.revision,
            other.status,
            other.desired,
        )


_COLUMNS = (
    "deployment_id, target, model_name, version, artifact_digest, spec, requested_by, desired, "
    "status, revision, reason, stop_reason, endpoint_url, handle, retiring, correlation_id, "
    "causation_id, actor, actorname, serving, endpoint, genai, "
    "EXTRACT(EPOCH FROM now() - requested_at)::float8 AS waited_s"
)


def _row(record: Any) -> Deployment:
    values = dict(record.items())
    values["status"] = DeploymentStatus(values["status"])
    values["retiring"] = list(values["retiring"] or [])
    values["serving"] = list(values["serving"] or [])
    return Deployment(**values)


async def get(conn: Connection, deployment_id: str, *, lock: bool = False) -> Deployment | None:
    """One deployment (locked FOR UPDATE when `lock`), or None."""
    sql = f"SELECT {_COLUMNS} FROM deployments WHERE deployment_id = $1"  # noqa: S608
    record = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), deployment_id)
    return None if record is None else _row(record)


async def needing_attention(conn: Connection, target: str) -> list[Deployment]:
    """Deployments the reconciler must look at: active ones, or any with a server left."""
    sql = (
        f"SELECT {_COLUMNS} FROM deployments WHERE target = $1 AND "  # noqa: S608
        "(status IN ('pending', 'provisioning', 'ready', 'rolled_back') OR handle IS NOT NULL "
        "OR retiring <> '[]'::jsonb OR serving <> '[]'::jsonb OR endpoint IS NOT NULL) "
        "ORDER BY requested_at"
    )
    return [_row(r) for r in await conn.fetch(sql, target)]


async def with_servers(conn: Connection) -> list[Deployment]:
    """Every deployment that records a server (current or being replaced)."""
    sql = (
        f"SELECT {_COLUMNS} FROM deployments "  # noqa: S608
        "WHERE handle IS NOT NULL OR retiring <> '[]'::jsonb OR serving <> '[]'::jsonb "
        "OR endpoint IS NOT NULL"
    )
    return [_row(r) for r in await conn.fetch(sql)]


async def set_cause(conn: Connection, row: Deployment, cause: Envelope[Any]) -> Deployment:
    """Make `cause` the event later status changes of `row` are attributed to."""
    await conn.execute(
        "UPDATE deployments SET correlation_id = $2, causation_id = $3, actor = $4, "
        "actorname = $5, updated_at = now() WHERE deployment_id = $1",
        row.deployment_id, cause.correlationid, cause.id, cause.actor, cause.actorname,
    )  # fmt: skip
    return replace(
        row,
        correlation_id=cause.correlationid,
        causation_id=cause.id,
        actor=cause.actor,
        actorname=cause.actorname,
    )


async def request_stop(conn: Connection, row: Deployment, reason: str) -> Deployment:
    """Desired state -> stopped, with the reason `retired` will carry."""
    await conn.execute(
        "UPDATE deployments SET desired = 'stopped', stop_reason = $2, updated_at = now() "
        "WHERE deployment_id = $1",
        row.deployment_id, reason[:4000],
    )  # fmt: skip
    return replace(row, desired="stopped", stop_reason=reason[:4000])


async def set_handle(
    conn: Connection, row: Deployment, handle: Handle | None, retiring: list[Handle]
) -> Deployment:
    """Record the current server (and servers still to stop) of a deployment."""
    await conn.execute(
        "UPDATE deployments SET handle = $2, retiring = $3, updated_at = now() "
        "WHERE deployment_id = $1",
        row.deployment_id, handle, retiring,
    )  # fmt: skip
    return replace(row, handle=handle, retiring=retiring)


async def set_serving(
    conn: Connection,
    row: Deployment,
    serving: list[dict[str, Any]],
    *,
    endpoint: Handle | Any | None = _KEEP,
    retiring: list[Handle] | None = None,
) -> Deployment:
    """Record the serving revisions (and the endpoint, and servers still to stop)."""
    new = replace(
        row,
        serving=serving,
        endpoint=row.endpoint if endpoint is _KEEP else endpoint,
        retiring=row.retiring if retiring is None else retiring,
    )
    await conn.execute(
        "UPDATE deployments SET serving = $2, endpoint = $3, retiring = $4, updated_at = now() "
        "WHERE deployment_id = $1",
        row.deployment_id, new.serving, new.endpoint, new.retiring,
    )  # fmt: skip
    return new


async def notify(conn: Connection, deployment_id: str) -> None:
    """Wake the reconciler when the current transaction commits."""
    await conn.execute("SELECT pg_notify('paved_deployer_' || current_schema(), $1)", deployment_id)


def channel(schema: str) -> str:
    """The LISTEN channel `notify` signals for a schema."""
    return f"paved_deployer_{schema}"


# --------------------------------------------------------------------------- facts


async def is_genai(conn: Connection, model_name: str, version: int) -> bool:
    """Whether the registered version is a GenAI model (gets a gateway route)."""
    value = await conn.fetchval(
        "SELECT genai FROM model_versions WHERE model_name = $1 AND version = $2",
        model_name, version,
    )  # fmt: skip
    return bool(value)


async def registration(conn: Connection, model_name: str, version: int) -> Registration | None:
    """What ModelVersionRegistered said about a version, if it arrived."""
    record = await conn.fetchrow(
        "SELECT artifact_uri, artifact_digest, framework FROM model_versions "
        "WHERE model_name = $1 AND version = $2",
        model_name, version,
    )  # fmt: skip
    return None if record is None else Registration(**dict(record.items()))


async def signature(conn: Connection, model_name: str, version: int) -> ModelSignature | None:
    """The declared signature of a registered version."""
    raw = await conn.fetchval(
        "SELECT signature FROM model_versions WHERE model_name = $1 AND version = $2",
        model_name, version,
    )  # fmt: skip
    return None if raw is None else ModelSignature.model_validate(raw)


async def approval(conn: Connection, model_name: str, version: int, digest: str) -> Approval | None:
    """The latest approval decision for exactly this model version and digest."""
    record = await conn.fetchrow(
        "SELECT state, reason, expires_at FROM approvals "
        "WHERE model_name = $1 AND version = $2 AND artifact_digest = $3",
        model_name, version, digest,
    )  # fmt: skip
    return None if record is None else Approval(**dict(record.items()))


async def validation(
    conn: Connection, model_name: str, version: int, digest: str
) -> Validation | None:
    """The latest validation result for exactly this model version and digest."""
    record = await conn.fetchrow(
        "SELECT passed, reasons FROM validations "
        "WHERE model_name = $1 AND version = $2 AND artifact_digest = $3",
        model_name, version, digest,
    )  # fmt: skip
    return None if record is None else Validation(**dict(record.items()))


async def retired_reason(conn: Connection, model_name: str, version: int) -> str | None:
    """Why a version was retired, or None."""
    reason: str | None = await conn.fetchval(
        "SELECT reason FROM retired_versions WHERE model_name = $1 AND version = $2",
        model_name, version,
    )  # fmt: skip
    return reason


async def admission_of(
    conn: Connection,
    row: Deployment,
    *,
    wait_limit_s: float,
    frameworks: frozenset[str],
) -> Admission:
    """The admission verdict for a pending deployment, from the facts stored so far."""
    return admission(
        model_name=row.model_name,
        version=row.version,
        digest=row.artifact_digest,
        registration=await registration(conn, row.model_name, row.version),
        approval=await approval(conn, row.model_name, row.version, row.artifact_digest),
        validation=await validation(conn, row.model_name, row.version, row.artifact_digest),
        retired_reason=await retired_reason(conn, row.model_name, row.version),
        waited_s=row.waited_s,
        wait_limit_s=wait_limit_s,
        now=datetime.now(UTC),
        frameworks=frameworks,
        target=row.target,
    )


# --------------------------------------------------------------------------- transitions


async def refuse_rollout(
    conn: Connection, row: Deployment, reason: str, writer: StatusWriter
) -> Deployment:
    """The rollout of `row.revision` failed: `rolled_back` while earlier revisions keep
    serving (the in-flight servers stop), else `failed`."""
    retiring = [*row.retiring, row.handle] if row.handle else row.retiring
    if row.serving:
        return await writer.transition(
            conn,
            row,
            DeploymentStatus.ROLLED_BACK,
            reason=f"revision {row.revision} failed: {reason}; rolled back to "
            f"{row.describe_serving()}, which keeps serving",
            handle=None,
            retiring=retiring,
        )
    return await writer.transition(
        conn, row, DeploymentStatus.FAILED, reason=reason, handle=None, retiring=retiring
    )


class StatusWriter:
    """Applies status transitions and publishes each through the outbox (same transaction)."""

    def __init__(self, emit: Emit, *, service: str) -> None:
        self._emit = emit
        self.source = f"/paved/{service}"

    async def announce(
        self, conn: Connection, row: Deployment, previous: DeploymentStatus | None
    ) -> None:
        """Record and publish that `row` (already written) entered `row.status`."""
        event = Envelope.new(
            DeploymentStatusChanged(
                deployment_id=row.deployment_id,
                model_name=row.model_name,
                version=row.version,
                artifact_digest=row.artifact_digest,
                target=DeploymentTarget(row.target),
                status=row.status,
                revision=row.revision,
                endpoint_url=row.endpoint_url,
                reason=row.reason,
            ),
            source=self.source,
            actor=row.actor,
            actorname=row.actorname,
            correlationid=row.correlation_id,
            causationid=row.causation_id,
        )
        await conn.execute(
            "INSERT INTO deployment_transitions "
            "(deployment_id, revision, from_status, to_status, reason, event_id) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            row.deployment_id, row.revision, previous.value if previous else None,
            row.status.value, row.reason, event.id,
        )  # fmt: skip
        await self._emit(conn, event)

    async def transition(
        self,
        conn: Connection,
        row: Deployment,
        to: DeploymentStatus,
        *,
        reason: str | None = None,
        endpoint_url: str | None = None,
        revision: int | None = None,
        handle: Handle | None = _KEEP,
        retiring: list[Handle] | None = None,
        serving: list[dict[str, Any]] | None = None,
        endpoint: Handle | None = _KEEP,
    ) -> Deployment:
        """Move `row` to `to` (checked), write it, and publish the change."""
        check_transition(row.status, to)
        serves = to in (DeploymentStatus.READY, DeploymentStatus.ROLLED_BACK)
        new_endpoint = row.endpoint if endpoint is _KEEP else endpoint
        url = endpoint_url or (new_endpoint or {}).get("url") or row.endpoint_url
        new = replace(
            row,
            status=to,
            reason=None if reason is None else reason[:4000],
            endpoint_url=url if serves else None,
            revision=revision if revision is not None else row.revision,
            handle=row.handle if handle is _KEEP else handle,
            retiring=row.retiring if retiring is None else retiring,
            serving=row.serving if serving is None else serving,
            endpoint=new_endpoint,
        )
        await conn.execute(
            "UPDATE deployments SET status = $2, reason = $3, endpoint_url = $4, revision = $5, "
            "handle = $6, retiring = $7, serving = $8, endpoint = $9, updated_at = now() "
            "WHERE deployment_id = $1",
            new.deployment_id, new.status.value, new.reason, new.endpoint_url, new.revision,
            new.handle, new.retiring, new.serving, new.endpoint,
        )  # fmt: skip
        await self.announce(conn, new, row.status)
        return new
