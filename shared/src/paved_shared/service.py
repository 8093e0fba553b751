"""The runtime every Paved service process is built on.

A ``ServiceRuntime`` owns one service's PostgreSQL pool (its own schema), its
faststream broker, its idempotent consumer group and its outbox relay. Building
one does no I/O (so the AsyncAPI document can be generated from it); ``start()``
connects, migrates, creates the contract's topics, starts the relay and then the
subscribers; ``stop()`` undoes that in reverse.

Handlers get the envelope and a connection inside the transaction that also
records the event as processed; effects and outgoing events written on that
connection (``emit``) commit together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Collection, Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from paved_schemas import topics
from paved_schemas.base import Contract
from paved_schemas.envelope import Envelope
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from paved_shared.consumer import EventConsumer, Handler, Route
from paved_shared.db import (
    Connection,
    Migration,
    MigrationError,
    Pool,
    create_pool,
    migrate,
    shared_migrations,
)
from paved_shared.dbroles import DEFAULT_GRANTS, GrantPolicy, apply_grants
from paved_shared.kafka import ensure_topics, make_broker
from paved_shared.outbox import OutboxRelay, enqueue
from paved_shared.settings import PavedSettings

log = logging.getLogger(__name__)


class ServiceRuntime:
    """Pool + broker + idempotent consumer + outbox relay of one service."""

    def __init__(
        self,
        settings: PavedSettings,
        *,
        service: str,
        schema: str,
        group: str,
        migrations: Sequence[Migration] = (),
        tracer_provider: TracerProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
        description: str | None = None,
        grants: GrantPolicy = DEFAULT_GRANTS,
    ) -> None:
        self.settings = settings
        self.grants = grants
        """What the runtime role may do in the schema (applied when migrating as the owner)."""
        self.service = service
        self.schema = schema
        self.group = group
        self.migrations = [*shared_migrations(), *migrations]
        self.tracer_provider = tracer_provider
        self.description = description
        self.metrics_registry = metrics_registry if metrics_registry is not None else REGISTRY
        self.broker: KafkaBroker = make_broker(
            settings.kafka_bootstrap,
            client_id=service,
            tracer_provider=tracer_provider,
            metrics_registry=self.metrics_registry,
            description=description,
            auth=settings.kafka_auth(),
        )
        self.consumer = EventConsumer(
            self.broker, None, group, max_attempts=settings.consumer_max_attempts
        )
        self._pool: Pool | None = None
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._started = False
        self._routes: list[Route] = []
        self._descriptions: list[str] = []
        self._subscribed = False
        self._emits: set[str] = set()

    # -- wiring (no I/O) -------------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        event_types: Collection[str] | None = None,
        description: str | None = None,
    ) -> None:
        """Apply ``handler`` once per event (of ``event_types``) arriving on ``topic``.

        Subscriptions are collected and become one Kafka consumer (one group member)
        when the runtime starts or documents itself.
        """
        if self._subscribed:
            raise RuntimeError(f"{self.service}: subscribe() after the consumer was built")
        self._routes.append(Route(topic, handler, event_types))
        if description:
            self._descriptions.append(f"{topic}: {description}")

    def _build_consumer(self) -> None:
        if self._subscribed or not self._routes:
            return
        self.consumer.subscribe_many(
            self._routes,
            title=f"{self.service}:consume",
            description="; ".join(self._descriptions) or None,
        )
        self._subscribed = True

    def declare_emits(self, *contracts: type[Contract]) -> None:
        """Document (AsyncAPI) the events this service publishes through its outbox."""
        for contract in contracts:
            self._emits.add(contract.TOPIC)
            self.broker.publisher(
                contract.TOPIC,
                title=f"{self.service}:{contract.TOPIC}:{contract.__name__}",
                description=(contract.__doc__ or "").strip().splitlines()[0],
                schema=Envelope[contract],  # type: ignore[valid-type]
            )

    def asyncapi(self) -> dict[str, Any]:
        """This service's AsyncAPI 3 document."""
        self._build_consumer()
        spec = AsyncAPI(
            self.broker,
            title=f"paved-{self.service}",
            version="1",
            description=self.description,
        )
        document: dict[str, Any] = spec.to_specification().to_jsonable()
        return document

    # -- events ------------------------------------------------------------------------

    def new_event(
        self,
        data: Contract,
        *,
        cause: Envelope[Any] | None = None,
        actor: str | None = None,
        actorname: str | None = None,
    ) -> Envelope[Any]:
        """An envelope from this service; actor defaults to the cause's, else the service."""
        return Envelope.new(
            data,
            source=f"/paved/{self.service}",
            actor=actor or (cause.actor if cause is not None else f"service:{self.service}"),
            actorname=actorname
            or (cause.actorname if cause is not None else f"Paved {self.service}"),
            cause=cause,
        )

    async def emit(self, conn: Connection, event: Envelope[Any]) -> int:
        """Write ``event`` to the outbox on ``conn`` (inside the caller's transaction)."""
        data: Contract = event.data
        return await enqueue(conn, topic=data.TOPIC, key=data.key(), event=event)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.service}: runtime not started")
        return self._pool

    async def start(self) -> None:
        """Connect, migrate, create topics, start the relay, then consume."""
        s = self.settings
        auth = s.kafka_auth().require()
        password = s.database_password.get_secret_value() if s.database_password else None
        self._pool = await create_pool(
            str(s.database_url),
            schema=self.schema,
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            password=password,
        )
        applied = await self._migrate(self._pool)
        if applied:
            log.info("%s: applied migrations %s", self.service, [m.name for m in applied])
        await ensure_topics(s.kafka_bootstrap, self._topic_specs(), auth=auth)
        self.consumer.pool = self._pool
        self._relay = OutboxRelay(
            self._pool,
            self.schema,
            s.kafka_bootstrap,
            client_id=self.service,
            tracer_provider=self.tracer_provider,
            auth=auth,
        )
        self._relay_task = asyncio.create_task(self._relay.run(), name=f"{self.service}-outbox")
        self._build_consumer()
        await self.broker.start()
        if s.metrics_port:
            start_http_server(s.metrics_port, addr="127.0.0.1", registry=self.metrics_registry)
        self._started = True
        log.info("%s started (group %s, schema %s)", self.service, self.group, self.schema)

    def _topic_specs(self) -> list[topics.TopicSpec]:
        """The contract topics this service reads or writes (a service principal may only
        see those; creating them is the provisioning's job, ``paved_shared.kafka_acl``)."""
        used = {r.topic for r in self._routes} | self._emits | {topics.DEAD_LETTER}
        return [t for t in topics.ALL_TOPICS if t.name in used]

    async def _migrate(self, serving: Pool) -> list[Migration]:
        """Migrate; with ``database_migration_url`` as the owner role, then grant the
        serving (runtime) role exactly ``self.grants``. Without it, as today: the serving
        connection migrates and no grant is touched."""
        s = self.settings
        if s.database_migration_url is None:
            return await migrate(serving, self.schema, self.migrations)
        secret = s.database_migration_password
        owner_pool = await create_pool(
            str(s.database_migration_url),
            schema=self.schema,
            min_size=1,
            max_size=1,
            password=secret.get_secret_value() if secret else None,
        )
        try:
            async with serving.acquire() as conn:
                runtime_role: str = await conn.fetchval("SELECT current_user")
            async with owner_pool.acquire() as conn:
                owner_role: str = await conn.fetchval("SELECT current_user")
            if runtime_role == owner_role:
                raise MigrationError(
                    f"{self.service}: PAVED_DATABASE_URL and PAVED_DATABASE_MIGRATION_URL both "
                    f"connect as {runtime_role}; serve as a runtime role that owns nothing "
                    "(docs/runbooks/database-roles.md)"
                )
            applied = await migrate(owner_pool, self.schema, self.migrations)
            async with owner_pool.acquire() as conn:
                await apply_grants(conn, self.schema, runtime_role, self.grants)
            log.info("%s: migrated as %s, serving as %s (%s)", self.service, owner_role,
                     runtime_role, self.grants.description)  # fmt: skip
            return applied
        finally:
            await owner_pool.close()

    async def stop(self) -> None:
        """Stop consuming, then drain the relay, then close the pool."""
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self._relay is not None:
            self._relay.stop()
        if self._relay_task is not None:
            with contextlib.suppress(Exception):
                await self._relay_task
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._started = False
        log.info("%s stopped", self.service)

    async def run_forever(self) -> None:
        """Start, run until SIGTERM/SIGINT, stop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
