"""Idempotent, dead-lettering Kafka consumers.

``EventConsumer.subscribe`` registers a faststream subscriber that, for each record:

1. parses the envelope (a record that is not a valid event of the contract goes to
   the dead-letter topic with the reason, and the consumer moves on);
2. opens a transaction, records the event id in ``processed_events`` and, when it is
   new, runs the handler's effect on the same connection; a redelivered event
   (same id) is recognised and skipped;
3. commits the Kafka offset only after that transaction committed.

A handler failure rewinds to the record and retries with backoff; a failure that
is not transient is dead-lettered after ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

import asyncpg
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.params.no_cast import NoCastField
from paved_schemas import topics
from paved_schemas.envelope import ContractError, Envelope, parse_envelope
from paved_schemas.registry import EVENT_TYPES
from prometheus_client import Counter

from paved_shared.db import Connection, Pool
from paved_shared.deadletter import Delivery, dead_letter
from paved_shared.failpoints import failpoint

log = logging.getLogger(__name__)

Handler = Callable[[Envelope[Any], Connection], Awaitable[None]]

EVENTS_TOTAL = Counter(
    "paved_consumer_events_total",
    "Events seen by idempotent consumers, by outcome.",
    ["group", "topic", "outcome"],
)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    KafkaError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


_CONTRACT_TOPICS = frozenset(t.name for t in topics.ALL_TOPICS)


def provenance_problem(envelope: Envelope[Any], topic: str) -> str | None:
    """Why an event may not be accepted from ``topic`` (None: it may).

    On a contract topic an event is taken only if its type belongs to that topic and its
    ``source`` is the service that owns the topic (``topics.TOPIC_WRITERS``). The broker's
    ACLs already keep other principals from writing there; this is the second wall, and
    it also refuses an owner publishing another service's fact on its own topic (e.g. an
    ``ApprovalGranted`` on the registry's model events).
    """
    if topic not in _CONTRACT_TOPICS:
        return None
    cls = EVENT_TYPES.get(envelope.type)
    if cls is not None and topic != cls.TOPIC:
        return f"event type {envelope.type!r} belongs on topic {cls.TOPIC!r}, not on {topic!r}"
    sources = topics.event_sources(topic)
    if sources and envelope.source not in sources:
        return (
            f"source {envelope.source!r} does not own topic {topic!r} "
            f"(accepted: {', '.join(sorted(sources))})"
        )
    return None


_DELIVERY: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "paved_delivery", default=None
)


@contextlib.contextmanager
def delivering(delivery: Delivery) -> Iterator[None]:
    """Make ``delivery`` the record ``current_delivery()`` returns inside the block."""
    token = _DELIVERY.set(delivery)
    try:
        yield
    finally:
        _DELIVERY.reset(token)


def current_delivery() -> Delivery:
    """The record a handler is applying (its headers carry a command's sender identity)."""
    delivery = _DELIVERY.get()
    if delivery is None:
        raise RuntimeError(
            "current_delivery() called outside a consumer handler (EventConsumer or a "
            "subclass such as the audit's DeliveryAwareConsumer)"
        )
    return delivery


class ProvenanceError(Exception):
    """An event arrived from a topic or source that does not own it (dead-lettered)."""


class PermanentError(Exception):
    """Raised by a handler for input that can never be applied (a domain rule refuses it).

    The transaction rolls back and the record goes to the dead-letter topic at once,
    with this exception's message as the reason; the consumer moves on.
    """


async def _raw_body(msg: StreamMessage[Any]) -> bytes:
    return msg.body


def _documented_payload(topic: str, wanted: frozenset[str] | None) -> Any:
    """The union of envelope types a subscriber of ``topic`` accepts (for AsyncAPI)."""
    classes = [
        cls
        for type_name, cls in sorted(EVENT_TYPES.items())
        if (wanted is None and topic == cls.TOPIC) or (wanted is not None and type_name in wanted)
    ]
    if not classes:
        return Envelope[Any]
    envelopes = tuple(Envelope[c] for c in classes)  # type: ignore[valid-type]
    return envelopes[0] if len(envelopes) == 1 else Union[envelopes]  # noqa: UP007


@dataclass(frozen=True)
class Route:
    """Which handler applies which event types (None: all) arriving on one topic."""

    topic: str
    handler: Handler
    event_types: Collection[str] | None = None


def _combine(routes: Sequence[Route]) -> tuple[Handler, frozenset[str] | None]:
    """One handler running every route of a topic that wants the event, in order."""
    if len(routes) == 1:
        only = routes[0]
        types = None if only.event_types is None else frozenset(only.event_types)
        return only.handler, types
    wanted: frozenset[str] | None = frozenset()
    for r in routes:
        if r.event_types is None:
            wanted = None
            break
        assert wanted is not None
        wanted = wanted | frozenset(r.event_types)

    async def combined(env: Envelope[Any], conn: Connection) -> None:
        for r in routes:
            if r.event_types is None or env.type in r.event_types:
                await r.handler(env, conn)

    return combined, wanted


@dataclass
class EventConsumer:
    """Registers idempotent subscribers of one consumer group on a broker."""

    broker: KafkaBroker
    pool: Pool | None
    group: str
    max_attempts: int = 5
    retry_backoff_s: float = 0.5
    deadletter_topic: str | None = None
    _attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        event_types: Collection[str] | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> None:
        """Apply ``handler`` once per event of ``event_types`` (all when None) on ``topic``."""
        self.subscribe_many(
            [Route(topic, handler, event_types)], title=title, description=description
        )

    def subscribe_many(
        self, routes: Sequence[Route], *, title: str | None = None, description: str | None = None
    ) -> None:
        """One Kafka consumer for all ``routes``' topics, dispatching by topic and type.

        One consumer per service (not one per topic) means one group member: joining
        costs a single rebalance, and a record's handlers run in one transaction.
        """
        by_topic: dict[str, list[Route]] = {}
        for route in routes:
            by_topic.setdefault(route.topic, []).append(route)
        dispatch = {topic: _combine(rs) for topic, rs in by_topic.items()}

        async def on_record(body: bytes, message: KafkaMessage) -> None:
            raw = message.raw_message
            record = raw[0] if isinstance(raw, tuple) else raw
            delivery = Delivery(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value if record.value is not None else b"",
                headers=dict(record.headers or ()),
                timestamp_ms=record.timestamp,
                log_append_time=record.timestamp_type == 1,
            )
            handler, wanted = dispatch[delivery.topic]
            await self.process(delivery, handler, wanted)

        # The handler gets raw bytes (parsing and dead-lettering are ours); the annotation
        # only tells the AsyncAPI document which envelopes travel on these topics.
        payloads = [_documented_payload(t, w) for t, (_, w) in sorted(dispatch.items())]
        payload = payloads[0] if len(payloads) == 1 else Union[tuple(payloads)]  # noqa: UP007
        on_record.__annotations__ = {
            "body": Annotated[payload, NoCastField()],
            "message": KafkaMessage,
            "return": None,
        }
        names = sorted(dispatch)
        self.broker.subscriber(
            *names,
            decoder=_raw_body,
            group_id=self.group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_records=50,
            title=title or f"{self.group}:{','.join(names)}",
            description=description,
        )(on_record)

    async def process(
        self, delivery: Delivery, handler: Handler, wanted: frozenset[str] | None
    ) -> str:
        """Handle one record; return the outcome (applied, duplicate, skipped, dead_lettered).

        Raises on a failure that should be retried (the subscriber then rewinds).
        """
        try:
            envelope = parse_envelope(delivery.value)
        except ContractError as exc:
            await self._dead_letter(delivery, reason=str(exc), error_type="ContractError")
            return self._count(delivery, "dead_lettered")
        if (problem := provenance_problem(envelope, delivery.topic)) is not None:
            await self._dead_letter(
                delivery, reason=problem, error_type=ProvenanceError.__name__, envelope=envelope
            )
            return self._count(delivery, "dead_lettered")
        if wanted is not None and envelope.type not in wanted:
            return self._count(delivery, "skipped")
        where = (delivery.topic, delivery.partition, delivery.offset)
        if self.pool is None:
            raise RuntimeError("EventConsumer.pool is not set; start the service runtime first")
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                fresh = await conn.fetchval(
                    "INSERT INTO processed_events "
                    "(consumer_group, event_id, event_type, topic, kafka_partition, kafka_offset) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
                    self.group, envelope.id, envelope.type, delivery.topic,
                    delivery.partition, delivery.offset,
                )  # fmt: skip
                if not fresh:
                    outcome = "duplicate"
                else:
                    with delivering(delivery):
                        await handler(envelope, conn)
                    outcome = "applied"
        except PermanentError as exc:
            self._attempts.pop(where, None)
            await self._dead_letter(
                delivery, reason=str(exc), error_type=type(exc).__name__, envelope=envelope
            )
            return self._count(delivery, "dead_lettered")
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure on %s, will retry: %r", where, exc)
            await asyncio.sleep(self.retry_backoff_s)
            raise
        except Exception as exc:
            attempts = self._attempts.get(where, 0) + 1
            self._attempts[where] = attempts
            if attempts < self.max_attempts:
                log.warning(
                    "handler failed on %s (attempt %d/%d): %r", where, attempts,
                    self.max_attempts, exc,
                )  # fmt: skip
                await asyncio.sleep(self.retry_backoff_s * attempts)
                raise
            self._attempts.pop(where, None)
            await self._dead_letter(
                delivery,
                reason=f"handler failed {attempts} times: {exc!r}"[:2000],
                error_type=type(exc).__name__,
                envelope=envelope,
            )
            return self._count(delivery, "dead_lettered")
        self._attempts.pop(where, None)
        failpoint("consumer.after_effect")
        return self._count(delivery, outcome)

    def _count(self, delivery: Delivery, outcome: str) -> str:
        EVENTS_TOTAL.labels(self.group, delivery.topic, outcome).inc()
        if outcome == "duplicate":
            log.info("duplicate event skipped at %s:%d:%d", delivery.topic, delivery.partition,
                     delivery.offset)  # fmt: skip
        return outcome

    async def _dead_letter(
        self,
        delivery: Delivery,
        *,
        reason: str,
        error_type: str,
        envelope: Envelope[Any] | None = None,
    ) -> None:
        log.error(
            "dead-lettering %s:%d:%d: %s", delivery.topic, delivery.partition, delivery.offset,
            reason,
        )  # fmt: skip
        started = time.monotonic()
        try:
            await dead_letter(
                self.broker,
                delivery,
                group=self.group,
                reason=reason,
                error_type=error_type,
                envelope=envelope,
                topic=self.deadletter_topic,
            )
        except Exception:
            # The record stays unacknowledged and is retried; never skip it silently.
            log.exception("dead-lettering failed; retrying in %.1fs", self.retry_backoff_s)
            await asyncio.sleep(self.retry_backoff_s)
            raise
        log.debug("dead-lettered in %.1f ms", (time.monotonic() - started) * 1000)
