"""Database roles: one owner role that migrates, one runtime role per service that serves.

The owner (``paved_owner``) owns every service schema and everything in it; services
connect with it only to migrate (``PAVED_DATABASE_MIGRATION_URL``). Each service serves
as its own login role (``paved_<service>``), which owns nothing: it may use its own
schema and do exactly what its ``GrantPolicy`` lists, in no other service's schema. As
it owns nothing, it can never ``ALTER TABLE``, ``DISABLE TRIGGER`` or ``DROP`` and never
``TRUNCATE``; the audit service's policy gives its trail tables INSERT and SELECT only.

``provision_roles`` (run once by an administrator as a superuser, or by the dev stack
and test fixtures) creates the roles and hands back their DSNs. ``apply_grants`` (run
by ``ServiceRuntime`` as the owner after every migration) makes the runtime role's
privileges exactly the policy: new tables get nothing until the policy names them.
See docs/runbooks/database-roles.md.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from paved_shared.db import Connection, check_identifier

OWNER_ROLE = "paved_owner"
"""Default name of the role that owns the schemas and runs migrations."""

_COLUMNS = r"[a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*"
_PRIVILEGE = re.compile(rf"^(SELECT|INSERT|UPDATE|DELETE)(?: \(({_COLUMNS})\))?$")
DML: frozenset[str] = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})


class RoleProvisioningError(RuntimeError):
    """Roles could not be provisioned or grants applied; says which and why."""


@dataclass(frozen=True)
class GrantPolicy:
    """What a service's runtime role may do to the tables of its own schema.

    ``tables`` names privileges per table (``"SELECT"``, ``"INSERT"``, ``"UPDATE"``,
    ``"DELETE"``, or column-scoped ``"UPDATE (a, b)"``); every other table gets
    ``default``. TRUNCATE, TRIGGER and REFERENCES are never granted, and ownership never.
    """

    default: frozenset[str] = DML
    tables: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    description: str = "DML on every table of its own schema"

    def __post_init__(self) -> None:
        for table, privileges in {"(default)": self.default, **self.tables}.items():
            for p in privileges:
                if not _PRIVILEGE.match(p):
                    raise ValueError(
                        f"grant policy: privilege {p!r} on {table} is not one of SELECT, "
                        "INSERT, UPDATE, DELETE (optionally with a column list)"
                    )

    def privileges_for(self, table: str) -> frozenset[str]:
        """The privileges the runtime role gets on ``table``."""
        return self.tables.get(table, self.default)


DEFAULT_GRANTS = GrantPolicy(
    tables=MappingProxyType({"schema_migrations": frozenset({"SELECT"})}),
)
"""Every service unless it declares its own: DML on its own tables, the migration
history read-only."""


@dataclass(frozen=True)
class ServiceDsns:
    """Where one service connects: migrating as the owner, serving as its own role."""

    service: str
    schema: str
    role: str
    """The runtime (login) role, e.g. ``paved_audit``."""
    database_url: str
    """DSN of the runtime role, without password (``PAVED_DATABASE_URL``)."""
    password: str
    """The runtime role's password (``PAVED_DATABASE_PASSWORD``)."""
    migration_url: str
    """DSN of the owner role, without password (``PAVED_DATABASE_MIGRATION_URL``)."""
    migration_password: str
    """The owner role's password (``PAVED_DATABASE_MIGRATION_PASSWORD``)."""

    def env(self) -> dict[str, str]:
        """The service's database environment (secrets included: pass it, never log it)."""
        return {
            "PAVED_DATABASE_URL": self.database_url,
            "PAVED_DATABASE_PASSWORD": self.password,
            "PAVED_DATABASE_MIGRATION_URL": self.migration_url,
            "PAVED_DATABASE_MIGRATION_PASSWORD": self.migration_password,
        }

    def __repr__(self) -> str:  # never show passwords
        return (
            f"ServiceDsns(service={self.service!r}, schema={self.schema!r}, role={self.role!r}, "
            f"database_url={self.database_url!r}, migration_url={self.migration_url!r})"
        )


def runtime_role_name(service: str, *, prefix: str = "paved_") -> str:
    """``paved_<service>`` with '-' as '_' (``deployer-local`` → ``paved_deployer_local``)."""
    return check_identifier(prefix + service.replace("-", "_"))


def dsn_as(dsn: str, user: str) -> str:
    """``dsn`` with its user replaced by ``user`` and any password removed."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _literal(value: str) -> str:
    # CREATE/ALTER ROLE take no bind parameters; a doubled quote is the only escape needed
    # in a standard_conforming_strings literal (passwords are generated or vetted here).
    if "\x00" in value:
        raise ValueError("a password cannot contain NUL")
    return "'" + value.replace("'", "''") + "'"


async def _ensure_login_role(conn: Connection, role: str, password: str) -> None:
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(f'{verb} ROLE "{role}" {attributes} PASSWORD {_literal(password)}')


async def _adopt_schema(conn: Connection, schema: str, owner: str) -> None:
    """Create ``schema`` owned by ``owner``, or hand an existing one and all its objects to
    ``owner`` (a database that predates role separation)."""
    current = await conn.fetchval(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
    )
    if current is None:
        await conn.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{owner}"')
        return
    if current != owner:
        await conn.execute(f'ALTER SCHEMA "{schema}" OWNER TO "{owner}"')
    # Every object in the schema not owned by ``owner`` yet, as the ALTER that hands it
    # over (sequences owned by a column move with their table).
    statements = await conn.fetch(
        "SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, $2::text) AS sql "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
        "AND pg_get_userbyid(c.relowner) <> $2 "
        "AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
        "AND d.deptype IN ('a', 'i'))) "
        "UNION ALL SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $2::text) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2",
        schema, owner,
    )  # fmt: skip
    for row in statements:
        await conn.execute(row["sql"])


async def provision_roles(
    admin_dsn: str,
    services: Mapping[str, str] | Iterable[str],
    passwords: Mapping[str, str] | None = None,
    *,
    owner: str = OWNER_ROLE,
    role_prefix: str = "paved_",
) -> dict[str, ServiceDsns]:
    """Create (or update) the owner role and one runtime role per service; return each
    service's DSNs. Run as a superuser (``admin_dsn``), e.g. once per environment by an
    administrator, or by the dev stack and tests before services start.

    ``services`` maps service name → schema (an iterable of names uses the name as the
    schema, '-' as '_'). ``passwords`` maps a role name (``owner`` or
    ``paved_<service>``) to its password; a role without one gets a fresh random
    password, so running this again rotates every password it was not given (restart
    services with the returned credentials).

    Effects, all in one transaction: the owner role (LOGIN, no other attribute) gets
    CONNECT and CREATE on the database and owns each service schema (an existing schema
    and its objects are handed to it); each runtime role (LOGIN, no other attribute)
    gets CONNECT only: its schema USAGE and table privileges come from ``apply_grants``
    after migrating. Nothing is granted to PUBLIC; CREATE on schema public is revoked
    from PUBLIC so a runtime role can create nothing anywhere.
    """
    schemas = (
        dict(services)
        if isinstance(services, Mapping)
        else {s: s.replace("-", "_") for s in services}
    )
    check_identifier(owner)
    given = dict(passwords or {})
    conn = await asyncpg.connect(admin_dsn)
    try:
        database = await conn.fetchval("SELECT current_database()")
        if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            raise RoleProvisioningError(
                f"provision_roles must run as a superuser; {dsn_as(admin_dsn, '?')} connects "
                f"as {await conn.fetchval('SELECT current_user')!r}, which is not one"
            )
        found: dict[str, ServiceDsns] = {}
        async with conn.transaction():
            # Two provisioners (replicas of a dev stack) run one after the other.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('paved-provision-roles'))")
            owner_password = given.get(owner) or secrets.token_urlsafe(32)
            await _ensure_login_role(conn, owner, owner_password)
            await conn.execute(f'GRANT CONNECT, CREATE ON DATABASE "{database}" TO "{owner}"')
            await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            for service, schema in schemas.items():
                check_identifier(schema)
                role = runtime_role_name(service, prefix=role_prefix)
                if role == owner:
                    raise RoleProvisioningError(f"service {service!r} would be the owner {owner}")
                password = given.get(role) or secrets.token_urlsafe(32)
                await _ensure_login_role(conn, role, password)
                await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
                await _adopt_schema(conn, schema, owner)
                found[service] = ServiceDsns(
                    service=service,
                    schema=schema,
                    role=role,
                    database_url=dsn_as(admin_dsn, role),
                    password=password,
                    migration_url=dsn_as(admin_dsn, owner),
                    migration_password=owner_password,
                )
        return found
    finally:
        await conn.close()


async def apply_grants(conn: Connection, schema: str, role: str, policy: GrantPolicy) -> None:
    """Make ``role``'s privileges in ``schema`` exactly ``policy`` (run as the owner, after
    migrating): USAGE on the schema, the policy's privileges per table, USAGE on the
    schema's sequences, and nothing else (earlier grants not in the policy are revoked).

    Raises ``RoleProvisioningError`` if ``role`` owns the schema (the runtime must not)
    or the policy names a table the schema does not have.
    """
    check_identifier(schema)
    check_identifier(role)
    owner = await conn.fetchval(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
    )
    if owner == role:
        raise RoleProvisioningError(
            f"runtime role {role} owns schema {schema}: it could alter or disable the "
            "schema's triggers; serve with a role that owns nothing (see provision_roles)"
        )
    tables = {
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    }
    unknown = sorted(set(policy.tables) - tables)
    if unknown:
        raise RoleProvisioningError(
            f"grant policy for {schema} names tables {unknown} the schema does not have "
            f"(it has {sorted(tables)})"
        )
    async with conn.transaction():
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"')
        await conn.execute(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{schema}" FROM "{role}"')
        for table in sorted(tables):
            privileges = sorted(policy.privileges_for(table))
            if privileges:
                await conn.execute(
                    f'GRANT {", ".join(privileges)} ON "{schema}"."{table}" TO "{role}"'
                )
        await conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
