"""Registries under attack: real uvicorn servers on the session's Kafka and PostgreSQL,
one trusting dev headers (dev/test only), one verifying Keycloak's tokens (OIDC)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from paved_registry.bootstrap import create_app
from paved_registry.settings import RegistrySettings
from paved_schemas import topics
from paved_shared.kafka import ensure_topics
from paved_shared.service import ServiceRuntime
from paved_shared.testing import Served, serving, start_group_at_end, unique
from prometheus_client import CollectorRegistry

SUBSCRIBED = (
    topics.REGISTRATION_REQUESTS,
    topics.RETIREMENT_REQUESTS,
    topics.VALIDATION_EVENTS,
    topics.APPROVAL_EVENTS,
    topics.DEPLOYMENT_STATUS,
)


@dataclass
class Target:
    """A running registry and direct database access to arrange state and check it."""

    url: str
    app: FastAPI
    settings: RegistrySettings
    served: Served

    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        runtime: ServiceRuntime = self.app.state.runtime

        async def go() -> list[dict[str, Any]]:
            async with runtime.pool.acquire() as conn:
                return [dict(r.items()) for r in await conn.fetch(query, *args)]

        rows: list[dict[str, Any]] = self.served.run(go())
        return rows


def _serve(stack: Any, **overrides: Any) -> Iterator[Target]:
    settings = RegistrySettings(
        environment="test",
        kafka_bootstrap=stack.bootstrap,
        database_url=stack.dsn,
        registry_db_schema=unique("t_authz"),
        registry_consumer_group=unique("t-authz"),
        log_json=False,
        **overrides,
    )
    app = create_app(settings, metrics_registry=CollectorRegistry())

    async def before() -> None:
        await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
        await start_group_at_end(stack.bootstrap, settings.registry_consumer_group, SUBSCRIBED)

    with serving(app, before=before) as served:
        yield Target(served.url, app, settings, served)


@pytest.fixture(scope="module")
def dev_registry(stack: Any) -> Iterator[Target]:
    """Dev-headers identities; MLflow writes must carry If-Match."""
    yield from _serve(stack, auth_mode="dev-headers", registry_mlflow_require_if_match=True)


@pytest.fixture(scope="module")
def oidc_registry(stack: Any, oidc_provider: Any) -> Iterator[Target]:
    """Bearer tokens verified against the session's Keycloak (realm ``paved``)."""
    yield from _serve(
        stack, auth_mode="oidc", oidc_issuer=oidc_provider.issuer,
        oidc_audience=oidc_provider.audience,
    )  # fmt: skip
