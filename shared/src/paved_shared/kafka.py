"""Kafka plumbing: the broker factory every service uses, and topic administration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry.trace import TracerProvider
from prometheus_client import REGISTRY, CollectorRegistry

log = logging.getLogger(__name__)


class TopicSpecLike(Protocol):
    """What topic administration needs to know about a topic."""

    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def config(self) -> Mapping[str, str]: ...


def make_broker(
    bootstrap: str,
    *,
    client_id: str,
    tracer_provider: TracerProvider | None = None,
    metrics_registry: CollectorRegistry | None = None,
    description: str | None = None,
) -> KafkaBroker:
    """A faststream broker whose producer is durable and whose hops are traced and counted.

    acks=all with idempotence on: a retried send never duplicates or reorders within a
    partition. The OpenTelemetry middleware carries W3C trace context in headers; the
    Prometheus middleware counts and times every publish and consume.
    """
    return KafkaBroker(
        bootstrap.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=30_000,
        retry_backoff_ms=200,
        allow_auto_create_topics=False,
        middlewares=(
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            KafkaPrometheusMiddleware(
                registry=metrics_registry if metrics_registry is not None else REGISTRY,
                app_name=client_id,
                metrics_prefix="paved",
            ),
        ),
        description=description,
        graceful_timeout=10.0,
    )


async def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpecLike], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Existing topics are left as they are (changing partitions or retention is an
    operational task, see docs/runbooks).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=1 if _single_node(admin) else 3,
                topic_configs=dict(s.config),
            )
            for s in wanted
        ]
        # Another process may win the race; the topic is there either way.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        created = [s.name for s in wanted]
        log.info("created topics %s", created)
        return created
    finally:
        await admin.close()


def _single_node(admin: AIOKafkaAdminClient) -> bool:
    brokers = admin._client.cluster.brokers()
    return len(brokers) < 3


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, for a group-less consumer to ``assign`` (refreshes the
    metadata once when the consumer has not seen the topic yet)."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]
