"""Event handlers: each records facts and desired state on the handler's transaction.

They never start or stop servers (the reconciler does, after the commit); they only
change what the deployer wants, publish what that decides at once (`pending`, or
`failed` for a request that can never be admitted), and wake the reconciler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    DeploymentStatus,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RequestDeployment,
    RequestUndeployment,
)
from paved_shared.consumer import PermanentError
from paved_shared.db import Connection

from paved_deployer import store
from paved_deployer.domain.lifecycle import ACTIVE, Refuse, check_transition, is_new_rollout
from paved_deployer.domain.policy import ServingPolicy
from paved_deployer.store import StatusWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandlerDeps:
    """What the handlers need: this deployer's target and rules, and the status writer."""

    target: str
    frameworks: frozenset[str]
    approval_wait_s: float
    writer: StatusWriter
    policy: ServingPolicy = field(default_factory=ServingPolicy)


async def on_deployment_request(env: Envelope[Any], conn: Connection, *, deps: HandlerDeps) -> None:
    """`RequestDeployment` for this target: record desired=running, publish `pending`.

    A request that can already be seen never to be admissible (over this deployer's
    policy, rejected digest, failed validation, retired version, digest unlike the
    registered one) also fails at once, in the same transaction: nothing is started.
    """
    data: RequestDeployment = env.data
    if data.target.value != deps.target:
        return
    spec = data.spec.model_dump(mode="json")
    current = await store.get(conn, data.deployment_id, lock=True)
    requested = (data.model_name, data.version, data.artifact_digest, spec)
    if current is not None and not is_new_rollout(
        (current.model_name, current.version, current.artifact_digest, current.spec),
        requested,
        current.status,
        current.desired,
    ):
        log.info("deployment %s already runs what %s asks; nothing to do",
                 data.deployment_id, env.id)  # fmt: skip
        return
    check_transition(current.status if current else None, DeploymentStatus.PENDING)
    revision = current.revision + 1 if current is not None else 1
    await conn.execute(
        """INSERT INTO deployments (deployment_id, target, model_name, version, artifact_digest,
               spec, requested_by, desired, status, revision, correlation_id, causation_id,
               actor, actorname)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 'pending', $8, $9, $10, $11, $12)
           ON CONFLICT (deployment_id) DO UPDATE SET
               model_name = EXCLUDED.model_name, version = EXCLUDED.version,
               artifact_digest = EXCLUDED.artifact_digest, spec = EXCLUDED.spec,
               requested_by = EXCLUDED.requested_by, desired = 'running', status = 'pending',
               revision = EXCLUDED.revision, reason = NULL, stop_reason = NULL,
               endpoint_url = NULL, correlation_id = EXCLUDED.correlation_id,
               causation_id = EXCLUDED.causation_id, actor = EXCLUDED.actor,
               actorname = EXCLUDED.actorname, requested_at = now(), updated_at = now()""",
        data.deployment_id, deps.target, data.model_name, data.version, data.artifact_digest,
        spec, data.requested_by, revision, env.correlationid, env.id, env.actor, env.actorname,
    )  # fmt: skip
    row = await store.get(conn, data.deployment_id)
    assert row is not None
    if row.handle is not None:
        # A rollout still in flight is superseded: its servers stop; serving ones stay.
        row = await store.set_handle(conn, row, None, [*row.retiring, row.handle])
    await deps.writer.announce(conn, row, current.status if current else None)
    problems = deps.policy.problems(data.spec)
    if problems:
        await _fail(conn, row, f"refused: {'; '.join(problems)}", deps)
        await store.notify(conn, row.deployment_id)
        return
    verdict = await store.admission_of(
        conn, row, wait_limit_s=deps.approval_wait_s, frameworks=deps.frameworks
    )
    if isinstance(verdict, Refuse):
        await _fail(conn, row, verdict.reason, deps)
    await store.notify(conn, row.deployment_id)


async def on_undeploy_request(env: Envelope[Any], conn: Connection, *, deps: HandlerDeps) -> None:
    """`RequestUndeployment` for this target: desired=stopped; the reconciler stops the
    servers and publishes `retired` with the reason. Unknown ids are dead-lettered."""
    data: RequestUndeployment = env.data
    if data.target.value != deps.target:
        return
    row = await store.get(conn, data.deployment_id, lock=True)
    if row is None:
        raise PermanentError(
            f"deployment {data.deployment_id!r} is unknown to the {deps.target} deployer; "
            "nothing to undeploy"
        )
    if row.desired == "stopped" or row.status not in ACTIVE:
        log.info("deployment %s is already down (%s); nothing to undeploy",
                 data.deployment_id, row.status)  # fmt: skip
        return
    row = await store.set_cause(conn, row, env)
    await store.request_stop(conn, row, f"undeployed by {data.requested_by}: {data.reason}")
    await store.notify(conn, row.deployment_id)


async def _fail(conn: Connection, row: store.Deployment, reason: str, deps: HandlerDeps) -> None:
    """The rollout of `row.revision` cannot go on: roll back to what serves, or fail."""
    await store.refuse_rollout(conn, row, reason, deps.writer)


async def on_model_event(env: Envelope[Any], conn: Connection, *, deps: HandlerDeps) -> None:
    """`ModelVersionRegistered` (remember artifact and signature) or `ModelVersionRetired`."""
    data = env.data
    if isinstance(data, ModelVersionRegistered):
        await conn.execute(
            "INSERT INTO model_versions (model_name, version, artifact_uri, artifact_digest, "
            "framework, signature, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (model_name, version) DO NOTHING",
            data.model_name, data.version, data.artifact_uri, data.artifact_digest,
            data.framework.value, data.signature.model_dump(mode="json"), env.id,
        )  # fmt: skip
        if data.model_card.genai:
            await conn.execute(
                "UPDATE model_versions SET genai = true WHERE model_name = $1 AND version = $2",
                data.model_name, data.version,
            )  # fmt: skip
        await _wake_version(conn, data.model_name, data.version)
    elif isinstance(data, ModelVersionRetired):
        await conn.execute(
            "INSERT INTO retired_versions (model_name, version, reason, retired_by, event_id) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model_name, version) DO NOTHING",
            data.model_name, data.version, data.reason, data.retired_by, env.id,
        )  # fmt: skip
        reason = (
            f"{data.model_name} version {data.version} retired by {data.retired_by}: {data.reason}"
        )
        for active in await _active_of(conn, data.model_name, data.version):
            row = await store.set_cause(conn, active, env)
            await store.request_stop(conn, row, reason)
            await store.notify(conn, row.deployment_id)


async def on_approval_event(env: Envelope[Any], conn: Connection, *, deps: HandlerDeps) -> None:
    """Granted -> approved; rejected/expired -> revoked: pending deployments of the digest
    fail, running ones are stopped and retired with the reason."""
    data = env.data
    if isinstance(data, ApprovalGranted):
        state, reason, expires_at = "approved", None, data.expires_at
    elif isinstance(data, ApprovalRejected):
        signers = ", ".join(
            f"{s.printed_name} ({s.signer_id}): {s.reason}"
            for s in data.signatures
            if s.meaning.value == "rejection"
        )
        state, reason, expires_at = "revoked", f"rejected by {signers}", None
    elif isinstance(data, ApprovalExpired):
        state = "revoked"
        reason = f"approval {data.approval_id} expired at {data.expired_at.isoformat()}"
        expires_at = None
    else:
        return
    await conn.execute(
        """INSERT INTO approvals (model_name, version, artifact_digest, state, approval_id,
               reason, expires_at, event_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (model_name, version, artifact_digest) DO UPDATE SET
               state = EXCLUDED.state, approval_id = EXCLUDED.approval_id,
               reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at,
               event_id = EXCLUDED.event_id, updated_at = now()""",
        data.model_name, data.version, data.artifact_digest, state, data.approval_id,
        reason, expires_at, env.id,
    )  # fmt: skip
    if state == "approved":
        await _wake_version(conn, data.model_name, data.version)
        return
    await _withdraw(
        conn, env, data.model_name, data.version, data.artifact_digest,
        f"is not approved: {reason}", f"is no longer approved: {reason}", deps,
    )  # fmt: skip


async def on_validation_event(env: Envelope[Any], conn: Connection, *, deps: HandlerDeps) -> None:
    """`ModelVersionValidated`: record the result for its digest. Passed wakes pending
    deployments of the version; failed fails pending ones and stops serving ones."""
    data: ModelVersionValidated = env.data
    reasons = "; ".join(data.reasons)[:4000] or None
    await conn.execute(
        """INSERT INTO validations (model_name, version, artifact_digest, passed, reasons,
               evidence_digest, event_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (model_name, version, artifact_digest) DO UPDATE SET
               passed = EXCLUDED.passed, reasons = EXCLUDED.reasons,
               evidence_digest = EXCLUDED.evidence_digest, event_id = EXCLUDED.event_id,
               updated_at = now()""",
        data.model_name, data.version, data.artifact_digest, data.passed, reasons,
        data.evidence_digest, env.id,
    )  # fmt: skip
    if data.passed:
        await _wake_version(conn, data.model_name, data.version)
        return
    await _withdraw(
        conn, env, data.model_name, data.version, data.artifact_digest,
        f"did not pass validation: {reasons or 'failed'}",
        f"failed validation: {reasons or 'failed'}", deps,
    )  # fmt: skip


async def _withdraw(
    conn: Connection,
    env: Envelope[Any],
    model_name: str,
    version: int,
    digest: str,
    why: str,
    stop_why: str,
    deps: HandlerDeps,
) -> None:
    """A fact admission needs was withdrawn for `digest`: rollouts of it fail, and
    deployments serving it are stopped (serving such a digest is never acceptable)."""
    what = f"artifact digest {digest} of {model_name} version {version}"
    for active in await _active_of(conn, model_name, version):
        served = any(
            e["artifact_digest"] == digest and e["version"] == version for e in active.serving
        )
        rolling = active.artifact_digest == digest and active.status in (
            DeploymentStatus.PENDING,
            DeploymentStatus.PROVISIONING,
        )
        if not served and not rolling:
            continue
        row = await store.set_cause(conn, active, env)
        if served:
            await store.request_stop(conn, row, f"{what} {stop_why}")
        else:
            await _fail(conn, row, f"{what} {why}", deps)
        await store.notify(conn, row.deployment_id)


async def _active_of(conn: Connection, model_name: str, version: int) -> list[store.Deployment]:
    ids = await conn.fetch(
        "SELECT deployment_id FROM deployments WHERE desired = 'running' AND "
        "((model_name = $1 AND version = $2) OR serving @> jsonb_build_array("
        "jsonb_build_object('model_name', $1::text, 'version', $2::int))) "
        "ORDER BY deployment_id",
        model_name, version,
    )  # fmt: skip
    rows = []
    for record in ids:
        row = await store.get(conn, record["deployment_id"], lock=True)
        if row is not None and row.status in ACTIVE and row.desired == "running":
            rows.append(row)
    return rows


async def _wake_version(conn: Connection, model_name: str, version: int) -> None:
    for row in await _active_of(conn, model_name, version):
        if row.status is DeploymentStatus.PENDING:
            await store.notify(conn, row.deployment_id)
