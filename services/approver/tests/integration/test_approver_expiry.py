"""Approvals expire: the approver emits ApprovalExpired when a granted approval's validity
(from the YAML policy) runs out, the real registry sends the version back to validation and
refuses to deploy it, and only a new validation opens a new case (a replayed one does not).

The registry runs in this process (its own schema and consumer group) because the gate
that blocks a deployment is its API; services still talk only through Kafka.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from paved_registry.bootstrap import create_app as create_registry
from paved_registry.settings import RegistrySettings
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    EXAMPLE_MODEL_CARD,
    EXAMPLE_SIGNATURE,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRequested,
    ModelVersionValidated,
    ValidationCheck,
)
from paved_shared.testing import unique, wait_for
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

SHORT_POLICY = """
version: short-lived-1
tiers:
  low: {auto_approve: true, valid_for: 1h}
  medium: {approvers: 1, signer_roles: [approver], valid_for: 4s}
  high: {approvers: 2, valid_for: 1h}
  critical: {approvers: 2, valid_for: 1h}
"""
ALICE = {"X-Paved-User": "alice", "X-Paved-User-Name": "Alice Scientist"}
DEPLOYER = {"X-Paved-User": "dana", "X-Paved-User-Name": "Dana Deployer",
            "X-Paved-Roles": "deployer", "X-Paved-Teams": "churn"}  # fmt: skip


@pytest.fixture
async def registry(stack: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = RegistrySettings(
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        registry_db_schema=unique("t_registry"),
        registry_consumer_group=unique("t-registry"),
        environment="test",
    )
    app = create_registry(settings, metrics_registry=CollectorRegistry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
            yield client


def validated(model: str, digest: str) -> Envelope[ModelVersionValidated]:
    data = ModelVersionValidated(
        model_name=model,
        version=1,
        artifact_digest=digest,
        passed=True,
        reasons=[],
        checks=[ValidationCheck(name="digest", outcome="passed", duration_ms=3)],  # type: ignore[arg-type]
        evidence_uri=f"file:///evidence/{model}/1.json",
        evidence_digest="sha256:" + "e" * 64,
        validator_version="0.1.0",
    )
    return Envelope.new(
        data, source="/paved/validator", actor="service:validator", actorname="Paved validator"
    )


async def test_an_expired_approval_blocks_deployment_until_revalidated_and_reapproved(
    approver_factory: Any, registry: httpx.AsyncClient, kafka: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(SHORT_POLICY)
    model = unique("exp").replace("_", "-")
    async with approver_factory(
        approver_policy_file=policy, approver_expiry_check_s=0.3
    ) as approver:
        created = await registry.post(
            "/api/v1/models", json={"name": model, "owner_team": "churn"}, headers=ALICE
        )
        assert created.status_code == 201, created.text
        registered = await registry.post(
            f"/api/v1/models/{model}/versions",
            json={
                "artifact_uri": f"file:///models/{model}/model.onnx",
                "artifact_digest": "sha256:" + "a" * 64,
                "framework": "onnx",
                "signature": EXAMPLE_SIGNATURE,
                "model_card": {**EXAMPLE_MODEL_CARD, "risk_tier": "medium"},
            },
            headers=ALICE,
        )
        assert registered.status_code == 201, registered.text
        digest = registered.json()["artifact_digest"]
        first_validation = validated(model, digest)
        await kafka.publish(first_validation)
        row = await approver.wait_approval(model, state="pending")
        assert row["policy_version"] == "short-lived-1"
        approval_id = row["approval_id"]

        signed = await approver.decide(approval_id, "bob", "Bob Reviewer")
        assert signed.status_code == 201, signed.text
        assert signed.json()["state"] == "granted"
        version_url = f"/api/v1/models/{model}/versions/1"

        async def state_is(wanted: str) -> bool:
            r = await registry.get(version_url, headers=ALICE)
            return bool(r.json().get("state") == wanted)

        await wait_for(lambda: state_is("approved"), what="registry: approved")

        # The validity (4 s) runs out: expired, announced, and the registry steps back.
        await approver.wait_approval(model, state="expired")
        events = await kafka.approval_events(approval_id, expect=3)
        assert [type(e.data) for e in events] == [
            ApprovalRequested,
            ApprovalGranted,
            ApprovalExpired,
        ]
        granted, expired = events[1].data, events[2].data
        assert granted.expires_at is not None
        assert expired.expired_at >= granted.expires_at
        assert expired.artifact_digest == digest
        assert events[2].actor == "service:approver"
        await wait_for(lambda: state_is("validated"), what="registry: back to validated")

        blocked = await registry.post(
            f"{version_url}/deployments", json={"target": "local"}, headers=DEPLOYER
        )
        assert blocked.status_code == 409, blocked.text
        assert "validated" in blocked.json()["detail"]

        # Replaying the validation that opened the expired case opens nothing ...
        await kafka.publish(first_validation)
        await approver.wait_processed(first_validation.id)
        cases = await approver.fetch("SELECT state FROM approvals WHERE model_name = $1", model)
        assert [c["state"] for c in cases] == ["expired"]
        # ... a new validation opens a new case, and a new signature approves again.
        revalidation = validated(model, digest)
        await kafka.publish(revalidation)
        reopened = await approver.wait_approval_where(model, "pending")
        assert reopened["approval_id"] != approval_id
        again = await approver.decide(reopened["approval_id"], "carol", "Carol Quality")
        assert again.json()["state"] == "granted"
        await wait_for(lambda: state_is("approved"), what="registry: approved again")
