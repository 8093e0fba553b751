"""The registry's Kafka side against the real stack: registration and retirement commands,
and validation / approval / deployment facts, in order and out of order."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    EXAMPLE_MODEL_CARD,
    EXAMPLE_SIGNATURE,
    DeadLetterRecorded,
    DeploymentStatus,
    ModelCard,
    ModelSignature,
    RegisterModelVersion,
    RetireModelVersion,
)

pytestmark = pytest.mark.integration

FULL_ROAD = [
    (None, "registered"),
    ("registered", "validating"),
    ("validating", "validated"),
    ("validated", "pending_approval"),
    ("pending_approval", "approved"),
    ("approved", "deployed"),
]


def _command(kit: Any, model: str, seed: str, **extra: Any) -> RegisterModelVersion:
    fields: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "model_name": model,
        "artifact_uri": f"s3://bucket/{model}/{seed}.onnx",
        "artifact_digest": kit.digest_of(seed),
        "framework": "onnx",
        "signature": ModelSignature.model_validate(EXAMPLE_SIGNATURE),
        "model_card": ModelCard.model_validate(EXAMPLE_MODEL_CARD),
        "tags": {"team": "fraud"},
        "registered_by": "pipeline-bot",
        "registered_by_name": "Training Pipeline",
    }
    fields.update(extra)
    return RegisterModelVersion(**fields)


def _from_pipeline(data: Any) -> Envelope[Any]:
    return Envelope.new(
        data, source="/pipelines/nightly", actor="user:pipeline-bot", actorname="Training Pipeline"
    )


def _transitions(version: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(t["from_state"], t["to_state"]) for t in version["transitions"]]


def _dead_letter_of(env: Envelope[Any], group: str) -> Any:
    """This registry's dead letter of ``env`` (other services' test consumers may
    dead-letter the same event on the shared topics)."""
    return lambda d: (
        isinstance(d.data, DeadLetterRecorded)
        and d.data.original_event_id == env.id
        and d.data.consumer_group == group
    )


async def test_kafka_registration_creates_the_model_and_is_idempotent(
    registry: Any, kit: Any
) -> None:
    model = kit.model_name()
    command = _command(kit, model, "pipeline-1")
    first = _from_pipeline(command)
    await registry.publish(first)
    version = await registry.wait_state(model, 1, "validating")

    assert version["artifact_digest"] == kit.digest_of("pipeline-1")
    assert version["registered_by"] == "pipeline-bot"
    assert version["request_id"] == command.request_id
    created = (await registry.client.get(f"/api/v1/models/{model}")).json()
    assert created["owner_team"] == "fraud"
    assert created["created_via"] == "registration"

    # The same command again (a producer retry: new envelope, same request_id).
    resent = _from_pipeline(command)
    await registry.publish(resent)
    await registry.wait_processed(resent)
    assert (
        await registry.fetchval("SELECT count(*) FROM model_versions WHERE model_name = $1", model)
        == 1
    )

    events = await registry.events_on(topics.MODEL_EVENTS, kit.about(model), expect=4)
    assert [type(e.data).__name__ for e in events] == [
        "RegisteredModelCreated",
        "ModelVersionRegistered",
        "ModelVersionStateChanged",
        "ModelVersionStateChanged",
    ]
    assert {e.correlationid for e in events} == {first.correlationid}
    assert {e.causationid for e in events} == {first.id}
    assert events[0].data.created_via == "registration"
    assert events[1].data.request_id == command.request_id

    # No team tag: the implicit model's owner is "unknown".
    anonymous = kit.model_name()
    untagged = _from_pipeline(_command(kit, anonymous, "pipeline-2", tags={}))
    await registry.publish(untagged)
    await registry.wait_processed(untagged)
    assert (await registry.client.get(f"/api/v1/models/{anonymous}")).json()[
        "owner_team"
    ] == "unknown"


async def test_conflicting_or_unknown_facts_are_dead_lettered_with_the_reason(
    registry: Any, kit: Any
) -> None:
    model = kit.model_name()
    await registry.publish(_from_pipeline(_command(kit, model, "one", version=1)))
    await registry.wait_state(model, 1, "validating")

    conflicting = _from_pipeline(_command(kit, model, "two", version=1))
    unknown = kit.approval_granted(model, 9, kit.digest_of("nine"))
    wrong_digest = kit.validated(model, 1, kit.digest_of("not-the-artifact"))
    await registry.publish(conflicting, unknown, wrong_digest)

    for env, expected in (
        (conflicting, ["version 1", kit.digest_of("one"), kit.digest_of("two")]),
        (unknown, [repr(model), "version 9"]),
        (wrong_digest, [kit.digest_of("one"), kit.digest_of("not-the-artifact")]),
    ):
        letters = await registry.events_on(
            topics.DEAD_LETTER,
            _dead_letter_of(env, registry.settings.registry_consumer_group),
            expect=1,
        )
        assert len(letters) == 1, f"no dead letter for {env.type}"
        letter = letters[0].data
        assert letter.consumer_group == registry.settings.registry_consumer_group
        assert letter.error_type == "PermanentError"
        for needle in expected:
            assert needle in letter.reason, (needle, letter.reason)
        assert base64.b64decode(letter.original_value) == env.to_json_bytes()
    # Nothing changed: still one version, still validating.
    version = await registry.version(model, 1)
    assert version["state"] == "validating"
    assert version["artifact_digest"] == kit.digest_of("one")


async def test_facts_in_order_drive_the_version_to_deployed(registry: Any, kit: Any) -> None:
    model = kit.model_name()
    await registry.create_model(model)
    digest = (await registry.register(model, "ordered"))["artifact_digest"]

    for env in (
        kit.validated(model, 1, digest),
        kit.approval_requested(model, 1, digest),
        kit.approval_granted(model, 1, digest),
        kit.deployment_status("dep-" + model, model, 1, digest, DeploymentStatus.PROVISIONING),
        kit.deployment_status("dep-" + model, model, 1, digest, DeploymentStatus.READY),
    ):
        await registry.publish(env)
        await registry.wait_processed(env)

    version = await registry.version(model, 1)
    assert version["state"] == "deployed"
    assert _transitions(version) == FULL_ROAD
    assert not any("implied" in (t["reason"] or "") for t in version["transitions"])
    assert version["transitions"][2]["actor"] == "service:validator"
    assert [(d["deployment_id"], d["status"]) for d in version["deployments"]] == [
        ("dep-" + model, "ready")
    ]
    assert version["deployments"][0]["endpoint_url"] is not None

    changes = await registry.events_on(topics.MODEL_EVENTS, kit.about(model), expect=8)
    assert [
        (e.data.from_state, e.data.to_state)
        for e in changes
        if type(e.data).__name__ == "ModelVersionStateChanged"
    ] == FULL_ROAD

    # A failed validation of another version ends in validation_failed, with the reasons.
    failing = (await registry.register(model, "broken"))["artifact_digest"]
    verdict = kit.validated(model, 2, failing, passed=False)
    await registry.publish(verdict)
    failed = await registry.wait_state(model, 2, "validation_failed")
    assert "output shape" in failed["transitions"][-1]["reason"]


async def test_facts_out_of_order_still_reach_deployed_and_stale_ones_change_nothing(
    registry: Any, kit: Any
) -> None:
    model = kit.model_name()
    await registry.create_model(model)
    digest = (await registry.register(model, "shuffled"))["artifact_digest"]
    ready = kit.deployment_status("dep-" + model, model, 1, digest, DeploymentStatus.READY)
    granted = kit.approval_granted(model, 1, digest)
    checked = kit.validated(model, 1, digest)

    # The deployer's report first: it implies validation and approval.
    await registry.publish(ready)
    await registry.wait_processed(ready)
    version = await registry.version(model, 1)
    assert version["state"] == "deployed"
    assert _transitions(version) == FULL_ROAD
    implied = [t["reason"] for t in version["transitions"][2:5]]
    assert all(f"implied by {ready.type} {ready.id}" in r for r in implied), implied
    assert "is ready" in version["transitions"][5]["reason"]

    # The facts it implied arrive late: applied (not dead-lettered), changing nothing.
    await registry.publish(granted)
    await registry.wait_processed(granted)
    await registry.publish(checked)
    await registry.wait_processed(checked)
    version = await registry.version(model, 1)
    assert version["state"] == "deployed"
    assert _transitions(version) == FULL_ROAD

    # An expired approval sends it back to validated; a later ready report of the old
    # deployment does not re-approve it.
    expired = kit.approval_expired(model, 1, digest)
    await registry.publish(expired)
    await registry.wait_processed(expired)
    again = kit.deployment_status("dep-" + model, model, 1, digest, DeploymentStatus.READY)
    await registry.publish(again)
    await registry.wait_processed(again)
    version = await registry.version(model, 1)
    assert version["state"] == "validated"
    assert _transitions(version)[-1] == ("deployed", "validated")


async def test_retirement_command_retires_and_deployment_retirement_keeps_it_retired(
    registry: Any, kit: Any
) -> None:
    model = kit.model_name()
    await registry.create_model(model)
    digest = (await registry.register(model, "to-retire"))["artifact_digest"]
    ready = kit.deployment_status("dep-" + model, model, 1, digest, DeploymentStatus.READY)
    await registry.publish(ready)
    await registry.wait_state(model, 1, "deployed")

    retire = Envelope.new(
        RetireModelVersion(
            model_name=model, version=1, reason="superseded by v2", retired_by="alice"
        ),
        source="/paved/cli",
        actor="user:alice",
        actorname="Alice Scientist",
    )
    await registry.publish(retire)
    version = await registry.wait_state(model, 1, "retired")
    last = version["transitions"][-1]
    assert (last["from_state"], last["reason"], last["actor"]) == (
        "deployed",
        "superseded by v2",
        "user:alice",
    )

    # The deployer tears the deployment down; the version stays retired, one transition.
    down = kit.deployment_status("dep-" + model, model, 1, digest, DeploymentStatus.RETIRED)
    duplicate_retire = Envelope.new(
        retire.data, source="/paved/cli", actor="user:alice", actorname="Alice Scientist"
    )
    await registry.publish(down, duplicate_retire)
    await registry.wait_processed(down, duplicate_retire)
    version = await registry.version(model, 1)
    assert version["state"] == "retired"
    assert [t["to_state"] for t in version["transitions"]].count("retired") == 1
    assert version["deployments"][0]["status"] == "retired"
    events = await registry.events_on(topics.MODEL_EVENTS, kit.about(model), expect=10)
    retired_events = [e for e in events if type(e.data).__name__ == "ModelVersionRetired"]
    assert len(retired_events) == 1
    assert retired_events[0].causationid == retire.id
