"""Wiring: ``create_runtime`` and ``create_app``. No I/O happens here; the app's
lifespan starts the runtime (DB pool, migrations, topics, outbox relay, consumers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    DeploymentStatusChanged,
    ModelAliasChanged,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionStateChanged,
    ModelVersionUpdated,
    ModelVersionValidated,
    RegisteredModelCreated,
    RegisteredModelUpdated,
    RegisterModelVersion,
    RequestDeployment,
    RequestUndeployment,
    RetireModelVersion,
)
from paved_shared.auth import Authenticator, AuthSettings
from paved_shared.db import Connection, load_migrations
from paved_shared.http import add_health_routes, install_http
from paved_shared.outbox import pending_count
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_registry import deployment_events, handlers
from paved_registry.api import build_router
from paved_registry.mlflow_api import build_mlflow_router
from paved_registry.problems import MAPPERS, decorate_mlflow
from paved_registry.settings import RegistrySettings

SERVICE = "registry"
DESCRIPTION = "The model catalog and owner of each model version's lifecycle state."
_HEALTH_TIMEOUT_S = 3.0


def create_runtime(
    settings: RegistrySettings,
    *,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The registry's runtime with every subscription and published event declared."""
    runtime = ServiceRuntime(
        settings,
        service=SERVICE,
        schema=settings.registry_db_schema,
        group=settings.registry_consumer_group,
        migrations=load_migrations(SERVICE, resources.files("paved_registry") / "migrations"),
        tracer_provider=tracer_provider,
        metrics_registry=metrics_registry,
        description=DESCRIPTION,
    )

    # Commands are authenticated exactly like the HTTP API's callers (same settings).
    auth_settings = (
        settings if isinstance(settings, AuthSettings)
        else AuthSettings(environment=settings.environment)
    )  # fmt: skip
    authenticator = Authenticator(auth_settings)

    async def registration(env: Envelope[Any], conn: Connection) -> None:
        await handlers.on_register_model_version(
            env, conn, sink=runtime, authenticator=authenticator
        )

    async def retirement(env: Envelope[Any], conn: Connection) -> None:
        await handlers.on_retire_model_version(env, conn, sink=runtime, authenticator=authenticator)

    async def validation(env: Envelope[Any], conn: Connection) -> None:
        await handlers.on_model_version_validated(env, conn, sink=runtime)

    async def approval(env: Envelope[Any], conn: Connection) -> None:
        await handlers.on_approval_event(env, conn, sink=runtime)

    async def deployment_status(env: Envelope[Any], conn: Connection) -> None:
        await handlers.on_deployment_status_changed(env, conn, sink=runtime)

    runtime.subscribe(
        topics.REGISTRATION_REQUESTS, registration, event_types={RegisterModelVersion.TYPE}
    )
    runtime.subscribe(topics.RETIREMENT_REQUESTS, retirement, event_types={RetireModelVersion.TYPE})
    runtime.subscribe(
        topics.VALIDATION_EVENTS, validation, event_types={ModelVersionValidated.TYPE}
    )
    runtime.subscribe(
        topics.APPROVAL_EVENTS,
        approval,
        event_types={
            ApprovalRequested.TYPE,
            ApprovalGranted.TYPE,
            ApprovalRejected.TYPE,
            ApprovalExpired.TYPE,
        },
    )
    runtime.subscribe(
        topics.DEPLOYMENT_STATUS, deployment_status, event_types={DeploymentStatusChanged.TYPE}
    )
    runtime.declare_emits(
        ModelVersionRegistered,
        ModelVersionStateChanged,
        ModelVersionRetired,
        RequestDeployment,
        RequestUndeployment,
        RegisteredModelCreated,
        RegisteredModelUpdated,
        ModelVersionUpdated,
        ModelAliasChanged,
    )
    return runtime


def create_app(
    settings: RegistrySettings,
    *,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The registry's FastAPI app; its lifespan starts and stops the runtime."""
    runtime = create_runtime(
        settings, tracer_provider=tracer_provider, metrics_registry=metrics_registry
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Paved registry",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_http(
        app, max_body_bytes=settings.http_max_body_bytes, mappers=MAPPERS,
        decorate=decorate_mlflow, service="the registry",
    )  # fmt: skip
    app.include_router(deployment_events.build_router())  # before /deployments/{id}
    app.include_router(build_router())
    app.include_router(build_mlflow_router())

    async def database() -> dict[str, Any]:
        return {"outbox_pending": await pending_count(runtime.pool)}

    async def kafka() -> None:
        if not await runtime.broker.ping(timeout=_HEALTH_TIMEOUT_S):
            raise ConnectionError("the broker did not answer a ping")

    add_health_routes(app, {"database": database, "kafka": kafka}, timeout_s=_HEALTH_TIMEOUT_S)
    return app
