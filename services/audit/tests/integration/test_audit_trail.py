"""The whole audit trail on the real Kafka and PostgreSQL: the service signs checkpoints,
replay from the topic alone reproduces the signed root byte for byte into an empty
store, the read-only API serves auditors only, proofs and exports verify offline."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from paved_audit.bootstrap import create_app
from paved_audit.domain.checkpoint import load_public_key
from paved_audit.export import verify_bundle
from paved_audit.proofs import verify_proof_document
from paved_audit.replay import ReplayError, replay_topic
from paved_audit.settings import AuditSettings
from paved_audit.verify import read_database_checkpoints, verify_database, verify_topic
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_shared.db import Pool, create_pool
from paved_shared.kafka import ensure_topics, kafka_auth
from paved_shared.outbox import pending_count
from paved_shared.testing import TopicSpec, unique, wait_for
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

AUDITOR = {"X-Paved-User": "ines", "X-Paved-User-Name": "Ines Auditor",
           "X-Paved-Roles": "auditor"}  # fmt: skip


@dataclass
class Trail:
    """A running audit service that sealed two workflows and a poison message."""

    settings: AuditSettings
    app: FastAPI
    client: httpx.AsyncClient
    pool: Pool
    out: str
    key: bytes
    key_path: Path
    midpoint: datetime
    """A time between the first workflow's last checkpoint and the second workflow."""
    first_ids: list[str]
    second_ids: list[str]
    dsn: str
    bootstrap: str


async def _topics(bootstrap: str) -> tuple[str, str, str]:
    await ensure_topics(bootstrap, topics.ALL_TOPICS)
    run = uuid.uuid4().hex[:10]
    inbound, dlq, out = (f"test.{run}.in", f"test.{run}.dlq", f"test.{run}.{topics.AUDIT}")
    spec = topics.topic_spec(topics.AUDIT)
    await ensure_topics(
        bootstrap,
        [
            TopicSpec(inbound, 3),
            TopicSpec(dlq, 3),
            TopicSpec(out, spec.partitions, dict(spec.config)),
        ],
    )
    return inbound, dlq, out


async def _publish(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _settled(pool: Pool, records: int) -> bool:
    async with pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM audit_records")
        size = await conn.fetchval("SELECT max(tree_size) FROM audit_checkpoints")
    return bool(n == records and size == records and await pending_count(pool) == 0)


@pytest.fixture(scope="module")
async def trail(
    stack: Any, tmp_path_factory: pytest.TempPathFactory, make_envelopes: Any
) -> AsyncIterator[Trail]:
    inbound, dlq, out = await _topics(stack.bootstrap)
    key_path = tmp_path_factory.mktemp("audit-key") / "checkpoint.pem"
    settings = AuditSettings(
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        audit_db_schema=unique("t_trail"),
        audit_consumer_group=unique("g_trail"),
        audit_topics=(inbound,),
        audit_dead_letter_topic=dlq,
        audit_output_topic=out,
        audit_checkpoint_key_path=key_path,
        audit_checkpoint_every_records=5,
        audit_checkpoint_interval_s=0.5,
        log_json=False,
    )
    first: list[Envelope[Any]] = make_envelopes("trail-one")
    second: list[Envelope[Any]] = make_envelopes("trail-two")
    app = create_app(settings, metrics_registry=CollectorRegistry())
    async with app.router.lifespan_context(app):
        pool = app.state.runtime.pool
        await _publish(stack.bootstrap, inbound, [
            *((b"one", e.to_json_bytes()) for e in first), (b"one", b"{not json"),
        ])  # fmt: skip
        # 7 events + the poison message's dead letter (a gap record)
        await wait_for(lambda: _settled(pool, 8), timeout_s=60, what="8 records checkpointed")
        midpoint = datetime.now(UTC)
        await asyncio.sleep(1.1)  # Kafka timestamps are milliseconds: keep the halves apart
        await _publish(stack.bootstrap, inbound, [(b"two", e.to_json_bytes()) for e in second])
        await wait_for(lambda: _settled(pool, 15), timeout_s=60, what="15 records checkpointed")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
            yield Trail(
                settings, app, client, pool, out, await app.state.signer.public_key(), key_path,
                midpoint, [e.id for e in first], [e.id for e in second], stack.dsn,
                stack.bootstrap,
            )  # fmt: skip


async def test_service_signs_chained_checkpoints_and_the_topic_verifies(trail: Trail) -> None:
    report = await verify_topic(trail.bootstrap, trail.out, public_key=trail.key)
    assert report.ok, report.summary_lines()
    assert report.records_valid == 15
    assert report.key_pinned
    assert report.checkpoints_valid >= 3
    assert report.latest_checkpoint is not None
    assert report.latest_checkpoint.body.tree_size == 15
    [gap] = report.gaps
    assert gap.consumer_group == trail.settings.audit_consumer_group
    assert gap.reason.startswith("not valid JSON") or "JSON" in gap.reason
    db = await verify_database(trail.pool, public_key=trail.key)
    assert db.ok, db.summary_lines()
    assert db.latest_checkpoint is not None
    assert db.latest_checkpoint.signed_body == report.latest_checkpoint.signed_body
    sizes = [c.body.tree_size for c in await read_database_checkpoints(trail.pool)]
    # Every 5 records (in the sealing transaction) or every 0.5 s (the timer): never more
    # than 5 records between two checkpoints; 8 was signed by the timer.
    assert sizes[:2] == [5, 8]
    assert sizes[-1] == 15
    assert all(0 < b - a <= 5 for a, b in itertools.pairwise(sizes))
    async with trail.pool.acquire() as conn:
        kinds = await conn.fetch("SELECT sequence, kind FROM audit_records WHERE kind = 'gap'")
    assert [r["sequence"] for r in kinds] == [gap.sequence]
    # The key file: created on first start, private, its public half beside it.
    assert oct(trail.key_path.stat().st_mode & 0o777) == "0o600"
    pem = (trail.key_path.parent / "checkpoint.pub.pem").read_text()
    assert load_public_key(pem) == trail.key


async def test_replay_from_offset_zero_reproduces_the_signed_root_byte_for_byte(
    trail: Trail,
) -> None:
    schema = unique("t_replay")
    report = await replay_topic(
        trail.bootstrap, trail.dsn, schema, topic=trail.out, public_key=trail.key
    )
    assert report.ok, report.summary_lines()
    assert report.matches
    assert report.checkpoint is not None
    assert report.recomputed_root is not None
    signed = bytes.fromhex(report.checkpoint.body.root_hash)
    assert bytes.fromhex(report.recomputed_root) == signed
    assert (report.records_written, report.first_sequence) == (15, 0)
    # The rebuilt store holds exactly what the live store holds.
    replayed = await create_pool(trail.dsn, schema=schema)
    try:
        columns = "sequence, event_id, event_type, record, prev_hash, record_hash, sealed_at, kind"
        live_rows = await trail.pool.fetch(f"SELECT {columns} FROM audit_records ORDER BY 1")
        new_rows = await replayed.fetch(f"SELECT {columns} FROM audit_records ORDER BY 1")
        assert [tuple(r) for r in new_rows] == [tuple(r) for r in live_rows]
        cps = "checkpoint_index, tree_size, signed_body, signature, frontier"
        live_cps = await trail.pool.fetch(f"SELECT {cps} FROM audit_checkpoints ORDER BY 1")
        new_cps = await replayed.fetch(f"SELECT {cps} FROM audit_checkpoints ORDER BY 1")
        assert [tuple(r) for r in new_cps] == [tuple(r) for r in live_cps]
    finally:
        await replayed.close()
    assert any(line.endswith(f"MATCHES the root signed in checkpoint #{len(live_cps) - 1}: "
                             f"{signed.hex()}") for line in report.summary_lines())  # fmt: skip
    with pytest.raises(ReplayError, match=f"schema '{schema}' already holds 15 audit records"):
        await replay_topic(trail.bootstrap, trail.dsn, schema, topic=trail.out)


async def test_replay_since_a_time_starts_at_the_checkpoint_before_it(trail: Trail) -> None:
    report = await replay_topic(
        trail.bootstrap, trail.dsn, unique("t_since"), topic=trail.out,
        since=trail.midpoint, public_key=trail.key,
    )  # fmt: skip
    assert report.ok, report.summary_lines()
    assert report.first_sequence == 8  # the first half's last checkpoint covers 0..7
    assert report.records_written == 7
    assert report.matches


async def test_replay_for_one_model_lists_its_records(trail: Trail) -> None:
    report = await replay_topic(
        trail.bootstrap, trail.dsn, unique("t_model"), topic=trail.out, model="trail-two"
    )
    assert report.ok, report.summary_lines()
    assert report.model_sequences == list(range(8, 15))


async def test_the_api_serves_auditors_and_admins_only(trail: Trail) -> None:
    c = trail.client
    anonymous = await c.get("/api/v1/audit/records")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert "missing X-Paved-User header" in anonymous.json()["detail"]
    scientist_headers = {"X-Paved-User": "sam", "X-Paved-User-Name": "Sam Scientist",
                         "X-Paved-Roles": "scientist"}  # fmt: skip
    scientist = await c.get("/api/v1/audit/records", headers=scientist_headers)
    assert scientist.status_code == 403
    assert "needs role auditor or admin, holds ['scientist']" in scientist.json()["detail"]
    for roles in ("auditor", "admin", "scientist, auditor"):
        ok = await c.get("/api/v1/audit/records?limit=3",
                         headers={**AUDITOR, "X-Paved-Roles": roles})  # fmt: skip
        assert ok.status_code == 200, ok.text
        assert [r["sequence"] for r in ok.json()] == [0, 1, 2]
    write = await c.post("/api/v1/audit/records", headers=AUDITOR, json={})
    assert write.status_code == 405
    assert "read-only" in write.json()["detail"]
    assert (await c.delete("/api/v1/audit/records/1", headers=AUDITOR)).status_code == 405


async def test_the_api_reads_records_gaps_checkpoints_and_verifies(trail: Trail) -> None:
    c = trail.client
    record = (await c.get("/api/v1/audit/records/9", headers=AUDITOR)).json()
    assert record["record"]["id"] == trail.second_ids[1]
    missing = await c.get("/api/v1/audit/records/999", headers=AUDITOR)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no audit record with sequence 999"
    bad = await c.get("/api/v1/audit/records/-1", headers=AUDITOR)
    assert bad.status_code == 422
    [gap] = (await c.get("/api/v1/audit/gaps", headers=AUDITOR)).json()
    assert gap["kind"] == "gap"
    assert gap["event_type"] == "dev.paved.deadletter.recorded.v1"
    latest = (await c.get("/api/v1/audit/checkpoints/latest", headers=AUDITOR)).json()
    assert latest["tree_size"] == 15
    pem = (await c.get("/api/v1/audit/public-key", headers=AUDITOR)).json()["pem"]
    assert load_public_key(pem) == trail.key
    verified = (await c.get("/api/v1/audit/verify", headers=AUDITOR)).json()
    assert verified["ok"] is True
    assert verified["first_bad_record"] is None
    assert "15/15 audit records valid" in verified["summary"]


async def test_api_proofs_and_exports_verify_offline(trail: Trail) -> None:
    c = trail.client
    inclusion = (await c.get("/api/v1/audit/proofs/inclusion/9", headers=AUDITOR)).json()
    assert "record 9 is included in signed checkpoint" in verify_proof_document(
        inclusion, trail.key
    )
    old = (await c.get("/api/v1/audit/proofs/inclusion/3?tree_size=5", headers=AUDITOR)).json()
    assert old["tree_size"] == 5
    verify_proof_document(old, trail.key)
    consistency = await c.get("/api/v1/audit/proofs/consistency?first=5&second=15",
                              headers=AUDITOR)  # fmt: skip
    assert "extends" in verify_proof_document(consistency.json(), trail.key)
    backwards = await c.get("/api/v1/audit/proofs/consistency?first=15&second=5", headers=AUDITOR)
    assert backwards.status_code == 422
    assert "give the older one first" in backwards.json()["detail"]
    unknown = await c.get("/api/v1/audit/proofs/consistency?first=6&second=15", headers=AUDITOR)
    assert unknown.status_code == 404

    bundle = (await c.get("/api/v1/audit/exports/trail-one/1", headers=AUDITOR)).json()
    report = verify_bundle(json.loads(json.dumps(bundle)), trail.key)
    assert report.ok, report.problems
    assert report.bundle_signed
    sequences = [e["sequence"] for e in bundle["records"]]
    ids = [json.loads(e["record"])["id"] for e in bundle["records"]]
    assert ids == trail.first_ids  # all 7 events of version 1, in order
    assert sequences == sorted(sequences)
    page = await c.get("/api/v1/audit/exports/trail-one/1/report.html", headers=AUDITOR)
    assert page.headers["content-type"].startswith("text/html")
    assert "Alice Scientist" in page.text
    assert "Integrity: <strong>verified</strong>" in page.text
    nothing = await c.get("/api/v1/audit/exports/no-such-model/1", headers=AUDITOR)
    assert nothing.status_code == 404
    invalid = await c.get("/api/v1/audit/exports/Bad%20Name/1", headers=AUDITOR)
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"


async def test_no_role_can_update_or_delete_records_or_checkpoints(trail: Trail) -> None:
    schema = trail.settings.audit_db_schema
    role = unique("audit_app")
    conn = await asyncpg.connect(trail.dsn)
    try:
        await conn.execute(f"CREATE ROLE {role}")
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        await conn.execute(f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            for table in ("audit_records", "audit_checkpoints"):
                for sql in (f'UPDATE "{schema}".{table} SET recorded_at = now()'
                            if table == "audit_checkpoints"
                            else f'UPDATE "{schema}".{table} SET subject = NULL',
                            f'DELETE FROM "{schema}".{table}'):  # fmt: skip
                    with pytest.raises(asyncpg.InsufficientPrivilegeError,
                                       match=f"permission denied for table {table}"):  # fmt: skip
                        async with conn.transaction():
                            await conn.execute(sql)
        # The owner (this connection's own role) is stopped by the triggers.
        for op, sql in (("UPDATE", f'UPDATE "{schema}".audit_checkpoints SET key_id = \'x\''),
                        ("DELETE", f'DELETE FROM "{schema}".audit_checkpoints'),
                        ("TRUNCATE", f'TRUNCATE "{schema}".audit_checkpoints')):  # fmt: skip
            refused = f"audit_checkpoints is append-only: {op} refused"
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=refused):
                await conn.execute(sql)
        with pytest.raises(asyncpg.CheckViolationError, match="index 0 is not the next one"):
            await conn.execute(
                f'INSERT INTO "{schema}".audit_checkpoints SELECT 0, 99, root_hash, chain_head, '
                "key_id, signed_body, signature, public_key, frontier, issued_at "
                f'FROM "{schema}".audit_checkpoints LIMIT 1'
            )
    finally:
        await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
        await conn.execute(f'REVOKE USAGE ON SCHEMA "{schema}" FROM {role}')
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


async def test_cli_verifies_proves_exports_and_replays_from_the_topic(
    trail: Trail, tmp_path: Path
) -> None:
    from paved_cli.main import app as cli
    from typer.testing import CliRunner

    pub = trail.key_path.parent / "checkpoint.pub.pem"
    env = {"PAVED_KAFKA_BOOTSTRAP": trail.bootstrap, "PAVED_DATABASE_URL": trail.dsn,
           "COLUMNS": "200"}  # fmt: skip
    runner = CliRunner()

    async def paved(*args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(runner.invoke, cli, list(args), env=env)
        return result.exit_code, result.output

    topic = ("--topic", trail.out)
    code, out = await paved("audit", "verify", *topic, "--public-key", str(pub))
    assert code == 0, out
    assert "15/15 audit records valid" in out
    assert "pinned)" in out
    assert "audit chain verified" in out

    pin = ("--public-key", str(pub))
    code, out = await paved("audit", "prove", "9", *topic, *pin, "--out", str(tmp_path / "p.json"))
    assert code == 0, out
    code, out = await paved("audit", "verify-proof", str(tmp_path / "p.json"),
                            "--public-key", str(pub))  # fmt: skip
    assert code == 0, out
    assert "record 9 is included in signed checkpoint" in out
    code, out = await paved("audit", "consistency", "0", "1", *topic, *pin,
                            "--out", str(tmp_path / "c.json"))  # fmt: skip
    assert code == 0, out
    assert "(size 8) extends #0 (size 5)" in out

    code, out = await paved("audit", "checkpoint", *topic, *pin, "--out", str(tmp_path / "w.json"))
    assert code == 0, out
    code, out = await paved("audit", "verify", *topic, *pin, "--witness", str(tmp_path / "w.json"))
    assert code == 0, out
    # Unpinned, nothing vouches for the trail: refused before reading, never "verified".
    for command in (("verify",), ("prove", "9"), ("consistency", "0", "1"), ("replay",)):
        code, out = await paved("audit", *command, *topic)
        assert code == 2, (command, out)
        assert "needs a pinned checkpoint public key" in out
        assert "verified" not in out.replace("nothing was verified", "")

    folder = str(tmp_path / "export")
    code, out = await paved("audit", "export", "trail-two", "1", *topic, "--out", folder,
                            "--public-key", str(pub))  # fmt: skip
    assert code == 0, out
    assert (tmp_path / "export" / "report.html").read_text().count("<tr>") == 8  # header + 7
    code, out = await paved("audit", "verify-bundle", str(tmp_path / "export" / "bundle.json"),
                            "--public-key", str(pub))  # fmt: skip
    assert code == 0, out
    assert "bundle verified offline" in out
    bundle = json.loads((tmp_path / "export" / "bundle.json").read_text())
    bundle["records"][0]["record"] = bundle["records"][0]["record"].replace("Alice", "Mallory")
    (tmp_path / "forged.json").write_text(json.dumps(bundle))
    code, out = await paved("audit", "verify-bundle", str(tmp_path / "forged.json"),
                            "--public-key", str(pub))  # fmt: skip
    assert code == 1
    assert "INVALID: record 8: inclusion proof of leaf 8" in out

    schema = unique("t_cli")
    code, out = await paved("audit", "replay", *topic, *pin, "--schema", schema,
                            "--model", "trail-one")  # fmt: skip
    assert code == 0, out
    assert "replay reproduces the signed root" in out
    assert "Model trail-one: 7 records" in out
    code, out = await paved("audit", "replay", *topic, *pin, "--schema", schema)
    assert code == 1
    assert "already holds 15 audit records" in out
    code, out = await paved("audit", "verify-bundle", str(tmp_path / "forged.json"))
    assert code == 1
    assert "needs the public key" in out
