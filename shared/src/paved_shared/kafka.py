"""Kafka plumbing: the broker factory every service uses, and topic administration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from opentelemetry.trace import TracerProvider
from prometheus_client import REGISTRY, CollectorRegistry

log = logging.getLogger(__name__)


SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


@dataclass(frozen=True)
class KafkaAuth:
    """How a client proves who it is to the brokers: one SCRAM principal per service.

    Every Kafka client in Paved (faststream broker, outbox relay, dead-lettering, admin,
    the SDK, tests) is built from one of these, so a principal is configured in exactly
    one way. ``repr`` never shows the password.
    """

    protocol: SecurityProtocol = "SASL_PLAINTEXT"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = None
    ssl_cafile: str | None = None

    def __repr__(self) -> str:
        return f"KafkaAuth({self.protocol}, {self.mechanism}, user={self.username!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaAuth:
        """From ``PAVED_KAFKA_SECURITY_PROTOCOL`` / ``_SASL_MECHANISM`` / ``_SASL_USERNAME`` /
        ``_SASL_PASSWORD`` (or ``_SASL_PASSWORD_FILE``) / ``_SSL_CAFILE``."""
        e = os.environ if env is None else env
        password = e.get("PAVED_KAFKA_SASL_PASSWORD")
        if password is None and (path := e.get("PAVED_KAFKA_SASL_PASSWORD_FILE")):
            with open(path, encoding="utf-8") as fh:
                password = fh.read().strip()
        protocol = e.get("PAVED_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        mechanism = e.get("PAVED_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        if protocol not in ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(
                f"PAVED_KAFKA_SECURITY_PROTOCOL={protocol!r}: use SASL_SSL, SASL_PLAINTEXT "
                "(loopback only) or PLAINTEXT (tests of the refusal only)"
            )
        if mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            raise ValueError(
                f"PAVED_KAFKA_SASL_MECHANISM={mechanism!r}: use SCRAM-SHA-512 or SCRAM-SHA-256"
            )
        return cls(
            protocol=protocol,  # type: ignore[arg-type]
            mechanism=mechanism,  # type: ignore[arg-type]
            username=e.get("PAVED_KAFKA_SASL_USERNAME") or None,
            password=password or None,
            ssl_cafile=e.get("PAVED_KAFKA_SSL_CAFILE") or None,
        )

    def env(self) -> dict[str, str]:
        """The environment variables ``from_env`` reads back (for a child process)."""
        out: dict[str, str] = {
            "PAVED_KAFKA_SECURITY_PROTOCOL": self.protocol,
            "PAVED_KAFKA_SASL_MECHANISM": self.mechanism,
        }
        if self.username is not None:
            out["PAVED_KAFKA_SASL_USERNAME"] = self.username
        if self.password is not None:
            out["PAVED_KAFKA_SASL_PASSWORD"] = self.password
        if self.ssl_cafile is not None:
            out["PAVED_KAFKA_SSL_CAFILE"] = self.ssl_cafile
        return out

    def require(self) -> KafkaAuth:
        """``self``, or a ValueError naming the missing setting."""
        if self.protocol != "PLAINTEXT":
            self._require_credentials()
        return self

    def _require_credentials(self) -> tuple[str, str]:
        if not self.username or not self.password:
            raise ValueError(
                f"Kafka {self.protocol} needs PAVED_KAFKA_SASL_USERNAME and "
                "PAVED_KAFKA_SASL_PASSWORD (the service's own principal)"
            )
        return self.username, self.password

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.protocol != "SASL_SSL":
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer`` / ``AIOKafkaConsumer`` / admin."""
        if self.protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        user, password = self._require_credentials()
        return {
            "security_protocol": self.protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": password,
            "ssl_context": self._ssl_context(),
        }

    def faststream(self) -> BaseSecurity | None:
        """The ``security=`` object of a faststream ``KafkaBroker``.

        Building a broker does no I/O (the AsyncAPI document is generated from one), so
        missing credentials are reported by ``require()`` when the service starts.
        """
        if self.protocol == "PLAINTEXT" or not self.username or not self.password:
            return None
        user, password = self._require_credentials()
        kind = SASLScram512 if self.mechanism == "SCRAM-SHA-512" else SASLScram256
        return kind(
            username=user,
            password=password,
            use_ssl=self.protocol == "SASL_SSL",
            ssl_context=self._ssl_context(),
        )

    def librdkafka(self) -> dict[str, str]:
        """Configuration of a confluent-kafka (librdkafka) client, e.g. the ACL admin."""
        if self.protocol == "PLAINTEXT":
            return {"security.protocol": "plaintext"}
        user, password = self._require_credentials()
        cfg = {
            "security.protocol": self.protocol.lower(),
            "sasl.mechanism": self.mechanism,
            "sasl.username": user,
            "sasl.password": password,
        }
        if self.ssl_cafile:
            cfg["ssl.ca.location"] = self.ssl_cafile
        return cfg


def kafka_auth(auth: KafkaAuth | None = None) -> KafkaAuth:
    """``auth``, or the process's principal from its environment (``KafkaAuth.from_env``)."""
    return auth if auth is not None else KafkaAuth.from_env()


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
    auth: KafkaAuth | None = None,
) -> KafkaBroker:
    """A faststream broker whose producer is durable and whose hops are traced and counted.

    acks=all with idempotence on: a retried send never duplicates or reorders within a
    partition. The OpenTelemetry middleware carries W3C trace context in headers; the
    Prometheus middleware counts and times every publish and consume. ``auth`` is the
    service's principal (default: from the environment).
    """
    return KafkaBroker(
        bootstrap.split(","),
        client_id=client_id,
        security=kafka_auth(auth).faststream(),
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
    bootstrap: str,
    specs: Iterable[TopicSpecLike],
    *,
    timeout_s: float = 30.0,
    auth: KafkaAuth | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Existing topics are left as they are (changing partitions or retention is an
    operational task, see docs/runbooks).
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **kafka_auth(auth).aiokafka()
    )
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
