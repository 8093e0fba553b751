"""Attacks on the event bus, on the running platform (every service as its own Kafka
principal, SASL/SCRAM, the StandardAuthorizer, ACLs from `topics.TOPIC_WRITERS`).

Each attack asserts the refusal (by the broker, and by the consumer when a fact gets
onto a topic anyway) and that nothing changed; positive controls show the same path
works for the principal that owns it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from e2e_support import E2E, SIGNATURE, card, read_envelopes, train, wait_state
from paved_cli.sdk import PavedClient, PavedError, publish_command, version_body
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    DeploymentStatusChanged,
    DeploymentTarget,
    ModelCard,
    ModelSignature,
    ModelVersionValidated,
    RegisterModelVersion,
)
from paved_shared.command_identity import identity_headers
from paved_shared.kafka import KafkaAuth

pytestmark = pytest.mark.e2e

CONTRACT_TOPICS = [t.name for t in topics.ALL_TOPICS]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _produce(bootstrap: str, auth: KafkaAuth, topic: str, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> None:  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000, **auth.aiokafka()
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"attack", headers=headers or [])
    finally:
        await producer.stop()


async def _dead_letters_of(e2e: E2E, event_id: str, *, want: int,
                           timeout_s: float = 30) -> list[Any]:  # fmt: skip
    """The dead letters recorded for ``event_id`` (waits until ``want`` arrived)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            e.data
            for e in await read_envelopes(e2e.bootstrap, [topics.DEAD_LETTER])
            if getattr(e.data, "original_event_id", None) == event_id
        ]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def _register(c: PavedClient, model: str, m: Any, tier: str) -> int:
    c.create_model(model, description="security", owner_team="e2e")
    v = c.register_version(
        model,
        version_body(artifact_uri=m.uri, artifact_digest=m.digest, framework="sklearn",
                     signature=SIGNATURE, model_card=card(tier)),
    )  # fmt: skip
    return int(v["version"])


# --- the broker: no anonymous access, no borrowed topics ----------------------------------


async def test_the_broker_has_no_anonymous_listener_and_checks_passwords(e2e: E2E) -> None:
    plaintext = AIOKafkaProducer(bootstrap_servers=e2e.bootstrap, request_timeout_ms=3000,
                                 security_protocol="PLAINTEXT")  # fmt: skip
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(plaintext.start(), 20)
    await plaintext.stop()
    wrong = KafkaAuth(username="paved-approver", password="not-the-password")
    impostor = AIOKafkaProducer(bootstrap_servers=e2e.bootstrap, **wrong.aiokafka())
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(impostor.start(), 20)
    await impostor.stop()


@pytest.mark.parametrize("principal", topics.ALL_PRINCIPALS)
async def test_each_principal_writes_only_the_topics_it_owns(e2e: E2E, principal: str) -> None:
    """Every (principal, topic) write the ownership map does not grant is refused by the
    broker; nothing is appended (the end offsets do not move)."""
    forbidden = [t for t in CONTRACT_TOPICS if principal not in topics.TOPIC_WRITERS[t]]
    assert forbidden, principal
    before = await _end_offsets(e2e, forbidden)
    producer = AIOKafkaProducer(bootstrap_servers=e2e.bootstrap, request_timeout_ms=10_000,
                                **e2e.auth(principal).aiokafka())  # fmt: skip
    await producer.start()
    try:
        for topic in forbidden:
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(topic, b'{"forged": true}', key=b"k")
    finally:
        await producer.stop()
    assert await _end_offsets(e2e, forbidden) == before


async def _end_offsets(e2e: E2E, names: list[str]) -> dict[Any, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=e2e.bootstrap, **e2e.auth("auditor").aiokafka())
    await consumer.start()
    try:
        parts = [tp for n in names for tp in await _partitions(consumer, n)]
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[Any]:
    from paved_shared.kafka import topic_partitions

    return await topic_partitions(consumer, topic)


async def test_a_pipeline_cannot_read_the_audit_trail(e2e: E2E) -> None:
    """The broker hides the audit topic from a pipeline (no metadata, no records) while
    the auditor principal reads it."""
    from aiokafka import TopicPartition

    async def read_as(principal: str) -> tuple[set[int] | None, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=e2e.bootstrap,
                                    **e2e.auth(principal).aiokafka())  # fmt: skip
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topics.AUDIT)
            consumer.assign([TopicPartition(topics.AUDIT, 0)])
            await consumer.seek_to_beginning()
            batch = await consumer.getmany(timeout_ms=3000)
            return parts, sum(len(v) for v in batch.values())
        finally:
            await consumer.stop()

    with e2e.client() as c:  # put something on the trail
        c.create_model(_name("trail"), description="audited", owner_team="e2e")
    deadline = time.monotonic() + 30
    while True:
        auditor_parts, auditor_records = await read_as("auditor")
        if auditor_records or time.monotonic() > deadline:
            break
    assert auditor_parts == {0}
    assert auditor_records > 0
    pipeline_parts, pipeline_records = await read_as("pipeline")
    assert not pipeline_parts
    assert pipeline_records == 0


# --- the second wall: consumers accept a fact only from its owner --------------------------


async def test_a_fact_from_a_non_owning_source_is_dead_lettered_and_changes_nothing(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    """Suppose the ACLs were wrong (the administrator writes here, as a broken ACL would
    let anyone): a "ready" status and a passed validation claiming another source are
    dead-lettered with the reason, and the version's state does not move."""
    model = _name("forged")
    m = train(tmp_path, iris, model)
    with e2e.client() as c:
        version = _register(c, model, m, "medium")
        before = wait_state(c, model, version, {"pending_approval", "validation_failed"})
        assert before["state"] == "pending_approval"
        ready = DeploymentStatusChanged(
            deployment_id=f"{model}-forged", model_name=model, version=version,
            artifact_digest=m.digest, target=DeploymentTarget.LOCAL, status="ready",
            revision=1, endpoint_url="http://127.0.0.1:1/v2/models/x",
        )  # fmt: skip
        forged_status = Envelope.new(ready, source="/paved/mallory", actor="user:mallory",
                                     actorname="Mallory")  # fmt: skip
        await _produce(e2e.bootstrap, e2e.auth("admin"), topics.DEPLOYMENT_STATUS,
                       forged_status.to_json_bytes())  # fmt: skip
        # A validation result published by the registry (which owns model events, not
        # validation results) on its own topic.
        passed = ModelVersionValidated(
            model_name=model, version=version, artifact_digest=m.digest, passed=True,
            checks=[], evidence_uri="file:///tmp/forged.json",
            evidence_digest="sha256:" + "0" * 64, validator_version="0.0.0",
        )  # fmt: skip
        forged_validation = Envelope.new(
            passed, source="/paved/registry", actor="service:registry", actorname="Registry"
        )
        await _produce(e2e.bootstrap, e2e.auth("registry"), topics.MODEL_EVENTS,
                       forged_validation.to_json_bytes())  # fmt: skip

        status_dlq = await _dead_letters_of(e2e, forged_status.id, want=1)
        assert status_dlq, "the forged status was not dead-lettered"
        assert all(d.error_type == "ProvenanceError" for d in status_dlq)
        assert "/paved/mallory" in status_dlq[0].reason
        assert "does not own topic" in status_dlq[0].reason
        # validator, approver and the deployer all read model events: each refuses it.
        validation_dlq = await _dead_letters_of(e2e, forged_validation.id, want=3)
        groups = {d.consumer_group for d in validation_dlq}
        assert {topics.GROUP_APPROVER, topics.GROUP_VALIDATOR} <= groups, groups
        assert all("belongs on topic 'paved.validation.events.v1'" in d.reason
                   for d in validation_dlq)  # fmt: skip
        after = c.get_version(model, version)
        assert after["state"] == "pending_approval"
        assert after.get("deployments", []) == []


# --- commands: the sender is who their token says, never what the payload says ------------


def _command(model: str, m: Any, *, registered_by: str, team: str) -> RegisterModelVersion:
    return RegisterModelVersion(
        request_id=str(uuid.uuid4()), model_name=model, artifact_uri=m.uri,
        artifact_digest=m.digest, framework="sklearn",
        signature=ModelSignature.model_validate(SIGNATURE),
        model_card=ModelCard.model_validate(card("low")), tags={"team": team},
        registered_by=registered_by, registered_by_name="Somebody",
    )  # fmt: skip


def _versions(c: PavedClient, model: str) -> list[Any]:
    try:
        listing = c.list_versions(model)
    except PavedError as exc:
        if exc.status == 404:
            return []
        raise
    return list(listing.get("items", listing) if isinstance(listing, dict) else listing)


@pytest.mark.parametrize(
    ("case", "claimed", "identity", "reason"),
    [
        ("no identity", "alice", {}, "sender identity refused"),
        ("someone else's name", "alice",
         {"user": "mallory", "name": "Mallory", "roles": "scientist", "teams": "fraud"},
         "registered_by 'alice' is not the verified sender 'mallory'"),
        ("another team's model", "mallory",
         {"user": "mallory", "name": "Mallory", "roles": "scientist", "teams": "fraud"},
         "model owner team 'churn' is not one of its teams"),
        ("no scientist role", "ann",
         {"user": "ann", "name": "Ann Approver", "roles": "approver", "teams": "churn"},
         "needs the scientist or admin role"),
    ],
)  # fmt: skip
async def test_a_registration_command_is_refused_unless_its_sender_may_register(
    e2e: E2E, iris: Any, tmp_path: Path, case: str, claimed: str,
    identity: dict[str, str], reason: str,
) -> None:  # fmt: skip
    model = _name("cmd")
    m = train(tmp_path, iris, model)
    command = _command(model, m, registered_by=claimed, team="churn")
    actor = f"user:{identity.get('user', claimed)}"
    sent = await publish_command(
        e2e.bootstrap, command, actor=actor, actorname="Somebody",
        identity=identity_headers(**identity), auth=e2e.auth("pipeline"),
    )  # fmt: skip
    dlq = await _dead_letters_of(e2e, sent.id, want=1)
    assert dlq, f"{case}: not dead-lettered"
    assert dlq[0].consumer_group == topics.GROUP_REGISTRY
    assert reason in dlq[0].reason, dlq[0].reason
    with e2e.client() as c:
        assert _versions(c, model) == []


async def test_positive_control_a_scientist_of_the_team_registers_over_kafka(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    model = _name("cmd-ok")
    m = train(tmp_path, iris, model)
    command = _command(model, m, registered_by="carla", team="churn")
    await publish_command(
        e2e.bootstrap, command, actor="user:carla", actorname="Carla",
        identity=identity_headers(user="carla", name="Carla Scientist", roles="scientist",
                                  teams="churn"),
        auth=e2e.auth("pipeline"),
    )  # fmt: skip
    with e2e.client() as c:
        deadline = time.monotonic() + 60
        while not (items := _versions(c, model)):
            assert time.monotonic() < deadline, "the registration never arrived"
            await asyncio.sleep(0.3)
        v = c.get_version(model, int(items[0]["version"]))
        assert v["registered_by"] == "carla"
        # The printed name comes from the verified identity, not the payload.
        assert v["registered_by_name"] == "Carla Scientist"


async def test_a_deployment_request_not_from_the_registry_is_dead_lettered(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    """A RequestDeployment that got onto the topic (a broken ACL: the administrator
    writes it) claiming the SDK as its source is refused by the deployer: nothing starts."""
    from paved_schemas.events import DeploymentSpec, RequestDeployment

    model = _name("forged-dep")
    m = train(tmp_path, iris, model)
    with e2e.client() as c:
        version = _register(c, model, m, "low")
        assert wait_state(c, model, version, {"approved", "validation_failed"})["state"] == (
            "approved"
        )
        request = RequestDeployment(
            deployment_id=f"{model}-forged", model_name=model, version=version,
            artifact_digest=m.digest, target=DeploymentTarget.LOCAL,
            spec=DeploymentSpec(replicas=1), requested_by="mallory",
        )  # fmt: skip
        forged = Envelope.new(request, source="/paved/sdk", actor="user:mallory",
                              actorname="Mallory")  # fmt: skip
        await _produce(e2e.bootstrap, e2e.auth("admin"), topics.DEPLOYMENT_REQUESTS,
                       forged.to_json_bytes())  # fmt: skip
        dlq = await _dead_letters_of(e2e, forged.id, want=1)
        assert dlq, "the forged deployment request was not dead-lettered"
        assert {d.consumer_group for d in dlq} >= {topics.GROUP_DEPLOYER_LOCAL}
        assert all(d.error_type == "ProvenanceError" for d in dlq)
        statuses = [
            e for e in await read_envelopes(e2e.bootstrap, [topics.DEPLOYMENT_STATUS])
            if getattr(e.data, "deployment_id", None) == f"{model}-forged"
        ]  # fmt: skip
        assert statuses == []
        assert c.get_version(model, version)["state"] == "approved"
