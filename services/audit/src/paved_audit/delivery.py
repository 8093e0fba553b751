"""The audit consumer: batches of Kafka records sealed in one transaction each, with the
record being sealed visible to the handler.

The shared ``EventConsumer`` hands a handler the parsed envelope, which drops
attributes this release does not know (``extra="ignore"``). The audit trail must
keep the envelope exactly as received, and its Kafka coordinates: handlers read them
from ``current_delivery()`` (the shared consumer's, set for batches here too).

It also consumes in batches (``batch_size`` records): one transaction records every
event id in ``processed_events`` and seals every new event, then the batch's offsets
are committed once. Sealing is serialised by the chain lock anyway, so one
transaction per record bought nothing but round trips. When anything in a batch
fails for a reason that is not transient, the batch is rolled back and replayed one
record at a time through ``EventConsumer.process``, so dead-lettering and retries
stay exactly per record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.params.no_cast import NoCastField
from paved_schemas.envelope import ContractError, Envelope, parse_envelope
from paved_shared.consumer import (
    TRANSIENT_ERRORS,
    EventConsumer,
    Handler,
    Route,
    _documented_payload,
    current_delivery,
    delivering,
)
from paved_shared.deadletter import Delivery
from paved_shared.failpoints import failpoint

log = logging.getLogger(__name__)

__all__ = ["DeliveryAwareConsumer", "current_delivery"]


async def _raw_batch(msg: StreamMessage[Any]) -> Any:
    return msg.body


@dataclass
class DeliveryAwareConsumer(EventConsumer):
    """An ``EventConsumer`` whose handlers can call ``current_delivery()``; consumes in batches."""

    batch_size: int = 500

    def subscribe_many(
        self, routes: Sequence[Route], *, title: str | None = None, description: str | None = None
    ) -> None:
        """One batch consumer for every route's topic; every route must want every type."""
        handlers: dict[str, Handler] = {}
        for route in routes:
            if route.event_types is not None or route.topic in handlers:
                raise ValueError(
                    f"the audit consumer takes one all-types route per topic, got {route}"
                )
            handlers[route.topic] = route.handler

        async def on_batch(body: list[bytes], message: KafkaMessage) -> None:
            raw = message.raw_message
            records = raw if isinstance(raw, tuple) else (raw,)
            deliveries = [
                Delivery(
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    key=r.key,
                    value=r.value if r.value is not None else b"",
                    headers=dict(r.headers or ()),
                )
                for r in records
            ]
            await self.process_batch(deliveries, handlers)

        # The handler gets raw bytes; the annotation only documents (AsyncAPI) what travels.
        payloads = [_documented_payload(t, None) for t in sorted(handlers)]
        payload = payloads[0] if len(payloads) == 1 else Union[tuple(payloads)]  # noqa: UP007
        on_batch.__annotations__ = {
            "body": Annotated[list[payload], NoCastField()],  # type: ignore[valid-type]
            "message": KafkaMessage,
            "return": None,
        }
        names = sorted(handlers)
        self.broker.subscriber(
            *names,
            batch=True,
            max_records=self.batch_size,
            batch_timeout_ms=200,
            decoder=_raw_batch,
            group_id=self.group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            title=title or f"{self.group}:{','.join(names)}",
            description=description,
        )(on_batch)

    async def process_batch(
        self, deliveries: Sequence[Delivery], handlers: dict[str, Handler]
    ) -> None:
        """Seal a batch in one transaction; fall back to one record at a time on failure."""
        try:
            envelopes = [parse_envelope(d.value) for d in deliveries]
        except ContractError:
            envelopes = []  # some record must be dead-lettered: take them one by one
        if envelopes and self.pool is not None:
            try:
                outcomes = await self._apply_batch(deliveries, envelopes, handlers)
            except TRANSIENT_ERRORS:
                raise  # the batch is redelivered
            except Exception as exc:
                log.warning("batch of %d failed (%r); applying one record at a time",
                            len(deliveries), exc)  # fmt: skip
            else:
                for delivery, outcome in zip(deliveries, outcomes, strict=True):
                    self._count(delivery, outcome)
                failpoint("consumer.after_effect")
                return
        for delivery in deliveries:
            await self.process(delivery, handlers[delivery.topic], None)

    async def _apply_batch(
        self,
        deliveries: Sequence[Delivery],
        envelopes: Sequence[Envelope[Any]],
        handlers: dict[str, Handler],
    ) -> list[str]:
        assert self.pool is not None
        outcomes: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for delivery, envelope in zip(deliveries, envelopes, strict=True):
                fresh = await conn.fetchval(
                    "INSERT INTO processed_events "
                    "(consumer_group, event_id, event_type, topic, kafka_partition, kafka_offset) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
                    self.group, envelope.id, envelope.type, delivery.topic,
                    delivery.partition, delivery.offset,
                )  # fmt: skip
                if not fresh:
                    outcomes.append("duplicate")
                    continue
                with delivering(delivery):
                    await handlers[delivery.topic](envelope, conn)
                outcomes.append("applied")
        return outcomes
