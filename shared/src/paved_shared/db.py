"""PostgreSQL access: asyncpg pools and a plain-SQL migration runner.

Each service owns one schema. Migrations are plain ``NNNN_name.sql`` files applied
in order, each in its own transaction, under an advisory lock so concurrent starts
of one service do not race. Applied files are checksummed: editing one after it
ran is refused (write a new migration instead).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class MigrationError(RuntimeError):
    """A migration could not be applied, or the applied history does not match the files."""


def check_identifier(name: str) -> str:
    """Return name if it is a safe lower-case SQL identifier, else raise ValueError naming it."""
    if not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}: use [a-z_][a-z0-9_]*, at most 63 chars")
    return name


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10, password: str | None = None
) -> Pool:
    """A pool whose connections use ``schema`` first on the search path and decode JSON."""
    check_identifier(schema)
    pool = await asyncpg.create_pool(
        dsn,
        password=password,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"search_path": f"{schema},public", "application_name": schema},
    )
    assert pool is not None
    return pool


@dataclass(frozen=True)
class Migration:
    """One plain-SQL migration of one component."""

    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, source: Path | resources.abc.Traversable) -> list[Migration]:
    """Read ``NNNN_name.sql`` files from a folder or package resource, in version order."""
    found: list[Migration] = []
    for entry in source.iterdir():
        m = _MIGRATION_FILE.match(entry.name)
        if m is None:
            continue
        found.append(Migration(component, int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{component}: duplicate migration versions in {versions}")
    return found


def shared_migrations() -> list[Migration]:
    """The tables every service schema carries: outbox and processed events."""
    return load_migrations("paved_shared", resources.files("paved_shared") / "migrations")


async def migrate(pool: Pool, schema: str, migrations: Sequence[Migration]) -> list[Migration]:
    """Create ``schema`` and apply the migrations not applied yet; return those applied."""
    check_identifier(schema)
    applied_now: list[Migration] = []
    async with pool.acquire() as conn:
        # Session-level lock keyed by schema: two starting replicas apply each file once.
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"paved-migrate:{schema}")
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                    component text NOT NULL,
                    version int NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version))"""
            )
            rows = await conn.fetch(
                f'SELECT component, version, name, checksum FROM "{schema}".schema_migrations'
            )
            done = {(r["component"], r["version"]): r for r in rows}
            known = {(m.component, m.version) for m in migrations}
            for key, row in done.items():
                if key[0] in {m.component for m in migrations} and key not in known:
                    raise MigrationError(
                        f"{schema}: migration {key[0]} {key[1]:04d}_{row['name']} was applied "
                        "but its file is missing"
                    )
            for mig in migrations:
                prior = done.get((mig.component, mig.version))
                if prior is not None:
                    if prior["checksum"] != mig.checksum:
                        raise MigrationError(
                            f"{schema}: migration {mig.component} {mig.version:04d}_{mig.name} "
                            "changed after it was applied; add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    try:
                        await conn.execute(mig.sql)
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(
                            f"{schema}: migration {mig.component} {mig.version:04d}_{mig.name} "
                            f"failed: {exc}"
                        ) from exc
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations '
                        "(component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                        mig.component, mig.version, mig.name, mig.checksum,
                    )  # fmt: skip
                applied_now.append(mig)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"paved-migrate:{schema}")
    return applied_now


def record_to_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    """An asyncpg record as a plain dict (None stays None)."""
    return None if record is None else dict(record.items())
