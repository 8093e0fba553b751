"""Sign checkpoints of the chain: every N records (inside the sealing transaction) or every
T seconds (a background task), stored append-only and published on the audit topic.

Callers hold the chain's advisory lock (``handlers.chain_lock_key``) in the transaction
they pass, so the head cannot move while a checkpoint is computed, and two replicas
never sign two checkpoints with one index.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from paved_schemas.envelope import Envelope
from paved_schemas.events import AuditCheckpointSigned
from paved_shared.db import Connection, Pool
from paved_shared.outbox import enqueue
from prometheus_client import Counter

from paved_audit.domain.chain import GENESIS_HASH
from paved_audit.domain.checkpoint import CheckpointBody, SignedCheckpoint
from paved_audit.domain.merkle import Frontier, leaf_hash
from paved_audit.ports import Signer

log = logging.getLogger(__name__)

CHECKPOINTS_TOTAL = Counter(
    "paved_audit_checkpoints_signed_total", "Checkpoints signed, by trigger.", ["trigger"]
)

AUDIT_SOURCE = "/paved/audit"
AUDIT_ACTOR = "service:audit"
AUDIT_ACTOR_NAME = "Paved audit service"


def chain_lock_key(schema: str) -> str:
    """Key of the transaction-level advisory lock that serialises appends to one chain."""
    return f"paved-audit-chain:{schema}"


def rfc3339(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: the one spelling of times inside signed bodies."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Checkpointer:
    """Signs the next checkpoint of the chain in the connection's schema."""

    origin: str
    """The audit topic: the trail's name inside every signed body."""
    output_topic: str
    signer: Signer
    every_records: int = 1000

    async def lock(self, conn: Connection, schema: str) -> None:
        """Take the chain lock for the rest of the caller's transaction."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", chain_lock_key(schema))

    async def due(self, conn: Connection, size: int) -> bool:
        """True when ``size`` records are ``every_records`` or more past the last checkpoint."""
        last: int | None = await conn.fetchval(
            "SELECT tree_size FROM audit_checkpoints ORDER BY checkpoint_index DESC LIMIT 1"
        )
        return size - (last or 0) >= self.every_records

    async def checkpoint(self, conn: Connection, *, trigger: str) -> AuditCheckpointSigned | None:
        """Sign a checkpoint over every record sealed so far; None when nothing is new.

        Run inside a transaction holding the chain lock. Stores the row and enqueues the
        ``AuditCheckpointSigned`` event in that transaction.
        """
        head = await conn.fetchrow(
            "SELECT sequence, record_hash FROM audit_records ORDER BY sequence DESC LIMIT 1"
        )
        if head is None:
            return None
        size = int(head["sequence"]) + 1
        last = await conn.fetchrow(
            "SELECT checkpoint_index, tree_size, signature, frontier FROM audit_checkpoints "
            "ORDER BY checkpoint_index DESC LIMIT 1"
        )
        last_size = int(last["tree_size"]) if last is not None else 0
        if size <= last_size:
            return None
        frontier = (
            Frontier.from_hex(last_size, last["frontier"]) if last is not None else Frontier()
        )
        first = await conn.fetchval("SELECT min(sequence) FROM audit_records")
        if last is None and first != 0:
            raise RuntimeError(
                f"the chain starts at sequence {first} without a stored checkpoint to extend"
            )
        async for row in conn.cursor(
            "SELECT record FROM audit_records WHERE sequence >= $1 AND sequence < $2 "
            "ORDER BY sequence",
            last_size,
            size,
            prefetch=1000,
        ):
            frontier.append(leaf_hash(bytes(row["record"])))
        issued = datetime.now(UTC)
        previous = bytes(last["signature"]) if last is not None else None
        body = CheckpointBody(
            origin=self.origin,
            index=int(last["checkpoint_index"]) + 1 if last is not None else 0,
            tree_size=size,
            root_hash=frontier.root().hex(),
            chain_head=str(head["record_hash"]) if size else GENESIS_HASH,
            previous_signature=base64.b64encode(previous).decode() if previous else None,
            issued_at=rfc3339(issued),
            key_id=self.signer.key_id,
        )
        signed_body = body.canonical()
        signature = await self.signer.sign(signed_body)
        public_key = await self.signer.public_key()
        await conn.execute(
            "INSERT INTO audit_checkpoints (checkpoint_index, tree_size, root_hash, chain_head, "
            "key_id, signed_body, signature, public_key, frontier, issued_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            body.index, body.tree_size, body.root_hash, body.chain_head, body.key_id,
            signed_body, signature, public_key, frontier.to_hex(), issued,
        )  # fmt: skip
        event = checkpoint_event(
            SignedCheckpoint(body, signed_body, signature, public_key), frontier, issued
        )
        envelope = Envelope.new(
            event, source=AUDIT_SOURCE, actor=AUDIT_ACTOR, actorname=AUDIT_ACTOR_NAME
        )
        await enqueue(conn, topic=self.output_topic, key=event.key(), event=envelope)
        CHECKPOINTS_TOTAL.labels(trigger).inc()
        log.info(
            "signed checkpoint #%d: size %d, root %s (%s)",
            body.index, body.tree_size, body.root_hash, trigger,
        )  # fmt: skip
        return event


def checkpoint_event(
    cp: SignedCheckpoint, frontier: Frontier, issued: datetime
) -> AuditCheckpointSigned:
    """The ``AuditCheckpointSigned`` payload of a signed checkpoint."""
    b = cp.body
    return AuditCheckpointSigned(
        origin=b.origin,
        checkpoint_index=b.index,
        tree_size=b.tree_size,
        root_hash=b.root_hash,
        chain_head=b.chain_head,
        key_id=b.key_id,
        public_key=base64.b64encode(cp.public_key).decode(),
        signed_body=cp.signed_body.decode(),
        signature=cp.signature_b64,
        issued_at=issued,
        frontier=frontier.to_hex(),
    )


async def checkpoint_now(
    pool: Pool, schema: str, checkpointer: Checkpointer, *, trigger: str = "interval"
) -> AuditCheckpointSigned | None:
    """Sign a checkpoint over everything sealed so far (its own transaction); None if none new."""
    async with pool.acquire() as conn, conn.transaction():
        await checkpointer.lock(conn, schema)
        return await checkpointer.checkpoint(conn, trigger=trigger)


async def run_periodic(
    pool: Pool, schema: str, checkpointer: Checkpointer, interval_s: float
) -> None:
    """Every ``interval_s``: checkpoint whatever is not covered yet. Runs until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await checkpoint_now(pool, schema, checkpointer)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Next tick retries; the records stay sealed and are covered by a later checkpoint.
            log.exception("periodic checkpoint failed; retrying in %.1fs", interval_s)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
