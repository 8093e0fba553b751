"""SQL on the approver's schema. Every function runs on the caller's connection, inside
the caller's transaction, so state changes and outbox rows commit together."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from paved_schemas.events import (
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    SignatureMeaning,
)
from paved_shared.db import Connection

from paved_approver.domain.approval import ApprovalCase, ApprovalState, Signature

Row = asyncpg.Record


async def lock_version(conn: Connection, model_name: str, version: int) -> Row:
    """The version's row, created empty if unknown, locked until the transaction ends.

    Handlers for the two topics run concurrently; the lock serialises them per version
    so exactly one of them sees both facts and opens the approval.
    """
    await conn.execute(
        "INSERT INTO versions (model_name, version) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        model_name, version,
    )  # fmt: skip
    row = await conn.fetchrow(
        "SELECT * FROM versions WHERE model_name = $1 AND version = $2 FOR UPDATE",
        model_name, version,
    )  # fmt: skip
    assert row is not None
    return row


async def record_registration(
    conn: Connection,
    data: ModelVersionRegistered,
    *,
    version_hash: str,
    event_id: str,
    document: dict[str, Any],
) -> None:
    await conn.execute(
        "UPDATE versions SET artifact_digest = $3, risk_tier = $4, version_hash = $5, "
        "registered_by = $6, registered_by_name = $7, registered_event_id = $8, "
        "registered_at = now(), updated_at = now(), version_document = $9::jsonb, "
        "owner_team = (SELECT owner_team FROM models WHERE models.model_name = $1) "
        "WHERE model_name = $1 AND version = $2",
        data.model_name, data.version, data.artifact_digest, data.model_card.risk_tier.value,
        version_hash, data.registered_by, data.registered_by_name, event_id,
        document,
    )  # fmt: skip


async def version_document(conn: Connection, model_name: str, version: int) -> Row | None:
    """The stored version document and hash of one version (None if never registered)."""
    row: Row | None = await conn.fetchrow(
        "SELECT version_document, version_hash FROM versions "
        "WHERE model_name = $1 AND version = $2 AND version_document IS NOT NULL",
        model_name, version,
    )  # fmt: skip
    return row


async def record_owner_team(conn: Connection, model_name: str, owner_team: str | None) -> None:
    """Remember which team owns a model now (empty means none: visible to every team).

    Only versions registered later and their cases see it: an open case keeps the owner
    team it was opened with (``approvals.owner_team``), so moving a model into an
    approver's team does not let that approver sign its pending case.
    """
    await conn.execute(
        "INSERT INTO models (model_name, owner_team) VALUES ($1, $2) ON CONFLICT (model_name) "
        "DO UPDATE SET owner_team = EXCLUDED.owner_team, updated_at = now()",
        model_name, owner_team or None,
    )  # fmt: skip


async def record_validation(
    conn: Connection, data: ModelVersionValidated, *, event_id: str
) -> None:
    """Store the latest validation result (one key's events arrive in order: latest wins)."""
    await conn.execute(
        "UPDATE versions SET validation_passed = $3, validated_digest = $4, evidence_digest = $5, "
        "validated_event_id = $6, validated_at = now(), updated_at = now() "
        "WHERE model_name = $1 AND version = $2",
        data.model_name, data.version, data.passed, data.artifact_digest, data.evidence_digest,
        event_id,
    )  # fmt: skip


async def record_retirement(conn: Connection, data: ModelVersionRetired, *, event_id: str) -> int:
    """Mark the version retired and close its pending approval; return how many closed."""
    await conn.execute(
        "UPDATE versions SET retired_at = now(), retired_reason = $3, retired_event_id = $4, "
        "updated_at = now() WHERE model_name = $1 AND version = $2",
        data.model_name, data.version, data.reason, event_id,
    )  # fmt: skip
    status: str = await conn.execute(
        "UPDATE approvals SET state = 'closed', decided_at = now(), closed_reason = $3 "
        "WHERE model_name = $1 AND version = $2 AND state = 'pending'",
        data.model_name, data.version, f"model version retired by {data.retired_by}: {data.reason}",
    )  # fmt: skip
    return int(status.rsplit(" ", 1)[-1])


async def latest_case(conn: Connection, model_name: str, version: int) -> Row | None:
    """The version's most recent approval case, if any."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM approvals WHERE model_name = $1 AND version = $2 "
        "ORDER BY created_at DESC, approval_id DESC LIMIT 1",
        model_name, version,
    )  # fmt: skip
    return row


async def insert_approval(
    conn: Connection,
    *,
    approval_id: str,
    version_row: Row,
    policy_version: str,
    required_approvals: int,
    required_roles: Sequence[str],
    eligible_roles: Sequence[str],
    valid_for_s: int | None,
    policy_digest: str | None,
    correlation_id: str,
    requested_event_id: str,
) -> bool:
    """Open the case; False if the version has an open case or this validation already
    opened one (unique indexes: never two open cases, never two per validation).

    The case snapshots the registrant and the owner team from ``version_row`` (both from
    the registry's ModelVersionRegistered); every later decision reads only the snapshot.
    """
    inserted: str | None = await conn.fetchval(
        "INSERT INTO approvals (approval_id, model_name, version, artifact_digest, version_hash, "
        "risk_tier, registered_by, registered_by_name, policy_version, required_approvals, "
        "required_roles, state, correlation_id, requested_event_id, opened_by_event_id, "
        "eligible_roles, valid_for_s, policy_digest, owner_team) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $14, $15, "
        "$16, $17, $18) ON CONFLICT DO NOTHING RETURNING approval_id",
        approval_id, version_row["model_name"], version_row["version"],
        version_row["artifact_digest"], version_row["version_hash"], version_row["risk_tier"],
        version_row["registered_by"], version_row["registered_by_name"], policy_version,
        required_approvals, list(required_roles), correlation_id, requested_event_id,
        version_row["validated_event_id"], list(eligible_roles), valid_for_s, policy_digest,
        version_row["owner_team"],
    )  # fmt: skip
    return inserted is not None


async def lock_approval(conn: Connection, approval_id: str) -> Row | None:
    """The approval row, locked: concurrent decisions on one case run one after another."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM approvals WHERE approval_id = $1 FOR UPDATE",
        approval_id,
    )
    return row


async def set_state(
    conn: Connection,
    approval_id: str,
    state: ApprovalState,
    *,
    decided_at: datetime,
    auto_approved: bool = False,
    expires_at: datetime | None = None,
) -> None:
    await conn.execute(
        "UPDATE approvals SET state = $2, decided_at = $3, auto_approved = $4, expires_at = $5 "
        "WHERE approval_id = $1",
        approval_id, state.value, decided_at, auto_approved, expires_at,
    )  # fmt: skip


async def lock_due_expirations(conn: Connection, now: datetime, limit: int = 100) -> list[Row]:
    """Granted approvals whose validity ran out, locked (others skip them: one expirer)."""
    rows = await conn.fetch(
        "SELECT * FROM approvals WHERE state = 'granted' AND expires_at <= $1 "
        "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )  # fmt: skip
    return list(rows)


async def mark_expired(conn: Connection, approval_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE approvals SET state = 'expired', expired_at = $2 WHERE approval_id = $1",
        approval_id, now,
    )  # fmt: skip


async def insert_signature(conn: Connection, approval_id: str, signature: Signature) -> None:
    await conn.execute(
        "INSERT INTO signatures (approval_id, signer_id, printed_name, signed_at, meaning, "
        "reason, version_hash, signature_id, signer_roles, auth_mode, auth_time, issuer, "
        "policy_version, seal_key_id, seal) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        approval_id, signature.signer_id, signature.printed_name, signature.signed_at,
        signature.meaning.value, signature.reason, signature.version_hash,
        signature.signature_id, list(signature.signer_roles), signature.auth_mode,
        signature.auth_time, signature.issuer, signature.policy_version, signature.seal_key_id,
        signature.seal,
    )  # fmt: skip


async def signatures_of(conn: Connection, approval_id: str) -> list[Signature]:
    """The case's signatures, oldest first."""
    return (await signatures_of_many(conn, [approval_id])).get(approval_id, [])


async def signatures_of_many(
    conn: Connection, approval_ids: Sequence[str]
) -> dict[str, list[Signature]]:
    """Signatures of several cases in one query, each list oldest first."""
    rows = await conn.fetch(
        "SELECT * FROM signatures WHERE approval_id = ANY($1::text[]) ORDER BY seq",
        list(approval_ids),
    )
    found: dict[str, list[Signature]] = {}
    for r in rows:
        found.setdefault(r["approval_id"], []).append(
            Signature(
                signer_id=r["signer_id"],
                printed_name=r["printed_name"],
                signed_at=r["signed_at"],
                meaning=SignatureMeaning(r["meaning"]),
                reason=r["reason"],
                version_hash=r["version_hash"],
                signature_id=r["signature_id"] or f"legacy-{r['seq']}",
                signer_roles=tuple(r["signer_roles"]),
                auth_mode=r["auth_mode"],
                auth_time=r["auth_time"],
                issuer=r["issuer"],
                policy_version=r["policy_version"],
                seal_key_id=r["seal_key_id"],
                seal=r["seal"],
            )
        )
    return found


def case_of(row: Row) -> ApprovalCase:
    return ApprovalCase(
        approval_id=row["approval_id"],
        model_name=row["model_name"],
        version=row["version"],
        registered_by=row["registered_by"],
        state=ApprovalState(row["state"]),
        required_approvals=row["required_approvals"],
        version_hash=row["version_hash"],
        eligible_roles=tuple(row["eligible_roles"]),
        required_roles=tuple(row["required_roles"]),
        owner_team=row["owner_team"],
        policy_version=row["policy_version"],
    )


async def get_approval(conn: Connection, approval_id: str) -> Row | None:
    """One case (its owner team is the snapshot taken when it opened)."""
    row: Row | None = await conn.fetchrow(
        "SELECT * FROM approvals WHERE approval_id = $1", approval_id
    )
    return row


async def open_cases(conn: Connection, model_name: str) -> list[Row]:
    """The model's pending or granted cases (they keep their own owner team)."""
    rows = await conn.fetch(
        "SELECT approval_id, version, owner_team, state FROM approvals "
        "WHERE model_name = $1 AND state IN ('pending', 'granted') ORDER BY version",
        model_name,
    )
    return list(rows)


async def list_approvals(
    conn: Connection,
    *,
    state: ApprovalState | None,
    model_name: str | None,
    limit: int,
    teams: Collection[str] | None = None,
) -> list[Row]:
    """Cases newest first; ``teams`` (None: all) keeps cases whose snapshot owner team is one
    of those teams, or none."""
    rows = await conn.fetch(
        "SELECT * FROM approvals WHERE ($1::text IS NULL OR state = $1) "
        "AND ($2::text IS NULL OR model_name = $2) "
        "AND ($4::text[] IS NULL OR owner_team IS NULL OR owner_team = ANY($4::text[])) "
        "ORDER BY created_at DESC, approval_id LIMIT $3",
        state.value if state else None, model_name, limit,
        None if teams is None else list(teams),
    )  # fmt: skip
    return list(rows)
