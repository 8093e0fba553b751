"""What the approver does: on events from Kafka, and on decisions from the HTTP API.

Every function writes its effects and its outgoing events (outbox) on one
connection inside one transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    ESignature,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RiskTier,
    SignatureMeaning,
)
from paved_shared.consumer import PermanentError
from paved_shared.db import Connection
from paved_shared.service import ServiceRuntime

from paved_approver import store
from paved_approver.domain.approval import (
    Actor,
    ApprovalState,
    Decision,
    DecisionOutcome,
    DecisionRefusedError,
    Signature,
    decide,
)
from paved_approver.domain.policy import ApprovalPolicy
from paved_approver.domain.version_hash import version_hash

log = logging.getLogger(__name__)

SERVICE_ACTOR = "service:approver"
SERVICE_ACTOR_NAME = "Paved approver"


class UnknownApprovalError(LookupError):
    """No approval has the requested id."""


# --------------------------------------------------------------------------- Kafka side


async def handle_model_event(
    env: Envelope[Any], conn: Connection, *, runtime: ServiceRuntime, policy: ApprovalPolicy
) -> None:
    """`ModelVersionRegistered`: remember the version; `ModelVersionRetired`: close its case."""
    data = env.data
    if isinstance(data, ModelVersionRegistered):
        await _on_registered(env, data, conn, runtime=runtime, policy=policy)
    elif isinstance(data, ModelVersionRetired):
        # Remembered even for a version not seen yet, so no case opens for it later.
        await store.lock_version(conn, data.model_name, data.version)
        closed = await store.record_retirement(conn, data, event_id=env.id)
        if closed:
            log.info("closed the pending approval of %s v%d: retired", data.model_name,
                     data.version)  # fmt: skip


async def handle_validation_event(
    env: Envelope[Any], conn: Connection, *, runtime: ServiceRuntime, policy: ApprovalPolicy
) -> None:
    """`ModelVersionValidated`: remember the verdict; open the case if the version is known."""
    data = env.data
    if not isinstance(data, ModelVersionValidated):
        return
    await store.lock_version(conn, data.model_name, data.version)
    await store.record_validation(conn, data, event_id=env.id)
    await _open_if_ready(conn, data.model_name, data.version, cause=env, runtime=runtime,
                         policy=policy)  # fmt: skip


async def _on_registered(
    env: Envelope[Any],
    data: ModelVersionRegistered,
    conn: Connection,
    *,
    runtime: ServiceRuntime,
    policy: ApprovalPolicy,
) -> None:
    row = await store.lock_version(conn, data.model_name, data.version)
    digest = version_hash(data)
    if row["registered_event_id"] is not None:
        if row["version_hash"] != digest:
            raise PermanentError(
                f"{data.model_name} v{data.version} is already registered with version hash "
                f"{row['version_hash']} (artifact {row['artifact_digest']}); a registration "
                f"with version hash {digest} (artifact {data.artifact_digest}) is refused"
            )
        return  # the same registration again (re-emitted): nothing new to learn
    await store.record_registration(conn, data, version_hash=digest, event_id=env.id)
    await _open_if_ready(conn, data.model_name, data.version, cause=env, runtime=runtime,
                         policy=policy)  # fmt: skip


async def _open_if_ready(
    conn: Connection,
    model_name: str,
    version: int,
    *,
    cause: Envelope[Any],
    runtime: ServiceRuntime,
    policy: ApprovalPolicy,
) -> None:
    """Open the approval case once the version is registered AND passed validation, once."""
    row = await store.lock_version(conn, model_name, version)
    if row["registered_event_id"] is None or row["validation_passed"] is not True:
        return
    if row["retired_at"] is not None:
        log.info("%s v%d is retired; no approval opens", model_name, version)
        return
    if row["validated_digest"] != row["artifact_digest"]:
        raise PermanentError(
            f"validation of {model_name} v{version} covered artifact {row['validated_digest']} "
            f"but the version is registered with {row['artifact_digest']}; no approval opens"
        )
    if await store.approval_id_for_version(conn, model_name, version) is not None:
        return
    tier = RiskTier(row["risk_tier"])
    rule = policy.rule_for(tier)
    approval_id = f"apr-{uuid.uuid4().hex}"
    requested = runtime.new_event(
        ApprovalRequested(
            model_name=model_name,
            version=version,
            artifact_digest=row["artifact_digest"],
            approval_id=approval_id,
            risk_tier=tier,
            policy_version=policy.version,
            required_approvals=rule.required_approvals,
            required_roles=list(rule.required_roles),
        ),
        cause=cause,
        actor=SERVICE_ACTOR,
        actorname=SERVICE_ACTOR_NAME,
    )
    opened = await store.insert_approval(
        conn,
        approval_id=approval_id,
        version_row=row,
        policy_version=policy.version,
        required_approvals=rule.required_approvals,
        required_roles=rule.required_roles,
        correlation_id=requested.correlationid,
        requested_event_id=requested.id,
    )
    if not opened:
        return
    await runtime.emit(conn, requested)
    log.info("opened approval %s for %s v%d (%s, needs %d)", approval_id, model_name, version,
             tier.value, rule.required_approvals)  # fmt: skip
    if not rule.auto_approve:
        return
    now = datetime.now(UTC)
    await store.set_state(conn, approval_id, ApprovalState.GRANTED, decided_at=now,
                          auto_approved=True)  # fmt: skip
    granted = ApprovalGranted(
        model_name=model_name,
        version=version,
        artifact_digest=row["artifact_digest"],
        approval_id=approval_id,
        risk_tier=tier,
        policy_version=policy.version,
        signatures=[],
        auto_approved=True,
    )
    await runtime.emit(
        conn,
        runtime.new_event(granted, cause=cause, actor=SERVICE_ACTOR, actorname=SERVICE_ACTOR_NAME),
    )


# --------------------------------------------------------------------------- HTTP side


@dataclass(frozen=True)
class DecisionResult:
    """A stored decision: the approval's new state and the signature just added."""

    approval_id: str
    state: ApprovalState
    signature: Signature


def e_signature(signature: Signature) -> ESignature:
    """The contract form of a stored signature."""
    return ESignature(
        signer_id=signature.signer_id,
        printed_name=signature.printed_name,
        signed_at=signature.signed_at,
        meaning=signature.meaning,
        reason=signature.reason,
        version_hash=signature.version_hash,
    )


async def record_decision(
    *,
    runtime: ServiceRuntime,
    approval_id: str,
    actor: Actor,
    decision: Decision,
    reason: str,
    meaning: SignatureMeaning | None,
) -> DecisionResult:
    """Sign ``approval_id`` for ``actor``; emit Granted/Rejected when the case closes.

    The approval row is locked for the whole transaction, so two concurrent approvals
    see each other's signature and only one of them can grant. Raises
    ``UnknownApprovalError`` or a ``DecisionRefusedError`` subclass; nothing is stored then.
    """
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await store.lock_approval(conn, approval_id)
        if row is None:
            raise UnknownApprovalError(f"no approval with id {approval_id!r}")
        existing = await store.signatures_of(conn, approval_id)
        try:
            outcome = decide(
                store.case_of(row),
                existing,
                actor,
                decision,
                reason=reason,
                meaning=meaning,
                now=datetime.now(UTC),
            )
        except DecisionRefusedError as exc:
            # A refused attempt is an authorisation decision too: keep who, what, why.
            log.warning(
                "refused %s by %s on %s (policy %s): %s", decision.value, actor.user_id,
                approval_id, row["policy_version"], exc,
            )  # fmt: skip
            raise
        await store.insert_signature(conn, approval_id, outcome.signature)
        if outcome.state is not ApprovalState.PENDING:
            await store.set_state(
                conn, approval_id, outcome.state, decided_at=outcome.signature.signed_at
            )
            await runtime.emit(conn, _closing_event(runtime, row, outcome, actor))
    log.info("%s signed %s (%s): approval is %s", actor.user_id, approval_id,
             outcome.signature.meaning.value, outcome.state.value)  # fmt: skip
    return DecisionResult(approval_id, outcome.state, outcome.signature)


def _closing_event(
    runtime: ServiceRuntime, row: store.Row, outcome: DecisionOutcome, actor: Actor
) -> Envelope[Any]:
    common: dict[str, Any] = {
        "model_name": row["model_name"],
        "version": row["version"],
        "artifact_digest": row["artifact_digest"],
        "approval_id": row["approval_id"],
        "risk_tier": RiskTier(row["risk_tier"]),
        "policy_version": row["policy_version"],
    }
    data: ApprovalGranted | ApprovalRejected
    if outcome.state is ApprovalState.GRANTED:
        signatures = [e_signature(s) for s in outcome.approving_signatures]
        data = ApprovalGranted(**common, signatures=signatures)
    else:
        data = ApprovalRejected(**common, signatures=[e_signature(s) for s in outcome.signatures])
    # The HTTP request has no envelope; the case's correlation id keeps the version's
    # story together, and the ApprovalRequested event is its cause.
    return Envelope.new(
        data,
        source=f"/paved/{runtime.service}",
        actor=f"user:{actor.user_id}",
        actorname=actor.printed_name,
        correlationid=row["correlation_id"],
        causationid=row["requested_event_id"],
    )
