"""Audit trail benchmark: ingest rate and replay+verify rate beside the raw Kafka consume rate
of the same events, in the same run, on the real Kafka and PostgreSQL.

    uv run python bench/audit/bench_audit.py                 # 1,000,000 events, own stack
    uv run python bench/audit/bench_audit.py --events 20000  # quicker
    uv run python bench/audit/bench_audit.py --bootstrap 127.0.0.1:9092 \
        --dsn postgresql://postgres@127.0.0.1:5433/paved     # an existing stack

Steps (each on fresh, uniquely named topics and schemas):
1. produce N lifecycle events (the 7 sample types, fresh ids) to an input topic;
2. raw consume: a bare aiokafka consumer reads the N events (no parsing): the ceiling;
3. ingest: the audit runtime (real consumer, chain, checkpoints every 1000 records,
   outbox to the audit topic) seals all N and publishes them;
4. replay+verify: ``replay_topic`` reads the audit topic alone into an empty schema,
   verifies chain, tree and signatures, and compares the rebuilt root with the last
   signed checkpoint. Also timed: ``verify_topic`` alone.

Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from paved_shared.kafka import kafka_auth


def sample_templates() -> list[dict[str, Any]]:
    """One envelope (as JSON) per lifecycle contract, from its documented example data;
    ids are replaced per event."""
    from paved_schemas.envelope import Envelope
    from paved_schemas.events import (
        ApprovalGranted,
        DeploymentStatusChanged,
        ModelVersionRegistered,
        ModelVersionStateChanged,
        ModelVersionValidated,
        RequestDeployment,
    )
    from paved_schemas.jsonschema import example_data

    contracts = (ModelVersionRegistered, ModelVersionStateChanged, ModelVersionValidated,
                 ApprovalGranted, RequestDeployment, DeploymentStatusChanged)  # fmt: skip
    envelopes = [
        Envelope.new(
            c.model_validate(example_data(c)),
            source="/paved/bench",
            actor="user:bench",
            actorname="Bench Runner",
        )
        for c in contracts
    ]
    return [json.loads(e.to_json_bytes()) for e in envelopes]


@contextlib.asynccontextmanager
async def stack(args: argparse.Namespace) -> AsyncIterator[tuple[str, str]]:
    """(bootstrap, dsn): the one given, or a fresh Kafka + PostgreSQL in a temp folder."""
    if args.bootstrap and args.dsn:
        yield args.bootstrap, args.dsn
        return
    from paved_shared.devstack import DevStack

    run_dir = Path(tempfile.mkdtemp(prefix="paved-bench-"))
    os.chmod(run_dir, 0o755)
    shared = DevStack.from_env().kafka
    shared.fetch()
    dev = DevStack.ephemeral(run_dir)
    dev.kafka.libs.symlink_to(shared.libs, target_is_directory=True)
    try:
        await asyncio.to_thread(dev.up)
        yield dev.kafka.bootstrap, dev.postgres.dsn
    finally:
        await asyncio.to_thread(dev.down)
        shutil.rmtree(run_dir, ignore_errors=True)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} events/s  ({seconds:8.1f} s)"


async def produce(bootstrap: str, topic: str, n: int) -> float:
    templates = sample_templates()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(),
        acks="all", enable_idempotence=True, linger_ms=20,
        max_batch_size=512 * 1024,
    )  # fmt: skip
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for i in range(n):
            doc = dict(templates[i % len(templates)])
            doc["id"] = str(uuid.uuid4())
            pending.append(
                await producer.send(topic, json.dumps(doc).encode(), key=b"%d" % (i % 64))
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(),
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    try:
        known = consumer.partitions_for_topic(topic) or await _parts(consumer, topic)
        parts = [TopicPartition(topic, p) for p in sorted(known)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        started = time.perf_counter()
        seen = 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            seen += sum(len(v) for v in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _parts(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or {0}


async def wait_until(probe: Callable[[], Any], what: str, every_s: float = 10.0) -> None:
    started = time.perf_counter()
    last = started
    while True:
        done, progress = await probe()
        if done:
            return
        now = time.perf_counter()
        if now - last >= every_s:
            print(f"  ... {what}: {progress} after {now - started:.0f} s", flush=True)
            last = now
        await asyncio.sleep(0.5)


async def ingest(bootstrap: str, dsn: str, inbound: str, dlq: str, out: str, n: int,
                 key: Path) -> tuple[float, str]:  # fmt: skip
    from paved_audit.bootstrap import create_app
    from paved_audit.settings import AuditSettings
    from paved_shared.outbox import pending_count
    from prometheus_client import CollectorRegistry
    from pydantic import PostgresDsn

    schema = "bench_" + uuid.uuid4().hex[:10]
    settings = AuditSettings(
        kafka_bootstrap=bootstrap, database_url=PostgresDsn(dsn), audit_db_schema=schema,
        audit_consumer_group="bench-" + uuid.uuid4().hex[:10], audit_topics=(inbound,),
        audit_dead_letter_topic=dlq, audit_output_topic=out, audit_checkpoint_key_path=key,
        audit_checkpoint_every_records=1000, audit_checkpoint_interval_s=2.0,
        log_json=False, log_level="WARNING", db_pool_max=4,
    )  # fmt: skip
    app = create_app(settings, metrics_registry=CollectorRegistry())
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        pool = app.state.runtime.pool

        async def sealed() -> tuple[bool, str]:
            async with pool.acquire() as conn:
                count = await conn.fetchval("SELECT count(*) FROM audit_records")
                size = await conn.fetchval("SELECT max(tree_size) FROM audit_checkpoints")
            waiting = await pending_count(pool)
            done = count == n and size == n and waiting == 0
            return done, f"{count:,} sealed, {waiting:,} to publish, checkpoint size {size}"

        await wait_until(sealed, "ingest")
        elapsed = time.perf_counter() - started
    return elapsed, schema


async def main_async(args: argparse.Namespace) -> int:
    from paved_audit.adapters.file_signer import FileSigner, public_key_path
    from paved_audit.domain.checkpoint import load_public_key
    from paved_audit.replay import replay_topic
    from paved_audit.verify import verify_topic
    from paved_schemas import topics
    from paved_shared.kafka import ensure_topics
    from paved_shared.testing import TopicSpec

    n = args.events
    async with stack(args) as (bootstrap, dsn):
        run = uuid.uuid4().hex[:10]
        inbound, dlq, out = f"bench.{run}.in", f"bench.{run}.dlq", f"bench.{run}.audit"
        spec = topics.topic_spec(topics.AUDIT)
        await ensure_topics(bootstrap, [TopicSpec(inbound, 3), TopicSpec(dlq, 3),
                                        TopicSpec(out, 1, dict(spec.config))])  # fmt: skip
        key = Path(tempfile.mkdtemp(prefix="paved-bench-key-")) / "checkpoint.pem"
        FileSigner(key, create_if_missing=True).load()  # a throwaway bench key
        public = load_public_key(public_key_path(key).read_text())
        print(f"audit bench: {n:,} events, Kafka {bootstrap}", flush=True)

        produced = await produce(bootstrap, inbound, n)
        print(f"produce              {rate(n, produced)}", flush=True)
        consumed = await raw_consume(bootstrap, inbound, n)
        print(f"raw Kafka consume    {rate(n, consumed)}", flush=True)
        ingested, schema = await ingest(bootstrap, dsn, inbound, dlq, out, n, key)
        print(f"audit ingest         {rate(n, ingested)}", flush=True)

        started = time.perf_counter()
        verified = await verify_topic(bootstrap, out, public_key=public, timeout_s=7200)
        verify_s = time.perf_counter() - started
        print(f"verify topic         {rate(n, verify_s)}  ok={verified.ok}", flush=True)
        started = time.perf_counter()
        replay = await replay_topic(bootstrap, dsn, schema + "_replay", topic=out,
                                    public_key=public, timeout_s=7200)  # fmt: skip
        replay_s = time.perf_counter() - started
        print(f"replay+verify        {rate(n, replay_s)}  ok={replay.ok}", flush=True)
        print()
        print(f"{'events':<24}{n:>14,}")
        print(f"{'raw Kafka consume':<24}{n / consumed:>14,.0f} events/s")
        print(f"{'audit ingest':<24}{n / ingested:>14,.0f} events/s")
        print(f"{'verify (topic)':<24}{n / verify_s:>14,.0f} events/s")
        print(f"{'replay+verify':<24}{n / replay_s:>14,.0f} events/s")
        cp = replay.checkpoint
        print(f"{'signed checkpoints':<24}{verified.checkpoints_valid:>14,}")
        print(f"{'last signed root':<24}{cp.body.root_hash if cp else '-'}")
        print(f"replay reproduces the signed root: {'yes' if replay.matches else 'NO'}")
        return 0 if replay.ok and verified.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="how many events")
    parser.add_argument("--bootstrap", help="Kafka bootstrap of a running stack")
    parser.add_argument("--dsn", help="PostgreSQL DSN of a running stack")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error(f"--events must be at least 1, got {args.events}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
