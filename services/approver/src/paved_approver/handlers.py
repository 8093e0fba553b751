"""What the approver does: on events from Kafka, and on decisions from the HTTP API.

Every function writes its effects and its outgoing events (outbox) on one
connection inside one transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalDecisionRecorded,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    AuthorizationOutcome,
    ESignature,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RegisteredModelCreated,
    RegisteredModelUpdated,
    RiskTier,
    SignatureMeaning,
)
from paved_shared.consumer import PermanentError
from paved_shared.db import Connection
from paved_shared.service import ServiceRuntime

from paved_approver import store
from paved_approver.domain.approval import (
    DEV_SIGNING,
    REFUSAL_CODES,
    Actor,
    ApprovalState,
    Decision,
    DecisionOutcome,
    DecisionRefusedError,
    Signature,
    SigningRules,
    decide,
)
from paved_approver.domain.policy import ApprovalPolicy
from paved_approver.domain.version_hash import version_document, version_hash
from paved_approver.seal import Sealer, signature_record

log = logging.getLogger(__name__)

SERVICE_ACTOR = "service:approver"
SERVICE_ACTOR_NAME = "Paved approver"

REGISTRY_SOURCE = "/paved/registry"
"""The only source whose model facts (registrant, owner team, risk tier) the approver
believes. Kafka ACLs let only the registry write the model topic; this check keeps a
mislabelled or replayed foreign event from becoming the registrant of record."""
VALIDATOR_SOURCE = "/paved/validator"
"""The only source whose validation verdicts open a case."""


def _require_source(env: Envelope[Any], expected: str) -> None:
    if env.source != expected:
        raise PermanentError(
            f"{env.type} {env.id} comes from source {env.source!r}, not {expected!r}: the "
            "approver believes this fact only from the service that owns it; dead-lettered"
        )


class UnknownApprovalError(LookupError):
    """No approval has the requested id."""


# --------------------------------------------------------------------------- Kafka side


async def handle_model_event(
    env: Envelope[Any], conn: Connection, *, runtime: ServiceRuntime, policy: ApprovalPolicy
) -> None:
    """`ModelVersionRegistered`: remember the version; `ModelVersionRetired`: close its case;
    `RegisteredModelCreated`/`Updated`: remember the model's owner team (team scoping).

    Each is believed only from the registry (``REGISTRY_SOURCE``). The registrant is the
    ``registered_by`` of the registry's ModelVersionRegistered: the registry sets it from
    the authenticated caller, never from a field the requester fills in. An owner change
    reaches versions registered later, never a case already open (its snapshot stays).
    """
    data = env.data
    _require_source(env, REGISTRY_SOURCE)
    if isinstance(data, RegisteredModelCreated):
        await store.record_owner_team(conn, data.model_name, data.owner_team)
    elif isinstance(data, RegisteredModelUpdated):
        for change in data.changes:
            if change.field == "owner_team":
                await store.record_owner_team(conn, data.model_name, change.new)
                for case in await store.open_cases(conn, data.model_name):
                    log.warning(
                        "%s moved from team %r to %r; open approval %s (v%d, %s) keeps owner "
                        "team %r: who may sign it does not change", data.model_name,
                        change.old, change.new, case["approval_id"], case["version"],
                        case["state"], case["owner_team"],
                    )  # fmt: skip
    elif isinstance(data, ModelVersionRegistered):
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
    _require_source(env, VALIDATOR_SOURCE)
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
    await store.record_registration(
        conn, data, version_hash=digest, event_id=env.id, document=version_document(data)
    )
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
    latest = await store.latest_case(conn, model_name, version)
    if latest is not None and (
        latest["state"] != ApprovalState.EXPIRED
        or latest["opened_by_event_id"] == row["validated_event_id"]
    ):
        # One case per validation; after an expiry only a new validation opens the next.
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
        eligible_roles=rule.eligible_roles,
        valid_for_s=int(rule.valid_for.total_seconds()) if rule.valid_for else None,
        policy_digest=policy.digest,
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
    expires_at = now + rule.valid_for if rule.valid_for else None
    await store.set_state(conn, approval_id, ApprovalState.GRANTED, decided_at=now,
                          auto_approved=True, expires_at=expires_at)  # fmt: skip
    granted = ApprovalGranted(
        model_name=model_name,
        version=version,
        artifact_digest=row["artifact_digest"],
        approval_id=approval_id,
        risk_tier=tier,
        policy_version=policy.version,
        signatures=[],
        auto_approved=True,
        expires_at=expires_at,
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
    signed_version_hash: str | None = None,
    rules: SigningRules = DEV_SIGNING,
    sealer: Sealer | None = None,
) -> DecisionResult:
    """Sign ``approval_id`` for ``actor``; emit Granted/Rejected when the case closes.

    The approval row is locked for the whole transaction, so two concurrent approvals
    see each other's signature and only one of them can grant. Every attempt, allowed
    or refused, emits an ``ApprovalDecisionRecorded`` (the audited authorisation
    decision); a refused one is recorded in its own transaction, then the refusal
    (``DecisionRefusedError`` subclass) is raised. ``UnknownApprovalError`` records
    nothing: there is no case to record it on.
    """
    refusal: DecisionRefusedError | None = None
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await store.lock_approval(conn, approval_id)
        if row is None:
            raise UnknownApprovalError(f"no approval with id {approval_id!r}")
        existing = await store.signatures_of(conn, approval_id)
        now = datetime.now(UTC)
        try:
            outcome = decide(
                store.case_of(row),
                existing,
                actor,
                decision,
                reason=reason,
                meaning=meaning,
                now=now,
                signed_version_hash=signed_version_hash,
                rules=rules,
                signature_id=f"sig-{uuid.uuid4().hex}",
            )
        except DecisionRefusedError as exc:
            refusal = exc
        if refusal is None:
            signature = outcome.signature
            if sealer is not None:
                record = signature_record(
                    signature, approval_id=approval_id, model_name=row["model_name"],
                    version=row["version"], artifact_digest=row["artifact_digest"],
                )  # fmt: skip
                signature = dataclasses.replace(
                    signature, seal_key_id=sealer.key_id, seal=sealer.seal(record)
                )
                outcome = dataclasses.replace(
                    outcome, signature=signature, signatures=(*existing, signature)
                )
            await store.insert_signature(conn, approval_id, signature)
            await runtime.emit(
                conn,
                _decision_record(runtime, row, actor, decision, meaning, signed_version_hash,
                                 None, f"{actor.user_id} signed {approval_id} "
                                 f"({signature.meaning.value}): {reason.strip()}"),
            )  # fmt: skip
            if outcome.state is not ApprovalState.PENDING:
                valid_for = row["valid_for_s"]
                expires_at = (
                    signature.signed_at + timedelta(seconds=valid_for)
                    if outcome.state is ApprovalState.GRANTED and valid_for
                    else None
                )
                await store.set_state(
                    conn, approval_id, outcome.state, decided_at=signature.signed_at,
                    expires_at=expires_at,
                )  # fmt: skip
                await runtime.emit(conn, _closing_event(runtime, row, outcome, actor, expires_at))
    if refusal is not None:
        # A refused attempt is an authorisation decision too: recorded and audited.
        log.warning(
            "refused %s by %s on %s (policy %s): %s", decision.value, actor.user_id,
            approval_id, row["policy_version"], refusal,
        )  # fmt: skip
        async with runtime.pool.acquire() as conn, conn.transaction():
            await runtime.emit(
                conn,
                _decision_record(runtime, row, actor, decision, meaning, signed_version_hash,
                                 refusal, str(refusal)),
            )  # fmt: skip
        raise refusal
    log.info("%s signed %s (%s): approval is %s", actor.user_id, approval_id,
             outcome.signature.meaning.value, outcome.state.value)  # fmt: skip
    return DecisionResult(approval_id, outcome.state, outcome.signature)


def _case_envelope(
    runtime: ServiceRuntime, row: store.Row, data: Any, actor: str, actor_name: str
) -> Envelope[Any]:
    # The HTTP request has no envelope; the case's correlation id keeps the version's
    # story together, and the ApprovalRequested event is its cause.
    return Envelope.new(
        data,
        source=f"/paved/{runtime.service}",
        actor=actor,
        actorname=actor_name,
        correlationid=row["correlation_id"],
        causationid=row["requested_event_id"],
    )


def _decision_record(
    runtime: ServiceRuntime,
    row: store.Row,
    actor: Actor,
    decision: Decision,
    meaning: SignatureMeaning | None,
    signed_version_hash: str | None,
    refusal: DecisionRefusedError | None,
    detail: str,
) -> Envelope[Any]:
    data = ApprovalDecisionRecorded(
        model_name=row["model_name"],
        version=row["version"],
        artifact_digest=row["artifact_digest"],
        approval_id=row["approval_id"],
        policy_version=row["policy_version"],
        actor_id=actor.user_id,
        actor_name=actor.printed_name,
        actor_roles=sorted(actor.roles),
        auth_mode=actor.auth_mode,
        auth_time=actor.auth_time,
        action=decision.value,
        meaning=meaning,
        signed_version_hash=signed_version_hash
        if signed_version_hash
        and signed_version_hash.startswith("sha256:")
        and len(signed_version_hash) == 71
        else None,
        outcome=AuthorizationOutcome.ALLOWED if refusal is None else AuthorizationOutcome.REFUSED,
        rule=None if refusal is None else REFUSAL_CODES.get(type(refusal), "decision-refused"),
        detail=detail[:10_000],
    )
    return _case_envelope(runtime, row, data, f"user:{actor.user_id}", actor.printed_name)


def _closing_event(
    runtime: ServiceRuntime,
    row: store.Row,
    outcome: DecisionOutcome,
    actor: Actor,
    expires_at: datetime | None,
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
        data = ApprovalGranted(**common, signatures=signatures, expires_at=expires_at)
    else:
        data = ApprovalRejected(**common, signatures=[e_signature(s) for s in outcome.signatures])
    return _case_envelope(runtime, row, data, f"user:{actor.user_id}", actor.printed_name)


# --------------------------------------------------------------------------- expiry


async def expire_due(runtime: ServiceRuntime, *, now: datetime | None = None) -> list[str]:
    """Expire every granted approval whose validity ran out: state ``expired`` and an
    ``ApprovalExpired`` (the registry sends the version back to validation, the deployer
    retires what it serves). Returns the expired approval ids."""
    now = now or datetime.now(UTC)
    expired: list[str] = []
    async with runtime.pool.acquire() as conn, conn.transaction():
        for row in await store.lock_due_expirations(conn, now):
            await store.mark_expired(conn, row["approval_id"], now)
            data = ApprovalExpired(
                model_name=row["model_name"],
                version=row["version"],
                artifact_digest=row["artifact_digest"],
                approval_id=row["approval_id"],
                risk_tier=RiskTier(row["risk_tier"]),
                policy_version=row["policy_version"],
                expired_at=now,
            )
            await runtime.emit(
                conn, _case_envelope(runtime, row, data, SERVICE_ACTOR, SERVICE_ACTOR_NAME)
            )
            expired.append(row["approval_id"])
    for approval_id in expired:
        log.info("approval %s expired: the version goes back to validation", approval_id)
    return expired
