"""The API edge without a database: identity and input errors are problem+json 4xx."""

from __future__ import annotations

import httpx
import pytest
from paved_registry.bootstrap import create_app
from paved_registry.settings import RegistrySettings
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> httpx.AsyncClient:
    # No lifespan: these requests are refused before any database access.
    app = create_app(RegistrySettings(), metrics_registry=CollectorRegistry())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")


async def test_missing_identity_is_401_naming_the_header(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/models", json={"name": "m", "owner_team": "t"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "X-Paved-User" in response.json()["detail"]
    assert "WWW-Authenticate" in response.headers

    spaced = await client.post(
        "/api/v1/models",
        json={"name": "m", "owner_team": "t"},
        headers={"X-Paved-User": "two words", "X-Paved-User-Name": "A B"},
    )
    assert spaced.status_code == 401
    assert "'two words'" in spaced.json()["detail"]


async def test_invalid_model_name_is_422_naming_field_and_value(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/models",
        json={"name": "Bad Name", "owner_team": "t"},
        headers={"X-Paved-User": "alice", "X-Paved-User-Name": "Alice"},
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"] == [
        {"field": "name", "value": "Bad Name", "message": problem["errors"][0]["message"]}
    ]
    assert "'Bad Name'" in problem["detail"]


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
