"""HTTP API under ``/api/v1``: list and read approvals, sign decisions.

Routes are thin shims over ``handlers``. The HTTP edge is the shared one
(``paved_shared.http``): every route needs an authenticated caller, every error a client
can cause is an RFC 9457 problem+json 4xx whose ``detail`` names the offending value
(``MAPPERS`` turns the approver's own errors into problems), bodies are size-limited.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from paved_schemas.events import RiskTier, SignatureMeaning
from paved_shared import authz
from paved_shared.auth import AuthSettings, Principal
from paved_shared.http import ProblemError, ProblemMapper, authenticated_router, principal_of
from paved_shared.service import ServiceRuntime
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from paved_approver import seal, store
from paved_approver.domain.approval import (
    DEV_SIGNING,
    REFUSAL_CODES,
    Actor,
    AlreadySignedError,
    ApprovalClosedError,
    ApprovalState,
    Decision,
    DecisionRefusedError,
    InvalidDecisionError,
    Signature,
    SigningRules,
    VersionHashMismatchError,
)
from paved_approver.domain.canonical import canonical_json
from paved_approver.handlers import UnknownApprovalError, record_decision

# --------------------------------------------------------------------------- problems


_REFUSAL_STATUS: dict[type[Exception], int] = {
    AlreadySignedError: 409,
    ApprovalClosedError: 409,
    VersionHashMismatchError: 409,
    InvalidDecisionError: 422,
}
"""Refusals that are not 403 (who you are / your login): conflicts and malformed input."""


def _refusal_problem(exc: Exception) -> ProblemError:
    assert isinstance(exc, DecisionRefusedError)
    status = _REFUSAL_STATUS.get(type(exc), 403)
    slug = REFUSAL_CODES.get(type(exc), "decision-refused")
    return ProblemError(status, slug, slug.replace("-", " ").capitalize(), str(exc))


def _unknown_problem(exc: Exception) -> ProblemError:
    return ProblemError(404, "unknown-approval", "Not found", str(exc))


MAPPERS: dict[type[Exception], ProblemMapper] = {
    DecisionRefusedError: _refusal_problem,
    UnknownApprovalError: _unknown_problem,
}
"""The approver's exceptions → problems (for ``paved_shared.http.install_http``)."""


# --------------------------------------------------------------------------- dependencies


def get_runtime(request: Request) -> ServiceRuntime:
    """The service runtime the app's lifespan started."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _auth_settings(request: Request) -> AuthSettings:
    settings: AuthSettings = request.app.state.runtime.settings
    return settings


current_principal = principal_of(_auth_settings)
"""The caller (OIDC bearer token, or dev headers in dev/test); raises ``AuthError``."""


def actor_of(principal: Principal) -> Actor:
    """The domain's view of the caller."""
    return Actor(
        user_id=principal.user_id,
        printed_name=principal.printed_name,
        roles=frozenset(r.value for r in principal.roles),
        teams=principal.teams,
        all_teams=principal.all_teams,
        auth_mode=principal.auth_mode,
        auth_time=principal.auth_time,
        issuer=principal.issuer,
    )


async def current_actor(principal: Annotated[Principal, Depends(current_principal)]) -> Actor:
    """Who is calling, as the approval rules see them."""
    return actor_of(principal)


def _require_visible(principal: Principal, row: store.Row) -> None:
    # The case's own owner team (snapshot at opening), never the model's current one.
    teams = authz.visible_teams(principal)
    owner = row["owner_team"]
    if teams is not None and owner is not None and owner not in teams:
        raise ProblemError(
            403, "team-scope", "Forbidden",
            f"{principal.user_id} cannot see approval {row['approval_id']}: model "
            f"{row['model_name']} belongs to team {owner!r}, and {principal.user_id} is in "
            f"teams {sorted(teams) or 'none'}",
        )  # fmt: skip


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
ApprovalIdPath = Annotated[str, Path(min_length=1, max_length=128, description="Approval id.")]


# --------------------------------------------------------------------------- resources


class SignatureView(BaseModel):
    """An e-signature as shown to people: who, when (UTC), what it means, why, bound to what."""

    signature_id: str = Field(description="Id of the signature record.")
    signer_id: str = Field(description="Stable user id of the signer.", examples=["bob"])
    printed_name: str = Field(description="Printed name of the signer.", examples=["Bob Reviewer"])
    signed_at: datetime = Field(description="When it was signed, UTC.")
    meaning: SignatureMeaning = Field(description="What the signature means.")
    reason: str = Field(description="Why the signer signed.")
    version_hash: str = Field(description="Hash of the exact model version signed.")
    signer_roles: list[str] = Field(description="Roles the signer's login carried.")
    auth_mode: str = Field(description="How the signer authenticated: oidc or dev-headers.")
    auth_time: datetime | None = Field(description="When the signer last logged in, UTC.")
    manifestation: str = Field(
        description="The signature in words, as 21 CFR 11.50 asks it to be shown.",
        examples=["Signed by Bob Reviewer (bob) on 2025-03-14 09:26:53 UTC; meaning: approval"],
    )
    record: dict[str, Any] = Field(
        description="The sealed signature record (POST it with seal and seal_key_id to "
        "/api/v1/signatures/verify)."
    )
    seal_key_id: str | None = Field(description="Key that sealed the record.")
    seal: str | None = Field(description="Ed25519 seal over the RFC 8785 form of record.")

    @classmethod
    def of(cls, s: Signature, row: store.Row) -> SignatureView:
        return cls(
            signature_id=s.signature_id,
            signer_id=s.signer_id,
            printed_name=s.printed_name,
            signed_at=s.signed_at,
            meaning=s.meaning,
            reason=s.reason,
            version_hash=s.version_hash,
            signer_roles=list(s.signer_roles),
            auth_mode=s.auth_mode,
            auth_time=s.auth_time,
            manifestation=f"{s.manifestation()}; bound to {s.version_hash}",
            record=seal.signature_record(
                s,
                approval_id=row["approval_id"],
                model_name=row["model_name"],
                version=row["version"],
                artifact_digest=row["artifact_digest"],
            ),
            seal_key_id=s.seal_key_id,
            seal=s.seal,
        )


class ApprovalView(BaseModel):
    """One approval case of one model version."""

    approval_id: str = Field(examples=["apr-7d1f3c2b"])
    model_name: str = Field(examples=["churn-classifier"])
    version: int = Field(examples=[3])
    artifact_digest: str
    version_hash: str = Field(description="What every signature on this case is bound to.")
    risk_tier: RiskTier
    registered_by: str = Field(description="Registrant; may not decide on this case.")
    registered_by_name: str
    policy_version: str
    required_approvals: int
    required_roles: list[str]
    signer_roles: list[str] = Field(description="Roles of which a signer must hold one.")
    owner_team: str | None = Field(
        description="Team that owned the model when the version was registered, frozen into "
        "the case (team scoping); a later owner change does not alter it."
    )
    state: ApprovalState
    auto_approved: bool
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None = Field(description="When a granted approval lapses.")
    expired_at: datetime | None = Field(description="When it lapsed (state expired).")
    closed_reason: str | None
    approvals: int = Field(description="Distinct approving signatures so far.")
    signatures: list[SignatureView] = Field(
        description="Every signature on the case, oldest first, each with its manifestation."
    )

    @classmethod
    def of(cls, row: store.Row, signatures: list[Signature]) -> ApprovalView:
        """From an approvals row and the case's signatures (oldest first)."""
        return cls(
            approval_id=row["approval_id"],
            model_name=row["model_name"],
            version=row["version"],
            artifact_digest=row["artifact_digest"],
            version_hash=row["version_hash"],
            risk_tier=RiskTier(row["risk_tier"]),
            registered_by=row["registered_by"],
            registered_by_name=row["registered_by_name"],
            policy_version=row["policy_version"],
            required_approvals=row["required_approvals"],
            required_roles=list(row["required_roles"]),
            signer_roles=list(row["eligible_roles"]),
            owner_team=row["owner_team"],
            state=ApprovalState(row["state"]),
            auto_approved=row["auto_approved"],
            created_at=row["created_at"],
            decided_at=row["decided_at"],
            expires_at=row["expires_at"],
            expired_at=row["expired_at"],
            closed_reason=row["closed_reason"],
            approvals=len({s.signer_id for s in signatures if s.approves}),
            signatures=[SignatureView.of(s, row) for s in signatures],
        )


class ApprovalList(BaseModel):
    """A page of approvals, newest first."""

    items: list[ApprovalView]
    count: int = Field(description="Number of items in this page.")


class DecisionIn(BaseModel):
    """A signed decision on an approval."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision = Field(description="approve or reject.", examples=["approve"])
    meaning: SignatureMeaning | None = Field(
        default=None,
        description="Meaning of the signature: approval, review or responsibility for "
        "'approve' (default approval); rejection for 'reject' (the default).",
        examples=["approval"],
    )
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)
    ] = Field(
        description="Why you sign, in your words (required).",
        examples=["Evidence reviewed; AUC and latency within policy."],
    )
    version_hash: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] | None = (
        Field(
            default=None,
            description="The version hash you reviewed and sign (shown with the approval); "
            "required with OIDC. A different version's hash is refused.",
            examples=["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
        )
    )


class VerifyIn(BaseModel):
    """A signature record to verify, as GET /approvals/{id} shows it."""

    model_config = ConfigDict(extra="forbid")

    record: dict[str, Any] = Field(description="The sealed signature record.")
    seal: str = Field(min_length=1, max_length=200, description="The record's seal.")
    seal_key_id: str = Field(min_length=1, max_length=200, description="Key that sealed it.")
    model_name: str | None = Field(
        default=None, description="Check the signature against this model (default: record's)."
    )
    version: int | None = Field(
        default=None, ge=1, description="Check it against this version (default: record's)."
    )


class VerifyCheck(BaseModel):
    """One check of a verification."""

    check: str = Field(examples=["seal"])
    passed: bool
    detail: str


class VerifyOut(BaseModel):
    """Whether a signature record is authentic and bound to the version it claims."""

    valid: bool = Field(description="True when every check passed.")
    checks: list[VerifyCheck]
    manifestation: str | None = Field(description="The signature in words, when valid.")


router = authenticated_router(current_principal, prefix="/api/v1", tags=["approvals"])


@router.get("/approvals", summary="List approvals (of your teams)")
async def list_approvals(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    state: Annotated[ApprovalState | None, Query(description="Only cases in this state.")] = None,
    model: Annotated[
        str | None, Query(min_length=1, max_length=128, description="Only this model's cases.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> ApprovalList:
    async with runtime.pool.acquire() as conn:
        rows = await store.list_approvals(
            conn, state=state, model_name=model, limit=limit, teams=authz.visible_teams(principal)
        )
        signatures = await store.signatures_of_many(conn, [r["approval_id"] for r in rows])
    items = [ApprovalView.of(row, signatures.get(row["approval_id"], [])) for row in rows]
    return ApprovalList(items=items, count=len(items))


async def _approval_view(runtime: ServiceRuntime, approval_id: str) -> ApprovalView:
    async with runtime.pool.acquire() as conn:
        row = await store.get_approval(conn, approval_id)
        if row is None:
            raise UnknownApprovalError(f"no approval with id {approval_id!r}")
        sigs = await store.signatures_of(conn, approval_id)
    return ApprovalView.of(row, sigs)


@router.get("/approvals/{approval_id}", summary="One approval with its signatures")
async def get_approval(
    runtime: RuntimeDep, principal: PrincipalDep, approval_id: ApprovalIdPath
) -> ApprovalView:
    async with runtime.pool.acquire() as conn:
        row = await store.get_approval(conn, approval_id)
    if row is None:
        raise UnknownApprovalError(f"no approval with id {approval_id!r}")
    _require_visible(principal, row)
    return await _approval_view(runtime, approval_id)


@router.post(
    "/approvals/{approval_id}/decisions",
    status_code=201,
    summary="Sign a decision (approve or reject)",
    responses={
        401: {"description": "No or invalid credentials"},
        403: {"description": "Separation of duties, administrator, role, team or stale login"},
        404: {"description": "Unknown approval"},
        409: {"description": "Already signed, the approval is closed, or another version's hash"},
        422: {"description": "Invalid decision"},
    },
)
async def post_decision(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    approval_id: ApprovalIdPath,
    body: DecisionIn,
) -> ApprovalView:
    settings = runtime.settings
    max_age = getattr(settings, "approver_signing_max_auth_age_s", 300)
    rules = (
        SigningRules(max_auth_age_s=max_age, require_version_hash=True)
        if principal.auth_mode == "oidc"
        else DEV_SIGNING
    )
    await record_decision(
        runtime=runtime,
        approval_id=approval_id,
        actor=actor_of(principal),
        decision=body.decision,
        reason=body.reason,
        meaning=body.meaning,
        signed_version_hash=body.version_hash,
        rules=rules,
        sealer=getattr(request.app.state, "sealer", None),
    )
    return await _approval_view(runtime, approval_id)


@router.post("/signatures/verify", summary="Verify a signature record and its binding")
async def verify_signature(
    runtime: RuntimeDep, principal: PrincipalDep, body: VerifyIn
) -> VerifyOut:
    """Checks: the sealing key is known, the seal covers exactly this record, the record
    is the one on file, and its version hash is the hash of the version it is checked
    against (a signature moved to another version fails)."""
    record = body.record
    checks: list[VerifyCheck] = []
    async with runtime.pool.acquire() as conn:
        keys = await seal.public_keys(conn)
        model = body.model_name or str(record.get("model_name"))
        raw_version = body.version if body.version is not None else record.get("version")
        version = raw_version if isinstance(raw_version, int) else 0
        doc = await store.version_document(conn, model, version)
        on_file = await conn.fetchrow(
            "SELECT seal FROM signatures WHERE signature_id = $1",
            str(record.get("signature_id")),
        )
    key = keys.get(body.seal_key_id)
    known = f"key {body.seal_key_id!r} is " + ("a key of this approver" if key else "unknown")
    checks.append(VerifyCheck(check="seal_key", passed=key is not None, detail=known))
    sealed = key is not None and seal.seal_verifies(record, body.seal, key)
    checks.append(
        VerifyCheck(
            check="seal",
            passed=sealed,
            detail="the seal covers exactly this record"
            if sealed
            else "the seal does not match the record: altered, or sealed by another key",
        )
    )
    sig_id = record.get("signature_id")
    matches_file = on_file is not None and on_file["seal"] == body.seal
    checks.append(
        VerifyCheck(
            check="on_file",
            passed=matches_file,
            detail=f"signature {sig_id!r} is on file with this seal"
            if matches_file
            else f"no signature {sig_id!r} with this seal is on file",
        )
    )
    claimed = record.get("version_hash")
    if doc is None:
        binding = VerifyCheck(
            check="version_binding",
            passed=False,
            detail=f"no registered version {model} v{version} to check against",
        )
    else:
        actual = "sha256:" + hashlib.sha256(canonical_json(doc["version_document"])).hexdigest()
        bound = (
            actual == claimed
            and record.get("model_name") == model
            and record.get("version") == version
        )
        binding = VerifyCheck(
            check="version_binding",
            passed=bound,
            detail=f"signed hash {claimed} is the hash of {model} v{version}"
            if bound
            else f"signed hash {claimed} is not the hash of {model} v{version} ({actual}): "
            "the signature belongs to another version",
        )
    checks.append(binding)
    valid = all(c.passed for c in checks)
    manifestation = None
    if valid:
        manifestation = (
            f"Signed by {record.get('printed_name')} ({record.get('signer_id')}) on "
            f"{record.get('signed_at')}; meaning: {record.get('meaning')}; bound to {claimed}"
        )
    return VerifyOut(valid=valid, checks=checks, manifestation=manifestation)


@router.get("/seal-keys", summary="Public keys that seal signature records")
async def seal_keys(runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, str]:
    async with runtime.pool.acquire() as conn:
        return await seal.public_keys(conn)
