"""The validator process logic on the real Kafka and PostgreSQL: registrations in,
validation results out through the outbox, evidence on disk, no double validation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from paved_schemas import topics
from paved_schemas.envelope import Envelope, parse_envelope
from paved_schemas.events import ModelVersionRegistered, ModelVersionValidated
from paved_shared.db import create_pool
from paved_shared.kafka import ensure_topics, kafka_auth
from paved_shared.testing import unique
from paved_validator.bootstrap import create_runtime
from paved_validator.settings import ValidatorSettings
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration


def _partitions(topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(topics.topic_spec(topic).partitions)]


async def _start_group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit `group`'s offsets at the end of `topic`, so it sees only what this test sends
    (the session's Kafka is shared with other tests)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_auth().aiokafka(),
    group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        partitions = _partitions(topic)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


class ResultReader:
    """Reads ModelVersionValidated events for some model names, from 'now' on."""

    def __init__(self, bootstrap: str, models: set[str]) -> None:
        self.models = models
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), enable_auto_commit=False
        )
        self.seen: list[Envelope[Any]] = []

    async def start(self) -> None:
        await self.consumer.start()
        partitions = _partitions(topics.VALIDATION_EVENTS)
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end position now, before anything is published
            await self.consumer.position(tp)

    async def until(self, done, timeout_s: float = 90.0) -> list[Envelope[Any]]:
        deadline = time.monotonic() + timeout_s
        while not done(self.seen):
            assert time.monotonic() < deadline, f"timed out; results so far: {self.seen}"
            for records in (await self.consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    env = parse_envelope(record.value or b"")
                    if getattr(env.data, "model_name", None) in self.models:
                        self.seen.append(env)
        return self.seen

    def results(self, model: str, version: int) -> list[ModelVersionValidated]:
        return [
            e.data
            for e in self.seen
            if isinstance(e.data, ModelVersionValidated)
            and (e.data.model_name, e.data.version) == (model, version)
        ]

    async def stop(self) -> None:
        await self.consumer.stop()


def _registered(reg: ModelVersionRegistered) -> Envelope[ModelVersionRegistered]:
    return Envelope.new(reg, source="/paved/registry", actor="user:alice",
                        actorname="Alice Scientist")  # fmt: skip


async def _publish(producer: AIOKafkaProducer, env: Envelope[Any]) -> None:
    await producer.send_and_wait(
        topics.MODEL_EVENTS, value=env.to_json_bytes(), key=env.data.key().encode()
    )


async def test_registrations_are_validated_once_with_evidence(stack, tmp_path: Path, vt) -> None:
    await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
    schema, group = unique("t_validator"), unique("validator")
    await _start_group_at_end(stack.bootstrap, group, topics.MODEL_EVENTS)
    artifacts = tmp_path / "artifacts"
    path, digest = vt.write_artifact(artifacts, vt.train_model())
    good, bad = unique("val-good").replace("_", "-"), unique("val-bad").replace("_", "-")
    wrong = "sha256:" + "0" * 64

    settings = ValidatorSettings(
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        validator_db_schema=schema,
        validator_consumer_group=group,
        validator_evidence_dir=tmp_path / "evidence",
        validator_artifact_root=artifacts,
        validator_sandbox_timeout_s=60,
    )
    runtime = create_runtime(settings, metrics_registry=CollectorRegistry())
    reader = ResultReader(stack.bootstrap, {good, bad})
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, **kafka_auth().aiokafka(), acks="all"
    )
    await reader.start()
    await producer.start()
    await runtime.start()
    try:
        good_env = _registered(vt.registration(path.as_uri(), digest, model_name=good))
        bad_env = _registered(vt.registration(path.as_uri(), wrong, model_name=bad))
        await _publish(producer, good_env)
        await _publish(producer, bad_env)
        await reader.until(lambda seen: len(seen) >= 2)

        [passed] = reader.results(good, 1)
        assert passed.passed, passed.reasons
        assert passed.artifact_digest == digest
        assert [(c.name, c.outcome.value) for c in passed.checks] == [
            ("size", "passed"),
            ("digest", "passed"),
            ("signature", "skipped"),  # unsigned, risk tier low
            ("format", "passed"),
            ("scan", "passed"),
            ("smoke_inference", "passed"),
            ("latency", "passed"),
            ("metrics", "skipped"),  # no thresholds declared
        ]
        # Next to the artifact, through its store; the HTML page beside it.
        evidence = Path(unquote(urlparse(passed.evidence_uri).path))
        assert evidence.parent == artifacts / "model.pkl.evidence"
        assert evidence.with_suffix(".html").is_file()
        data = await asyncio.to_thread(evidence.read_bytes)  # the evidence file exists
        assert passed.evidence_digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert b'"sandbox_profile"' in data
        assert b'"passed":true' in data
        good_result_env = next(e for e in reader.seen if e.data is passed)
        assert good_result_env.causationid == good_env.id
        assert good_result_env.correlationid == good_env.correlationid
        assert good_result_env.actor == "service:validator"

        [failed] = reader.results(bad, 1)
        assert not failed.passed
        assert len(failed.reasons) == 1
        assert failed.reasons[0].startswith("digest: ")
        assert digest in failed.reasons[0]
        assert wrong in failed.reasons[0]
        assert [c.outcome.value for c in failed.checks] == ["passed", "failed", *["skipped"] * 6]

        # A redelivery (same event id) and a re-sent registration (new id, same version)
        # must not validate again. A later event on the same key (same partition, handled
        # in order) tells us when both have been processed.
        await _publish(producer, good_env)
        await _publish(producer, _registered(good_env.data))
        sentinel = vt.registration(path.as_uri(), wrong, model_name=good, version=2)
        await _publish(producer, _registered(sentinel))
        await reader.until(lambda seen: any(
            isinstance(e.data, ModelVersionValidated) and e.data.version == 2 for e in seen
        ))  # fmt: skip
        assert len(reader.results(good, 1)) == 1, "a version must be validated once"
        assert not reader.results(good, 2)[0].passed

        pool = await create_pool(stack.dsn, schema=schema, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT model_name, version, passed, evidence_digest FROM validations "
                    "ORDER BY model_name, version"
                )
                processed = await conn.fetchval(
                    "SELECT count(*) FROM processed_events WHERE consumer_group = $1", group
                )
        finally:
            await pool.close()
        assert [(r["model_name"], r["version"], r["passed"]) for r in rows] == sorted(
            [(bad, 1, False), (good, 1, True), (good, 2, False)]
        )
        assert {r["evidence_digest"] for r in rows} >= {passed.evidence_digest}
        assert processed == 4  # good, bad, the re-sent copy and the sentinel; not the redelivery
    finally:
        await runtime.stop()
        await producer.stop()
        await reader.stop()


async def test_the_worker_process_validates_and_stops_on_sigterm(stack, tmp_path: Path, vt) -> None:
    """`python -m paved_validator` as a real process, configured only through PAVED_* env."""
    await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
    group = unique("validator")
    await _start_group_at_end(stack.bootstrap, group, topics.MODEL_EVENTS)
    path, digest = vt.write_artifact(tmp_path / "artifacts", vt.train_model())
    model = unique("val-proc").replace("_", "-")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAVED_")},
        # test groups are not in the ACL map: the administrator (ACLs: tests/security)
        **stack.service_env("admin"),
        "PAVED_KAFKA_BOOTSTRAP": stack.bootstrap,
        "PAVED_DATABASE_URL": stack.dsn,
        "PAVED_VALIDATOR_DB_SCHEMA": unique("t_validator"),
        "PAVED_VALIDATOR_CONSUMER_GROUP": group,
        "PAVED_VALIDATOR_EVIDENCE_DIR": str(tmp_path / "evidence"),
        "PAVED_VALIDATOR_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "PAVED_LOG_JSON": "false",
    }
    reader = ResultReader(stack.bootstrap, {model})
    await reader.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paved_validator", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, **kafka_auth().aiokafka(), acks="all"
    )
    await producer.start()
    try:
        await _publish(producer, _registered(vt.registration(path.as_uri(), digest,
                                                             model_name=model)))  # fmt: skip
        [result] = [e.data for e in await reader.until(lambda seen: len(seen) >= 1)]
        assert isinstance(result, ModelVersionValidated)
        assert result.passed, result.reasons
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, stderr.decode()[-3000:]
        assert b"validator stopped" in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await producer.stop()
        await reader.stop()
