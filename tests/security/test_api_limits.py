"""The shared HTTP edge on the approver and audit APIs, without I/O: no route but health
and the OpenAPI document answers anonymously, bodies are size-limited (413), and every
``limit`` query parameter is bounded (422)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from paved_approver.bootstrap import create_app as create_approver
from paved_approver.settings import ApproverSettings
from paved_audit.bootstrap import create_app as create_audit
from paved_audit.settings import AuditSettings
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.unit

PUBLIC = {"/healthz", "/readyz"}
LIMIT = 1024
AUDITOR = {"X-Paved-User": "ann", "X-Paved-User-Name": "Ann Auditor", "X-Paved-Roles": "auditor"}


def _approver() -> FastAPI:
    settings = ApproverSettings(environment="test", http_max_body_bytes=LIMIT)
    return create_approver(settings, metrics_registry=CollectorRegistry())


def _audit() -> FastAPI:
    settings = AuditSettings(environment="test", http_max_body_bytes=LIMIT)
    return create_audit(settings, metrics_registry=CollectorRegistry())


APPS = {"approver": _approver, "audit": _audit}


def _client(app: FastAPI) -> httpx.AsyncClient:
    # No lifespan: nothing is started, so a route that got past its checks would fail.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if path not in PUBLIC:
                found.append((method.upper(), path, operation))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) != "{model}" else "m", path)


@pytest.mark.parametrize("service", sorted(APPS))
async def test_every_documented_route_but_health_refuses_anonymous_callers(service: str) -> None:
    app = APPS[service]()
    operations = _operations(app)
    assert len(operations) >= 4
    async with _client(app) as client:
        for method, path, _ in operations:
            response = await client.request(method, _concrete(path), json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        for path in ("/healthz", "/openapi.json"):
            assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize("service", sorted(APPS))
async def test_a_body_over_the_limit_is_refused_with_413(service: str) -> None:
    app = APPS[service]()
    path = "/api/v1/signatures/verify" if service == "approver" else "/api/v1/audit/records"
    async with _client(app) as client:
        response = await client.post(path, content=b"x" * (LIMIT + 1), headers=AUDITOR)
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/payload-too-large")


@pytest.mark.parametrize("service", sorted(APPS))
async def test_every_limit_parameter_is_bounded(service: str) -> None:
    app = APPS[service]()
    bounded = [
        path
        for method, path, operation in _operations(app)
        if method == "GET" and any(p["name"] == "limit" for p in operation.get("parameters", []))
    ]
    assert bounded, "every list endpoint takes a limit"
    async with _client(app) as client:
        for path in bounded:
            response = await client.get(_concrete(path), params={"limit": 100000}, headers=AUDITOR)
            assert response.status_code == 422, (path, response.text)
            assert "limit" in response.json()["detail"]
