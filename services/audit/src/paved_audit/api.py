"""The read-only audit API (``/api/v1/audit``) for auditors and administrators.

Every route is a GET behind ``require_auditor``; anything else is 405. Records,
gaps, signed checkpoints, inclusion and consistency proofs, a verification run over
the stored trail, the public key to pin, and the inspector export of one version.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from paved_shared.db import Pool
from paved_shared.http import authenticated_router

from paved_audit import store
from paved_audit.access import Principal, current_principal, require_auditor
from paved_audit.domain.checkpoint import public_key_pem
from paved_audit.domain.merkle import ProofError
from paved_audit.export import BundleError, build_bundle, render_html, verify_bundle
from paved_audit.ports import Signer
from paved_audit.problems import ProblemError
from paved_audit.proofs import consistency_document, inclusion_document
from paved_audit.verify import verify_database

router = authenticated_router(current_principal, prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require_auditor)]


def _pool(request: Request) -> Pool:
    pool: Pool = request.app.state.runtime.pool
    return pool


def _signer(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", what)


@router.get("/records", summary="Sealed records in order (page with `after`)")
async def list_records(
    request: Request,
    _: Auditor,
    after: Annotated[int, Query(ge=-1, description="Return sequences greater than this.")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return await store.list_records(conn, after=after, limit=limit)


@router.get("/records/{sequence}", summary="One sealed record")
async def get_record(
    request: Request, _: Auditor, sequence: Annotated[int, Path(ge=0)]
) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        record = await store.get_record(conn, sequence)
    if record is None:
        raise _not_found(f"no audit record with sequence {sequence}")
    return record


@router.get("/gaps", summary="Gap records: messages some consumer could not process")
async def list_gaps(
    request: Request,
    _: Auditor,
    after: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return await store.list_records(conn, after=after, limit=limit, kind="gap")


@router.get("/checkpoints", summary="Signed checkpoints in order")
async def list_checkpoints(
    request: Request,
    _: Auditor,
    after: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return [
            store.checkpoint_view(c)
            for c in await store.checkpoints(conn, after=after, limit=limit)
        ]


@router.get("/checkpoints/latest", summary="The latest signed checkpoint (save it as a witness)")
async def latest_checkpoint(request: Request, _: Auditor) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        cp = await store.latest_checkpoint(conn)
    if cp is None:
        raise _not_found("no checkpoint signed yet")
    return store.checkpoint_view(cp)


@router.get("/public-key", summary="The checkpoint signing key, to pin")
async def public_key(request: Request, _: Auditor) -> dict[str, str]:
    signer = _signer(request)
    return {"key_id": signer.key_id, "pem": public_key_pem(await signer.public_key())}


@router.get("/proofs/inclusion/{sequence}", summary="Inclusion proof of one record")
async def inclusion(
    request: Request,
    _: Auditor,
    sequence: Annotated[int, Path(ge=0)],
    tree_size: Annotated[
        int | None, Query(ge=1, description="Checkpoint size; default latest.")
    ] = None,
) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        cp = (
            await store.latest_checkpoint(conn)
            if tree_size is None
            else await store.checkpoint_of_size(conn, tree_size)
        )
        if cp is None:
            raise _not_found(f"no signed checkpoint of size {tree_size or '(latest)'}")
        if sequence >= cp.body.tree_size:
            raise ProblemError(
                409, "not-yet-checkpointed", "Not covered yet",
                f"record {sequence} is not covered by checkpoint #{cp.body.index} (size "
                f"{cp.body.tree_size}); retry after the next checkpoint",
            )  # fmt: skip
        record = await store.record_bytes(conn, sequence)
        leaves = await store.leaf_hashes(conn, cp.body.tree_size)
    if record is None:
        raise _not_found(f"no audit record with sequence {sequence}")
    return inclusion_document(leaves, record, sequence, cp)


@router.get("/proofs/consistency", summary="Consistency proof between two checkpoints")
async def consistency(
    request: Request,
    _: Auditor,
    first: Annotated[int, Query(ge=1, description="Size of the older checkpoint.")],
    second: Annotated[int, Query(ge=1, description="Size of the newer checkpoint.")],
) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        a = await store.checkpoint_of_size(conn, first)
        b = await store.checkpoint_of_size(conn, second)
        if a is None or b is None:
            missing = first if a is None else second
            raise _not_found(f"no signed checkpoint of size {missing}")
        leaves = await store.leaf_hashes(conn, max(first, second))
    try:
        return consistency_document(leaves, a, b)
    except ProofError as exc:
        raise ProblemError(422, "invalid-proof-request", "Invalid proof request", str(exc)) from exc


@router.get("/verify", summary="Verify the stored chain, tree and checkpoint signatures")
async def verify(request: Request, _: Auditor) -> dict[str, Any]:
    key = await _signer(request).public_key()
    report = await verify_database(_pool(request), public_key=key)
    error = report.error
    return {
        "ok": report.ok,
        "records_valid": report.records_valid,
        "total_records": report.total_records,
        "checkpoints_valid": report.checkpoints_valid,
        "first_bad_record": None
        if error is None
        else {
            "kind": error.kind.value,
            "sequence": error.sequence,
            "checkpoint": error.checkpoint,
            "message": error.message,
            "location": error.location,
        },
        "summary": report.summary_lines(),
    }


async def _bundle(request: Request, model: str, version: int) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        cp = await store.latest_checkpoint(conn)
        if cp is None:
            raise _not_found("no checkpoint signed yet")
        records = await store.model_records(conn, model, version, cp.body.tree_size)
        if not records:
            raise _not_found(
                f"no audit record of model {model!r} version {version} in the first "
                f"{cp.body.tree_size} records"
            )
        leaves = await store.leaf_hashes(conn, cp.body.tree_size)
    try:
        return await build_bundle(
            records, leaves, cp, model=model, version=version, signer=_signer(request)
        )
    except BundleError as exc:
        raise ProblemError(409, "not-yet-checkpointed", "Not covered yet", str(exc)) from exc


ModelName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")]
VersionNumber = Annotated[int, Path(ge=1)]


@router.get("/exports/{model}/{version}", summary="Signed JSON evidence bundle of one version")
async def export_bundle(
    request: Request, _: Auditor, model: ModelName, version: VersionNumber
) -> dict[str, Any]:
    return await _bundle(request, model, version)


@router.get(
    "/exports/{model}/{version}/report.html",
    summary="Readable report of one version",
    response_class=HTMLResponse,
)
async def export_report(
    request: Request, _: Auditor, model: ModelName, version: VersionNumber
) -> HTMLResponse:
    bundle = await _bundle(request, model, version)
    report = verify_bundle(bundle, await _signer(request).public_key())
    return HTMLResponse(render_html(bundle, report))
