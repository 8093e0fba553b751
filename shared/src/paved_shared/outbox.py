"""Transactional outbox: write events in the same transaction as the state change,
and a relay that publishes them to Kafka at least once, in order.

A relay killed after a publish but before marking the row sent publishes the row
again on restart: the duplicate carries the same event id, and idempotent
consumers (``paved_shared.consumer``) apply it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from paved_shared.db import Connection, Pool, check_identifier
from paved_shared.failpoints import failpoint
from paved_shared.kafka import KafkaAuth, kafka_auth
from paved_shared.telemetry import context_from_headers, current_trace_headers

log = logging.getLogger(__name__)


class OutboxEvent(Protocol):
    """What the outbox needs of an event envelope."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    def to_json_bytes(self) -> bytes: ...


async def enqueue(
    conn: Connection,
    *,
    topic: str,
    key: str | bytes | None,
    event: OutboxEvent,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Add ``event`` to the outbox on ``conn`` (call inside the state-change transaction).

    The current W3C trace context is stored with the row so the relay's publish, and
    every consumer after it, continue the trace of the request that caused it.
    Returns the row's sequence number. Enqueuing the same event id twice is a no-op.
    """
    all_headers = {"ce_id": event.id, "ce_type": event.type, "content-type": "application/json"}
    all_headers.update(current_trace_headers())
    all_headers.update(headers or {})
    raw_key = key.encode() if isinstance(key, str) else key
    seq: int | None = await conn.fetchval(
        "INSERT INTO outbox (event_id, topic, key, value, headers) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING seq",
        event.id, topic, raw_key, event.to_json_bytes(), all_headers,
    )  # fmt: skip
    if seq is None:
        seq = await conn.fetchval("SELECT seq FROM outbox WHERE event_id = $1", event.id)
    assert seq is not None
    return seq


class OutboxRelay:
    """Publishes unsent outbox rows of one schema, oldest first, then marks them sent.

    Only one relay per schema is active at a time (a session advisory lock), which
    keeps per-key order; others wait as hot standbys.
    """

    def __init__(
        self,
        pool: Pool,
        schema: str,
        bootstrap: str,
        *,
        client_id: str,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        tracer_provider: trace.TracerProvider | None = None,
        auth: KafkaAuth | None = None,
    ) -> None:
        self.pool = pool
        self.auth = kafka_auth(auth)
        self.schema = check_identifier(schema)
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.published_total = 0
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("paved.outbox")
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        """Run until ``stop()``: take leadership, then drain on every notify or poll tick."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-outbox",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            **self.auth.aiokafka(),
        )
        await producer.start()
        self._producer = producer
        try:
            async with self.pool.acquire() as leader_conn:
                await self._become_leader(leader_conn)
                await leader_conn.add_listener(f"paved_outbox_{self.schema}", self._on_notify)
                try:
                    while not self._stopping.is_set():
                        try:
                            sent = await self.drain_once()
                        except (TimeoutError, OSError) as exc:
                            log.warning("outbox relay: transient error, retrying: %s", exc)
                            sent = 0
                            await asyncio.sleep(1.0)
                        if sent < self.batch_size:
                            self._wake.clear()
                            with contextlib.suppress(asyncio.TimeoutError):
                                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                finally:
                    with contextlib.suppress(Exception):
                        await leader_conn.remove_listener(
                            f"paved_outbox_{self.schema}", self._on_notify
                        )
                    with contextlib.suppress(Exception):
                        await leader_conn.execute(
                            "SELECT pg_advisory_unlock(hashtext($1))", self._lock_key
                        )
        finally:
            self._producer = None
            await producer.stop()

    @property
    def _lock_key(self) -> str:
        return f"paved-outbox:{self.schema}"

    async def _become_leader(self, conn: Connection) -> None:
        while not self._stopping.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key):
                return
            await asyncio.sleep(self.poll_interval_s)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def drain_once(self) -> int:
        """Publish one batch of unsent rows in seq order; return how many were sent."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("relay not running")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seq, event_id, topic, key, value, headers FROM outbox "
                "WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                self.batch_size,
            )
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers: dict[str, str] = dict(row["headers"])
                parent = context_from_headers(headers)
                with self._tracer.start_as_current_span(
                    f"{row['topic']} publish",
                    context=parent,  # type: ignore[arg-type]
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": row["topic"],
                        "messaging.message.id": row["event_id"],
                    },
                ):
                    headers.update(current_trace_headers())
                    futures.append(
                        await producer.send(
                            row["topic"],
                            value=row["value"],
                            key=row["key"],
                            headers=[(k, v.encode()) for k, v in headers.items()],
                        )
                    )
            try:
                await asyncio.gather(*futures)
            except Exception as exc:
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 "
                    "WHERE seq = ANY($1::bigint[])",
                    [r["seq"] for r in rows], repr(exc)[:1000],
                )  # fmt: skip
                raise
            failpoint("outbox.after_publish")
            await conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1 "
                "WHERE seq = ANY($1::bigint[])",
                [r["seq"] for r in rows],
            )
            self.published_total += len(rows)
            return len(rows)


async def pending_count(pool: Pool) -> int:
    """How many outbox rows wait to be published (for health and metrics)."""
    async with pool.acquire() as conn:
        n: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return n


async def _relay_main(dsn: str, schema: str, bootstrap: str, once: bool) -> None:
    from paved_shared.db import create_pool

    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=3)
    relay = OutboxRelay(pool, schema, bootstrap, client_id=f"outbox-{schema}")
    try:
        if once:
            task = asyncio.create_task(relay.run())
            while await pending_count(pool):  # noqa: ASYNC110 - polling another process's table
                await asyncio.sleep(0.1)
            relay.stop()
            await task
        else:
            await relay.run()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m paved_shared.outbox --dsn DSN --schema S --bootstrap B [--once]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Run the outbox relay of one service schema.")
    parser.add_argument("--dsn", required=True, help="PostgreSQL DSN")
    parser.add_argument("--schema", required=True, help="service schema holding the outbox")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--once", action="store_true", help="exit when the outbox is empty")
    args = parser.parse_args(argv)
    asyncio.run(_relay_main(args.dsn, args.schema, args.bootstrap, args.once))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
