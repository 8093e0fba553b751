"""W3C trace context continues across Kafka hops, through the outbox too."""

from __future__ import annotations

import asyncio

import pytest
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from paved_schemas.envelope import Envelope
from paved_shared.consumer import EventConsumer
from paved_shared.db import Connection
from paved_shared.kafka import make_broker
from paved_shared.outbox import OutboxRelay, enqueue
from paved_shared.telemetry import setup_telemetry
from paved_shared.testing import new_topic, sample_event, service_pool, unique, wait_for
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration


async def test_trace_continues_from_request_through_outbox_to_consumer(stack) -> None:
    exporter = InMemorySpanExporter()
    provider = setup_telemetry(
        "trace-test", extra_processors=(SimpleSpanProcessor(exporter),), set_global=False
    )
    tracer = provider.get_tracer("test")
    schema = unique("t_trace")
    topic = await new_topic(stack.bootstrap)
    direct_topic = await new_topic(stack.bootstrap)
    pool = await service_pool(stack.dsn, schema)
    seen: dict[str, int] = {}
    direct_seen: list[int] = []

    async def handler(env: Envelope[object], conn: Connection) -> None:
        seen[env.id] = trace.get_current_span().get_span_context().trace_id

    broker = make_broker(
        stack.bootstrap, client_id="t", tracer_provider=provider,
        metrics_registry=CollectorRegistry(),
    )  # fmt: skip
    EventConsumer(broker, pool, unique("g")).subscribe(topic, handler)

    @broker.subscriber(direct_topic, group_id=unique("g"), auto_offset_reset="earliest")
    async def direct(message: KafkaMessage) -> None:
        direct_seen.append(trace.get_current_span().get_span_context().trace_id)

    relay = OutboxRelay(pool, schema, stack.bootstrap, client_id="t", tracer_provider=provider)
    event = sample_event()
    try:
        # 1. Outbox hop: the trace of the request that wrote the event goes on in the consumer.
        with tracer.start_as_current_span("POST /api/v1/models") as request_span:
            request_trace = request_span.get_span_context().trace_id
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, topic=topic, key="churn", event=event)
        # The relay runs outside the request (another task, no current span).
        from opentelemetry import context as otel_context

        token = otel_context.attach(otel_context.Context())
        relay_task = asyncio.create_task(relay.run())
        otel_context.detach(token)
        await broker.start()
        await wait_for(_truthy(lambda: event.id in seen), what="event consumed")
        assert seen[event.id] == request_trace

        # 2. Direct hop: a publish inside a span, consumed by a plain faststream subscriber.
        with tracer.start_as_current_span("pipeline step") as step:
            step_trace = step.get_span_context().trace_id
            await broker.publish(b"{}", topic=direct_topic)
        await wait_for(_truthy(lambda: bool(direct_seen)), what="direct message consumed")
        assert direct_seen == [step_trace]
        assert step_trace != request_trace
    finally:
        relay.stop()
        await relay_task
        await broker.stop()
        await pool.close()

    spans = exporter.get_finished_spans()
    outbox_publish = [s for s in spans if s.name == f"{topic} publish"]
    assert len(outbox_publish) == 1
    assert outbox_publish[0].context.trace_id == request_trace
    assert outbox_publish[0].parent is not None
    assert outbox_publish[0].parent.span_id == request_span.get_span_context().span_id
    consumer_spans = [s for s in spans if s.kind == trace.SpanKind.CONSUMER]
    assert {s.context.trace_id for s in consumer_spans} >= {request_trace, step_trace}


def _truthy(fn):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return bool(fn())

    return probe
