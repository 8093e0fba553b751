"""Outbox, idempotent consumer and dead-lettering against the real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paved_schemas import topics
from paved_schemas.envelope import parse_envelope
from paved_shared.consumer import EventConsumer
from paved_shared.db import Pool
from paved_shared.kafka import ensure_topics, kafka_auth, make_broker
from paved_shared.outbox import OutboxRelay, enqueue, pending_count
from paved_shared.testing import (
    committed_offset,
    new_topic,
    read_all,
    record_effect,
    sample_event,
    service_pool,
    unique,
    wait_for,
)
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent


async def _count(pool: Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        n: int = await conn.fetchval(sql, *args)
        return n


def _run(
    args: list[str], failpoints: str | None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PAVED_FAILPOINTS"}
    if failpoints:
        env["PAVED_FAILPOINTS"] = failpoints
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_outbox_event_survives_relay_killed_between_publish_and_mark(stack) -> None:
    schema = unique("t_outbox")
    topic = await new_topic(stack.bootstrap)
    pool = await service_pool(stack.dsn, schema)
    try:
        event = sample_event("fraud")
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, topic=topic, key="fraud", event=event)

        # A real relay process, killed (SIGKILL) right after the broker acked the publish.
        killed = await asyncio.to_thread(
            _run,
            ["-m", "paved_shared.outbox", "--dsn", stack.dsn, "--schema", schema,
             "--bootstrap", stack.bootstrap, "--once"],
            "outbox.after_publish=kill",
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr
        assert await pending_count(pool) == 1, "the row must still be unsent after the kill"
        first = await read_all(stack.bootstrap, topic, expect=1)
        assert [parse_envelope(v).id for _, v, _ in first] == [event.id]

        # The restarted relay publishes it again and marks it sent.
        again = await asyncio.to_thread(
            _run,
            ["-m", "paved_shared.outbox", "--dsn", stack.dsn, "--schema", schema,
             "--bootstrap", stack.bootstrap, "--once"],
            None,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert await pending_count(pool) == 0
        records = await read_all(stack.bootstrap, topic, expect=2)
        assert [parse_envelope(v).id for _, v, _ in records] == [event.id, event.id]
        assert all(k == b"fraud" for k, _, _ in records)

        # The idempotent consumer applies the event exactly once.
        group = unique("g")
        broker = make_broker(stack.bootstrap, client_id="t", metrics_registry=CollectorRegistry())
        consumer = EventConsumer(broker, pool, group)
        consumer.subscribe(topic, record_effect)
        await broker.start()
        try:
            await wait_for(
                lambda: _offset_is(stack.bootstrap, group, topic, 2), what="both copies consumed"
            )
        finally:
            await broker.stop()
        assert await _count(pool, "SELECT count(*) FROM effects WHERE event_id = $1", event.id) == 1
        assert await _count(pool, "SELECT count(*) FROM processed_events") == 1
    finally:
        await pool.close()


async def _offset_is(bootstrap: str, group: str, topic: str, want: int) -> bool:
    return await committed_offset(bootstrap, group, topic) == want


async def test_consumer_killed_after_effect_before_commit_applies_once(stack) -> None:
    schema = unique("t_inbox")
    topic = await new_topic(stack.bootstrap)
    group = unique("g")
    pool = await service_pool(stack.dsn, schema)
    try:
        event = sample_event("churn")
        producer = make_broker(stack.bootstrap, client_id="t", metrics_registry=CollectorRegistry())
        await producer.start()
        await producer.publish(event.to_json_bytes(), topic=topic, key=b"churn")
        await producer.stop()

        args = [str(HERE / "probe_consumer.py"), stack.bootstrap, stack.dsn, schema, topic, group]
        # The consumer applies the effect, commits its DB transaction, then is SIGKILLed
        # before it can commit the Kafka offset.
        killed = await asyncio.to_thread(_run, args, "consumer.after_effect=kill")
        assert killed.returncode == -9, killed.stdout + killed.stderr
        assert await _count(pool, "SELECT count(*) FROM effects") == 1
        assert await committed_offset(stack.bootstrap, group, topic) in (None, -1, 0)

        # Restarted, it is handed the same record again and recognises it.
        proc = subprocess.Popen(  # noqa: ASYNC220 - a child we kill below
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            await wait_for(
                lambda: _offset_is(stack.bootstrap, group, topic, 1), what="offset commit"
            )
        finally:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
        assert "duplicate event skipped" in out
        assert await _count(pool, "SELECT count(*) FROM effects") == 1
        assert await _count(pool, "SELECT count(*) FROM processed_events") == 1
    finally:
        await pool.close()


async def test_malformed_messages_are_dead_lettered_and_consumer_keeps_going(stack) -> None:
    schema = unique("t_dlq")
    topic = await new_topic(stack.bootstrap)
    dlq = await new_topic(stack.bootstrap)
    group = unique("g")
    pool = await service_pool(stack.dsn, schema)
    broker = make_broker(stack.bootstrap, client_id="t", metrics_registry=CollectorRegistry())
    consumer = EventConsumer(broker, pool, group, deadletter_topic=dlq)
    consumer.subscribe(topic, record_effect)
    good = sample_event("churn")
    bad_field = json.loads(sample_event("x").to_json_bytes())
    bad_field["data"]["version"] = "three"
    try:
        await broker.start()
        await broker.publish(b"{not json", topic=topic, key=b"k")
        await broker.publish(json.dumps(bad_field).encode(), topic=topic, key=b"k")
        await broker.publish(good.to_json_bytes(), topic=topic, key=b"k")
        await wait_for(lambda: _offset_is(stack.bootstrap, group, topic, 3), what="all consumed")
    finally:
        await broker.stop()
    try:
        dead = await read_all(stack.bootstrap, dlq, expect=2)
        assert len(dead) == 2
        for (_, value, headers), offset in zip(dead, (0, 1), strict=True):
            assert headers["x-dlq-source-topic"] == topic.encode()
            assert headers["x-dlq-source-partition"] == b"0"
            assert headers["x-dlq-source-offset"] == str(offset).encode()
            assert headers["x-dlq-consumer-group"] == group.encode()
            record = parse_envelope(value)
            assert record.type == "dev.paved.deadletter.recorded.v1" or "dead" in record.type
            assert record.data.source_offset == offset
        assert b"JSON" in dead[0][2]["x-dlq-reason"] or b"json" in dead[0][2]["x-dlq-reason"]
        reason = dead[1][2]["x-dlq-reason"].decode()
        assert "version" in reason, reason
        assert "three" in reason, reason
        # The original bytes are kept, nothing is lost.
        import base64

        assert base64.b64decode(parse_envelope(dead[0][1]).data.original_value) == b"{not json"
        assert await _count(pool, "SELECT count(*) FROM effects WHERE event_id = $1", good.id) == 1
    finally:
        await pool.close()


async def test_topics_are_created_with_their_retention(stack) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    created = await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
    again = await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
    assert again == []
    assert set(created) <= {t.name for t in topics.ALL_TOPICS}
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap, **kafka_auth().aiokafka())
    await admin.start()
    try:
        res = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.AUDIT)])
        cfg = {c[0]: c[1] for c in res[0].resources[0][4]}
        assert cfg["retention.ms"] == "-1"
        assert cfg["retention.bytes"] == "-1"
        assert cfg["cleanup.policy"] == "delete"
        meta = await admin.describe_topics([topics.AUDIT])
        assert len(meta[0]["partitions"]) == 1
    finally:
        await admin.close()


async def test_relay_publishes_in_order_and_waiters_stand_by(stack) -> None:
    schema = unique("t_order")
    topic = await new_topic(stack.bootstrap)
    pool = await service_pool(stack.dsn, schema)
    events = [sample_event("m", v) for v in range(1, 51)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            for e in events:
                await enqueue(conn, topic=topic, key="m", event=e)
            # Enqueuing the same event twice is a no-op.
            await enqueue(conn, topic=topic, key="m", event=events[0])
        leader = OutboxRelay(pool, schema, stack.bootstrap, client_id="a", batch_size=7)
        standby = OutboxRelay(pool, schema, stack.bootstrap, client_id="b", batch_size=7)
        tasks = [asyncio.create_task(leader.run()), asyncio.create_task(standby.run())]
        await wait_for(lambda: _pending_is(pool, 0), what="outbox drained")
        leader.stop()
        standby.stop()
        await asyncio.gather(*tasks)
        assert leader.published_total + standby.published_total == 50
        assert 0 in (leader.published_total, standby.published_total), "one leader at a time"
        records = await read_all(stack.bootstrap, topic, expect=50)
        assert [parse_envelope(v).id for _, v, _ in records] == [e.id for e in events]
    finally:
        await pool.close()


async def _pending_is(pool: Pool, n: int) -> bool:
    return await pending_count(pool) == n


async def test_permanent_error_dead_letters_at_once_and_rolls_back(stack) -> None:
    from paved_schemas.envelope import Envelope
    from paved_shared.consumer import PermanentError
    from paved_shared.db import Connection

    schema = unique("t_perm")
    topic = await new_topic(stack.bootstrap)
    dlq = await new_topic(stack.bootstrap)
    group = unique("g")
    pool = await service_pool(stack.dsn, schema)

    async def refuse(env: Envelope[object], conn: Connection) -> None:
        await record_effect(env, conn)
        raise PermanentError(f"model {env.data.model_name!r} is not registered")  # type: ignore[attr-defined]

    broker = make_broker(stack.bootstrap, client_id="t", metrics_registry=CollectorRegistry())
    EventConsumer(broker, pool, group, deadletter_topic=dlq).subscribe(topic, refuse)
    event = sample_event("ghost")
    try:
        await broker.start()
        await broker.publish(event.to_json_bytes(), topic=topic, key=b"ghost")
        await wait_for(lambda: _offset_is(stack.bootstrap, group, topic, 1), what="consumed")
    finally:
        await broker.stop()
    try:
        dead = await read_all(stack.bootstrap, dlq, expect=1)
        assert len(dead) == 1
        assert dead[0][2]["x-dlq-reason"] == b"model 'ghost' is not registered"
        assert dead[0][2]["x-dlq-error-type"] == b"PermanentError"
        assert parse_envelope(dead[0][1]).data.original_event_id == event.id
        assert parse_envelope(dead[0][1]).causationid == event.id
        assert await _count(pool, "SELECT count(*) FROM effects") == 0, "effect rolled back"
    finally:
        await pool.close()
