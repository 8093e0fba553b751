"""The registry's HTTP API against the real Kafka and PostgreSQL (lifespan running)."""

from __future__ import annotations

from typing import Any

import pytest
from paved_schemas import topics
from paved_schemas.events import (
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionStateChanged,
    RegisteredModelCreated,
    RequestDeployment,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _transitions(version: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(t["from_state"], t["to_state"]) for t in version["transitions"]]


async def test_http_registration_stores_version_and_publishes_lifecycle_events(
    registry: Any, kit: Any
) -> None:
    name = kit.model_name()
    await registry.create_model(name, tags={"team": "retention"})

    created = await registry.register(name, "first")

    assert created["version"] == 1
    assert created["state"] == "validating"
    assert created["artifact_digest"] == kit.digest_of("first")
    assert created["registered_by"] == "alice"
    assert _transitions(created) == [(None, "registered"), ("registered", "validating")]
    assert {t["actor"] for t in created["transitions"]} == {"user:alice"}
    row = await registry.fetch(
        "SELECT state, artifact_digest, registered_by_name, signature FROM model_versions "
        "WHERE model_name = $1",
        name,
    )
    assert row == [
        {
            "state": "validating",
            "artifact_digest": kit.digest_of("first"),
            "registered_by_name": "Alice Scientist",
            "signature": kit.version_body()["signature"],
        }
    ]

    events = await registry.events_on(topics.MODEL_EVENTS, kit.about(name), expect=4)
    assert [type(e.data) for e in events] == [
        RegisteredModelCreated,
        ModelVersionRegistered,
        ModelVersionStateChanged,
        ModelVersionStateChanged,
    ]
    assert events[0].data.owner_team == "retention"
    assert events[0].data.created_via == "api"
    events = events[1:]
    registered, first, second = events
    assert registered.data.artifact_digest == kit.digest_of("first")
    assert registered.data.registered_by == "alice"
    assert registered.actor == "user:alice"
    assert registered.actorname == "Alice Scientist"
    assert (first.data.from_state, first.data.to_state) == (None, "registered")
    assert (second.data.from_state, second.data.to_state) == ("registered", "validating")
    # One workflow: the state changes carry the registration's correlation id.
    assert {e.correlationid for e in events} == {registered.id}
    assert [t["event_id"] for t in created["transitions"]] == [first.id, second.id]

    # Without a version number, the next one is assigned.
    again = await registry.register(name, "second")
    assert again["version"] == 2
    listing = (await registry.client.get(f"/api/v1/models/{name}/versions")).json()
    assert [(v["version"], v["state"]) for v in listing] == [(1, "validating"), (2, "validating")]
    model = (await registry.client.get(f"/api/v1/models/{name}")).json()
    assert model["latest_version"] == 2
    assert model["created_via"] == "api"


async def test_digest_and_history_cannot_be_rewritten_in_the_database(
    registry: Any, kit: Any
) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    await registry.register(name, "kept")
    async with registry.runtime.pool.acquire() as conn:
        with pytest.raises(Exception, match="immutable"):
            await conn.execute(
                "UPDATE model_versions SET artifact_digest = $2 WHERE model_name = $1",
                name, kit.digest_of("swapped"),
            )  # fmt: skip
        with pytest.raises(Exception, match="append-only"):
            await conn.execute("DELETE FROM state_transitions WHERE model_name = $1", name)
    assert (await registry.version(name, 1))["artifact_digest"] == kit.digest_of("kept")


async def test_idempotency_key_replays_and_refuses_a_different_body(
    registry: Any, kit: Any
) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    url = f"/api/v1/models/{name}/versions"
    key = {**kit.ALICE, "Idempotency-Key": f"key-{name}"}

    first = await registry.client.post(url, json=kit.version_body("x"), headers=key)
    replay = await registry.client.post(url, json=kit.version_body("x"), headers=key)

    assert first.status_code == 201, first.text
    assert replay.status_code == 200, replay.text
    assert replay.json()["version"] == first.json()["version"] == 1
    assert replay.json()["request_id"] == f"key-{name}"
    assert (
        await registry.fetchval("SELECT count(*) FROM model_versions WHERE model_name = $1", name)
        == 1
    )
    # The replay emitted nothing: still one registration and two state changes queued.
    # (RegisteredModelCreated, ModelVersionRegistered, two ModelVersionStateChanged)
    assert await registry.fetchval("SELECT count(*) FROM outbox WHERE key = $1", name.encode()) == 4

    conflict = await registry.client.post(url, json=kit.version_body("y"), headers=key)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == PROBLEM
    assert f"key-{name}" in conflict.json()["detail"]

    # Same version and digest under a new key: the same version, not a new one.
    same = await registry.client.post(url, json=kit.version_body("x", version=1), headers=kit.ALICE)
    assert same.status_code == 200, same.text
    assert same.json()["version"] == 1
    # Same version, another digest: refused, naming both digests.
    other = await registry.client.post(
        url, json=kit.version_body("z", version=1), headers=kit.ALICE
    )
    assert other.status_code == 409
    detail = other.json()["detail"]
    assert kit.digest_of("x") in detail
    assert kit.digest_of("z") in detail
    assert "version 1" in detail


async def test_bad_input_gets_a_problem_naming_field_and_value(registry: Any, kit: Any) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    url = f"/api/v1/models/{name}/versions"

    bad_digest = await registry.client.post(
        url, json=kit.version_body(artifact_digest="md5:abc"), headers=kit.ALICE
    )
    assert bad_digest.status_code == 422
    assert bad_digest.headers["content-type"] == PROBLEM
    problem = bad_digest.json()
    assert problem["status"] == 422
    assert [(e["field"], e["value"]) for e in problem["errors"]] == [("artifact_digest", "md5:abc")]
    assert "artifact_digest" in problem["detail"]
    assert "md5:abc" in problem["detail"]

    bad_card = await registry.client.post(
        url,
        json=kit.version_body(
            model_card={**kit.version_body()["model_card"], "risk_tier": "extreme"}
        ),
        headers=kit.ALICE,
    )
    assert bad_card.status_code == 422
    assert [(e["field"], e["value"]) for e in bad_card.json()["errors"]] == [
        ("model_card.risk_tier", "extreme")
    ]

    misspelt = await registry.client.post(
        url, json={**kit.version_body(), "tag": {"a": "b"}}, headers=kit.ALICE
    )
    assert misspelt.status_code == 422
    assert misspelt.json()["errors"][0]["field"] == "tag"

    unknown = await registry.client.post(
        "/api/v1/models/no-such-model/versions", json=kit.version_body(), headers=kit.ALICE
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert "'no-such-model'" in unknown.json()["detail"]
    assert "register the model first" in unknown.json()["detail"]

    anonymous = await registry.anonymous.post(url, json=kit.version_body())
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    assert "X-Paved-User" in anonymous.json()["detail"]
    nameless = await registry.anonymous.post(
        url, json=kit.version_body(), headers={"X-Paved-User": "alice"}
    )
    assert nameless.status_code == 401
    assert "X-Paved-User-Name" in nameless.json()["detail"]

    duplicate = await registry.client.post(
        "/api/v1/models", json={"name": name, "owner_team": "x"}, headers=kit.ALICE
    )
    assert duplicate.status_code == 409
    assert name in duplicate.json()["detail"]

    malformed = await registry.client.post(
        url, content=b"{not json", headers={**kit.ALICE, "content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == PROBLEM

    missing = await registry.client.get(f"/api/v1/models/{name}/versions/7")
    assert missing.status_code == 404
    assert "version 7" in missing.json()["detail"]
    # Nothing of the refused requests reached the catalog.
    assert (
        await registry.fetchval("SELECT count(*) FROM model_versions WHERE model_name = $1", name)
        == 0
    )


async def test_deployment_is_refused_before_approval_and_accepted_after(
    registry: Any, kit: Any
) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    version = await registry.register(name, "deployable")
    url = f"/api/v1/models/{name}/versions/1/deployments"

    early = await registry.client.post(url, json={"target": "local"}, headers=kit.CAROL)
    assert early.status_code == 409
    assert early.headers["content-type"] == PROBLEM
    assert "'validating'" in early.json()["detail"]

    digest = version["artifact_digest"]
    checked = kit.validated(name, 1, digest)
    await registry.publish(checked)
    await registry.wait_processed(checked)
    granted = kit.approval_granted(name, 1, digest)
    await registry.publish(granted)
    await registry.wait_state(name, 1, "approved")

    accepted = await registry.client.post(
        url, json={"target": "local", "spec": {"replicas": 2}}, headers=kit.CAROL
    )
    assert accepted.status_code == 202, accepted.text
    deployment_id = accepted.json()["deployment_id"]
    deployment = (await registry.client.get(f"/api/v1/deployments/{deployment_id}")).json()
    assert deployment["status"] == "requested"
    assert deployment["requested_by"] == "carol"
    assert deployment["spec"]["replicas"] == 2
    listed = (await registry.client.get("/api/v1/deployments", params={"model": name})).json()
    assert [d["deployment_id"] for d in listed] == [deployment_id]

    requests = await registry.events_on(topics.DEPLOYMENT_REQUESTS, kit.about(name), expect=1)
    assert len(requests) == 1
    request = requests[0]
    assert isinstance(request.data, RequestDeployment)
    assert request.data.deployment_id == deployment_id
    assert request.data.artifact_digest == digest
    assert request.data.target == "local"
    assert request.data.requested_by == "carol"
    assert request.actor == "user:carol"

    bad_target = await registry.client.post(url, json={"target": "azure"}, headers=kit.CAROL)
    assert bad_target.status_code == 422
    assert bad_target.json()["errors"][0]["value"] == "azure"


async def test_retirement_through_the_api(registry: Any, kit: Any) -> None:
    name = kit.model_name()
    await registry.create_model(name)
    await registry.register(name, "old")
    url = f"/api/v1/models/{name}/versions/1/retire"

    blank = await registry.client.post(url, json={"reason": "  "}, headers=kit.ALICE)
    assert blank.status_code == 422
    assert blank.json()["errors"][0]["field"] == "reason"
    missing = await registry.client.post(url, json={}, headers=kit.ALICE)
    assert missing.status_code == 422

    retired = await registry.client.post(
        url, json={"reason": "superseded by version 2"}, headers=kit.ALICE
    )
    assert retired.status_code == 202, retired.text
    assert retired.json()["state"] == "retired"
    last = retired.json()["transitions"][-1]
    assert (last["from_state"], last["to_state"]) == ("validating", "retired")
    assert last["reason"] == "superseded by version 2"
    assert last["actor"] == "user:alice"

    again = await registry.client.post(url, json={"reason": "twice"}, headers=kit.ALICE)
    assert again.status_code == 409
    assert "'retired'" in again.json()["detail"]

    events = await registry.events_on(topics.MODEL_EVENTS, kit.about(name), expect=6)
    events = [e for e in events if type(e.data).__name__ != "RegisteredModelCreated"]
    kinds = [type(e.data).__name__ for e in events]
    assert kinds == [
        "ModelVersionRegistered",
        "ModelVersionStateChanged",
        "ModelVersionStateChanged",
        "ModelVersionRetired",
        "ModelVersionStateChanged",
    ]
    retired_event, change = events[3], events[4]
    assert isinstance(retired_event.data, ModelVersionRetired)
    assert retired_event.data.reason == "superseded by version 2"
    assert retired_event.data.retired_by == "alice"
    assert change.data.to_state == "retired"
    assert change.causationid == retired_event.id


async def test_health_and_readiness(registry: Any, kit: Any) -> None:
    assert (await registry.client.get("/healthz")).json() == {"status": "ok"}
    ready = await registry.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
    openapi = (await registry.client.get("/openapi.json")).json()
    assert "/api/v1/models/{name}/versions" in openapi["paths"]
