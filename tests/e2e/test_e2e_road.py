"""One model walks the whole paved road on the real stack: five service processes,
real Kafka, real PostgreSQL, a real model server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from e2e_support import E2E, SIGNATURE, card, read_envelopes, train, wait_state
from paved_cli.sdk import PavedClient, PavedError, publish_command, version_body, watch_deployments
from paved_schemas import topics
from paved_schemas.events import (
    DeploymentSpec,
    DeploymentTarget,
    ModelCard,
    ModelSignature,
    RegisterModelVersion,
    RequestDeployment,
)
from paved_shared.command_identity import identity_headers

pytestmark = pytest.mark.e2e


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _register(
    c: PavedClient, model: str, m: Any, tier: str = "low", digest: str | None = None
) -> int:
    try:
        c.create_model(model, description="e2e", owner_team="e2e")
    except PavedError as exc:
        if exc.status != 409:
            raise
    v = c.register_version(
        model,
        version_body(
            artifact_uri=m.uri,
            artifact_digest=digest or m.digest,
            framework="sklearn",
            signature=SIGNATURE,
            model_card=card(tier),
        ),
    )
    return int(v["version"])


def _infer(endpoint: str, x: Any) -> list[int]:
    body = {
        "inputs": [
            {"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
        ]
    }
    resp = httpx.post(f"{endpoint}/infer", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return [int(v) for v in resp.json()["outputs"][0]["data"]]


async def _wait_status(bootstrap: str, deployment_id: str, want: str, timeout_s: float = 90) -> Any:
    async def first() -> Any:
        async for env in watch_deployments(
            bootstrap, deployment_id=deployment_id, from_beginning=True
        ):
            if env.data.status in {want, "failed"}:
                return env
        return None

    env = await asyncio.wait_for(first(), timeout_s)
    assert env is not None
    return env


async def _lifecycle_ids(bootstrap: str, models: set[str]) -> list[str]:
    envs = await read_envelopes(bootstrap, list(topics.LIFECYCLE_TOPICS))
    return [e.id for e in envs if getattr(e.data, "model_name", None) in models]


async def _audit_rows(dsn: str, ids: list[str]) -> Counter[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id FROM audit.audit_records WHERE event_id = ANY($1::text[])", ids
        )
    finally:
        await conn.close()
    return Counter(r["event_id"] for r in rows)


async def _assert_audited_once(e2e: E2E, models: set[str], timeout_s: float = 30) -> int:
    """Every lifecycle event of ``models`` is in the audit table once and sealed on the
    audit topic at exactly one sequence."""
    deadline = time.monotonic() + timeout_s
    while True:
        # At-least-once on the wire: a producer killed between publish and outbox mark
        # publishes again with the same id; what must be unique is the audited record.
        ids = sorted(set(await _lifecycle_ids(e2e.bootstrap, models)))
        rows = await _audit_rows(e2e.dsn, ids)
        if set(rows) == set(ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    missing = set(ids) - set(rows)
    assert not missing, f"{len(missing)} lifecycle events never reached the audit table"
    assert all(n == 1 for n in rows.values()), "an event was audited twice"
    # The sealed records reach the audit topic through the audit service's outbox: wait.
    while True:
        sealed = [
            e.data
            for e in await read_envelopes(e2e.bootstrap, [topics.AUDIT])
            if e.type == "dev.paved.audit.record.sealed.v1" and e.data.event_id in rows
        ]  # the audit topic also carries signed checkpoints (AuditCheckpointSigned)
        sequences: dict[str, set[int]] = {}
        for s in sealed:
            sequences.setdefault(s.event_id, set()).add(s.sequence)
        if set(sequences) == set(ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert set(sequences) == set(ids), "some audit records never reached the audit topic"
    assert all(len(seqs) == 1 for seqs in sequences.values()), "an event sealed twice"
    return len(ids)


async def test_happy_path_register_validate_approve_deploy_predict_audit(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    model = _name("iris")
    m = train(tmp_path, iris, model)
    with e2e.client() as sam:
        version = _register(sam, model, m, "low")
        v = wait_state(sam, model, version, {"approved", "validation_failed", "rejected"})
        assert v["state"] == "approved"
        states = [t["to_state"] for t in v["transitions"]]
        assert states[:5] == [
            "registered",
            "validating",
            "validated",
            "pending_approval",
            "approved",
        ]

        # A subscriber in another process follows the rollout live from Kafka.
        watcher = subprocess.Popen(  # noqa: ASYNC220 - a child we wait for below
            [sys.executable, "-m", "paved_cli", "deployments", "watch", "--model", model,
             "--until", "ready", "--timeout", "90", "--from-beginning"],
            env={**os.environ, **e2e.env()}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        # (it replays the model's history first, so a slow start cannot miss "pending")
        dep = sam.request_deployment(model, version, "local")
        ready = await _wait_status(e2e.bootstrap, dep["deployment_id"], "ready")
        assert ready.data.status == "ready", ready.data.reason
        out, _ = await asyncio.to_thread(watcher.communicate, timeout=60)
        assert watcher.returncode == 0, out
        assert all(s in out for s in ("pending", "provisioning", "ready")), out
        assert out.index("pending") < out.index("provisioning") < out.index("ready"), out

        sample = m.x[[0, 1, 60, 100, 149]]
        assert _infer(ready.data.endpoint_url, sample) == m.model.predict(sample).tolist()
        final = wait_state(sam, model, version, {"deployed"})
        assert final["deployments"][0]["status"] == "ready"

    # Undeploy this one deployment (the version itself stays deployable): the registry
    # checks the caller's role and team and sends the command through its outbox.
    with e2e.client() as sam:
        sam.undeploy(dep["deployment_id"], "replaced by a newer deployment")
    retired = await _wait_status(e2e.bootstrap, dep["deployment_id"], "retired")
    assert retired.data.status == "retired", retired.data.reason
    assert "replaced by a newer deployment" in (retired.data.reason or "")
    with pytest.raises(httpx.HTTPError):
        _infer(ready.data.endpoint_url, sample)
    assert await _assert_audited_once(e2e, {model}) >= 10


async def test_registration_published_to_kafka_reaches_deployment(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    model = _name("kafka")
    m = train(tmp_path, iris, model)
    command = RegisterModelVersion(
        request_id=str(uuid.uuid4()),
        model_name=model,
        artifact_uri=m.uri,
        artifact_digest=m.digest,
        framework="sklearn",
        signature=ModelSignature.model_validate(SIGNATURE),
        model_card=ModelCard.model_validate(card("low")),
        tags={"team": "pipelines"},
        registered_by="pipeline-bot",
        registered_by_name="Training Pipeline",
    )
    # As a pipeline: its own Kafka principal, and its identity in the record's headers.
    await publish_command(
        e2e.bootstrap, command, actor="user:pipeline-bot", actorname="Training Pipeline",
        identity=identity_headers(user="pipeline-bot", name="Training Pipeline",
                                  roles="scientist", teams="pipelines"),
        auth=e2e.auth("pipeline"),
    )  # fmt: skip
    with e2e.client() as c:
        deadline = time.monotonic() + 60
        while True:
            try:
                listing = c.list_versions(model)
                items = listing.get("items", listing) if isinstance(listing, dict) else listing
                if items:
                    break
            except PavedError as exc:
                if exc.status != 404:
                    raise
            assert time.monotonic() < deadline, "registration from Kafka never arrived"
            await asyncio.sleep(0.3)
        version = int(items[0]["version"])
        v = wait_state(c, model, version, {"approved", "validation_failed"})
        assert v["state"] == "approved"
        assert v["registered_by"] == "pipeline-bot"
        dep = c.request_deployment(model, version, "local")
    deployment_id = dep["deployment_id"]
    ready = await _wait_status(e2e.bootstrap, deployment_id, "ready")
    assert ready.data.status == "ready", ready.data.reason
    sample = m.x[[3, 77, 140]]
    assert _infer(ready.data.endpoint_url, sample) == m.model.predict(sample).tolist()


async def test_wrong_digest_fails_validation_and_is_never_deployed(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    model = _name("bad")
    m = train(tmp_path, iris, model)
    wrong = "sha256:" + "0" * 64
    with e2e.client() as c:
        version = _register(c, model, m, "low", digest=wrong)
        v = wait_state(c, model, version, {"validation_failed", "approved"})
        assert v["state"] == "validation_failed"
        reason = v["transitions"][-1]["reason"]
        assert wrong in reason, reason
        assert m.digest in reason, reason
        with pytest.raises(PavedError) as refused:
            c.request_deployment(model, version, "local")
        assert refused.value.status == 409
        assert "validation_failed" in refused.value.detail
    # Straight to Kafka, around the registry: a pipeline may not write deployment requests.
    deployment_id = f"{model}-sneaky"
    sneaky = RequestDeployment(
        deployment_id=deployment_id, model_name=model, version=version,
        artifact_digest=wrong, target=DeploymentTarget.LOCAL,
        spec=DeploymentSpec(replicas=1), requested_by="mallory",
    )  # fmt: skip
    with pytest.raises(TopicAuthorizationFailedError):
        await publish_command(e2e.bootstrap, sneaky, actor="user:mallory", actorname="Mallory",
                              auth=e2e.auth("pipeline"))  # fmt: skip
    # Even a compromised registry (the topic's owner) cannot get it deployed: the deployer
    # checks the digest against the validated, approved version by itself.
    await publish_command(
        e2e.bootstrap, sneaky, actor="user:mallory", actorname="Mallory",
        source="/paved/registry", auth=e2e.auth("registry"),
    )  # fmt: skip
    final = await _wait_status(e2e.bootstrap, deployment_id, "ready")
    assert final.data.status == "failed"
    assert wrong in (final.data.reason or "")
    statuses = [
        e.data.status
        for e in await read_envelopes(e2e.bootstrap, [topics.DEPLOYMENT_STATUS])
        if getattr(e.data, "deployment_id", None) == deployment_id
    ]
    assert "ready" not in statuses
    assert "provisioning" not in statuses


async def test_higher_tier_waits_for_an_approval_and_proceeds_after_one(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    model = _name("med")
    m = train(tmp_path, iris, model)
    with e2e.client("sam", "Sam Scientist") as sam:
        version = _register(sam, model, m, "medium")
        v = wait_state(sam, model, version, {"pending_approval", "validation_failed"})
        assert v["state"] == "pending_approval"
        with pytest.raises(PavedError) as early:
            sam.request_deployment(model, version, "local")
        assert early.value.status == 409
        pending = sam.list_approvals("pending", model)
        items = pending.get("items", pending) if isinstance(pending, dict) else pending
        assert len(items) == 1
        approval_id = str(items[0]["approval_id"])
        with pytest.raises(PavedError) as own:
            sam.decide(approval_id, "approve", "approval", "I trust my own model")
        assert own.value.status == 403
        assert "separation of duties" in own.value.detail
        await asyncio.sleep(1.0)
        assert sam.get_version(model, version)["state"] == "pending_approval"
    with e2e.client("quinn", "Quinn QA") as quinn:
        decided = quinn.decide(approval_id, "approve", "approval", "evidence reviewed")
        assert decided["signatures"][0]["printed_name"] == "Quinn QA"
        v = wait_state(quinn, model, version, {"approved"})
        approved = [t for t in v["transitions"] if t["to_state"] == "approved"]
        assert approved[0]["actor"] == "user:quinn"
        dep = quinn.request_deployment(model, version, "local")
    ready = await _wait_status(e2e.bootstrap, dep["deployment_id"], "ready")
    assert ready.data.status == "ready", ready.data.reason


async def test_services_killed_mid_run_lose_nothing_and_apply_nothing_twice(
    e2e: E2E, iris: Any, tmp_path: Path
) -> None:
    """SIGKILL each service while versions are on the road; restart it; every version
    arrives, every transition happens once, every event is audited once."""
    platform = e2e.platform
    models = [_name("crash") for _ in range(3)]
    trained = [train(tmp_path, iris, name) for name in models]
    versions: list[int] = []
    with e2e.client() as c:
        for name, m, victim in zip(
            models, trained, ("validator", "registry", "approver"), strict=True
        ):
            versions.append(_register(c, name, m, "low"))
            await asyncio.sleep(0.3)
            assert platform.kill(victim)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(platform.start, victim)
        for name, version in zip(models, versions, strict=True):
            v = wait_state(c, name, version, {"approved", "validation_failed"}, timeout_s=120)
            assert v["state"] == "approved", v["transitions"]
            pairs = [(t["from_state"], t["to_state"]) for t in v["transitions"]]
            assert len(pairs) == len(set(pairs)), f"a transition was applied twice: {pairs}"
        deps = [
            c.request_deployment(models[i], versions[i], "local")["deployment_id"] for i in (0, 1)
        ]
        assert platform.kill("deployer-local")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(platform.start, "deployer-local")
        assert platform.kill("audit")
        await asyncio.to_thread(platform.start, "audit")
    for dep, m in zip(deps, trained[:2], strict=True):
        ready = await _wait_status(e2e.bootstrap, dep, "ready", timeout_s=120)
        assert ready.data.status == "ready", ready.data.reason
        sample = m.x[[5, 55, 105]]
        assert _infer(ready.data.endpoint_url, sample) == m.model.predict(sample).tolist()
    status_events = [
        e for e in await read_envelopes(e2e.bootstrap, [topics.DEPLOYMENT_STATUS])
        if getattr(e.data, "deployment_id", None) in deps
    ]  # fmt: skip
    per_revision = Counter(
        (e.data.deployment_id, e.data.revision, e.data.status) for e in status_events
    )
    assert all(n == 1 for n in per_revision.values()), per_revision
    await _assert_audited_once(e2e, set(models), timeout_s=60)
