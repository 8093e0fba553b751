"""The audit worker on the real Kafka and PostgreSQL: every event sealed once, in the
table and on the audit topic, and the chain verifies from both."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from paved_audit.bootstrap import create_runtime
from paved_audit.domain.chain import canonicalize, chain_hash
from paved_audit.settings import AuditSettings
from paved_audit.verify import (
    ErrorKind,
    read_database_records,
    read_topic_records,
    verify_database,
    verify_topic,
)
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import AuditRecordSealed, DeadLetterRecorded
from paved_shared.db import Pool, create_pool
from paved_shared.devstack import free_port
from paved_shared.kafka import ensure_topics, kafka_auth
from paved_shared.outbox import pending_count
from paved_shared.testing import TopicSpec, unique, wait_for
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration


async def _test_topics(bootstrap: str) -> tuple[dict[str, str], str, str]:
    """Test-only copies of the lifecycle topics, dead-letter topic and audit topic."""
    await ensure_topics(bootstrap, topics.ALL_TOPICS)
    run = uuid.uuid4().hex[:10]
    inputs = {t: f"test.{run}.{t}" for t in topics.LIFECYCLE_TOPICS if t != topics.DEAD_LETTER}
    dlq, out = f"test.{run}.{topics.DEAD_LETTER}", f"test.{run}.{topics.AUDIT}"
    audit_spec = topics.topic_spec(topics.AUDIT)
    await ensure_topics(
        bootstrap,
        [
            *(TopicSpec(name, 3) for name in inputs.values()),
            TopicSpec(dlq, 3),
            TopicSpec(out, audit_spec.partitions, dict(audit_spec.config)),
        ],
    )
    return inputs, dlq, out


async def _publish(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _caught_up(bootstrap: str, group: str, names: list[str]) -> bool:
    """True when ``group`` has committed the end offset of every partition of ``names``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_auth().aiokafka())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_auth().aiokafka())
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition(n, p) for n in names for p in range(3)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
        await admin.close()
    return all(end == 0 or (tp in committed and committed[tp].offset >= end)
               for tp, end in ends.items())  # fmt: skip


async def _count(pool: Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        n: int = await conn.fetchval(sql, *args)
        return n


async def _settled(pool: Pool, n: int, bootstrap: str, group: str, names: list[str]) -> bool:
    return (
        await _count(pool, "SELECT count(*) FROM audit_records") == n
        and await pending_count(pool) == 0
        and await _caught_up(bootstrap, group, names)
    )


async def test_every_event_is_sealed_once_in_table_and_topic_and_verifies(
    stack: Any, make_envelopes: Any
) -> None:
    inputs, dlq, out = await _test_topics(stack.bootstrap)
    schema, group = unique("t_audit"), unique("g_audit")
    settings = AuditSettings(
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        audit_db_schema=schema,
        audit_consumer_group=group,
        audit_topics=tuple(inputs.values()),
        audit_dead_letter_topic=dlq,
        audit_output_topic=out,
        log_json=False,
    )
    envs: list[Envelope[Any]] = make_envelopes("svc")
    assert len({e.data.TOPIC for e in envs}) >= 6, "events on most lifecycle topics"
    messages = [(inputs[e.data.TOPIC], e.data.key().encode(), e.to_json_bytes()) for e in envs]
    # Redelivered: the same envelopes again.
    messages += [messages[0], messages[4]]
    # A producer on a newer release adds attributes this release does not know.
    future = json.loads(make_envelopes("future")[1].to_json_bytes())
    future["futureext"] = "kept"
    future["data"]["future_field"] = [1, 2.5]
    messages.append((inputs[topics.MODEL_EVENTS], b"future", json.dumps(future).encode()))
    # Poison: dead-lettered by the audit consumer itself, and the dead letter is sealed.
    messages.append((inputs[topics.MODEL_EVENTS], b"poison", b"{not json"))
    expected = len(envs) + 2  # + future + the dead letter

    runtime = create_runtime(settings, metrics_registry=CollectorRegistry())
    await runtime.start()
    try:
        await _publish(stack.bootstrap, messages)
        names = [*inputs.values(), dlq]
        await wait_for(
            lambda: _settled(runtime.pool, expected, stack.bootstrap, group, names),
            timeout_s=60,
            what=f"{expected} sealed records, outbox drained, offsets committed",
        )
        rows = await runtime.pool.fetch("SELECT * FROM audit_records ORDER BY sequence")
        db_report = await verify_database(runtime.pool)
    finally:
        await runtime.stop()

    # Each event exactly once in the table, stored exactly as canonicalised.
    ids = Counter(r["event_id"] for r in rows)
    assert all(ids[e.id] == 1 for e in envs), ids
    assert ids[future["id"]] == 1
    assert len(rows) == expected == len(ids)
    assert [r["sequence"] for r in rows] == list(range(expected))
    by_id = {r["event_id"]: r for r in rows}
    for env in envs:
        row = by_id[env.id]
        assert bytes(row["record"]) == canonicalize(env.to_json_bytes())
        assert (row["event_type"], row["subject"], row["source_topic"]) == (
            env.type, env.subject, inputs[env.data.TOPIC],
        )  # fmt: skip
    kept = json.loads(by_id[future["id"]]["record"])
    assert kept["futureext"] == "kept"
    assert kept["data"]["future_field"] == [1, 2.5]

    # The poison message's gap is in the trail: a sealed DeadLetterRecorded naming it.
    [dead] = [r for r in rows if r["event_type"] == DeadLetterRecorded.TYPE]
    assert dead["source_topic"] == dlq
    dead_data = json.loads(dead["record"])["data"]
    assert dead_data["source_topic"] == inputs[topics.MODEL_EVENTS]
    assert dead_data["consumer_group"] == group
    assert base64.b64decode(dead_data["original_value"]) == b"{not json"

    # The same records, once each, on the audit topic; the chain verifies from both copies.
    read = await read_topic_records(stack.bootstrap, out)
    sealed_ids = Counter(json.loads(r.record)["id"] for r in read.records)
    assert sealed_ids == ids
    assert [(r.sequence, r.prev_hash, r.record_hash, r.record) for r in read.records] == [
        (r["sequence"], r["prev_hash"], r["record_hash"], bytes(r["record"])) for r in rows
    ]
    topic_report = await verify_topic(stack.bootstrap, out)
    assert db_report.ok, db_report.summary_lines()
    assert topic_report.ok, topic_report.summary_lines()
    assert db_report.records_valid == topic_report.records_valid == expected
    assert db_report.head_hash == topic_report.head_hash == rows[-1]["record_hash"]
    assert f"{expected}/{expected} audit records valid" in topic_report.summary_lines()

    # An exact re-publish (the outbox relay is at-least-once) is collapsed, not an error.
    raw = await _first_message(stack.bootstrap, out)
    await _publish(stack.bootstrap, [(out, None, raw)])
    again = await verify_topic(stack.bootstrap, out)
    assert again.ok, again.summary_lines()
    assert again.redelivered == 1

    # A forged record, perfectly chained onto the head but replaying event 0, is named.
    head = read.records[-1]
    forged = AuditRecordSealed(
        sequence=expected,
        event_id=envs[0].id,
        event_type=envs[0].type,
        event_time=envs[0].time,
        source_topic=inputs[topics.MODEL_EVENTS],
        source_partition=0,
        source_offset=0,
        record=rows[0]["record"].decode(),
        prev_hash=head.record_hash,
        record_hash=chain_hash(head.record_hash, bytes(rows[0]["record"])),
        sealed_at=rows[0]["sealed_at"],
    )
    forged_env = Envelope.new(forged, source="/paved/mallory", actor="user:mallory",
                              actorname="Mallory")  # fmt: skip
    await _publish(stack.bootstrap, [(out, None, forged_env.to_json_bytes())])
    tampered = await verify_topic(stack.bootstrap, out)
    assert tampered.error is not None
    assert tampered.error.kind is ErrorKind.DUPLICATE
    assert tampered.error.sequence == expected
    assert "already sealed at sequence 0" in tampered.error.message
    assert tampered.records_valid == expected


async def _first_message(bootstrap: str, topic: str) -> bytes:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        message = await consumer.getone(tp)
        value: bytes | None = message.value
        assert value is not None
        return value
    finally:
        await consumer.stop()


def _worker_env(
    stack: Any, schema: str, group: str, topic: str, dlq: str, out: str, key_path: Path
) -> dict[str, str]:
    # The session's Kafka credentials stay (the broker needs SASL); other settings go.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAVED_") or k.startswith("PAVED_KAFKA_")
    }
    env.update(
        PAVED_KAFKA_BOOTSTRAP=stack.bootstrap,
        PAVED_DATABASE_URL=stack.dsn,
        PAVED_AUDIT_DB_SCHEMA=schema,
        PAVED_AUDIT_CONSUMER_GROUP=group,
        PAVED_AUDIT_TOPICS=json.dumps([topic]),
        PAVED_AUDIT_DEAD_LETTER_TOPIC=dlq,
        PAVED_AUDIT_OUTPUT_TOPIC=out,
        PAVED_AUDIT_HTTP_PORT=str(free_port()),
        PAVED_AUDIT_CHECKPOINT_KEY_PATH=str(key_path),
        PAVED_LOG_JSON="false",
    )
    return env


async def test_worker_process_killed_after_sealing_seals_nothing_twice(
    stack: Any, make_envelopes: Any, tmp_path: Path
) -> None:
    inputs, dlq, out = await _test_topics(stack.bootstrap)
    topic = inputs[topics.MODEL_EVENTS]
    schema, group = unique("t_audit"), unique("g_audit")
    env = _worker_env(stack, schema, group, topic, dlq, out, tmp_path / "key.pem")
    envs = make_envelopes("proc")[:3]
    # One key: one partition, so the killed record is redelivered before the others.
    await _publish(stack.bootstrap, [(topic, b"proc", e.to_json_bytes()) for e in envs])
    cmd = [sys.executable, "-m", "paved_audit"]

    # SIGKILLed right after its first batch committed, before the Kafka offset commit.
    killed = await asyncio.to_thread(
        subprocess.run, cmd, env={**env, "PAVED_FAILPOINTS": "consumer.after_effect=kill"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    pool = await create_pool(stack.dsn, schema=schema)
    proc = subprocess.Popen(  # noqa: ASYNC220 - a child we stop below
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # The first batch (1 to 3 records) committed; its offsets were not.
        assert 1 <= await _count(pool, "SELECT count(*) FROM audit_records") <= 3
        await wait_for(
            lambda: _settled(pool, 3, stack.bootstrap, group, [topic, dlq]),
            timeout_s=60,
            what="the restarted worker to seal the rest",
        )
        records = await read_database_records(pool)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        await pool.close()
    # uvicorn re-raises the SIGTERM it handled, after a clean shutdown.
    assert proc.returncode in (0, -signal.SIGTERM), output[-3000:]
    assert "Application shutdown complete" in output
    assert "already sealed" in output or "duplicate event skipped" in output
    assert [json.loads(r.record)["id"] for r in records] == [e.id for e in envs]
    topic_report = await verify_topic(stack.bootstrap, out)
    assert topic_report.ok, topic_report.summary_lines()
    assert topic_report.records_valid == 3
