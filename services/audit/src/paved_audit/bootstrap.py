"""Wire the audit worker: runtime, subscriptions, emitted events. No I/O here."""

from __future__ import annotations

from importlib import resources

from opentelemetry.sdk.trace import TracerProvider
from paved_schemas.events import AuditRecordSealed
from paved_shared.db import load_migrations
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_audit.delivery import DeliveryAwareConsumer
from paved_audit.handlers import AuditAppender
from paved_audit.settings import AuditSettings

DESCRIPTION = (
    "Seals every lifecycle event, dead letters included, once into a hash-chained, "
    "append-only PostgreSQL table and publishes each sealed record to the audit topic."
)


def create_runtime(
    settings: AuditSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The audit service runtime, subscribed to every consumed topic; start() does the I/O."""
    runtime = ServiceRuntime(
        settings,
        service="audit",
        schema=settings.audit_db_schema,
        group=settings.audit_consumer_group,
        migrations=load_migrations("paved_audit", resources.files("paved_audit") / "migrations"),
        tracer_provider=tracer_provider,
        metrics_registry=metrics_registry,
        description=DESCRIPTION,
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
        schema=settings.audit_db_schema, output_topic=settings.audit_output_topic
    )
    for topic in settings.consumed_topics:
        runtime.subscribe(
            topic,
            appender,
            event_types=None,
            description=f"Seal every event on {topic} into the audit chain.",
        )
    runtime.declare_emits(AuditRecordSealed)
    return runtime
