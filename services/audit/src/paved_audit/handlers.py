"""Seal every consumed event into the hash chain and publish the sealed record.

One handler for every consumed topic. It runs inside the idempotent consumer's
transaction, so the appended row, the ``processed_events`` row and the outbox row
of the ``AuditRecordSealed`` event commit together or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import AuditRecordKind, AuditRecordSealed, DeadLetterRecorded
from paved_shared.consumer import PermanentError
from paved_shared.db import Connection, check_identifier
from paved_shared.deadletter import Delivery
from paved_shared.outbox import enqueue
from prometheus_client import Counter

from paved_audit.checkpoints import (
    AUDIT_ACTOR,
    AUDIT_ACTOR_NAME,
    AUDIT_SOURCE,
    Checkpointer,
    chain_lock_key,
)
from paved_audit.delivery import current_delivery
from paved_audit.domain.chain import (
    GENESIS_HASH,
    CanonicalizationError,
    canonicalize_value,
    chain_hash,
    parse_json_object,
)

log = logging.getLogger(__name__)

SEALED_TOTAL = Counter(
    "paved_audit_records_sealed_total",
    "Events sealed into the audit chain, by outcome.",
    ["outcome"],
)

__all__ = ["AUDIT_ACTOR", "AUDIT_ACTOR_NAME", "AUDIT_SOURCE", "AuditAppender", "chain_lock_key"]


@dataclass(frozen=True)
class AuditAppender:
    """Appends each delivered event once to the chain in ``schema`` and emits the sealed record.

    Call it as a runtime handler (it reads the current Kafka record through
    ``current_delivery()``) or use ``seal`` directly with an explicit ``Delivery``.
    With a ``checkpointer``, the append that makes ``every_records`` new records also
    signs a checkpoint, in the same transaction.
    """

    schema: str
    output_topic: str
    checkpointer: Checkpointer | None = None

    def __post_init__(self) -> None:
        check_identifier(self.schema)

    async def __call__(self, env: Envelope[Any], conn: Connection) -> None:
        """Runtime handler: seal ``env`` as delivered by the current Kafka record."""
        await self.seal(env, conn, current_delivery())

    async def seal(
        self, env: Envelope[Any], conn: Connection, delivery: Delivery
    ) -> AuditRecordSealed | None:
        """Append ``env`` (as received in ``delivery``) to the chain; None if already sealed.

        Raises ``PermanentError`` (the event is dead-lettered, and the dead letter is
        itself sealed) when the received bytes cannot be canonicalised, or when the event
        id was already sealed with different content.
        """
        where = f"{delivery.topic}:{delivery.partition}:{delivery.offset}"
        try:
            document = parse_json_object(delivery.value)
            canonical = canonicalize_value(document)
        except CanonicalizationError as exc:
            raise PermanentError(
                f"event {env.id!r} ({env.type}) at {where} cannot be sealed: {exc}"
            ) from exc
        if document.get("id") != env.id:  # the consumer parsed these very bytes
            raise PermanentError(
                f"event at {where}: envelope id {env.id!r} differs from the received "
                f"JSON id {document.get('id')!r}"
            )

        # One chain: appends are serialised until this transaction ends.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", chain_lock_key(self.schema)
        )
        existing = await conn.fetchrow(
            "SELECT sequence, record FROM audit_records WHERE event_id = $1", env.id
        )
        if existing is not None:
            if bytes(existing["record"]) == canonical:
                log.info("event %s already sealed at sequence %d", env.id, existing["sequence"])
                SEALED_TOTAL.labels("duplicate").inc()
                return None
            raise PermanentError(
                f"event id {env.id!r} ({env.type}) at {where} was already sealed at sequence "
                f"{existing['sequence']} with different content; the second version is refused"
            )
        head = await conn.fetchrow(
            "SELECT sequence, record_hash FROM audit_records ORDER BY sequence DESC LIMIT 1"
        )
        sequence = 0 if head is None else int(head["sequence"]) + 1
        prev_hash = GENESIS_HASH if head is None else str(head["record_hash"])
        record_hash = chain_hash(prev_hash, canonical)
        is_gap = env.type == DeadLetterRecorded.TYPE
        kind = AuditRecordKind.GAP if is_gap else AuditRecordKind.EVENT
        sealed_at: datetime = await conn.fetchval(
            "INSERT INTO audit_records (sequence, event_id, event_type, subject, event_time, "
            "source_topic, source_partition, source_offset, record, prev_hash, record_hash) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING sealed_at",
            sequence, env.id, env.type, env.subject, env.time, delivery.topic,
            delivery.partition, delivery.offset, canonical, prev_hash, record_hash,
        )  # fmt: skip
        sealed = AuditRecordSealed(
            sequence=sequence,
            event_id=env.id,
            event_type=env.type,
            event_time=env.time,
            subject=env.subject,
            source_topic=delivery.topic,
            source_partition=delivery.partition,
            source_offset=delivery.offset,
            record=canonical.decode(),
            prev_hash=prev_hash,
            record_hash=record_hash,
            sealed_at=sealed_at,
            kind=kind,
        )
        event = Envelope.new(
            sealed, source=AUDIT_SOURCE, actor=AUDIT_ACTOR, actorname=AUDIT_ACTOR_NAME, cause=env
        )
        await enqueue(conn, topic=self.output_topic, key=sealed.key(), event=event)
        if self.checkpointer is not None and await self.checkpointer.due(conn, sequence + 1):
            await self.checkpointer.checkpoint(conn, trigger="records")
        SEALED_TOTAL.labels("sealed").inc()
        log.info("sealed %s %s as sequence %d", env.type, env.id, sequence)
        return sealed
