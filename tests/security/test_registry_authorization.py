"""The walk-arounds of the registry's governance, one test each: every one is refused with
a problem (401/403/404/412/413/422/428) AND leaves the catalog exactly as it was (read
back by an authorised caller). Positive controls: the same request by the right role in
the right team succeeds, so a refusal is the rule at work, not a broken route.

Dev-headers identities first (``X-Paved-Roles``/``X-Paved-Teams``), then the same rules
with Keycloak's real tokens (alice scientist team-churn, bob approver team-churn, carol
approver all teams, dave admin, erin auditor, frank approver team-fraud).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import select
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    EXAMPLE_MODEL_CARD,
    EXAMPLE_SIGNATURE,
    DeploymentStatus,
    DeploymentStatusChanged,
    DeploymentTarget,
)
from paved_shared.http import PUBLIC_PATHS
from paved_shared.kafka import kafka_auth

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def dev(user: str, roles: str, teams: str) -> dict[str, str]:
    return {
        "X-Paved-User": user,
        "X-Paved-User-Name": user.title(),
        "X-Paved-Roles": roles,
        "X-Paved-Teams": teams,
    }


ALICE = dev("alice", "scientist", "churn")  # scientist of the owning team
BOB = dev("bob", "approver", "churn")  # approver of the owning team
SAM = dev("sam", "scientist,deployer", "fraud")  # scientist and deployer of another team
DEVI = dev("devi", "deployer", "churn")  # deployer of the owning team
DAVE = dev("dave", "admin", "")
ERIN = dev("erin", "auditor", "")
NOBODY = dev("nobody", "", "churn")  # in the team, no role at all

CONFIDENTIAL_CARD = {
    **EXAMPLE_MODEL_CARD,
    "data_classification": "confidential",
    "description": "Zanzibar churn scores from confidential billing data.",
}


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def version_body(seed: str) -> dict[str, Any]:
    return {
        "artifact_uri": f"file:///models/{seed}/model.onnx",
        "artifact_digest": _digest(seed),
        "framework": "onnx",
        "signature": EXAMPLE_SIGNATURE,
        "model_card": CONFIDENTIAL_CARD,
    }


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


@pytest.fixture
def http(dev_registry: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev_registry.url, timeout=30) as client:
        yield client


class Catalog:
    """One churn model with two approved versions and a protected alias, as the admin
    sees it; ``snapshot`` is everything a walk-around could have changed."""

    def __init__(self, registry: Any, http: httpx.Client) -> None:
        self.registry, self.http = registry, http
        self.name = f"churn-{uuid.uuid4().hex[:10]}"
        created = http.post(
            "/api/v1/models",
            json={"name": self.name, "owner_team": "churn", "tags": {"risk": "high"}},
            headers=ALICE,
        )
        assert created.status_code == 201, created.text
        for seed in ("v1", "v2"):
            r = http.post(
                f"/api/v1/models/{self.name}/versions",
                json=version_body(self.name + seed),
                headers=ALICE,
            )
            assert r.status_code == 201, r.text
        # Arranged directly: validation and approval are other services' facts.
        registry.sql(
            "UPDATE model_versions SET state = 'approved' WHERE model_name = $1", self.name
        )
        moved = http.put(
            f"/api/v1/models/{self.name}/aliases/champion",
            json={"version": 1, "reason": "first approved"},
            headers=DEVI,
        )
        assert moved.status_code == 200, moved.text

    @property
    def url(self) -> str:
        return f"/api/v1/models/{self.name}"

    def etag(self, path: str = "", who: dict[str, str] = ALICE) -> str:
        return self.http.get(self.url + path, headers=who).headers["ETag"]

    def snapshot(self) -> dict[str, Any]:
        got = {
            what: self.http.get(self.url + path, headers=DAVE).json()
            for what, path in (
                ("model", ""),
                ("versions", "/versions"),
                ("aliases", "/aliases"),
                ("changes", "/changes"),
                ("v1", "/versions/1"),
            )
        }
        got["deployments"] = self.http.get(
            "/api/v1/deployments", params={"model": self.name}, headers=DAVE
        ).json()
        got["outbox"] = self.registry.sql(
            "SELECT count(*) AS n FROM outbox WHERE key = $1", self.name.encode()
        )[0]["n"]
        return got


@pytest.fixture
def catalog(dev_registry: Any, http: httpx.Client) -> Catalog:
    return Catalog(dev_registry, http)


@pytest.fixture
def unchanged(catalog: Catalog) -> Iterator[Catalog]:
    """The catalog, checked to be exactly as before when the test ends."""
    before = catalog.snapshot()
    yield catalog
    assert catalog.snapshot() == before


# --------------------------------------------------------------------------- writes


def test_cross_team_register_is_404_and_registers_nothing(
    unchanged: Catalog, http: httpx.Client
) -> None:
    refused = http.post(f"{unchanged.url}/versions", json=version_body("x"), headers=SAM)
    unknown = http.post("/api/v1/models/no-such-model/versions", json=version_body("x"),
                        headers=SAM)  # fmt: skip
    body = problem(refused, 404, unchanged.name)
    # Exactly what an unknown model answers: existence does not leak.
    assert body["detail"].replace(unchanged.name, "?") == problem(unknown, 404)["detail"].replace(
        "no-such-model", "?"
    )
    mlflow = http.post(
        "/api/2.0/mlflow/model-versions/create",
        json={"name": unchanged.name, "source": "file:///tmp/x.onnx"},
        headers=SAM,
    )
    assert problem(mlflow, 404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # The approver of the owning team sees the model but may not register.
    problem(http.post(f"{unchanged.url}/versions", json=version_body("y"), headers=BOB), 403,
            "needs role", "scientist")  # fmt: skip


def test_cross_team_retire_is_refused(unchanged: Catalog, http: httpx.Client) -> None:
    reason = {"reason": "sabotage"}
    problem(http.post(f"{unchanged.url}/versions/1/retire", json=reason, headers=SAM), 404)
    problem(
        http.post(f"{unchanged.url}/versions/1/transitions",
                  json={**reason, "to_state": "retired"}, headers=SAM),
        404,
    )  # fmt: skip
    problem(http.post(f"{unchanged.url}/versions/1/retire", json=reason, headers=ERIN), 403,
            "erin", "needs role")  # fmt: skip


def test_retire_by_the_owning_scientist_works(catalog: Catalog, http: httpx.Client) -> None:
    done = http.post(f"{catalog.url}/versions/2/retire", json={"reason": "old"}, headers=ALICE)
    assert done.status_code == 202, done.text
    assert done.json()["state"] == "retired"


def test_cross_team_alias_move_is_refused(unchanged: Catalog, http: httpx.Client) -> None:
    move = {"version": 2, "reason": "mine now"}
    problem(http.put(f"{unchanged.url}/aliases/candidate", json=move, headers=SAM), 404)
    problem(http.put(f"{unchanged.url}/aliases/champion", json=move, headers=SAM), 404)
    problem(http.delete(f"{unchanged.url}/aliases/champion", params={"reason": "x"},
                        headers=SAM), 404)  # fmt: skip


def test_protected_alias_moved_by_a_scientist_is_403(
    unchanged: Catalog, http: httpx.Client
) -> None:
    url = f"{unchanged.url}/aliases/champion"
    etag = unchanged.etag("/aliases/champion")
    move = {"version": 2, "reason": "promote"}
    problem(http.put(url, json=move, headers={**ALICE, "If-Match": etag}), 403,
            "protected alias", "deployer")  # fmt: skip
    problem(http.delete(url, params={"reason": "drop"}, headers=ALICE), 403, "deployer")
    # Protecting a new alias is the deployer's call too.
    problem(
        http.put(f"{unchanged.url}/aliases/gold", json={**move, "protected": True},
                 headers=ALICE),
        403, "deployer",
    )  # fmt: skip
    mlflow = http.post(
        "/api/2.0/mlflow/registered-models/alias",
        json={"name": unchanged.name, "alias": "champion", "version": "2"},
        headers={**ALICE, "If-Match": etag},
    )
    assert problem(mlflow, 403, "deployer")["error_code"] == "PERMISSION_DENIED"


def test_protected_alias_moved_by_the_owning_deployer_works(
    catalog: Catalog, http: httpx.Client
) -> None:
    moved = http.put(
        f"{catalog.url}/aliases/champion", json={"version": 2, "reason": "better"}, headers=DEVI
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    plain = http.put(f"{catalog.url}/aliases/candidate", json={"version": 2}, headers=ALICE)
    assert plain.status_code == 200, plain.text


def test_owner_change_by_a_non_admin_is_403(unchanged: Catalog, http: httpx.Client) -> None:
    body = {"owner_team": "fraud", "reason": "take it"}
    carol = {"X-Paved-User": "carol", "X-Paved-User-Name": "Carol", "X-Paved-Roles": "scientist"}
    for who in (ALICE, DEVI, carol):  # carol: a scientist of every team
        etag = unchanged.etag(who=who)
        problem(http.patch(unchanged.url, json=body, headers={**who, "If-Match": etag}), 403,
                "needs role", "admin")  # fmt: skip
    problem(http.patch(unchanged.url, json=body, headers={**SAM, "If-Match": '"1"'}), 404)


def test_owner_change_by_an_admin_works(catalog: Catalog, http: httpx.Client) -> None:
    etag = catalog.etag(who=DAVE)
    moved = http.patch(
        catalog.url, json={"owner_team": "fraud", "reason": "reorg"},
        headers={**DAVE, "If-Match": etag},
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["owner_team"] == "fraud"
    # From now on the old team no longer sees it, the new one does.
    problem(http.get(catalog.url, headers=ALICE), 404)
    assert http.get(catalog.url, headers=SAM).status_code == 200


def test_risk_tag_set_cross_team_is_refused(unchanged: Catalog, http: httpx.Client) -> None:
    patch = {"tags": {"risk": "low"}, "reason": "lower the bar"}
    problem(http.patch(unchanged.url, json=patch, headers={**SAM, "If-Match": '"1"'}), 404)
    problem(
        http.patch(f"{unchanged.url}/versions/1", json=patch, headers={**SAM, "If-Match": '"1"'}),
        404,
    )
    mlflow = http.post(
        "/api/2.0/mlflow/registered-models/set-tag",
        json={"name": unchanged.name, "key": "risk", "value": "low"},
        headers={**SAM, "If-Match": '"1"'},
    )
    problem(mlflow, 404)
    # In the team, an approver may not set it either.
    etag = unchanged.etag(who=BOB)
    problem(http.patch(unchanged.url, json=patch, headers={**BOB, "If-Match": etag}), 403,
            "needs role")  # fmt: skip


def test_risk_tag_set_by_the_owning_scientist_works(catalog: Catalog, http: httpx.Client) -> None:
    done = http.patch(
        catalog.url, json={"tags": {"risk": "medium"}, "reason": "reviewed"},
        headers={**ALICE, "If-Match": catalog.etag()},
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json()["tags"]["risk"] == "medium"


def test_role_less_deploy_request_is_403(unchanged: Catalog, http: httpx.Client) -> None:
    url = f"{unchanged.url}/versions/1/deployments"
    problem(http.post(url, json={"target": "local"}, headers=NOBODY), 403, "needs role",
            "holds ['none']")  # fmt: skip
    problem(http.post(url, json={"target": "local"}, headers=ALICE), 403, "deployer")
    problem(http.post(url, json={"target": "local"}, headers=SAM), 404)


def test_deploy_and_undeploy_by_the_owning_deployer(
    catalog: Catalog, http: httpx.Client, dev_registry: Any
) -> None:
    accepted = http.post(
        f"{catalog.url}/versions/1/deployments", json={"target": "local"}, headers=DEVI
    )
    assert accepted.status_code == 202, accepted.text
    dep = accepted.json()["deployment_id"]
    before = catalog.snapshot()
    for who, status in ((SAM, 404), (ALICE, 403), (NOBODY, 403)):
        problem(http.post(f"/api/v1/deployments/{dep}/undeploy", json={"reason": "x"},
                          headers=who), status)  # fmt: skip
    assert catalog.snapshot() == before
    taken = http.post(
        f"/api/v1/deployments/{dep}/undeploy", json={"reason": "replaced"}, headers=DEVI
    )
    assert taken.status_code == 202, taken.text
    sent = [
        json.loads(row["value"])
        for row in dev_registry.sql(
            "SELECT value FROM outbox WHERE key = $1 AND topic = $2 ORDER BY seq",
            dep.encode(), "paved.deployment.requests.v1",
        )
    ]  # fmt: skip
    assert [e["type"] for e in sent][-1] == "dev.paved.deployment.undeploy.v1"
    undeploy = sent[-1]
    assert undeploy["actor"] == "user:devi"
    assert undeploy["data"]["reason"] == "replaced"


# --------------------------------------------------------------------------- reads


def test_every_route_refuses_an_anonymous_caller(dev_registry: Any, http: httpx.Client) -> None:
    checked = 0
    for template, operations in dev_registry.app.openapi()["paths"].items():
        if template in PUBLIC_PATHS:
            continue
        path = re.sub(r"\{version\}", "1", template)
        path = re.sub(r"\{[a-z_]+\}", "x1", path)
        for method in operations:
            answer = http.request(method.upper(), path, json={})
            assert answer.status_code == 401, f"{method} {template}: {answer.status_code}"
            checked += 1
    assert checked >= 40, checked
    assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models",
        "/api/v1/models/{name}",
        "/api/v1/models/{name}/versions/1",  # the confidential model card
        "/api/v1/versions?q=zanzibar",
        "/api/v1/deployments",
        "/api/v1/deployments/events",
        "/api/2.0/mlflow/registered-models/get?name={name}",
        "/api/2.0/mlflow/model-versions/search",
    ],
)
def test_unauthenticated_reads_are_401(catalog: Catalog, http: httpx.Client, path: str) -> None:
    body = problem(http.get(path.format(name=catalog.name)), 401, "X-Paved-User")
    assert "zanzibar" not in str(body).lower()


def test_cross_team_read_of_a_confidential_model_finds_nothing(
    catalog: Catalog, http: httpx.Client
) -> None:
    for path in ("", "/versions", "/versions/1", "/aliases", "/aliases/champion", "/changes"):
        body = problem(http.get(catalog.url + path, headers=SAM), 404, catalog.name)
        assert "zanzibar" not in str(body).lower()
    for params in ({"q": "zanzibar"}, {"name": catalog.name}, {"owner_team": "churn"}):
        found = http.get("/api/v1/versions", params=params, headers=SAM).json()["items"]
        assert {hit["owner_team"] for hit in found} <= {"fraud"}, params
        assert catalog.name not in {hit["model_name"] for hit in found}
    listed = http.get("/api/v1/models", params={"name_prefix": "churn-"}, headers=SAM).json()
    assert catalog.name not in {m["name"] for m in listed}
    mlflow = http.get(
        "/api/2.0/mlflow/model-versions/search",
        params={"filter": f"name = '{catalog.name}'"}, headers=SAM,
    ).json()  # fmt: skip
    assert mlflow.get("model_versions", []) == []
    problem(http.get("/api/2.0/mlflow/model-versions/get-download-uri",
                     params={"name": catalog.name, "version": "1"}, headers=SAM), 404)  # fmt: skip
    # Positive controls: the team, and the auditor (every team, read only).
    card = http.get(f"{catalog.url}/versions/1", headers=ALICE).json()["model_card"]
    assert card["data_classification"] == "confidential"
    assert http.get(f"{catalog.url}/versions/1", headers=ERIN).status_code == 200
    hits = http.get("/api/v1/versions", params={"q": "zanzibar"}, headers=ALICE).json()["items"]
    assert {h["model_name"] for h in hits} >= {catalog.name}


def test_unbounded_limits_are_422(catalog: Catalog, http: httpx.Client) -> None:
    for path, params in (
        ("/api/v1/models", {"limit": 100_000}),
        ("/api/v1/versions", {"limit": 1001}),
        ("/api/v1/deployments", {"limit": 5000}),
        (f"{catalog.url}/versions", {"limit": 10_001}),
        (f"{catalog.url}/changes", {"limit": 1001}),
        (f"{catalog.url}/aliases", {"limit": 1001}),
        ("/api/2.0/mlflow/registered-models/search", {"max_results": 100_000}),
        ("/api/2.0/mlflow/model-versions/search", {"max_results": 1_000_000}),
    ):
        problem(http.get(path, params=params, headers=ALICE), 422)
    assert len(http.get("/api/v1/models", params={"limit": 1000}, headers=ALICE).json()) >= 1


async def _publish(bootstrap: str, env: Envelope[Any]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
        **kafka_auth().aiokafka(),
    )  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(
            env.data.TOPIC, value=env.to_json_bytes(), key=env.data.key().encode()
        )
    finally:
        await producer.stop()


async def _frames(url: str, headers: dict[str, str], quiet_s: float) -> list[str]:
    """The SSE ``event:`` lines until the stream closes or stays quiet ``quiet_s``."""
    seen: list[str] = []
    timeout = httpx.Timeout(10.0, read=quiet_s)
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            async with client.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200, await response.aread()
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        seen.append(line)
        except httpx.ReadTimeout:
            pass
    return seen


async def test_the_deployment_stream_needs_identity_and_shows_only_visible_teams(
    catalog: Catalog, dev_registry: Any
) -> None:
    dep = f"{catalog.name}-v1-local-{uuid.uuid4().hex[:6]}"
    v1 = await asyncio.to_thread(catalog.http.get, f"{catalog.url}/versions/1", headers=ALICE)
    await _publish(
        dev_registry.settings.kafka_bootstrap,
        Envelope.new(
            DeploymentStatusChanged(
                deployment_id=dep, model_name=catalog.name, version=1,
                artifact_digest=v1.json()["artifact_digest"], target=DeploymentTarget.LOCAL,
                status=DeploymentStatus.READY, revision=1,
            ),
            source="/paved/deployer-local", actor="service:deployer-local",
            actorname="Paved deployer-local",
        ),
    )  # fmt: skip
    url = f"{dev_registry.url}/api/v1/deployments/{dep}/events?until=ready"
    async with httpx.AsyncClient() as anonymous:
        problem(await anonymous.get(url), 401)
    assert await _frames(url, ALICE, quiet_s=20) == ["event: ready"]
    assert await _frames(url, SAM, quiet_s=3) == []
    everything = f"{dev_registry.url}/api/v1/deployments/events?from_beginning=true&model="
    assert await _frames(everything + catalog.name, SAM, quiet_s=3) == []
    async with httpx.AsyncClient() as client:
        problem(await client.get(everything + catalog.name, headers=NOBODY), 403, "needs any role")


# --------------------------------------------------------------------------- bodies


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _status_of(sock: socket.socket) -> tuple[int, bytes]:
    """The response's status and bytes: its head, then its whole Content-Length body (the
    body may arrive in a later segment than the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def _head(path: str, extra: str) -> bytes:
    who = "".join(f"{k}: {v}\r\n" for k, v in ALICE.items())
    return (f"POST {path} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/json\r\n"
            f"{who}{extra}\r\n").encode()  # fmt: skip


def test_a_declared_1_gb_body_is_413_at_once(unchanged: Catalog, dev_registry: Any) -> None:
    started = time.monotonic()
    with _raw(dev_registry.url) as sock:
        sock.sendall(_head(f"{unchanged.url}/versions", "Content-Length: 1073741824\r\n"))
        sock.sendall(b'{"artifact_uri": "')
        status, data = _status_of(sock)
    assert status == 413, data
    assert b"payload-too-large" in data
    assert time.monotonic() - started < 5


def test_a_streamed_chunked_body_past_the_limit_is_413_without_reading_it_all(
    unchanged: Catalog, dev_registry: Any
) -> None:
    limit = dev_registry.settings.http_max_body_bytes
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    started = time.monotonic()
    with _raw(dev_registry.url) as sock:
        sock.sendall(_head(f"{unchanged.url}/versions", "Transfer-Encoding: chunked\r\n"))
        while sent < 1 << 30:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, data = _status_of(sock)
    assert status == 413, data
    assert sent < limit + (16 << 20), f"sent {sent} bytes before the refusal"
    assert time.monotonic() - started < 30


async def test_a_streamed_body_in_process_is_never_buffered(dev_registry: Any) -> None:
    pulled = 0

    async def gigabyte() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1 << 14):  # 1 GiB of 64 KiB chunks, if it were all read
            pulled += 1
            yield b"x" * 65536

    transport = httpx.ASGITransport(app=dev_registry.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        response = await client.post("/api/v1/models", content=gigabyte(), headers=ALICE)
    problem(response, 413)
    assert pulled <= dev_registry.settings.http_max_body_bytes // 65536 + 2


# --------------------------------------------------------------------------- MLflow If-Match


def test_mlflow_writes_without_or_with_a_stale_if_match_are_refused(
    unchanged: Catalog, http: httpx.Client
) -> None:
    update = {"name": unchanged.name, "description": "rewritten"}
    path = "/api/2.0/mlflow/registered-models/update"
    missing = problem(http.patch(path, json=update, headers=ALICE), 428, "If-Match")
    assert missing["error_code"] == "INVALID_STATE"
    problem(http.patch(path, json=update, headers={**ALICE, "If-Match": '"999"'}), 412)
    tag = {"name": unchanged.name, "version": "1", "key": "k", "value": "v"}
    problem(http.post("/api/2.0/mlflow/model-versions/set-tag", json=tag, headers=ALICE), 428)
    problem(http.post("/api/2.0/mlflow/model-versions/set-tag", json=tag,
                      headers={**ALICE, "If-Match": '"999"'}), 412)  # fmt: skip


def test_mlflow_write_with_the_current_etag_works(catalog: Catalog, http: httpx.Client) -> None:
    got = http.get(
        "/api/2.0/mlflow/registered-models/get", params={"name": catalog.name}, headers=ALICE
    )
    done = http.patch(
        "/api/2.0/mlflow/registered-models/update",
        json={"name": catalog.name, "description": "rewritten"},
        headers={**ALICE, "If-Match": got.headers["ETag"]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["registered_model"]["description"] == "rewritten"
    v1 = http.get("/api/2.0/mlflow/model-versions/get",
                  params={"name": catalog.name, "version": "1"}, headers=ALICE)  # fmt: skip
    tagged = http.post(
        "/api/2.0/mlflow/model-versions/set-tag",
        json={"name": catalog.name, "version": "1", "key": "k", "value": "v"},
        headers={**ALICE, "If-Match": v1.headers["ETag"]},
    )
    assert tagged.status_code == 200, tagged.text


# --------------------------------------------------------------------------- OIDC


@pytest.fixture(scope="module")
def tokens(oidc_provider: Any) -> dict[str, dict[str, str]]:
    return {
        user: {"Authorization": f"Bearer {oidc_provider.password_token(user)}"}
        for user in ("alice", "bob", "carol", "dave", "erin", "frank")
    }


def test_oidc_tokens_scope_reads_and_writes_to_teams_and_roles(
    oidc_registry: Any, tokens: dict[str, dict[str, str]]
) -> None:
    t = tokens
    name = f"churn-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=oidc_registry.url, timeout=30) as http:
        problem(http.get("/api/v1/models"), 401, "Bearer")
        problem(http.get("/api/v1/models", headers=ALICE), 401, "dev-headers")
        problem(http.post("/api/v1/models", json={"name": name, "owner_team": "fraud"},
                          headers=t["alice"]), 403, "team 'fraud'")  # fmt: skip
        created = http.post(
            "/api/v1/models", json={"name": name, "owner_team": "churn"}, headers=t["alice"]
        )
        assert created.status_code == 201, created.text
        registered = http.post(f"/api/v1/models/{name}/versions", json=version_body(name),
                               headers=t["alice"])  # fmt: skip
        assert registered.status_code == 201, registered.text
        before = http.get(f"/api/v1/models/{name}/versions", headers=t["dave"]).json()

        # frank (team-fraud) does not see it; bob (team-churn approver) sees it, cannot write.
        problem(http.get(f"/api/v1/models/{name}", headers=t["frank"]), 404)
        # A missing role is refused before the model is looked up: the same 403 for a
        # model that does not exist, so the refusal tells nothing about existence.
        for model in (name, "no-such-model"):
            problem(http.post(f"/api/v1/models/{model}/versions", json=version_body("f"),
                              headers=t["frank"]), 403, "needs role")  # fmt: skip
        assert http.get(f"/api/v1/models/{name}", headers=t["bob"]).status_code == 200
        problem(http.post(f"/api/v1/models/{name}/versions", json=version_body("b"),
                          headers=t["bob"]), 403, "needs role", "approver")  # fmt: skip
        # carol (every team) and erin (auditor) read; erin cannot retire.
        assert http.get(f"/api/v1/models/{name}/versions/1", headers=t["carol"]).status_code == 200
        assert http.get(f"/api/v1/models/{name}/versions/1", headers=t["erin"]).status_code == 200
        problem(http.post(f"/api/v1/models/{name}/versions/1/retire", json={"reason": "x"},
                          headers=t["erin"]), 403, "auditor")  # fmt: skip
        assert [
            m["name"]
            for m in http.get(
                "/api/v1/models", params={"name_prefix": name}, headers=t["frank"]
            ).json()
        ] == []
        assert [
            m["name"]
            for m in http.get(
                "/api/v1/models", params={"name_prefix": name}, headers=t["bob"]
            ).json()
        ] == [name]

        # Deploying needs the deployer role (admin stands in): alice is refused, dave is not.
        oidc_registry.sql("UPDATE model_versions SET state = 'approved' WHERE model_name = $1",
                          name)  # fmt: skip
        deploy = f"/api/v1/models/{name}/versions/1/deployments"
        problem(http.post(deploy, json={"target": "local"}, headers=t["alice"]), 403, "deployer")
        assert http.post(deploy, json={"target": "local"}, headers=t["dave"]).status_code == 202

        # Owner change: admin only.
        etag = http.get(f"/api/v1/models/{name}", headers=t["alice"]).headers["ETag"]
        move = {"owner_team": "fraud", "reason": "reorg"}
        problem(http.patch(f"/api/v1/models/{name}", json=move,
                           headers={**t["alice"], "If-Match": etag}), 403, "admin")  # fmt: skip
        after = http.get(f"/api/v1/models/{name}/versions", headers=t["dave"]).json()
        assert [v["artifact_digest"] for v in after] == [v["artifact_digest"] for v in before]
        assert http.get(f"/api/v1/models/{name}", headers=t["dave"]).json()["owner_team"] == "churn"
        moved = http.patch(f"/api/v1/models/{name}", json=move,
                           headers={**t["dave"], "If-Match": etag})  # fmt: skip
        assert moved.status_code == 200, moved.text
        assert http.get(f"/api/v1/models/{name}", headers=t["frank"]).status_code == 200
        problem(http.get(f"/api/v1/models/{name}", headers=t["alice"]), 404)
