"""Test helpers for integration tests against the real Kafka and PostgreSQL.

Shipped with the package so every service's tests use the same ones; nothing in
the runtime imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from paved_schemas.envelope import Envelope
from paved_schemas.events import ModelVersionRetired

from paved_shared.db import Connection, Pool, create_pool, migrate, shared_migrations
from paved_shared.kafka import ensure_topics, kafka_auth


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def new_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"test.{uuid.uuid4().hex[:12]}"
    await ensure_topics(bootstrap, [TopicSpec(name, partitions)])
    return name


async def service_pool(dsn: str, schema: str) -> Pool:
    """A pool on a fresh schema with the shared tables and a test ``effects`` table."""
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=5)
    await migrate(pool, schema, shared_migrations())
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS effects (event_id text, model_name text, "
            "applied_at timestamptz DEFAULT now())"
        )
    return pool


async def record_effect(env: Envelope[Any], conn: Connection) -> None:
    """The effect the probe consumers apply: one row per application (no unique key,
    so a double application is visible as two rows)."""
    data = env.data
    await conn.execute(
        "INSERT INTO effects (event_id, model_name) VALUES ($1, $2)",
        env.id,
        getattr(data, "model_name", None),
    )


def sample_event(model: str = "churn", version: int = 1) -> Envelope[ModelVersionRetired]:
    return Envelope.new(
        ModelVersionRetired(model_name=model, version=version, reason="superseded by v2",
                            retired_by="alice"),
        source="/paved/test",
        actor="user:alice",
        actorname="Alice Example",
    )  # fmt: skip


async def read_all(
    bootstrap: str, topic: str, expect: int, timeout_s: float = 20.0
) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """Read a topic from the start until ``expect`` records arrived (or time runs out)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        **kafka_auth().aiokafka(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out.extend((r.key, r.value or b"", dict(r.headers or ())) for r in records)
        # Linger briefly to catch records beyond the expected count.
        for records in (await consumer.getmany(timeout_ms=500)).values():
            out.extend((r.key, r.value or b"", dict(r.headers or ())) for r in records)
    finally:
        await consumer.stop()
    return out


async def committed_offset(
    bootstrap: str, group: str, topic: str, partition: int = 0
) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_auth().aiokafka())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        meta = offsets.get(TopicPartition(topic, partition))
        return None if meta is None else int(meta.offset)
    finally:
        await admin.close()


async def wait_for(
    probe: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def drop_roles(admin_dsn: str, prefix: str) -> None:
    """Drop every role named ``prefix*`` and what it owns (roles a test provisioned with
    ``paved_shared.dbroles.provision_roles(..., role_prefix=prefix)``)."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        roles = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE $1", prefix + "%")
        for r in roles:
            await conn.execute(f'DROP OWNED BY "{r["rolname"]}" CASCADE')
        for r in roles:
            await conn.execute(f'DROP ROLE "{r["rolname"]}"')
    finally:
        await conn.close()


async def start_group_at_end(bootstrap: str, group: str, names: tuple[str, ...]) -> None:
    """Commit ``group``'s offsets at the end of ``names``, so a new service consumes only
    what this test sends, not the whole history other tests left on the shared topics."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        **kafka_auth().aiokafka(),
    )  # fmt: skip
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for attempt in range(2):
            partitions = [
                TopicPartition(name, p)
                for name in names
                for p in sorted(consumer.partitions_for_topic(name) or ())
            ]
            if partitions or attempt:
                break
            await consumer._client.force_metadata_update()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()


@dataclass
class Served:
    """An ASGI app behind a real uvicorn on 127.0.0.1 (its own thread and event loop)."""

    url: str
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's own event loop (its pools live there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)


@contextlib.contextmanager
def serving(
    app: Any, *, before: Callable[[], Awaitable[None]] | None = None, start_timeout_s: float = 60
) -> Iterator[Served]:
    """Serve ``app`` (lifespan on) on a free loopback port until the block ends; ``before``
    runs on the server's loop first. For HTTP clients that need a real socket."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", access_log=False, workers=1)
    )
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        async def main() -> None:
            loops.append(asyncio.get_running_loop())
            if before is not None:
                await before()
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=serve, name=f"serving-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server thread on port {port} died while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} did not start in {start_timeout_s} s")
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", loops[0])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
