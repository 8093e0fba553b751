"""Wiring: the runtime (Kafka subscribers, outbox) and the FastAPI app. No I/O here;
``create_app``'s lifespan starts and stops the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalDecisionRecorded,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RegisteredModelCreated,
    RegisteredModelUpdated,
)
from paved_shared.db import Connection, load_migrations
from paved_shared.dbroles import DML, GrantPolicy
from paved_shared.http import add_health_routes, install_http
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_approver.api import MAPPERS, router
from paved_approver.domain.policy import ApprovalPolicy, load_policy_file
from paved_approver.handlers import expire_due, handle_model_event, handle_validation_event
from paved_approver.seal import load_sealer
from paved_approver.settings import ApproverSettings

SERVICE = "approver"
APPROVER_GRANTS = GrantPolicy(
    default=DML,
    tables={
        "signatures": frozenset({"SELECT", "INSERT"}),  # e-signatures are append-only
        "schema_migrations": frozenset({"SELECT"}),
    },
    description="DML on its own tables; signatures INSERT/SELECT only",
)
"""The approver runtime role's privileges in its schema."""
log = logging.getLogger(__name__)


def create_runtime(
    settings: ApproverSettings,
    *,
    policy: ApprovalPolicy | None = None,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The approver's runtime: its schema, consumer group, subscribers and emitted events.

    ``policy`` defaults to ``settings.approver_policy_file`` (or the packaged default).
    """
    policy = policy or load_policy_file(settings.approver_policy_file)
    runtime = ServiceRuntime(
        settings,
        service=SERVICE,
        schema=settings.approver_db_schema,
        group=settings.approver_consumer_group,
        migrations=load_migrations(SERVICE, resources.files("paved_approver") / "migrations"),
        tracer_provider=tracer_provider,
        metrics_registry=metrics_registry,
        description="Approval policy and e-signatures for validated model versions.",
        grants=APPROVER_GRANTS,
    )

    async def on_model_event(env: Envelope[Any], conn: Connection) -> None:
        await handle_model_event(env, conn, runtime=runtime, policy=policy)

    async def on_validation_event(env: Envelope[Any], conn: Connection) -> None:
        await handle_validation_event(env, conn, runtime=runtime, policy=policy)

    runtime.subscribe(
        topics.MODEL_EVENTS,
        on_model_event,
        event_types={
            ModelVersionRegistered.TYPE,
            ModelVersionRetired.TYPE,
            RegisteredModelCreated.TYPE,
            RegisteredModelUpdated.TYPE,
        },
        description="Registrations (risk tier, registrant, version hash), retirements, and "
        "each model's owner team (team scoping).",
    )
    runtime.subscribe(
        topics.VALIDATION_EVENTS,
        on_validation_event,
        event_types={ModelVersionValidated.TYPE},
        description="Validation verdicts; a passed one opens the approval case.",
    )
    runtime.declare_emits(
        ApprovalRequested,
        ApprovalGranted,
        ApprovalRejected,
        ApprovalExpired,
        ApprovalDecisionRecorded,
    )
    return runtime


def create_app(
    settings: ApproverSettings,
    *,
    policy: ApprovalPolicy | None = None,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The approver process as an ASGI app; its lifespan runs the ServiceRuntime, seals
    signatures with the configured key and expires lapsed approvals periodically.

    ``policy`` defaults to ``settings.approver_policy_file`` (or the packaged default).
    """
    policy = policy or load_policy_file(settings.approver_policy_file)
    runtime = create_runtime(
        settings, policy=policy, tracer_provider=tracer_provider, metrics_registry=metrics_registry
    )

    async def expire_periodically() -> None:
        while True:
            await asyncio.sleep(settings.approver_expiry_check_s)
            try:
                await expire_due(runtime)
            except Exception:
                # Database away: the next round retries; nothing was half-written.
                log.exception("expiring lapsed approvals failed; retrying next round")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        expirer: asyncio.Task[None] | None = None
        try:
            async with runtime.pool.acquire() as conn:
                app.state.sealer = await load_sealer(conn, settings.approver_seal_key_file)
            expirer = asyncio.create_task(expire_periodically(), name="approver-expiry")
            yield
        finally:
            if expirer is not None:
                expirer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await expirer
            await runtime.stop()

    app = FastAPI(
        title="Paved approver",
        version="0.1.0",
        description="Approval cases of validated model versions, and the e-signatures that "
        f"decide them (policy {policy.version}).",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.policy = policy
    install_http(
        app, max_body_bytes=settings.http_max_body_bytes, mappers=MAPPERS,
        service="the approver",
    )  # fmt: skip
    app.include_router(router)

    async def database() -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return {"policy_version": policy.version}

    add_health_routes(app, {"database": database})
    return app
