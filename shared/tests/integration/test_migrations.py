"""The plain-SQL migration runner against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from paved_shared.db import Migration, MigrationError, create_pool, load_migrations, migrate
from paved_shared.testing import unique

pytestmark = pytest.mark.integration


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


async def test_applies_in_order_once_and_refuses_edited_history(stack, tmp_path: Path) -> None:
    schema = unique("t_mig")
    mig = tmp_path / "m"
    _write(mig, "0001_create.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    _write(mig, "0002_add.sql", "ALTER TABLE things ADD COLUMN name text;")
    _write(mig, "README.md", "not a migration")
    pool = await create_pool(stack.dsn, schema=schema)
    try:
        first = await migrate(pool, schema, load_migrations("svc", mig))
        assert [m.version for m in first] == [1, 2]
        assert await migrate(pool, schema, load_migrations("svc", mig)) == []
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO things (id, name) VALUES (1, 'a')")
            where = await conn.fetchval(
                "SELECT table_schema FROM information_schema.tables WHERE table_name='things' "
                "AND table_schema = $1", schema,
            )  # fmt: skip
            assert where == schema

        _write(mig, "0002_add.sql", "ALTER TABLE things ADD COLUMN label text;")
        with pytest.raises(MigrationError, match=r"0002_add changed after it was applied"):
            await migrate(pool, schema, load_migrations("svc", mig))

        (mig / "0002_add.sql").unlink()
        with pytest.raises(MigrationError, match=r"0002_add was applied but its file is missing"):
            await migrate(pool, schema, load_migrations("svc", mig))
    finally:
        await pool.close()


async def test_failed_migration_rolls_back_and_names_itself(stack) -> None:
    schema = unique("t_mig")
    pool = await create_pool(stack.dsn, schema=schema)
    try:
        bad = [
            Migration("svc", 1, "ok", "CREATE TABLE a (id int);"),
            Migration("svc", 2, "broken", "CREATE TABLE b (id int); SELECT * FROM nowhere;"),
        ]
        with pytest.raises(MigrationError, match=r"0002_broken failed: .*nowhere"):
            await migrate(pool, schema, bad)
        async with pool.acquire() as conn:
            tables = {
                r["table_name"]
                for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema=$1", schema
                )
            }
        assert "a" in tables
        assert "b" not in tables, "the failed migration's own statements must roll back"
    finally:
        await pool.close()


async def test_concurrent_starts_apply_each_migration_once(stack) -> None:
    schema = unique("t_mig")
    migs = [
        Migration("svc", 1, "counter", "CREATE TABLE runs (n int); INSERT INTO runs VALUES (1);")
    ]
    pools = [await create_pool(stack.dsn, schema=schema) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(p, schema, migs) for p in pools))
        assert sorted(len(r) for r in results) == [0, 0, 0, 1]
        async with pools[0].acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM runs") == 1
    finally:
        for p in pools:
            await p.close()


def test_rejects_unsafe_schema_names() -> None:
    from paved_shared.db import check_identifier

    with pytest.raises(ValueError, match=r"invalid SQL identifier 'bad; DROP'"):
        check_identifier("bad; DROP")
