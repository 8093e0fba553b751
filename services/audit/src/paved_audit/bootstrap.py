"""Wire the audit process: runtime, subscriptions, checkpoints, read-only API. No I/O here;
``create_app``'s lifespan loads the key, starts the runtime and the checkpoint timer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from paved_schemas.events import AuditCheckpointSigned, AuditRecordSealed
from paved_shared.db import load_migrations
from paved_shared.dbroles import GrantPolicy
from paved_shared.http import add_health_routes, install_http
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_audit.adapters.file_signer import FileSigner
from paved_audit.api import router
from paved_audit.checkpoints import Checkpointer, run_periodic, stop_task
from paved_audit.delivery import DeliveryAwareConsumer
from paved_audit.handlers import AuditAppender
from paved_audit.ports import Signer
from paved_audit.problems import decorate_read_only
from paved_audit.settings import AuditSettings

DESCRIPTION = (
    "Seals every lifecycle event, dead letters included, once into a hash-chained, "
    "append-only PostgreSQL table and publishes each sealed record to the audit topic."
)


AUDIT_GRANTS = GrantPolicy(
    default=frozenset(),
    tables={
        # The trail: append and read, nothing else (no UPDATE, DELETE, TRUNCATE, ALTER).
        "audit_records": frozenset({"SELECT", "INSERT"}),
        "audit_checkpoints": frozenset({"SELECT", "INSERT"}),
        # Idempotent consumer: the id of each sealed event, written once.
        "processed_events": frozenset({"SELECT", "INSERT"}),
        # Outbox: the relay reads pending rows and marks them published; it can never
        # rewrite what a row says (value, key, topic, headers).
        "outbox": frozenset({"SELECT", "INSERT", "UPDATE (published_at, attempts, last_error)"}),
        "schema_migrations": frozenset({"SELECT"}),
    },
    description="INSERT/SELECT on the trail; outbox bookkeeping columns only",
)
"""The audit runtime role's privileges; any table not named here gets none."""


def make_signer(settings: AuditSettings) -> Signer:
    """The checkpoint signer the settings name (a local file key; loaded on first use).

    Only dev/test may generate a missing key; elsewhere the start fails naming the path.
    """
    return FileSigner(
        settings.audit_checkpoint_key_path,
        create_if_missing=settings.environment in {"dev", "test"},
    )


def make_checkpointer(settings: AuditSettings, signer: Signer) -> Checkpointer:
    return Checkpointer(
        origin=settings.audit_output_topic,
        output_topic=settings.audit_output_topic,
        signer=signer,
        every_records=settings.audit_checkpoint_every_records,
    )


def create_runtime(
    settings: AuditSettings,
    *,
    signer: Signer | None = None,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The audit service runtime, subscribed to every consumed topic; start() does the I/O.

    Sealing signs a checkpoint every ``audit_checkpoint_every_records`` records with
    ``signer`` (default: ``make_signer(settings)``).
    """
    runtime = ServiceRuntime(
        settings,
        service="audit",
        schema=settings.audit_db_schema,
        group=settings.audit_consumer_group,
        migrations=load_migrations("paved_audit", resources.files("paved_audit") / "migrations"),
        tracer_provider=tracer_provider,
        metrics_registry=metrics_registry,
        description=DESCRIPTION,
        grants=AUDIT_GRANTS,
    )
    # Handlers need the record exactly as received (unknown attributes included) and its
    # Kafka coordinates, which the plain EventConsumer does not pass on.
    runtime.consumer = DeliveryAwareConsumer(
        runtime.broker,
        None,
        runtime.group,
        max_attempts=settings.consumer_max_attempts,
        deadletter_topic=settings.audit_dead_letter_topic,
    )
    appender = AuditAppender(
        schema=settings.audit_db_schema,
        output_topic=settings.audit_output_topic,
        checkpointer=make_checkpointer(settings, signer or make_signer(settings)),
    )
    for topic in settings.consumed_topics:
        runtime.subscribe(
            topic,
            appender,
            event_types=None,
            description=f"Seal every event on {topic} into the audit chain.",
        )
    runtime.declare_emits(AuditRecordSealed, AuditCheckpointSigned)
    return runtime


def create_app(
    settings: AuditSettings,
    *,
    signer: Signer | None = None,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The audit process as an ASGI app: the sealing runtime, the checkpoint timer and the
    read-only audit API, started and stopped by the lifespan."""
    signer = signer or make_signer(settings)
    runtime = create_runtime(
        settings, signer=signer, tracer_provider=tracer_provider, metrics_registry=metrics_registry
    )
    checkpointer = make_checkpointer(settings, signer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(signer, FileSigner):
            await asyncio.to_thread(signer.load)  # fail fast on a bad key, before consuming
        await runtime.start()
        timer = asyncio.create_task(
            run_periodic(
                runtime.pool,
                settings.audit_db_schema,
                checkpointer,
                settings.audit_checkpoint_interval_s,
            ),
            name="audit-checkpoints",
        )
        try:
            yield
        finally:
            await stop_task(timer)
            await runtime.stop()

    app = FastAPI(
        title="Paved audit",
        version="0.1.0",
        description="Read-only access to the tamper-evident audit trail: records, gaps, signed "
        "checkpoints, inclusion and consistency proofs, verification, inspector exports. "
        "Callers need the `auditor` or `admin` role.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.signer = signer
    app.state.checkpointer = checkpointer
    install_http(
        app, max_body_bytes=settings.http_max_body_bytes, decorate=decorate_read_only,
        service="the audit service",
    )  # fmt: skip
    app.include_router(router)

    async def database() -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return {"key_id": signer.key_id}

    add_health_routes(app, {"database": database})
    return app
