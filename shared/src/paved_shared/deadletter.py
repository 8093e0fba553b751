"""Dead-letter publishing: bad input never vanishes.

A record that cannot be applied is published to the dead-letter topic as a
``DeadLetterRecorded`` event carrying the original bytes, with the reason and
origin also in headers (``x-dlq-reason``, ``x-dlq-source-topic``,
``x-dlq-source-partition``, ``x-dlq-source-offset``, ``x-dlq-consumer-group``) so
operators can filter without decoding. The audit service records each as a gap.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import DeadLetterRecorded

MAX_HEADER_REASON = 1000
MAX_REASON = 10_000
# Base64 grows 4/3; keep a dead letter well under Kafka's default 1 MiB message limit.
MAX_ORIGINAL_VALUE = 512 * 1024


@dataclass(frozen=True)
class Delivery:
    """One consumed Kafka record and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int | None = None
    """The record's timestamp; set by the broker when ``log_append_time``."""
    log_append_time: bool = False


def dead_letter_headers(
    delivery: Delivery, *, group: str, reason: str, error_type: str
) -> dict[str, str]:
    """The origin headers of a dead-letter record."""
    return {
        "x-dlq-reason": reason[:MAX_HEADER_REASON],
        "x-dlq-error-type": error_type,
        "x-dlq-source-topic": delivery.topic,
        "x-dlq-source-partition": str(delivery.partition),
        "x-dlq-source-offset": str(delivery.offset),
        "x-dlq-consumer-group": group,
    }


async def dead_letter(
    broker: KafkaBroker,
    delivery: Delivery,
    *,
    group: str,
    reason: str,
    error_type: str,
    envelope: Envelope[Any] | None = None,
    topic: str | None = None,
) -> Envelope[DeadLetterRecorded]:
    """Publish ``delivery`` to the dead-letter topic and wait for the broker's ack."""
    b64 = base64.b64encode
    record = DeadLetterRecorded(
        reason=reason[:MAX_REASON],
        error_type=error_type,
        source_topic=delivery.topic,
        source_partition=delivery.partition,
        source_offset=delivery.offset,
        consumer_group=group,
        original_key=None if delivery.key is None else b64(delivery.key).decode(),
        original_value=b64(delivery.value[:MAX_ORIGINAL_VALUE]).decode(),
        original_value_truncated=len(delivery.value) > MAX_ORIGINAL_VALUE,
        original_headers={k: b64(v).decode() for k, v in list(delivery.headers.items())[:256]},
        original_event_id=envelope.id if envelope is not None else None,
        original_event_type=envelope.type if envelope is not None else None,
    )
    event = Envelope.new(
        record,
        source=f"/paved/{group}",
        actor=f"service:{group}",
        actorname=group,
        cause=envelope,
    )
    await broker.publish(
        event.to_json_bytes(),
        topic=topic or topics.DEAD_LETTER,
        key=record.key().encode(),
        headers={
            **dead_letter_headers(delivery, group=group, reason=reason, error_type=error_type),
            "ce_id": event.id,
            "ce_type": event.type,
            "content-type": "application/json",
        },
    )
    return event
