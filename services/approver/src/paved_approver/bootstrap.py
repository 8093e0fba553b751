"""Wiring: the runtime (Kafka subscribers, outbox) and the FastAPI app. No I/O here;
``create_app``'s lifespan starts and stops the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
)
from paved_shared.db import Connection, load_migrations
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_approver.api import PROBLEM_JSON, install_problem_handlers, router
from paved_approver.domain.policy import BUILTIN_POLICY, ApprovalPolicy
from paved_approver.handlers import handle_model_event, handle_validation_event
from paved_approver.settings import ApproverSettings

SERVICE = "approver"


def create_runtime(
    settings: ApproverSettings,
    *,
    policy: ApprovalPolicy = BUILTIN_POLICY,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The approver's runtime: its schema, consumer group, subscribers and emitted events."""
    runtime = ServiceRuntime(
        settings,
        service=SERVICE,
        schema=settings.approver_db_schema,
        group=settings.approver_consumer_group,
        migrations=load_migrations(SERVICE, resources.files("paved_approver") / "migrations"),
        tracer_provider=tracer_provider,
        metrics_registry=metrics_registry,
        description="Approval policy and e-signatures for validated model versions.",
    )

    async def on_model_event(env: Envelope[Any], conn: Connection) -> None:
        await handle_model_event(env, conn, runtime=runtime, policy=policy)

    async def on_validation_event(env: Envelope[Any], conn: Connection) -> None:
        await handle_validation_event(env, conn, runtime=runtime, policy=policy)

    runtime.subscribe(
        topics.MODEL_EVENTS,
        on_model_event,
        event_types={ModelVersionRegistered.TYPE, ModelVersionRetired.TYPE},
        description="Registrations (risk tier, registrant, version hash) and retirements.",
    )
    runtime.subscribe(
        topics.VALIDATION_EVENTS,
        on_validation_event,
        event_types={ModelVersionValidated.TYPE},
        description="Validation verdicts; a passed one opens the approval case.",
    )
    runtime.declare_emits(ApprovalRequested, ApprovalGranted, ApprovalRejected)
    return runtime


def create_app(
    settings: ApproverSettings,
    *,
    policy: ApprovalPolicy = BUILTIN_POLICY,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The approver process as an ASGI app; its lifespan runs the ServiceRuntime."""
    runtime = create_runtime(
        settings, policy=policy, tracer_provider=tracer_provider, metrics_registry=metrics_registry
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
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
    install_problem_handlers(app)
    app.include_router(router)

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: runtime started, database reachable")
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with runtime.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        except Exception as exc:
            return JSONResponse(
                {
                    "type": "https://paved.dev/problems/not-ready",
                    "title": "Not ready",
                    "status": 503,
                    "detail": f"approver is not ready: {exc}",
                    "instance": request.url.path,
                },
                status_code=503,
                media_type=PROBLEM_JSON,
            )
        return JSONResponse({"status": "ready", "policy_version": policy.version})

    return app
