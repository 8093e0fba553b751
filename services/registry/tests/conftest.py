"""Helpers shared by the registry's tests: sample payloads, events, and a running registry."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from paved_registry.bootstrap import create_app
from paved_registry.settings import RegistrySettings
from paved_schemas import topics
from paved_schemas.envelope import Envelope, parse_envelope
from paved_schemas.events import (
    EXAMPLE_MODEL_CARD,
    EXAMPLE_SIGNATURE,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRequested,
    DeploymentStatus,
    DeploymentStatusChanged,
    DeploymentTarget,
    ModelVersionValidated,
    RiskTier,
    ValidationCheck,
)
from paved_shared.command_identity import identity_headers
from paved_shared.kafka import ensure_topics, kafka_auth
from paved_shared.service import ServiceRuntime
from paved_shared.testing import read_all, serving, start_group_at_end, unique, wait_for
from prometheus_client import CollectorRegistry

SUBSCRIBED = (
    topics.REGISTRATION_REQUESTS,
    topics.RETIREMENT_REQUESTS,
    topics.VALIDATION_EVENTS,
    topics.APPROVAL_EVENTS,
    topics.DEPLOYMENT_STATUS,
)
ALICE = {"X-Paved-User": "alice", "X-Paved-User-Name": "Alice Scientist"}
CAROL = {"X-Paved-User": "carol", "X-Paved-User-Name": "Carol Developer"}
ADMIN = {"X-Paved-User": "dave", "X-Paved-User-Name": "Dave Admin", "X-Paved-Roles": "admin"}
"""Dev headers without X-Paved-Roles/-Teams get every role but admin, in every team: the
identity the functional tests use by default (the authorization tests narrow it)."""


def digest_of(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def model_name() -> str:
    return f"m-{uuid.uuid4().hex[:12]}"


def version_body(seed: str = "a", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "artifact_uri": f"file:///models/{seed}/model.onnx",
        "artifact_digest": digest_of(seed),
        "framework": "onnx",
        "signature": EXAMPLE_SIGNATURE,
        "model_card": EXAMPLE_MODEL_CARD,
        "tags": {"stage": "candidate"},
    }
    body.update(overrides)
    return body


def _service_event(data: Any, service: str) -> Envelope[Any]:
    return Envelope.new(
        data, source=f"/paved/{service}", actor=f"service:{service}", actorname=f"Paved {service}"
    )


def validated(model: str, version: int, digest: str, *, passed: bool = True) -> Envelope[Any]:
    outcome = "passed" if passed else "failed"
    return _service_event(
        ModelVersionValidated(
            model_name=model,
            version=version,
            artifact_digest=digest,
            passed=passed,
            reasons=[] if passed else ["smoke_inference: output shape [1] not [-1, 1]"],
            checks=[ValidationCheck(name="smoke_inference", outcome=outcome, duration_ms=12)],
            evidence_uri=f"file:///evidence/{model}/{version}.json",
            evidence_digest=digest_of(f"evidence-{model}-{version}"),
            validator_version="0.1.0",
        ),
        "validator",
    )


def _approval(model: str, version: int, digest: str) -> dict[str, Any]:
    return {
        "model_name": model,
        "version": version,
        "artifact_digest": digest,
        "approval_id": f"apr-{model}-{version}",
        "risk_tier": RiskTier.LOW,
        "policy_version": "2025-03-01",
    }


def approval_requested(model: str, version: int, digest: str) -> Envelope[Any]:
    return _service_event(
        ApprovalRequested(**_approval(model, version, digest), required_approvals=0), "approver"
    )


def approval_granted(model: str, version: int, digest: str) -> Envelope[Any]:
    return _service_event(
        ApprovalGranted(**_approval(model, version, digest), signatures=[], auto_approved=True),
        "approver",
    )


def approval_expired(model: str, version: int, digest: str) -> Envelope[Any]:
    return _service_event(
        ApprovalExpired(**_approval(model, version, digest), expired_at="2025-09-14T09:26:53Z"),
        "approver",
    )


def deployment_status(
    deployment_id: str, model: str, version: int, digest: str, status: DeploymentStatus
) -> Envelope[Any]:
    return _service_event(
        DeploymentStatusChanged(
            deployment_id=deployment_id,
            model_name=model,
            version=version,
            artifact_digest=digest,
            target=DeploymentTarget.LOCAL,
            status=status,
            revision=1,
            endpoint_url="http://127.0.0.1:9/v2/models/m"
            if status is DeploymentStatus.READY
            else None,
        ),
        "deployer-local",
    )


def sender_headers(env: Envelope[Any]) -> list[tuple[str, bytes]]:
    """A command's sender identity, as its envelope's actor (dev-headers mode): the
    registry takes ``registered_by``/``retired_by`` only from this, never the payload."""
    if env.data.TOPIC not in (topics.REGISTRATION_REQUESTS, topics.RETIREMENT_REQUESTS):
        return []
    return identity_headers(user=env.actor.split(":", 1)[1], name=env.actorname)


async def publish(bootstrap: str, *envelopes: Envelope[Any]) -> None:
    """Send envelopes to their contract's topic, keyed as the contract says (commands with
    their sender's identity headers)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for env in envelopes:
            await producer.send_and_wait(
                env.data.TOPIC, value=env.to_json_bytes(), key=env.data.key().encode(),
                headers=sender_headers(env),
            )  # fmt: skip
    finally:
        await producer.stop()


async def events_on(
    bootstrap: str,
    topic: str,
    match: Callable[[Envelope[Any]], bool],
    expect: int,
    timeout_s: float = 30.0,
) -> list[Envelope[Any]]:
    """The envelopes on a shared topic that ``match``, once at least ``expect`` are there.

    Topics are shared by every test of the session, so records are filtered (by a
    unique model name, usually) rather than counted.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        records = await read_all(bootstrap, topic, expect=1_000_000, timeout_s=1.0)
        found = [env for env in (parse_envelope(v) for _, v, _ in records) if match(env)]
        if len(found) >= expect or time.monotonic() > deadline:
            return found


def about(model: str) -> Callable[[Envelope[Any]], bool]:
    return lambda env: getattr(env.data, "model_name", None) == model


@dataclass
class Registry:
    """A registry app running (its lifespan entered) against the test stack."""

    app: FastAPI
    client: httpx.AsyncClient
    """Sends ``ALICE``'s dev headers unless a request names someone else."""
    settings: RegistrySettings
    bootstrap: str
    anonymous: httpx.AsyncClient
    """Sends no identity at all."""

    @property
    def runtime(self) -> ServiceRuntime:
        runtime: ServiceRuntime = self.app.state.runtime
        return runtime

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.runtime.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.runtime.pool.acquire() as conn:
            return [dict(r.items()) for r in await conn.fetch(sql, *args)]

    async def version(self, model: str, version: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/models/{model}/versions/{version}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_state(self, model: str, version: int, state: str) -> dict[str, Any]:
        async def reached() -> bool:
            response = await self.client.get(f"/api/v1/models/{model}/versions/{version}")
            return response.status_code == 200 and response.json()["state"] == state

        await wait_for(reached, what=f"{model}/{version} to become {state}")
        return await self.version(model, version)

    async def wait_processed(self, *envelopes: Envelope[Any]) -> None:
        """Wait until the registry applied these events (not dead-lettered: a dead-lettered
        event rolls back, so it never appears in processed_events)."""
        ids = [e.id for e in envelopes]

        async def applied() -> bool:
            n = await self.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = ANY($1::text[])", ids
            )
            return bool(n == len(ids))

        await wait_for(applied, what=f"events {ids} to be applied")

    async def publish(self, *envelopes: Envelope[Any]) -> None:
        await publish(self.bootstrap, *envelopes)

    async def events_on(
        self, topic: str, match: Callable[[Envelope[Any]], bool], expect: int
    ) -> list[Envelope[Any]]:
        return await events_on(self.bootstrap, topic, match, expect)

    async def create_model(self, name: str, **extra: Any) -> None:
        body = {"name": name, "owner_team": "retention", "description": "test model", **extra}
        response = await self.client.post("/api/v1/models", json=body, headers=ALICE)
        assert response.status_code == 201, response.text

    async def register(self, name: str, seed: str = "a", **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/v1/models/{name}/versions", json=version_body(seed, **overrides), headers=ALICE
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


class Kit:
    """The helpers above, handed to tests through the ``kit`` fixture (test modules cannot
    import this conftest under ``--import-mode=importlib``)."""

    ALICE = ALICE
    CAROL = CAROL
    ADMIN = ADMIN
    digest_of = staticmethod(digest_of)
    model_name = staticmethod(model_name)
    version_body = staticmethod(version_body)
    validated = staticmethod(validated)
    approval_requested = staticmethod(approval_requested)
    approval_granted = staticmethod(approval_granted)
    approval_expired = staticmethod(approval_expired)
    deployment_status = staticmethod(deployment_status)
    about = staticmethod(about)
    publish = staticmethod(publish)
    events_on = staticmethod(events_on)


@pytest.fixture
def kit() -> type[Kit]:
    """Sample payloads, events and constants for the registry's tests."""
    return Kit


@pytest.fixture(scope="module")
async def registry(stack: Any) -> AsyncIterator[Registry]:
    """A registry on its own schema and consumer group, lifespan running, with a client.

    One per test module: starting the runtime costs seconds (five subscribers join one
    consumer group, one rebalance each), so a module's tests share it and keep out of
    each other's way by each using its own model names.
    """
    settings = RegistrySettings(
        environment="test",
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        registry_db_schema=unique("t_registry"),
        registry_consumer_group=unique("t-registry"),
        log_json=False,
    )
    await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
    await start_group_at_end(stack.bootstrap, settings.registry_consumer_group, SUBSCRIBED)
    app = create_app(settings, metrics_registry=CollectorRegistry())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://registry.test", headers=ALICE
        ) as client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://registry.test"
        ) as anonymous,
    ):
        yield Registry(app, client, settings, stack.bootstrap, anonymous)


@dataclass
class LiveRegistry:
    """A registry served by a real uvicorn on a free loopback port (for HTTP clients such
    as MLflow's, which cannot use an in-process transport)."""

    url: str
    settings: RegistrySettings
    app: FastAPI
    bootstrap: str
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's own event loop (its DB pool lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        runtime: ServiceRuntime = self.app.state.runtime

        async def go() -> list[dict[str, Any]]:
            async with runtime.pool.acquire() as conn:
                return [dict(r.items()) for r in await conn.fetch(sql, *args)]

        result: list[dict[str, Any]] = self.run(go())
        return result


@pytest.fixture(scope="module")
def live_registry(stack: Any) -> Iterator[LiveRegistry]:
    """A registry (own schema and consumer group) behind uvicorn on 127.0.0.1:<free port>."""
    settings = RegistrySettings(
        environment="test",
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        registry_db_schema=unique("t_registry"),
        registry_consumer_group=unique("t-registry"),
        log_json=False,
    )
    app = create_app(settings, metrics_registry=CollectorRegistry())

    async def before() -> None:
        await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
        await start_group_at_end(stack.bootstrap, settings.registry_consumer_group, SUBSCRIBED)

    with serving(app, before=before) as served:
        yield LiveRegistry(served.url, settings, app, stack.bootstrap, served.loop)
