"""The approver on the real Kafka and PostgreSQL: registration + validation in, approval
events out, decisions through the HTTP API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from paved_approver.domain.version_hash import version_hash
from paved_schemas.events import ApprovalGranted, ApprovalRejected, ApprovalRequested

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.mark.parametrize("order", ["registration_first", "validation_first"])
async def test_low_tier_is_requested_then_auto_granted(
    approver: Any, kafka: Any, events: Any, model: str, order: str
) -> None:
    reg = events.registered(model, tier="low")
    val = events.validated(model)
    first, second = (reg, val) if order == "registration_first" else (val, reg)
    # Different topics: publish order says nothing about handling order, so wait.
    await kafka.publish(first)
    await approver.wait_processed(first.id)
    assert await approver.fetch("SELECT * FROM approvals WHERE model_name = $1", model) == []
    await kafka.publish(second)

    row = await approver.wait_approval(model, state="granted")
    published = await kafka.approval_events(row["approval_id"], expect=2)
    assert [type(e.data) for e in published] == [ApprovalRequested, ApprovalGranted]
    requested, granted = published
    assert requested.data.required_approvals == 0
    assert requested.data.risk_tier == "low"
    assert requested.data.policy_version == "paved-default-1"
    assert requested.data.artifact_digest == reg.data.artifact_digest
    assert granted.data.auto_approved is True
    assert granted.data.signatures == []
    assert granted.data.policy_version == "paved-default-1"
    # Both carry the workflow's correlation id; the policy, not a person, is the actor.
    assert {e.correlationid for e in published} == {second.correlationid}
    assert {e.causationid for e in published} == {second.id}
    assert {e.actor for e in published} == {"service:approver"}
    assert row["version_hash"] == version_hash(reg.data)

    view = (await approver.get(f"/api/v1/approvals/{row['approval_id']}")).json()
    assert view["state"] == "granted"
    assert view["auto_approved"] is True
    assert view["signatures"] == []


async def test_medium_tier_waits_for_one_approver_other_than_the_registrant(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    reg = events.registered(model, version=3, tier="medium")
    await kafka.publish(reg, events.validated(model, version=3))
    row = await approver.wait_approval(model, 3, state="pending")
    approval_id = row["approval_id"]
    [requested] = await kafka.approval_events(approval_id, expect=1)
    assert isinstance(requested.data, ApprovalRequested)
    assert requested.data.required_approvals == 1
    # Nothing but the request was written for this case: it waits for a person.
    outbox_types = [
        r["type"]
        for r in await approver.fetch(
            "SELECT headers->>'ce_type' AS type FROM outbox "
            "WHERE convert_from(value, 'UTF8') LIKE $1",
            f"%{approval_id}%",
        )
    ]
    assert outbox_types == [ApprovalRequested.TYPE]

    # No identity: 401 problem.
    response = await approver.decide(approval_id, None)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert "X-Paved-User" in response.json()["detail"]

    # The registrant: 403, naming the rule, the user and the version.
    response = await approver.decide(approval_id, "alice", "Alice Scientist")
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == (
        f"separation of duties: alice registered {model} v3 and cannot approve it"
    )

    # An empty reason: 422, nothing stored.
    response = await approver.decide(approval_id, "bob", "Bob Reviewer", reason="  ")
    assert response.status_code == 422
    assert "reason" in response.json()["detail"]
    assert await approver.fetchval("SELECT count(*) FROM signatures WHERE approval_id = $1",
                                   approval_id) == 0  # fmt: skip

    # Another person grants it.
    response = await approver.decide(
        approval_id, "bob", "Bob Reviewer", meaning="approval", reason="AUC within policy."
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == "granted"
    [sig] = body["signatures"]
    assert sig["signer_id"] == "bob"
    assert sig["printed_name"] == "Bob Reviewer"
    assert sig["meaning"] == "approval"
    assert sig["reason"] == "AUC within policy."
    assert sig["signed_at"].endswith(("Z", "+00:00"))
    assert sig["version_hash"] == version_hash(reg.data)
    assert sig["manifestation"].startswith("Signed by Bob Reviewer (bob) on ")
    assert sig["manifestation"].endswith(f" UTC; meaning: approval; bound to {sig['version_hash']}")

    published = await kafka.approval_events(approval_id, expect=2)
    assert [type(e.data) for e in published] == [ApprovalRequested, ApprovalGranted]
    granted = published[1]
    assert granted.data.auto_approved is False
    assert [(s.signer_id, s.printed_name, s.meaning.value, s.version_hash)
            for s in granted.data.signatures] == [
        ("bob", "Bob Reviewer", "approval", version_hash(reg.data))
    ]  # fmt: skip
    assert granted.actor == "user:bob"
    assert granted.actorname == "Bob Reviewer"
    assert granted.correlationid == requested.correlationid
    assert granted.causationid == requested.id

    # The case is closed now.
    response = await approver.decide(approval_id, "carol", "Carol Quality")
    assert response.status_code == 409
    assert "is granted" in response.json()["detail"]

    listed = (await approver.get("/api/v1/approvals", params={"model": model})).json()
    assert [(i["approval_id"], i["state"], i["approvals"]) for i in listed["items"]] == [
        (approval_id, "granted", 1)
    ]
    assert [s["signer_id"] for s in listed["items"][0]["signatures"]] == ["bob"]
    assert listed["count"] == 1
    pending = (
        await approver.get("/api/v1/approvals", params={"model": model, "state": "pending"})
    ).json()
    assert pending["items"] == []


async def test_high_tier_needs_two_distinct_approvers(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    await kafka.publish(events.registered(model, tier="high"), events.validated(model))
    approval_id = (await approver.wait_approval(model, state="pending"))["approval_id"]

    first = await approver.decide(approval_id, "bob", "Bob Reviewer", meaning="review")
    assert first.status_code == 201
    assert (first.json()["state"], first.json()["approvals"]) == ("pending", 1)

    again = await approver.decide(approval_id, "bob", "Bob Reviewer")
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert "bob has already signed" in again.json()["detail"]

    second = await approver.decide(approval_id, "carol", "Carol Quality", meaning="responsibility")
    assert second.status_code == 201
    assert second.json()["state"] == "granted"

    published = await kafka.approval_events(approval_id, expect=2)
    assert [type(e.data) for e in published] == [ApprovalRequested, ApprovalGranted]
    assert published[0].data.required_approvals == 2
    assert [(s.signer_id, s.meaning.value) for s in published[1].data.signatures] == [
        ("bob", "review"),
        ("carol", "responsibility"),
    ]


async def test_one_rejection_rejects(approver: Any, kafka: Any, events: Any, model: str) -> None:
    await kafka.publish(events.validated(model), events.registered(model, tier="critical"))
    approval_id = (await approver.wait_approval(model, state="pending"))["approval_id"]

    assert (await approver.decide(approval_id, "bob", "Bob Reviewer")).status_code == 201
    bad = await approver.decide(approval_id, "carol", "Carol Quality", decision="reject",
                                meaning="approval", reason="x")  # fmt: skip
    assert bad.status_code == 422
    assert "does not fit decision 'reject'" in bad.json()["detail"]
    missing = await approver.decide(approval_id, "carol", "Carol Quality", decision="reject",
                                    reason="")  # fmt: skip
    assert missing.status_code == 422

    response = await approver.decide(
        approval_id, "carol", "Carol Quality", decision="reject",
        reason="Limitations do not cover the intended population.",
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "rejected"

    published = await kafka.approval_events(approval_id, expect=2)
    assert [type(e.data) for e in published] == [ApprovalRequested, ApprovalRejected]
    assert [(s.signer_id, s.meaning.value) for s in published[1].data.signatures] == [
        ("bob", "approval"),
        ("carol", "rejection"),
    ]
    late = await approver.decide(approval_id, "dave", "Dave Ops")
    assert late.status_code == 409
    assert "is rejected" in late.json()["detail"]


async def test_concurrent_approvals_grant_exactly_once(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    await kafka.publish(events.registered(model, 1, tier="medium"), events.validated(model, 1))
    await kafka.publish(events.registered(model, 2, tier="high"), events.validated(model, 2))
    medium = (await approver.wait_approval(model, 1, state="pending"))["approval_id"]
    high = (await approver.wait_approval(model, 2, state="pending"))["approval_id"]
    users = [f"user{i}" for i in range(6)]

    for approval_id, needed in ((medium, 1), (high, 2)):
        responses = await asyncio.gather(
            *(approver.decide(approval_id, u, f"User {u}") for u in users)
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * needed + [409] * (len(users) - needed), [r.text for r in responses]
        signatures = await approver.fetchval(
            "SELECT count(*) FROM signatures WHERE approval_id = $1", approval_id
        )
        assert signatures == needed
        published = await kafka.approval_events(approval_id, expect=2, linger_s=1.5)
        kinds = [type(e.data) for e in published]
        assert kinds == [ApprovalRequested, ApprovalGranted], kinds
        assert len(published[1].data.signatures) == needed


async def test_unknown_approval_and_bad_queries_are_problems(approver: Any) -> None:
    response = await approver.decide("apr-nope", "bob", "Bob Reviewer")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert "'apr-nope'" in response.json()["detail"]
    response = await approver.get("/api/v1/approvals/apr-nope")
    assert response.status_code == 404
    response = await approver.get("/api/v1/approvals", params={"state": "maybe"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert "maybe" in response.json()["detail"]
    response = await approver.decide("apr-nope", "bob", "Bob Reviewer", decision="perhaps")
    assert response.status_code in (404, 422)
    response = await approver.decide("apr-nope", "bob smith", "Bob Smith")
    assert response.status_code == 401
    assert "'bob smith'" in response.json()["detail"]


async def test_failed_validation_opens_no_approval(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    failed = events.validated(model, passed=False)
    reg = events.registered(model, tier="low")
    await kafka.publish(reg, failed)
    await approver.wait_processed(reg.id, failed.id)
    assert await approver.fetch("SELECT * FROM approvals WHERE model_name = $1", model) == []
    row = (await approver.fetch("SELECT * FROM versions WHERE model_name = $1", model))[0]
    assert row["validation_passed"] is False


async def test_retirement_closes_a_pending_approval_and_prevents_new_ones(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    await kafka.publish(events.registered(model, 1), events.validated(model, 1))
    approval_id = (await approver.wait_approval(model, 1, state="pending"))["approval_id"]
    await kafka.publish(events.retired(model, 1))
    row = await approver.wait_approval(model, 1, state="closed")
    assert "retired by dave" in row["closed_reason"]
    response = await approver.decide(approval_id, "bob", "Bob Reviewer")
    assert response.status_code == 409
    assert "is closed" in response.json()["detail"]

    # Retired before validation passed: no case ever opens.
    retire, reg, val = (
        events.retired(model, 2),
        events.registered(model, 2),
        events.validated(model, 2),
    )
    await kafka.publish(retire, reg, val)
    await approver.wait_processed(retire.id, reg.id, val.id)
    assert (
        await approver.fetch("SELECT * FROM approvals WHERE model_name = $1 AND version = 2", model)
        == []
    )


async def test_digest_mismatch_is_dead_lettered_and_opens_nothing(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    from paved_schemas import topics

    reg = events.registered(model, tier="low")
    wrong = events.validated(model, digest="sha256:" + "e" * 64)
    await kafka.publish(reg)
    await approver.wait_processed(reg.id)
    await kafka.publish(wrong)
    group = approver.settings.approver_consumer_group.encode()
    dead = await kafka.read(
        topics.DEAD_LETTER,
        lambda env, headers: (
            env.data.original_event_id == wrong.id and headers.get("x-dlq-consumer-group") == group
        ),
        expect=1,
    )
    assert len(dead) == 1
    reason = dead[0].data.reason
    assert "sha256:" + "e" * 64 in reason
    assert reg.data.artifact_digest in reason
    assert await approver.fetch("SELECT * FROM approvals WHERE model_name = $1", model) == []


async def test_signatures_are_append_only(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    import asyncpg

    await kafka.publish(events.registered(model), events.validated(model))
    approval_id = (await approver.wait_approval(model, state="pending"))["approval_id"]
    assert (await approver.decide(approval_id, "bob", "Bob Reviewer")).status_code == 201
    for sql in (
        "UPDATE signatures SET reason = 'edited' WHERE approval_id = $1",
        "DELETE FROM signatures WHERE approval_id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await approver.fetch(sql, approval_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await approver.fetch("TRUNCATE signatures CASCADE")
