"""The chain table on the real PostgreSQL: appends, dedupe, append-only, tamper detection."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import asyncpg
import pytest
from paved_audit.domain.chain import GENESIS_HASH, canonicalize
from paved_audit.handlers import AuditAppender
from paved_audit.verify import ErrorKind, read_database_records, verify_database
from paved_schemas.envelope import parse_envelope
from paved_shared.consumer import PermanentError
from paved_shared.db import Pool, create_pool, load_migrations, migrate, shared_migrations
from paved_shared.deadletter import Delivery
from paved_shared.testing import unique

pytestmark = pytest.mark.integration

OUT = "test.audit.out"
TRIGGER = "audit_records_no_update_delete"


@pytest.fixture
async def audit_pool(stack: Any) -> AsyncIterator[tuple[Pool, str]]:
    schema = unique("t_audit")
    pool = await create_pool(stack.dsn, schema=schema, min_size=1, max_size=8)
    migrations = load_migrations("paved_audit", resources.files("paved_audit") / "migrations")
    await migrate(pool, schema, [*shared_migrations(), *migrations])
    try:
        yield pool, schema
    finally:
        await pool.close()


def _delivery(raw: bytes, offset: int, topic: str = "paved.model.events.v1") -> Delivery:
    return Delivery(topic=topic, partition=1, offset=offset, key=b"k", value=raw, headers={})


async def _seal(pool: Pool, appender: AuditAppender, raw: bytes, offset: int) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await appender.seal(parse_envelope(raw), conn, _delivery(raw, offset))


async def test_appends_a_dense_chain_once_per_event_and_outboxes_each(
    audit_pool: tuple[Pool, str], make_envelopes: Any
) -> None:
    pool, schema = audit_pool
    appender = AuditAppender(schema=schema, output_topic=OUT)
    raws = [e.to_json_bytes() for e in make_envelopes("store")]
    sealed = [await _seal(pool, appender, raw, offset) for offset, raw in enumerate(raws)]
    assert [s.sequence for s in sealed] == list(range(len(raws)))
    assert sealed[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.record_hash for a, b in itertools.pairwise(sealed))
    # Same event again: recognised, nothing appended, nothing published.
    assert await _seal(pool, appender, raws[2], 99) is None
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM audit_records ORDER BY sequence")
        outbox = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY seq")
    assert len(rows) == len(raws)
    for offset, (row, raw) in enumerate(zip(rows, raws, strict=True)):
        assert bytes(row["record"]) == canonicalize(raw)
        assert row["event_id"] == parse_envelope(raw).id
        assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
            "paved.model.events.v1", 1, offset,
        )  # fmt: skip
    assert [r["topic"] for r in outbox] == [OUT] * len(raws)
    published = [parse_envelope(bytes(r["value"])).data for r in outbox]
    assert [p.sequence for p in published] == list(range(len(raws)))
    assert [p.record.encode() for p in published] == [bytes(r["record"]) for r in rows]
    assert [p.sealed_at for p in published] == [r["sealed_at"] for r in rows]
    assert (await verify_database(pool)).ok


async def test_same_id_with_different_content_is_refused(
    audit_pool: tuple[Pool, str], make_envelopes: Any
) -> None:
    pool, schema = audit_pool
    appender = AuditAppender(schema=schema, output_topic=OUT)
    env = make_envelopes("clash")[1]
    await _seal(pool, appender, env.to_json_bytes(), 0)
    forged = env.model_copy(update={"actorname": "Mallory"}).to_json_bytes()
    with pytest.raises(PermanentError, match=rf"{env.id}.*already sealed at sequence 0"):
        await _seal(pool, appender, forged, 1)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_records") == 1


async def test_concurrent_appends_stay_one_dense_chain(
    audit_pool: tuple[Pool, str], make_envelopes: Any
) -> None:
    pool, schema = audit_pool
    appender = AuditAppender(schema=schema, output_topic=OUT)
    raws = [e.to_json_bytes() for m in range(5) for e in make_envelopes(f"c{m}")]
    await asyncio.gather(*(_seal(pool, appender, raw, i) for i, raw in enumerate(raws)))
    result = await verify_database(pool)
    assert result.ok, result.summary_lines()
    assert result.records_valid == len(raws) == 35
    assert result.last_sequence == 34


async def test_update_delete_truncate_are_refused_even_for_the_owner(
    audit_pool: tuple[Pool, str], make_envelopes: Any
) -> None:
    pool, schema = audit_pool
    appender = AuditAppender(schema=schema, output_topic=OUT)
    for i, env in enumerate(make_envelopes("ro")[:3]):
        await _seal(pool, appender, env.to_json_bytes(), i)
    async with pool.acquire() as conn:
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables "
            "WHERE schemaname = $1 AND tablename = 'audit_records'",
            schema,
        )
        assert owner == await conn.fetchval("SELECT current_user")
        statements = {
            "UPDATE": "UPDATE audit_records SET event_type = 'x' WHERE sequence = 1",
            "DELETE": "DELETE FROM audit_records WHERE sequence = 2",
            "TRUNCATE": "TRUNCATE audit_records",
        }
        for op, sql in statements.items():
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
                await conn.execute(sql)
            assert caught.value.args[0] == (
                f"{schema}.audit_records is append-only: {op} refused "
                "(audit records can never be changed or removed)"
            )
            assert "Record a correction as a new event" in str(caught.value)
        grants = await conn.fetchval(
            "SELECT count(*) FROM information_schema.role_table_grants WHERE table_schema = $1 "
            "AND table_name = 'audit_records' AND grantee = 'PUBLIC' "
            "AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')",
            schema,
        )
        assert grants == 0
    assert (await verify_database(pool)).records_valid == 3


async def test_a_hand_written_insert_that_breaks_the_chain_is_refused(
    audit_pool: tuple[Pool, str], make_envelopes: Any
) -> None:
    pool, schema = audit_pool
    appender = AuditAppender(schema=schema, output_topic=OUT)
    envs = make_envelopes("splice")
    for i, env in enumerate(envs[:2]):
        await _seal(pool, appender, env.to_json_bytes(), i)
    records = await read_database_records(pool)
    insert = (
        "INSERT INTO audit_records (sequence, event_id, event_type, event_time, source_topic, "
        "source_partition, source_offset, record, prev_hash, record_hash) "
        "VALUES ($1, 'forged', 't', now(), 't', 0, 0, $2, $3, $4)"
    )
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="sequence 1 is not the next one"):
            await conn.execute(insert, 1, b"{}", records[0].record_hash, "0" * 64)
        with pytest.raises(asyncpg.CheckViolationError, match="is not the head hash"):
            await conn.execute(insert, 2, b"{}", records[0].record_hash, "0" * 64)
        with pytest.raises(asyncpg.CheckViolationError, match=r"record_hash 0+ of sequence 2"):
            await conn.execute(insert, 2, b"{}", records[1].record_hash, "0" * 64)


async def test_verify_database_names_a_row_changed_behind_the_triggers(
    audit_pool: tuple[Pool, str], make_envelopes: Any
) -> None:
    pool, schema = audit_pool
    appender = AuditAppender(schema=schema, output_topic=OUT)
    for i, env in enumerate(make_envelopes("behind")):
        await _seal(pool, appender, env.to_json_bytes(), i)
    async with pool.acquire() as conn, conn.transaction():
        # Only the owner or a superuser can do this; the chain still shows it.
        await conn.execute(
            "ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update_delete"
        )
        await conn.execute(
            "UPDATE audit_records SET record = convert_to(replace(convert_from(record, 'UTF8'), "
            '\'"status":"ready"\', \'"status":"failed"\'), \'UTF8\') WHERE sequence = 5'
        )
        await conn.execute("DELETE FROM audit_records WHERE sequence = 6")
        await conn.execute(
            "ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_update_delete"
        )
    report = await verify_database(pool, schema=schema)
    assert report.error is not None
    assert report.error.kind is ErrorKind.CONTENT_CHANGED
    assert report.error.sequence == 5
    assert report.records_valid == 5
    assert f'"{schema}".audit_records sequence 5' in report.error.location
