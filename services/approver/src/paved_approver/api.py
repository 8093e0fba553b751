"""HTTP API under ``/api/v1``: list and read approvals, sign decisions.

Routes are thin shims over ``handlers``; every error a client can cause is an
RFC 9457 problem+json 4xx whose ``detail`` names the offending value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from paved_schemas.events import RiskTier, SignatureMeaning
from paved_shared.service import ServiceRuntime
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from paved_approver import store
from paved_approver.domain.approval import (
    Actor,
    AlreadySignedError,
    ApprovalClosedError,
    ApprovalState,
    Decision,
    DecisionRefusedError,
    InvalidDecisionError,
    SeparationOfDutiesError,
    Signature,
)
from paved_approver.handlers import UnknownApprovalError, record_decision

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://paved.dev/problems/"


# --------------------------------------------------------------------------- problems


class ProblemError(Exception):
    """An RFC 9457 problem the API answers with."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers


def problem_response(request: Request, problem: ProblemError, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=problem.headers)  # fmt: skip


_REFUSALS: dict[type[Exception], tuple[int, str, str]] = {
    SeparationOfDutiesError: (403, "separation-of-duties", "Separation of duties"),
    AlreadySignedError: (409, "already-signed", "Already signed"),
    ApprovalClosedError: (409, "approval-closed", "Approval closed"),
    InvalidDecisionError: (422, "invalid-decision", "Invalid decision"),
}


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error with problem+json, never an HTML page or a bare traceback."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(request, exc)

    async def on_refused(request: Request, exc: Exception) -> JSONResponse:
        status, slug, title = _REFUSALS.get(type(exc), (409, "decision-refused", "Refused"))
        return problem_response(request, ProblemError(status, slug, title, str(exc)))

    async def on_unknown(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            request, ProblemError(404, "unknown-approval", "Not found", str(exc))
        )

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "location": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", ""),
                "input": repr(err.get("input"))[:200],
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']} (got {e['input']})" for e in errors)
        return problem_response(
            request, ProblemError(422, "invalid-request", "Invalid request", detail), errors=errors
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else repr(exc.detail)
        if exc.status_code == 404:
            detail = f"no route for {request.method} {request.url.path}"
        return problem_response(
            request, ProblemError(exc.status_code, "http-error", "HTTP error", detail,
                             headers=dict(exc.headers or {})),
        )  # fmt: skip

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(DecisionRefusedError, on_refused)
    app.add_exception_handler(UnknownApprovalError, on_unknown)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(StarletteHTTPException, on_http)


# --------------------------------------------------------------------------- dependencies


def get_runtime(request: Request) -> ServiceRuntime:
    """The service runtime the app's lifespan started."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _header_text(value: str) -> str:
    # HTTP header values arrive as latin-1; a UTF-8 client's "José" is recovered here.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def current_actor(
    x_paved_user: Annotated[
        str | None, Header(description="Stable user id of the caller (until OIDC).")
    ] = None,
    x_paved_user_name: Annotated[
        str | None, Header(description="Printed name of the caller, shown on signatures.")
    ] = None,
) -> Actor:
    """Who is calling. The one place identity is read: OIDC replaces this dependency later."""
    challenge = {"WWW-Authenticate": 'X-Paved-User realm="paved"'}
    if not x_paved_user or not x_paved_user.strip():
        raise ProblemError(401, "unauthenticated", "Unauthenticated",
                      "missing X-Paved-User header: say who you are", challenge)  # fmt: skip
    user_id = _header_text(x_paved_user.strip())
    if any(ch.isspace() for ch in user_id) or len(user_id) > 250:
        raise ProblemError(401, "unauthenticated", "Unauthenticated",
                      f"X-Paved-User {user_id[:80]!r} is not a user id (no spaces, at most 250 "
                      "characters)", challenge)  # fmt: skip
    if not x_paved_user_name or not x_paved_user_name.strip():
        raise ProblemError(401, "unauthenticated", "Unauthenticated",
                      "missing X-Paved-User-Name header: a signature shows the signer's "
                      "printed name", challenge)  # fmt: skip
    printed_name = _header_text(x_paved_user_name.strip())
    if len(printed_name) > 256:
        raise ProblemError(401, "unauthenticated", "Unauthenticated",
                      f"X-Paved-User-Name is {len(printed_name)} characters long; at most 256",
                      challenge)  # fmt: skip
    return Actor(user_id=user_id, printed_name=printed_name)


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
ActorDep = Annotated[Actor, Depends(current_actor)]
ApprovalIdPath = Annotated[str, Path(min_length=1, max_length=128, description="Approval id.")]


# --------------------------------------------------------------------------- resources


class SignatureView(BaseModel):
    """An e-signature as shown to people: who, when (UTC), what it means, why."""

    signer_id: str = Field(description="Stable user id of the signer.", examples=["bob"])
    printed_name: str = Field(description="Printed name of the signer.", examples=["Bob Reviewer"])
    signed_at: datetime = Field(description="When it was signed, UTC.")
    meaning: SignatureMeaning = Field(description="What the signature means.")
    reason: str = Field(description="Why the signer signed.")
    version_hash: str = Field(description="Hash of the exact model version signed.")
    manifestation: str = Field(
        description="The signature in words, as 21 CFR 11.50 asks it to be shown.",
        examples=["Signed by Bob Reviewer (bob) on 2025-03-14 09:26:53 UTC; meaning: approval"],
    )

    @classmethod
    def of(cls, s: Signature) -> SignatureView:
        return cls(
            signer_id=s.signer_id,
            printed_name=s.printed_name,
            signed_at=s.signed_at,
            meaning=s.meaning,
            reason=s.reason,
            version_hash=s.version_hash,
            manifestation=s.manifestation(),
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
    state: ApprovalState
    auto_approved: bool
    created_at: datetime
    decided_at: datetime | None
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
            state=ApprovalState(row["state"]),
            auto_approved=row["auto_approved"],
            created_at=row["created_at"],
            decided_at=row["decided_at"],
            closed_reason=row["closed_reason"],
            approvals=len({s.signer_id for s in signatures if s.approves}),
            signatures=[SignatureView.of(s) for s in signatures],
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


router = APIRouter(prefix="/api/v1", tags=["approvals"])


@router.get("/approvals", summary="List approvals")
async def list_approvals(
    runtime: RuntimeDep,
    state: Annotated[ApprovalState | None, Query(description="Only cases in this state.")] = None,
    model: Annotated[
        str | None, Query(min_length=1, max_length=128, description="Only this model's cases.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> ApprovalList:
    async with runtime.pool.acquire() as conn:
        rows = await store.list_approvals(conn, state=state, model_name=model, limit=limit)
        signatures = await store.signatures_of_many(conn, [r["approval_id"] for r in rows])
    items = [ApprovalView.of(row, signatures.get(row["approval_id"], [])) for row in rows]
    return ApprovalList(items=items, count=len(items))


@router.get("/approvals/{approval_id}", summary="One approval with its signatures")
async def get_approval(runtime: RuntimeDep, approval_id: ApprovalIdPath) -> ApprovalView:
    async with runtime.pool.acquire() as conn:
        row = await store.get_approval(conn, approval_id)
        if row is None:
            raise UnknownApprovalError(f"no approval with id {approval_id!r}")
        sigs = await store.signatures_of(conn, approval_id)
    return ApprovalView.of(row, sigs)


@router.post(
    "/approvals/{approval_id}/decisions",
    status_code=201,
    summary="Sign a decision (approve or reject)",
    responses={
        401: {"description": "No caller identity"},
        403: {"description": "Separation of duties"},
        404: {"description": "Unknown approval"},
        409: {"description": "Already signed, or the approval is closed"},
        422: {"description": "Invalid decision"},
    },
)
async def post_decision(
    runtime: RuntimeDep, actor: ActorDep, approval_id: ApprovalIdPath, body: DecisionIn
) -> ApprovalView:
    await record_decision(
        runtime=runtime,
        approval_id=approval_id,
        actor=actor,
        decision=body.decision,
        reason=body.reason,
        meaning=body.meaning,
    )
    return await get_approval(runtime, approval_id)
