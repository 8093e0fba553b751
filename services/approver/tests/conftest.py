"""Fixtures of the approver's tests: an in-process approver on the real stack, a Kafka
publisher/reader, and event factories. (Test helpers live here because test modules
are imported with importlib and cannot import each other.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from paved_approver.bootstrap import create_app
from paved_approver.settings import ApproverSettings
from paved_schemas import topics
from paved_schemas.envelope import ContractError, Envelope, parse_envelope
from paved_schemas.events import (
    ApprovalDecisionRecorded,
    FieldChange,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RegisteredModelCreated,
    RegisteredModelUpdated,
)
from paved_shared.kafka import kafka_auth
from paved_shared.service import ServiceRuntime
from paved_shared.testing import unique, wait_for
from prometheus_client import CollectorRegistry

REGISTRANT = ("alice", "Alice Scientist")


def digest_of(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Events:
    """Envelopes as the registry, validator and retirement flow would publish them."""

    @staticmethod
    def registered(
        model: str,
        version: int = 1,
        *,
        tier: str = "medium",
        digest: str | None = None,
        registrant: tuple[str, str] = REGISTRANT,
    ) -> Envelope[ModelVersionRegistered]:
        data = ModelVersionRegistered.model_validate(
            {
                "model_name": model,
                "version": version,
                "artifact_uri": f"file:///artifacts/{model}/{version}/model.onnx",
                "artifact_digest": digest or digest_of(f"{model}/{version}"),
                "framework": "onnx",
                "signature": {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
                },
                "model_card": {
                    "description": "Predicts churn.",
                    "intended_use": "Retention offers.",
                    "limitations": "EU customers only.",
                    "risk_tier": tier,
                    "data_classification": "internal",
                    "license": "Apache-2.0",
                    "metrics": {"auc": 0.91},
                },
                "registered_by": registrant[0],
                "registered_by_name": registrant[1],
                "request_id": str(uuid.uuid4()),
            }
        )
        return Envelope.new(
            data,
            source="/paved/registry",
            actor=f"user:{registrant[0]}",
            actorname=registrant[1],
        )

    @staticmethod
    def validated(
        model: str, version: int = 1, *, passed: bool = True, digest: str | None = None
    ) -> Envelope[ModelVersionValidated]:
        data = ModelVersionValidated(
            model_name=model,
            version=version,
            artifact_digest=digest or digest_of(f"{model}/{version}"),
            passed=passed,
            reasons=[] if passed else ["smoke_inference: output has the wrong shape"],
            checks=[
                {"name": "digest", "outcome": "passed", "duration_ms": 3},  # type: ignore[list-item]
                {  # type: ignore[list-item]
                    "name": "smoke_inference",
                    "outcome": "passed" if passed else "failed",
                    "duration_ms": 40,
                },
            ],
            evidence_uri=f"file:///evidence/{model}/{version}.json",
            evidence_digest=digest_of(f"evidence {model}/{version}"),
            validator_version="0.1.0",
        )
        return Envelope.new(
            data, source="/paved/validator", actor="service:validator", actorname="Paved validator"
        )

    @staticmethod
    def model_created(model: str, team: str) -> Envelope[RegisteredModelCreated]:
        data = RegisteredModelCreated(
            model_name=model,
            owner_team=team,
            created_via="api",
            created_by=REGISTRANT[0],
            created_by_name=REGISTRANT[1],
        )
        return Envelope.new(
            data, source="/paved/registry", actor="user:alice", actorname=REGISTRANT[1]
        )

    @staticmethod
    def owner_changed(
        model: str, old: str | None, new: str | None, *, revision: int = 2
    ) -> Envelope[RegisteredModelUpdated]:
        data = RegisteredModelUpdated(
            model_name=model,
            changes=[FieldChange(field="owner_team", old=old, new=new)],
            revision=revision,
            reason="moved to another team",
            updated_by="dave",
        )
        return Envelope.new(data, source="/paved/registry", actor="user:dave", actorname="Dave Ops")

    @staticmethod
    def retired(model: str, version: int = 1) -> Envelope[ModelVersionRetired]:
        data = ModelVersionRetired(
            model_name=model, version=version, reason="superseded", retired_by="dave"
        )
        return Envelope.new(data, source="/paved/registry", actor="user:dave", actorname="Dave Ops")


@dataclass
class Kafka:
    """Publishes test envelopes and reads what the approver published."""

    bootstrap: str
    producer: AIOKafkaProducer

    async def publish(self, *envelopes: Envelope[Any]) -> None:
        for env in envelopes:
            await self.producer.send_and_wait(
                env.data.TOPIC, env.to_json_bytes(), key=env.data.key().encode()
            )

    async def read(
        self,
        topic: str,
        match: Callable[[Envelope[Any], dict[str, bytes]], bool],
        *,
        expect: int,
        timeout_s: float = 30.0,
        linger_s: float = 1.0,
    ) -> list[Envelope[Any]]:
        """Matching envelopes on ``topic`` from the start; waits for ``expect``, then lingers
        ``linger_s`` so that an unexpected extra one is seen too."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            **kafka_auth().aiokafka(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[Envelope[Any]] = []

        async def poll(ms: int) -> None:
            for records in (await consumer.getmany(timeout_ms=ms)).values():
                for r in records:
                    try:
                        env = parse_envelope(r.value or b"")
                    except ContractError:
                        continue
                    if match(env, dict(r.headers or ())):
                        found.append(env)

        try:
            deadline = time.monotonic() + timeout_s
            while len(found) < expect and time.monotonic() < deadline:
                await poll(300)
            linger_end = time.monotonic() + linger_s
            while time.monotonic() < linger_end:
                await poll(200)
        finally:
            await consumer.stop()
        return found

    async def approval_events(
        self,
        approval_id: str,
        *,
        expect: int,
        linger_s: float = 1.0,
        decisions: bool = False,
    ) -> list[Envelope[Any]]:
        """The lifecycle events published about one approval case, in topic order; with
        ``decisions`` only the ``ApprovalDecisionRecorded`` ones (authorisation records)."""

        def match(env: Envelope[Any], _: dict[str, bytes]) -> bool:
            if getattr(env.data, "approval_id", None) != approval_id:
                return False
            return isinstance(env.data, ApprovalDecisionRecorded) is decisions

        return await self.read(topics.APPROVAL_EVENTS, match, expect=expect, linger_s=linger_s)


@dataclass
class Approver:
    """An approver running in this process (its lifespan entered), with an HTTP client."""

    app: FastAPI
    runtime: ServiceRuntime
    settings: ApproverSettings
    client: httpx.AsyncClient

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.runtime.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.runtime.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def processed(self, *event_ids: str) -> bool:
        n = await self.fetchval(
            "SELECT count(*) FROM processed_events "
            "WHERE consumer_group = $1 AND event_id = ANY($2::text[])",
            self.settings.approver_consumer_group,
            list(event_ids),
        )
        return bool(n == len(event_ids))

    async def wait_processed(self, *event_ids: str) -> None:
        async def probe() -> bool:
            return await self.processed(*event_ids)

        await wait_for(probe, what=f"events {event_ids} processed")

    async def wait_approval(
        self, model: str, version: int = 1, *, state: str | None = None
    ) -> asyncpg.Record:
        """The approval row of model version, once it exists (in ``state``, if given)."""
        found: list[asyncpg.Record] = []

        async def probe() -> bool:
            rows = await self.fetch(
                "SELECT * FROM approvals WHERE model_name = $1 AND version = $2", model, version
            )
            found[:] = rows
            return bool(rows) and (state is None or rows[0]["state"] == state)

        await wait_for(probe, what=f"approval of {model} v{version} in state {state}")
        return found[0]

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        """GET as a dev-headers reader who sees every team."""
        headers = {"X-Paved-User": "reader", "X-Paved-User-Name": "Test Reader"}
        return await self.client.get(path, headers={**headers, **kw.pop("headers", {})}, **kw)

    async def wait_approval_where(self, model: str, state: str) -> asyncpg.Record:
        """The version's (one) case in ``state``, once there is one."""
        found: list[asyncpg.Record] = []

        async def probe() -> bool:
            found[:] = await self.fetch(
                "SELECT * FROM approvals WHERE model_name = $1 AND state = $2", model, state
            )
            return bool(found)

        await wait_for(probe, what=f"a case of {model} in state {state}")
        return found[0]

    async def decide(
        self,
        approval_id: str,
        user: str | None,
        name: str | None = None,
        **body: Any,
    ) -> httpx.Response:
        headers = {}
        if user is not None:
            headers["X-Paved-User"] = user
        if name is not None or user is not None:
            headers["X-Paved-User-Name"] = name if name is not None else user.title()  # type: ignore[union-attr]
        body.setdefault("decision", "approve")
        body.setdefault("reason", "Evidence reviewed; within policy.")
        return await self.client.post(
            f"/api/v1/approvals/{approval_id}/decisions", json=body, headers=headers
        )


@asynccontextmanager
async def start_approver(
    bootstrap: str,
    dsn: str,
    *,
    schema: str | None = None,
    group: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Approver]:
    """An approver in this process; ``overrides`` are more ApproverSettings fields."""
    settings = ApproverSettings(
        kafka_bootstrap=bootstrap,
        database_url=dsn,  # type: ignore[arg-type]
        approver_db_schema=schema or unique("t_approver"),
        approver_consumer_group=group or unique("t-approver"),
        environment="test",
        **overrides,
    )
    app = create_app(settings, metrics_registry=CollectorRegistry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://approver") as client:
            yield Approver(app, app.state.runtime, settings, client)


@pytest.fixture(scope="module")
async def approver(stack: Any) -> AsyncIterator[Approver]:
    """One approver shared by a module's tests that only need a running one (stopped at the
    module's end, so it does not consume other services' test events)."""
    async with start_approver(stack.bootstrap, stack.dsn) as running:
        yield running


@pytest.fixture(scope="session")
def approver_factory(stack: Any) -> Callable[..., AbstractAsyncContextManager[Approver]]:
    """Start a dedicated approver: own schema and consumer group unless given."""

    def factory(
        *, schema: str | None = None, group: str | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[Approver]:
        return start_approver(stack.bootstrap, stack.dsn, schema=schema, group=group, **overrides)

    return factory


@pytest.fixture(scope="session")
async def kafka(stack: Any) -> AsyncIterator[Kafka]:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap,
        **kafka_auth().aiokafka(),
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        yield Kafka(stack.bootstrap, producer)
    finally:
        await producer.stop()


@pytest.fixture
def events() -> type[Events]:
    return Events


@pytest.fixture
def model() -> str:
    """A model name no other test uses."""
    return unique("apv").replace("_", "-")
