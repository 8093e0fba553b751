"""Separation of duties reads the case's snapshot (issue 11): moving a model into an
approver's team, or a registration from a source other than the registry, changes
nothing about who may see or sign an open case."""

from __future__ import annotations

from typing import Any

import pytest
from paved_schemas.envelope import Envelope

pytestmark = pytest.mark.integration

FRANK = {"X-Paved-User": "frank", "X-Paved-User-Name": "Frank Fraud",
         "X-Paved-Roles": "approver", "X-Paved-Teams": "fraud"}  # fmt: skip
BOB = {"X-Paved-User": "bob", "X-Paved-User-Name": "Bob Reviewer",
       "X-Paved-Roles": "approver", "X-Paved-Teams": "churn"}  # fmt: skip


async def test_owner_flip_during_approval_changes_nobody_who_may_sign(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    await kafka.publish(events.model_created(model, "churn"))
    await kafka.publish(events.registered(model), events.validated(model))
    case = await approver.wait_approval(model, state="pending")
    approval_id = case["approval_id"]
    assert case["owner_team"] == "churn"

    # Mallory's move: the model goes into frank's team while the case is pending.
    flip = events.owner_changed(model, "churn", "fraud")
    await kafka.publish(flip)
    await approver.wait_processed(flip.id)
    assert (
        await approver.fetchval("SELECT owner_team FROM models WHERE model_name = $1", model)
        == "fraud"
    )

    url = f"/api/v1/approvals/{approval_id}/decisions"
    body = {"decision": "approve", "reason": "looks fine"}
    refused = await approver.client.post(url, json=body, headers=FRANK)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/team-scope")
    assert "belongs to team 'churn'" in refused.json()["detail"]
    seen = await approver.client.get(f"/api/v1/approvals/{approval_id}", headers=FRANK)
    assert seen.status_code == 403
    listed = await approver.client.get(f"/api/v1/approvals?model={model}", headers=FRANK)
    assert listed.json()["count"] == 0
    # Nothing changed: no signature, still pending, still scoped to churn.
    assert (
        await approver.fetchval(
            "SELECT count(*) FROM signatures WHERE approval_id = $1", approval_id
        )
        == 0
    )
    row = (await approver.fetch("SELECT * FROM approvals WHERE approval_id = $1", approval_id))[0]
    assert (row["state"], row["owner_team"]) == ("pending", "churn")

    # Moved back afterwards: still nothing frank could have done. Positive control: the
    # snapshot team's approver signs.
    back = events.owner_changed(model, "fraud", "churn", revision=3)
    await kafka.publish(back)
    await approver.wait_processed(back.id)
    ok = await approver.client.post(url, json=body, headers=BOB)
    assert ok.status_code == 201, ok.text
    assert [s["signer_id"] for s in ok.json()["signatures"]] == ["bob"]


async def test_the_registrant_is_believed_only_from_the_registry(
    approver: Any, kafka: Any, events: Any, model: str
) -> None:
    await kafka.publish(events.model_created(model, "churn"))
    real = events.registered(model, registrant=("alice", "Alice Scientist"))
    # Someone else writes a registration naming another registrant, from their own source.
    forged_data = events.registered(model, registrant=("nobody", "No Body")).data
    forged = Envelope.new(forged_data, source="/paved/cli", actor="user:bob", actorname="Bob")
    await kafka.publish(forged)
    await kafka.publish(real, events.validated(model))
    case = await approver.wait_approval(model, state="pending")
    assert case["registered_by"] == "alice"
    assert not await approver.processed(forged.id)  # dead-lettered, not applied

    # So alice (the registry's registrant) can never approve it.
    alice = {**BOB, "X-Paved-User": "alice", "X-Paved-User-Name": "Alice Scientist"}
    refused = await approver.client.post(
        f"/api/v1/approvals/{case['approval_id']}/decisions",
        json={"decision": "approve", "reason": "mine"},
        headers=alice,
    )
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/separation-of-duties")
    assert (
        await approver.fetchval(
            "SELECT count(*) FROM signatures WHERE approval_id = $1", case["approval_id"]
        )
        == 0
    )
