"""The shared HTTP edge on a tiny app: identity on every route, problems, health, and the
body size limit (declared and streamed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from paved_shared.auth import AuthSettings, Principal
from paved_shared.http import (
    BodySizeLimit,
    ProblemError,
    add_health_routes,
    authenticated_router,
    install_http,
    principal_of,
)

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024
WHO = {"X-Paved-User": "alice", "X-Paved-User-Name": "Alice"}


class RefusedError(Exception):
    pass


SETTINGS = AuthSettings(environment="test")
principal = principal_of(lambda request: SETTINGS)


def _app() -> FastAPI:
    app = FastAPI()
    install_http(
        app, max_body_bytes=LIMIT,
        mappers={RefusedError: lambda exc: ProblemError(409, "refused", "RefusedError", str(exc))},
    )  # fmt: skip
    router = authenticated_router(principal, prefix="/api")

    @router.post("/echo")
    async def echo(request: Request, who: Annotated[Principal, Depends(principal)]) -> Any:
        return {"bytes": len(await request.body()), "user": who.user_id}

    @router.get("/refuse")
    async def refuse() -> None:
        raise RefusedError("no, because")

    async def fine() -> dict[str, Any]:
        return {"pending": 0}

    async def broken() -> None:
        raise ConnectionError("down")

    add_health_routes(app, {"fine": fine})
    app.include_router(router)
    sick = FastAPI()
    add_health_routes(sick, {"fine": fine, "broken": broken})
    app.mount("/sick", sick)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as c:
        yield c


async def test_every_route_of_an_authenticated_router_needs_an_identity(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.post("/api/echo", content=b"{}")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert "X-Paved-User" in anonymous.json()["detail"]
    assert "WWW-Authenticate" in anonymous.headers
    assert (await client.get("/api/refuse")).status_code == 401
    ok = await client.post("/api/echo", content=b"{}", headers=WHO)
    assert ok.json() == {"bytes": 2, "user": "alice"}


async def test_mapped_errors_and_health_are_problems(client: httpx.AsyncClient) -> None:
    refused = await client.get("/api/refuse", headers=WHO)
    assert refused.status_code == 409
    assert refused.json()["type"] == "https://paved.dev/problems/refused"
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {
        "status": "ready", "checks": {"fine": "ok"}, "pending": 0,
    }  # fmt: skip
    sick = await client.get("/sick/readyz")
    assert sick.status_code == 503
    assert "broken: unreachable: ConnectionError('down')" in sick.json()["detail"]


async def test_a_declared_content_length_over_the_limit_is_413_before_the_app_runs(
    client: httpx.AsyncClient,
) -> None:
    big = await client.post(
        "/api/echo", content=b"x" * (LIMIT + 1), headers={**WHO, "Content-Length": str(LIMIT + 1)}
    )
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/problem+json"
    assert f"{LIMIT + 1} bytes" in big.json()["detail"]
    # Even an anonymous caller: nothing of the body is read.
    assert (await client.post("/api/echo", content=b"x" * (LIMIT + 1))).status_code == 413


async def test_a_streamed_body_is_cut_off_at_the_limit_without_reading_the_rest(
    client: httpx.AsyncClient,
) -> None:
    pulled = 0

    async def gigabyte() -> AsyncIterator[bytes]:
        nonlocal pulled
        chunk = b"x" * 16384
        for _ in range(65536):  # 1 GiB if it were all read
            pulled += 1
            yield chunk

    response = await client.post("/api/echo", content=gigabyte(), headers=WHO)
    assert response.status_code == 413
    assert response.json()["type"] == "https://paved.dev/problems/payload-too-large"
    assert pulled <= LIMIT // 16384 + 2, f"{pulled} chunks read for a {LIMIT}-byte limit"

    async def small() -> AsyncIterator[bytes]:
        yield b"{}"

    assert (await client.post("/api/echo", content=small(), headers=WHO)).status_code == 200


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BodySizeLimit(FastAPI(), max_bytes=0)
