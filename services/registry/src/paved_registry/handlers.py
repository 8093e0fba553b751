"""Kafka handlers: each applies one incoming event inside the consumer's transaction.

They are thin shims over ``paved_registry.catalog``. A refusal of the domain (an
unknown version, a digest mismatch, a conflicting re-registration) can never be
applied, so it becomes a ``PermanentError`` and the event goes to the dead-letter
topic with the reason. Facts that arrive out of order are applied, not refused:
the state machine drives the version through the states they imply, and ignores
facts it has moved past.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    DeploymentStatusChanged,
    ModelVersionValidated,
    RegisterModelVersion,
    RetireModelVersion,
)
from paved_shared.auth import Authenticator, Principal, Role
from paved_shared.command_identity import CommandIdentityError, command_sender
from paved_shared.consumer import PermanentError, current_delivery
from paved_shared.db import Connection

from paved_registry import catalog
from paved_registry.catalog import Actor, EventSink
from paved_registry.domain.errors import RegistryError
from paved_registry.domain.lifecycle import Fact, IllegalTransitionError
from paved_registry.domain.registration import implicit_owner_team

log = logging.getLogger(__name__)


@contextmanager
def _refusals_are_permanent() -> Iterator[None]:
    try:
        yield
    except (RegistryError, IllegalTransitionError) as exc:
        raise PermanentError(str(exc)) from exc


async def _verified_sender(
    env: Envelope[Any], authenticator: Authenticator, *, claimed: str, field: str
) -> tuple[Principal, Actor]:
    """The command's sender from its headers, checked against what the payload claims."""
    try:
        sender = await command_sender(current_delivery(), authenticator)
    except CommandIdentityError as exc:
        raise PermanentError(str(exc)) from exc
    if claimed != sender.user_id:
        raise PermanentError(
            f"{field} {claimed!r} is not the verified sender {sender.user_id!r}: a command "
            "may only be sent in its sender's own name"
        )
    service = (sender.username or "").startswith("service-account-")
    actor = Actor(sender.user_id, sender.printed_name, "service" if service else "user")
    if env.actor != actor.principal:
        raise PermanentError(
            f"envelope actor {env.actor!r} is not the verified sender {actor.principal!r}"
        )
    return sender, actor


def _require_write(sender: Principal, owner_team: str, *, action: str) -> None:
    """Scientists (or admins) of the model's owner team may register and retire."""
    if not sender.has_role(Role.SCIENTIST, Role.ADMIN):
        raise PermanentError(
            f"{sender.user_id!r} may not {action}: it needs the scientist or admin role "
            f"(has {sorted(r.value for r in sender.roles) or 'none'})"
        )
    if not (sender.in_team(owner_team) or sender.has_role(Role.ADMIN)):
        raise PermanentError(
            f"{sender.user_id!r} may not {action}: model owner team {owner_team!r} is not "
            f"one of its teams ({sorted(sender.teams) or 'none'})"
        )


async def _owner_team(conn: Connection, name: str) -> str | None:
    team: str | None = await conn.fetchval("SELECT owner_team FROM models WHERE name = $1", name)
    return team


async def on_register_model_version(
    env: Envelope[Any], conn: Connection, *, sink: EventSink, authenticator: Authenticator
) -> None:
    """``RegisterModelVersion``: register as the API does, creating an unknown model.

    The sender is the verified identity in the record's headers (never the payload):
    ``registered_by`` must name it, it needs the scientist role in the model's owner team.
    Pipelines do not pre-create models, so the model is created with owner team
    ``tags["team"]`` (or ``"unknown"``), which must be one of the sender's teams.
    Idempotent by ``request_id``.
    """
    command = env.data
    assert isinstance(command, RegisterModelVersion)
    sender, actor = await _verified_sender(
        env, authenticator, claimed=command.registered_by, field="registered_by"
    )
    owner = await _owner_team(conn, command.model_name) or implicit_owner_team(command)
    _require_write(sender, owner, action=f"register versions of {command.model_name!r}")
    command = command.model_copy(update={"registered_by_name": sender.printed_name})
    with _refusals_are_permanent():
        result = await catalog.register_version(
            conn, sink, command, cause=env, actor=actor, create_missing_model=True
        )
    if not result.created:
        log.info(
            "registration %s of %s/%d already applied", command.request_id,
            result.model_name, result.version,
        )  # fmt: skip


async def on_retire_model_version(
    env: Envelope[Any], conn: Connection, *, sink: EventSink, authenticator: Authenticator
) -> None:
    """``RetireModelVersion``: retire the version (a repeated command changes nothing).

    Same sender rules as registration: ``retired_by`` is the verified sender, a scientist
    (or admin) of the model's owner team.
    """
    command = env.data
    assert isinstance(command, RetireModelVersion)
    sender, _ = await _verified_sender(
        env, authenticator, claimed=command.retired_by, field="retired_by"
    )
    owner = await _owner_team(conn, command.model_name)
    if owner is None:
        raise PermanentError(f"unknown model {command.model_name!r}")
    _require_write(sender, owner, action=f"retire versions of {command.model_name!r}")
    with _refusals_are_permanent():
        changed = await catalog.retire_version(
            conn, sink, name=command.model_name, version=command.version,
            reason=command.reason, retired_by=command.retired_by, cause=env,
        )  # fmt: skip
    if not changed:
        log.info("%s/%d is already retired", command.model_name, command.version)


async def on_model_version_validated(
    env: Envelope[Any], conn: Connection, *, sink: EventSink
) -> None:
    """``ModelVersionValidated``: validating -> validated or validation_failed."""
    data = env.data
    assert isinstance(data, ModelVersionValidated)
    if data.passed:
        fact = Fact.VALIDATION_PASSED
        reason = (
            f"validation passed ({len(data.checks)} checks, validator {data.validator_version}, "
            f"evidence {data.evidence_digest})"
        )
    else:
        fact = Fact.VALIDATION_FAILED
        reason = "validation failed: " + "; ".join(data.reasons)
    with _refusals_are_permanent():
        await catalog.apply_fact(
            conn, sink, name=data.model_name, version=data.version,
            digest=data.artifact_digest, fact=fact, reason=reason, cause=env,
        )  # fmt: skip


def _signers(signatures: Any) -> str:
    return ", ".join(f"{s.printed_name} ({s.signer_id}, {s.meaning.value})" for s in signatures)


def _approval_fact(data: Any) -> tuple[Fact, str]:
    if isinstance(data, ApprovalRequested):
        return Fact.APPROVAL_REQUESTED, (
            f"approval {data.approval_id} requested under policy {data.policy_version}: "
            f"{data.required_approvals} approval(s) needed for risk tier {data.risk_tier.value}"
        )
    if isinstance(data, ApprovalGranted):
        how = "automatically" if data.auto_approved else f"signed by {_signers(data.signatures)}"
        return Fact.APPROVAL_GRANTED, f"approval {data.approval_id} granted {how}"
    if isinstance(data, ApprovalRejected):
        reasons = "; ".join(s.reason for s in data.signatures if s.meaning.value == "rejection")
        return Fact.APPROVAL_REJECTED, (
            f"approval {data.approval_id} rejected by {_signers(data.signatures)}: {reasons}"
        )
    if isinstance(data, ApprovalExpired):
        return Fact.APPROVAL_EXPIRED, (
            f"approval {data.approval_id} expired at {data.expired_at.isoformat()}; "
            "back to validated until approved again"
        )
    raise PermanentError(f"the registry does not handle {type(data).__name__} on approval events")


async def on_approval_event(env: Envelope[Any], conn: Connection, *, sink: EventSink) -> None:
    """Approval events: requested -> pending_approval, granted -> approved,
    rejected -> rejected, expired -> back to validated."""
    data = env.data
    fact, reason = _approval_fact(data)
    with _refusals_are_permanent():
        await catalog.apply_fact(
            conn, sink, name=data.model_name, version=data.version,
            digest=data.artifact_digest, fact=fact, reason=reason, cause=env,
        )  # fmt: skip


async def on_deployment_status_changed(
    env: Envelope[Any], conn: Connection, *, sink: EventSink
) -> None:
    """``DeploymentStatusChanged``: keep the deployment; ``ready`` -> version deployed."""
    assert isinstance(env.data, DeploymentStatusChanged)
    with _refusals_are_permanent():
        await catalog.record_deployment_status(conn, sink, env)
