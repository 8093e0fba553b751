"""Attack matrix (issue 11): walk-arounds of the approval and audit governance, each
tried for real and each refused, with proof that nothing changed and a positive
control showing the same path works for the legitimate actor.

- owner-team flip during approval (approver moves the model into their team, signs)
- self-approval by the registrant, a human and the pipeline service account (OIDC)
- audit API: forged X-Paved-* headers in oidc mode, a non-auditor, an auditor
- audit trail: trigger disable, UPDATE, DELETE, TRUNCATE by the audit runtime role
- `paved audit verify` without a pinned key
- a missing checkpoint key outside dev/test
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from paved_approver.bootstrap import create_app as create_approver
from paved_approver.domain.version_hash import version_hash
from paved_approver.settings import ApproverSettings
from paved_audit.adapters.file_signer import SignerKeyError, public_key_path
from paved_audit.bootstrap import create_app as create_audit
from paved_audit.domain.checkpoint import load_public_key
from paved_audit.settings import AuditSettings
from paved_audit.verify import verify_database
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    FieldChange,
    ModelVersionRegistered,
    ModelVersionValidated,
    RegisteredModelCreated,
    RegisteredModelUpdated,
)
from paved_shared.db import create_pool
from paved_shared.dbroles import ServiceDsns, provision_roles
from paved_shared.kafka import ensure_topics, kafka_auth
from paved_shared.outbox import pending_count
from paved_shared.testing import TopicSpec, drop_roles, sample_event, unique, wait_for
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration


def sub_of(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=="))["sub"])


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


FORGED = {"X-Paved-User": "erin", "X-Paved-User-Name": "Erin Auditor",
          "X-Paved-Roles": "auditor,admin,approver", "X-Paved-Teams": "churn,fraud"}  # fmt: skip


# --------------------------------------------------------------------------- approver


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _registry(data: Any) -> Envelope[Any]:
    return Envelope.new(data, source="/paved/registry", actor="service:registry",
                        actorname="Paved registry")  # fmt: skip


def registered(model: str, registrant: str, name: str) -> Envelope[ModelVersionRegistered]:
    return _registry(
        ModelVersionRegistered.model_validate(
            {
                "model_name": model, "version": 1,
                "artifact_uri": f"file:///artifacts/{model}/1/model.onnx",
                "artifact_digest": _digest(model), "framework": "onnx",
                "signature": {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
                },
                "model_card": {
                    "description": "Predicts churn.", "intended_use": "Retention offers.",
                    "limitations": "EU only.", "risk_tier": "medium",
                    "data_classification": "internal", "license": "Apache-2.0",
                },
                "registered_by": registrant, "registered_by_name": name,
                "request_id": str(uuid.uuid4()),
            }
        )
    )  # fmt: skip


def validated(model: str) -> Envelope[ModelVersionValidated]:
    data = ModelVersionValidated.model_validate(
        {
            "model_name": model, "version": 1, "artifact_digest": _digest(model),
            "passed": True, "checks": [{"name": "digest", "outcome": "passed", "duration_ms": 1}],
            "evidence_uri": f"file:///evidence/{model}.json",
            "evidence_digest": _digest("evidence " + model), "validator_version": "0.1.0",
        }
    )  # fmt: skip
    return Envelope.new(data, source="/paved/validator", actor="service:validator",
                        actorname="Paved validator")  # fmt: skip


@dataclass
class Approver:
    app: FastAPI
    client: httpx.AsyncClient
    publish: Callable[..., Awaitable[None]]

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.app.state.runtime.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def open_case(self, model: str, team: str, registrant: str, name: str) -> Any:
        created = RegisteredModelCreated(model_name=model, owner_team=team, created_via="api",
                                         created_by=registrant, created_by_name=name)  # fmt: skip
        reg = registered(model, registrant, name)
        await self.publish(_registry(created), reg, validated(model))
        found: list[asyncpg.Record] = []

        async def probe() -> bool:
            found[:] = await self.fetch(
                "SELECT * FROM approvals WHERE model_name = $1 AND state = 'pending'", model
            )
            return bool(found)

        await wait_for(probe, timeout_s=60, what=f"a pending case of {model}")
        return found[0], version_hash(reg.data)

    async def signatures(self, approval_id: str) -> int:
        rows = await self.fetch("SELECT 1 FROM signatures WHERE approval_id = $1", approval_id)
        return len(rows)

    async def sign(self, approval_id: str, token: str, vhash: str) -> httpx.Response:
        body = {"decision": "approve", "reason": "Reviewed.", "version_hash": vhash}
        return await self.client.post(
            f"/api/v1/approvals/{approval_id}/decisions", json=body, headers=bearer(token)
        )


@pytest.fixture(scope="module")
async def producer(stack: Any) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True,
        **kafka_auth().aiokafka(),
    )  # fmt: skip
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture(scope="module")
async def approver(
    stack: Any, oidc_provider: Any, producer: AIOKafkaProducer
) -> AsyncIterator[Approver]:
    settings = ApproverSettings(
        kafka_bootstrap=stack.bootstrap, database_url=stack.dsn,
        approver_db_schema=unique("t_attack_apv"), approver_consumer_group=unique("g-attack"),
        environment="test", auth_mode="oidc", oidc_issuer=oidc_provider.issuer,
        oidc_audience=oidc_provider.audience, oidc_jwks_min_refresh_s=0.5,
    )  # type: ignore[arg-type]  # fmt: skip

    async def publish(*envelopes: Envelope[Any]) -> None:
        for env in envelopes:
            await producer.send_and_wait(env.data.TOPIC, env.to_json_bytes(),
                                         key=env.data.key().encode())  # fmt: skip

    app = create_approver(settings, metrics_registry=CollectorRegistry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://approver") as client:
            yield Approver(app, client, publish)


def _model() -> str:
    return unique("attack").replace("_", "-")


async def test_owner_team_flip_during_approval_is_refused(
    approver: Approver, oidc_provider: Any
) -> None:
    model = _model()
    case, vhash = await approver.open_case(model, "churn", "sam", "Sam Scientist")
    approval_id = case["approval_id"]
    # frank (approver, team fraud) has the model moved into his team, then signs.
    flip = _registry(RegisteredModelUpdated(
        model_name=model, changes=[FieldChange(field="owner_team", old="churn", new="fraud")],
        revision=2, updated_by="frank",
    ))  # fmt: skip
    await approver.publish(flip)

    async def flipped() -> bool:
        rows = await approver.fetch("SELECT owner_team FROM models WHERE model_name = $1", model)
        return bool(rows) and rows[0]["owner_team"] == "fraud"

    await wait_for(flipped, what="the owner flip applied")
    frank = oidc_provider.login("frank").access_token
    refused = await approver.sign(approval_id, frank, vhash)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/team-scope")
    assert (await approver.client.get(f"/api/v1/approvals/{approval_id}",
                                      headers=bearer(frank))).status_code == 403  # fmt: skip
    # Nothing changed: no signature, the case still pending and scoped to churn.
    assert await approver.signatures(approval_id) == 0
    [row] = await approver.fetch("SELECT * FROM approvals WHERE approval_id = $1", approval_id)
    assert (row["state"], row["owner_team"]) == ("pending", "churn")
    # Positive control: the snapshot team's approver signs.
    ok = await approver.sign(approval_id, oidc_provider.login("bob").access_token, vhash)
    assert ok.status_code == 201, ok.text
    assert await approver.signatures(approval_id) == 1


@pytest.mark.parametrize("registrant", ["bob", "pipeline"])
async def test_self_approval_by_the_registrant_is_refused(
    approver: Approver, oidc_provider: Any, registrant: str
) -> None:
    # The registry names the registrant by the token's subject; here that subject is an
    # approver (bob) or the pipeline's service account, and it then tries to approve.
    if registrant == "pipeline":
        token = oidc_provider.client_credentials_token()
        name = "service-account-paved-pipeline"
    else:
        token = oidc_provider.login("bob").access_token
        name = "Bob Reviewer"
    model = _model()
    case, vhash = await approver.open_case(model, "churn", sub_of(token), name)
    refused = await approver.sign(case["approval_id"], token, vhash)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/separation-of-duties")
    assert await approver.signatures(case["approval_id"]) == 0
    # Forged dev headers alongside the token change nothing (oidc mode ignores them).
    forged = await approver.client.post(
        f"/api/v1/approvals/{case['approval_id']}/decisions",
        json={"decision": "approve", "reason": "r", "version_hash": vhash},
        headers={**FORGED, "X-Paved-User": "carol"},
    )
    assert forged.status_code == 401
    assert await approver.signatures(case["approval_id"]) == 0
    # Positive control: someone else eligible (carol, every team) signs.
    ok = await approver.sign(case["approval_id"], oidc_provider.login("carol").access_token, vhash)
    assert ok.status_code == 201, ok.text


# --------------------------------------------------------------------------- audit


@dataclass
class Audit:
    app: FastAPI
    client: httpx.AsyncClient
    dsns: ServiceDsns
    admin_dsn: str
    schema: str
    out_topic: str
    bootstrap: str
    public_key_file: Path
    records: int


@pytest.fixture(scope="module")
async def audit(
    stack: Any, oidc_provider: Any, producer: AIOKafkaProducer, tmp_path_factory: Any
) -> AsyncIterator[Audit]:
    """The audit service in oidc mode, migrating as the owner and serving as its own
    runtime role, with a few events sealed and checkpointed."""
    run = uuid.uuid4().hex[:8]
    prefix, schema = f"t{run}_", unique("t_attack_audit")
    inbound, dlq, out = (f"test.{run}.in", f"test.{run}.dlq", f"test.{run}.audit")
    spec = topics.topic_spec(topics.AUDIT)
    await ensure_topics(stack.bootstrap, [TopicSpec(inbound), TopicSpec(dlq),
                                          TopicSpec(out, 1, dict(spec.config))])  # fmt: skip
    dsns = (await provision_roles(stack.dsn, {"audit": schema}, owner=f"{prefix}owner",
                                  role_prefix=prefix))["audit"]  # fmt: skip
    key = tmp_path_factory.mktemp("attack-key") / "checkpoint.pem"
    settings = AuditSettings(
        kafka_bootstrap=stack.bootstrap, environment="test",
        database_url=dsns.database_url, database_password=dsns.password,
        database_migration_url=dsns.migration_url,
        database_migration_password=dsns.migration_password,
        audit_db_schema=schema, audit_consumer_group=unique("g-attack-audit"),
        audit_topics=(inbound,), audit_dead_letter_topic=dlq, audit_output_topic=out,
        audit_checkpoint_key_path=key, audit_checkpoint_every_records=3,
        audit_checkpoint_interval_s=0.5, log_json=False,
        auth_mode="oidc", oidc_issuer=oidc_provider.issuer, oidc_audience=oidc_provider.audience,
    )  # type: ignore[arg-type]  # fmt: skip
    app = create_audit(settings, metrics_registry=CollectorRegistry())
    try:
        async with app.router.lifespan_context(app):
            for i in range(4):
                env = sample_event(f"attack-{i}")
                await producer.send_and_wait(inbound, env.to_json_bytes(), key=b"attack")
            pool = app.state.runtime.pool

            async def settled() -> bool:
                async with pool.acquire() as conn:
                    n = await conn.fetchval("SELECT count(*) FROM audit_records")
                    size = await conn.fetchval("SELECT max(tree_size) FROM audit_checkpoints")
                return bool(n == 4 and size == 4 and await pending_count(pool) == 0)

            await wait_for(settled, timeout_s=60, what="4 records sealed and checkpointed")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
                yield Audit(app, client, dsns, stack.dsn, schema, out, stack.bootstrap,
                            public_key_path(key), 4)  # fmt: skip
    finally:
        await drop_roles(stack.dsn, prefix)


async def test_audit_api_ignores_forged_headers_and_needs_the_auditor_role(
    audit: Audit, oidc_provider: Any
) -> None:
    c = audit.client
    assert (await c.get("/healthz")).status_code == 200  # health needs no login
    for path in ("/api/v1/audit/records", "/api/v1/audit/public-key", "/api/v1/audit/verify",
                 "/api/v1/audit/checkpoints/latest"):  # fmt: skip
        forged = await c.get(path, headers=FORGED)
        assert forged.status_code == 401, (path, forged.text)
        assert "accepted only in dev-headers mode" in forged.json()["detail"]
        assert "record_hash" not in forged.text
        assert "pem" not in forged.json()
    alice = oidc_provider.login("alice").access_token  # a scientist
    frank = oidc_provider.password_token("frank")  # an approver
    for token in (alice, frank):
        denied = await c.get("/api/v1/audit/records", headers=bearer(token, **FORGED))
        assert denied.status_code == 403, denied.text
        assert "needs role auditor or admin" in denied.json()["detail"]
        assert "record_hash" not in denied.text
    # Positive controls: the auditor and the administrator read the trail.
    for user in ("erin", "dave"):
        ok = await c.get(
            "/api/v1/audit/records", headers=bearer(oidc_provider.password_token(user))
        )
        assert ok.status_code == 200, ok.text
        assert [r["sequence"] for r in ok.json()] == list(range(audit.records))


async def _trail_state(dsn: str, schema: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT sequence, record_hash FROM "{schema}".audit_records ORDER BY sequence'
        )
        return [(r["sequence"], r["record_hash"]) for r in rows]
    finally:
        await conn.close()


ATTACKS = [
    "ALTER TABLE audit_records DISABLE TRIGGER ALL",
    "ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update_delete",
    "DROP TRIGGER audit_records_no_update_delete ON audit_records",
    "UPDATE audit_records SET record_hash = repeat('0', 64) WHERE sequence = 1",
    "DELETE FROM audit_records WHERE sequence = 3",
    "TRUNCATE audit_records",
    "UPDATE audit_checkpoints SET root_hash = repeat('0', 64)",
    "DELETE FROM audit_checkpoints",
    "TRUNCATE audit_checkpoints",
    "ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL",
    "UPDATE outbox SET value = 'forged'::bytea",
    "DELETE FROM outbox",
    "DELETE FROM processed_events",
    "ALTER TABLE audit_records OWNER TO CURRENT_USER",
    "CREATE OR REPLACE FUNCTION audit_records_refuse_change() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda s: s.split(" WHERE")[0][:60])
async def test_the_audit_runtime_role_cannot_change_the_trail(audit: Audit, attack: str) -> None:
    before = await _trail_state(audit.admin_dsn, audit.schema)
    conn = await asyncpg.connect(audit.dsns.database_url, password=audit.dsns.password)
    try:
        assert await conn.fetchval("SELECT current_user") == audit.dsns.role
        await conn.execute(f'SET search_path TO "{audit.schema}"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(attack)
    finally:
        await conn.close()
    assert await _trail_state(audit.admin_dsn, audit.schema) == before
    # The chain still verifies against the pinned key, read through the runtime role.
    pool = await create_pool(audit.dsns.database_url, schema=audit.schema,
                             password=audit.dsns.password)  # fmt: skip
    try:
        key = load_public_key(audit.public_key_file.read_text())
        report = await verify_database(pool, public_key=key)
    finally:
        await pool.close()
    assert report.ok, report.summary_lines()
    assert report.records_valid == audit.records


async def test_the_refused_statements_are_real_ones_for_the_owner(audit: Audit) -> None:
    """Positive control: the same statements run for the owner (rolled back), so the
    refusals above come from the runtime role's privileges, not from a typo."""
    conn = await asyncpg.connect(audit.dsns.migration_url, password=audit.dsns.migration_password)
    try:
        await conn.execute(f'SET search_path TO "{audit.schema}"')
        for sql in ("ALTER TABLE audit_records DISABLE TRIGGER ALL",
                    "DROP TRIGGER audit_records_no_update_delete ON audit_records"):  # fmt: skip
            tx = conn.transaction()
            await tx.start()
            await conn.execute(sql)
            await tx.rollback()
    finally:
        await conn.close()
    assert len(await _trail_state(audit.admin_dsn, audit.schema)) == audit.records


async def test_unpinned_verify_exits_non_zero(audit: Audit) -> None:
    from paved_cli.main import app as cli
    from typer.testing import CliRunner

    env = {"PAVED_KAFKA_BOOTSTRAP": audit.bootstrap, "PAVED_AUDIT_PUBLIC_KEY": None,
           "COLUMNS": "200"}  # fmt: skip

    def paved(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["audit", "verify", "--topic", audit.out_topic, *args],
                                    env=env)  # fmt: skip
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(paved)
    assert code == 2, out
    assert "needs a pinned checkpoint public key" in out
    assert "audit chain verified" not in out
    code, out = await asyncio.to_thread(paved, "--trust-embedded-key")
    assert code == 3, out
    assert "WARNING: NOT VERIFIED against a pinned key" in out
    assert "audit chain verified" not in out
    # Positive control: pinned, it verifies (and a wrong pin does not).
    code, out = await asyncio.to_thread(paved, "--public-key", str(audit.public_key_file))
    assert code == 0, out
    assert "audit chain verified" in out
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from paved_audit.domain.checkpoint import public_key_pem

    other = audit.public_key_file.with_name("other.pub.pem")
    other.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key().public_bytes_raw()))
    code, out = await asyncio.to_thread(paved, "--public-key", str(other))
    assert code == 1, out
    assert "audit chain verified" not in out


@pytest.mark.parametrize("environment", ["staging", "prod"])
async def test_a_missing_checkpoint_key_outside_dev_test_stops_the_start(
    tmp_path: Path, environment: str
) -> None:
    key = tmp_path / "keys" / "checkpoint.pem"
    settings = AuditSettings(
        environment=environment, auth_mode="oidc",
        oidc_issuer="https://sso.example/realms/paved", oidc_audience="paved-api",
        audit_checkpoint_key_path=key, database_password="a-real-secret-" + uuid.uuid4().hex,
        kafka_security_protocol="SASL_SSL",
    )  # type: ignore[arg-type]  # fmt: skip
    app = create_audit(settings, metrics_registry=CollectorRegistry())
    with pytest.raises(SignerKeyError) as refused:
        async with app.router.lifespan_context(app):
            pytest.fail("the audit service started without its checkpoint key")
    assert str(key) in str(refused.value)
    assert "docs/runbooks/audit-checkpoint-key.md" in str(refused.value)
    assert not key.exists()
    assert not public_key_path(key).exists()
    assert not key.parent.exists()
    # Positive control: in test the same settings generate the key.
    dev = AuditSettings(environment="test", audit_checkpoint_key_path=key)
    from paved_audit.bootstrap import make_signer

    make_signer(dev).key_id  # noqa: B018 - loads (creates) the key
    assert key.exists()
