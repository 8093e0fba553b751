"""Database roles on the real PostgreSQL: the owner migrates, each runtime role gets only
its policy in its own schema, owns nothing, and so cannot alter, disable triggers or
truncate; a second provisioning rotates passwords; an old single-role schema is adopted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from paved_shared.db import create_pool, migrate, shared_migrations
from paved_shared.dbroles import (
    DEFAULT_GRANTS,
    GrantPolicy,
    RoleProvisioningError,
    ServiceDsns,
    apply_grants,
    dsn_as,
    provision_roles,
    runtime_role_name,
)
from paved_shared.testing import drop_roles, unique

pytestmark = pytest.mark.integration


def _names() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"t{run}_", f"t{run}_owner"


@pytest.fixture
async def roles(stack: Any) -> AsyncIterator[tuple[dict[str, ServiceDsns], str, str]]:
    prefix, owner = _names()
    schemas = {"svc-a": unique("t_roles_a"), "svc-b": unique("t_roles_b")}
    dsns = await provision_roles(stack.dsn, schemas, owner=owner, role_prefix=prefix)
    try:
        yield dsns, prefix, owner
    finally:
        await drop_roles(stack.dsn, prefix)


def _table_migration(schema_component: str) -> list[Any]:
    from paved_shared.db import Migration

    sql = "CREATE TABLE things (id bigserial PRIMARY KEY, v text); CREATE TABLE ledger (v text)"
    return [Migration(schema_component, 1, "things", sql)]


async def test_runtime_roles_stay_inside_their_policy_and_schema(
    stack: Any, roles: tuple[dict[str, ServiceDsns], str, str]
) -> None:
    dsns, prefix, _ = roles
    a, b = dsns["svc-a"], dsns["svc-b"]
    assert a.role == f"{prefix}svc_a"
    assert a.database_url == dsn_as(stack.dsn, a.role)
    assert a.password not in repr(a)
    assert a.migration_password not in repr(a)
    assert set(a.env()) == {
        "PAVED_DATABASE_URL",
        "PAVED_DATABASE_PASSWORD",
        "PAVED_DATABASE_MIGRATION_URL",
        "PAVED_DATABASE_MIGRATION_PASSWORD",
    }
    policy = GrantPolicy(
        tables={**DEFAULT_GRANTS.tables, "ledger": frozenset({"SELECT", "INSERT"})}
    )
    for d in (a, b):
        owner_pool = await create_pool(
            d.migration_url, schema=d.schema, password=d.migration_password
        )
        try:
            await migrate(
                owner_pool, d.schema, [*shared_migrations(), *_table_migration(d.service)]
            )
            async with owner_pool.acquire() as conn:
                await apply_grants(conn, d.schema, d.role, policy)
        finally:
            await owner_pool.close()

    conn = await asyncpg.connect(a.database_url, password=a.password)
    try:
        assert await conn.fetchval("SELECT current_user") == a.role
        await conn.execute(f"SET search_path TO {a.schema}")
        # Positive control: the policy works.
        await conn.execute("INSERT INTO things (v) VALUES ('x')")
        await conn.execute("UPDATE things SET v = 'y'")
        await conn.execute("INSERT INTO ledger VALUES ('entry')")
        assert await conn.fetchval("SELECT count(*) FROM ledger") == 1
        refused = [
            "UPDATE ledger SET v = 'rewritten'",
            "DELETE FROM ledger",
            "TRUNCATE ledger",
            "TRUNCATE things",
            "ALTER TABLE things DISABLE TRIGGER ALL",
            "ALTER TABLE ledger ADD COLUMN sneaky text",
            "DROP TABLE ledger",
            "CREATE TABLE mine (v text)",
            "CREATE TABLE public.mine (v text)",
            "INSERT INTO schema_migrations VALUES ('x', 99, 'x', 'x')",
            f"SELECT * FROM {b.schema}.things",
            f"INSERT INTO {b.schema}.ledger VALUES ('cross')",
        ]
        for sql in refused:
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(sql)
            assert caught.value.sqlstate in {"42501"}, (sql, caught.value)  # insufficient_privilege
        assert await conn.fetchval("SELECT array_agg(v) FROM ledger") == ["entry"]
    finally:
        await conn.close()


async def test_provisioning_again_rotates_and_adopts_a_single_role_schema(stack: Any) -> None:
    prefix, owner = _names()
    legacy = unique("t_roles_legacy")
    # A schema as today's single superuser role leaves it.
    pool = await create_pool(stack.dsn, schema=legacy)
    try:
        await migrate(pool, legacy, [*shared_migrations(), *_table_migration("legacy")])
    finally:
        await pool.close()
    try:
        first = await provision_roles(
            stack.dsn, {"legacy": legacy}, owner=owner, role_prefix=prefix
        )
        given = {owner: "owner-secret-1", runtime_role_name("legacy", prefix=prefix): "rt-2"}
        second = await provision_roles(
            stack.dsn, {"legacy": legacy}, given, owner=owner, role_prefix=prefix
        )
        assert first["legacy"].password != second["legacy"].password == "rt-2"
        assert second["legacy"].migration_password == "owner-secret-1"
        conn = await asyncpg.connect(stack.dsn)
        try:
            owners = await conn.fetch(
                "SELECT DISTINCT pg_get_userbyid(c.relowner) AS o FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                legacy,
            )
            assert {r["o"] for r in owners} == {owner}
            assert (
                await conn.fetchval(
                    "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles "
                    "WHERE rolname = $1",
                    second["legacy"].role,
                )
                is False
            )
        finally:
            await conn.close()
        # The owner can migrate the adopted schema further.
        d = second["legacy"]
        owner_pool = await create_pool(
            d.migration_url, schema=legacy, password=d.migration_password
        )
        try:
            from paved_shared.db import Migration

            more = Migration("legacy", 2, "more", "ALTER TABLE things ADD COLUMN w text")
            await migrate(
                owner_pool, legacy, [*shared_migrations(), *_table_migration("legacy"), more]
            )
            async with owner_pool.acquire() as c:
                await apply_grants(c, legacy, d.role, DEFAULT_GRANTS)
                with pytest.raises(RoleProvisioningError, match="names tables"):
                    await apply_grants(c, legacy, d.role, GrantPolicy(tables={"nope": frozenset()}))
        finally:
            await owner_pool.close()
    finally:
        await drop_roles(stack.dsn, prefix)


async def test_only_a_superuser_provisions(stack: Any, roles: Any) -> None:
    dsns, prefix, owner = roles
    d = dsns["svc-a"]
    with pytest.raises(RoleProvisioningError, match="must run as a superuser"):
        await provision_roles(d.database_url, ["x"], owner=owner, role_prefix=prefix)


def test_policies_refuse_privileges_beyond_dml() -> None:
    with pytest.raises(ValueError, match="TRUNCATE"):
        GrantPolicy(tables={"t": frozenset({"TRUNCATE"})})
    with pytest.raises(ValueError, match="TRIGGER"):
        GrantPolicy(default=frozenset({"TRIGGER"}))
    GrantPolicy(tables={"t": frozenset({"UPDATE (a, b)"})})
