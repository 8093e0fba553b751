"""Part 11 e-signatures with SSO against a real OpenID provider (Keycloak) and the real
Kafka + PostgreSQL: separation of duties, administrators, a second signature by the same
person, role and team scoping, a stale login, another version's hash (each refused with a
clear reason and audited as an ApprovalDecisionRecorded), a 2-of-N tier that needs two
distinct approvers, and signature verification that fails for a record moved elsewhere."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from paved_approver.domain.version_hash import version_hash
from paved_schemas.events import ApprovalDecisionRecorded, ApprovalGranted, ApprovalRequested
from paved_shared.testing import wait_for

pytestmark = pytest.mark.integration


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "==")))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def sso_approver(approver_factory: Any, oidc_provider: Any) -> AsyncIterator[Any]:
    """An approver in oidc mode, trusting the test session's Keycloak."""
    async with approver_factory(
        auth_mode="oidc",
        oidc_issuer=oidc_provider.issuer,
        oidc_audience=oidc_provider.audience,
        oidc_jwks_min_refresh_s=0.5,
    ) as running:
        yield running


async def open_case(
    approver: Any, kafka: Any, events: Any, model: str, registrant: tuple[str, str], tier: str
) -> tuple[str, Any]:
    await kafka.publish(events.model_created(model, "churn"))
    reg = events.registered(model, tier=tier, registrant=registrant)
    await kafka.publish(reg, events.validated(model))
    row = await approver.wait_approval(model, state="pending")
    return str(row["approval_id"]), reg


async def sign(approver: Any, approval_id: str, token: str, **body: Any) -> httpx.Response:
    body.setdefault("decision", "approve")
    body.setdefault("reason", "Evidence reviewed; within policy.")
    response: httpx.Response = await approver.client.post(
        f"/api/v1/approvals/{approval_id}/decisions", json=body, headers=bearer(token)
    )
    return response


async def test_two_of_n_with_every_refusal_audited(
    sso_approver: Any, oidc_provider: Any, kafka: Any, events: Any, model: str
) -> None:
    approver = sso_approver
    alice = oidc_provider.login("alice")
    alice_claims = claims_of(alice.access_token)
    approval_id, reg = await open_case(
        approver, kafka, events, model, (alice_claims["sub"], "Alice Scientist"), "high"
    )
    good_hash = version_hash(reg.data)
    other_hash = version_hash(events.registered(model + "-other").data)
    url = f"/api/v1/approvals/{approval_id}"

    # No credentials, and dev headers, are not accepted in oidc mode.
    anonymous = await approver.client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Bearer realm="paved"')
    headers_only = await approver.get(url)
    assert headers_only.status_code == 401
    assert "accepted only in dev-headers mode" in headers_only.json()["detail"]

    refusals: list[tuple[str, int, str]] = []

    async def refused(token: str, status: int, code: str, text: str, **body: Any) -> None:
        response = await sign(approver, approval_id, token, **body)
        assert response.status_code == status, response.text
        problem = response.json()
        assert problem["type"].endswith("/" + code)
        assert text in problem["detail"], problem["detail"]
        refusals.append((code, status, problem["detail"]))

    fresh = {u: oidc_provider.login(u).access_token for u in ("dave", "erin", "frank", "bob")}
    await refused(alice.access_token, 403, "separation-of-duties",
                  f"{alice_claims['sub']} registered {model} v1 and cannot approve it",
                  version_hash=good_hash)  # fmt: skip
    await refused(fresh["dave"], 403, "administrator-cannot-sign",
                  "logged in with the admin role and an administrator cannot approve",
                  version_hash=good_hash)  # fmt: skip
    await refused(fresh["erin"], 403, "role-not-allowed", "lets only roles ['approver'] sign",
                  version_hash=good_hash)  # fmt: skip
    await refused(fresh["frank"], 403, "team-scope", "belongs to team 'churn'",
                  version_hash=good_hash)  # fmt: skip
    # A password-grant token proves no recent interactive login (no auth_time).
    await refused(oidc_provider.password_token("bob"), 403, "stale-authentication",
                  "carries no auth_time", version_hash=good_hash)  # fmt: skip
    await refused(fresh["bob"], 409, "version-hash-mismatch",
                  f"you signed version hash {other_hash}", version_hash=other_hash)  # fmt: skip
    await refused(fresh["bob"], 409, "version-hash-mismatch", "say what you sign")

    first = await sign(approver, approval_id, fresh["bob"], version_hash=good_hash)
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "pending"  # 1 of 2
    await refused(fresh["bob"], 409, "already-signed", "has already signed",
                  version_hash=good_hash)  # fmt: skip
    carol = oidc_provider.login("carol").access_token  # in teams-all: every team
    second = await sign(
        approver, approval_id, carol, version_hash=good_hash, meaning="responsibility"
    )
    assert second.status_code == 201, second.text
    case = second.json()
    assert case["state"] == "granted"
    assert case["expires_at"] is not None
    assert [s["printed_name"] for s in case["signatures"]] == ["Bob Reviewer", "Carol Quality"]
    for s in case["signatures"]:
        assert s["auth_mode"] == "oidc"
        assert s["auth_time"] is not None
        assert s["version_hash"] == good_hash
        assert s["manifestation"].startswith(f"Signed by {s['printed_name']} (")
        assert s["manifestation"].endswith(f"; bound to {good_hash}")
        assert " UTC; meaning: " in s["manifestation"]

    lifecycle = await kafka.approval_events(approval_id, expect=2)
    assert [type(e.data) for e in lifecycle] == [ApprovalRequested, ApprovalGranted]
    granted = lifecycle[1].data
    assert [s.printed_name for s in granted.signatures] == ["Bob Reviewer", "Carol Quality"]
    assert granted.expires_at is not None

    # Every authorisation decision reached the approval topic (the audit trail reads it).
    records = await kafka.approval_events(
        approval_id, expect=len(refusals) + 2, decisions=True, linger_s=0.5
    )
    assert all(isinstance(r.data, ApprovalDecisionRecorded) for r in records)
    assert [(r.data.outcome.value, r.data.rule) for r in records] == [
        *[("refused", code) for code, _, _ in refusals[:7]],
        ("allowed", None),
        ("refused", "already-signed"),
        ("allowed", None),
    ]
    for r in records:
        assert r.data.policy_version == "paved-default-1"
        assert r.actor == f"user:{r.data.actor_id}"
    dave_record = records[1].data
    assert dave_record.actor_name == "Dave Admin"
    assert set(dave_record.actor_roles) == {"admin", "approver"}
    assert dave_record.auth_mode == "oidc"


async def test_signature_verification_and_a_record_moved_to_another_version(
    sso_approver: Any, oidc_provider: Any, kafka: Any, events: Any, model: str
) -> None:
    approver = sso_approver
    approval_id, reg = await open_case(
        approver, kafka, events, model, ("someone-else", "Sam Scientist"), "medium"
    )
    bob = oidc_provider.login("bob").access_token
    signed = await sign(approver, approval_id, bob, version_hash=version_hash(reg.data))
    assert signed.status_code == 201, signed.text
    [sig] = signed.json()["signatures"]
    # A second version of the same model, registered (so it has a hash of its own).
    other = events.registered(model, version=2)
    await kafka.publish(other)
    await approver.wait_processed(other.id)

    async def verify(record: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body = {"record": record, "seal": sig["seal"], "seal_key_id": sig["seal_key_id"], **extra}
        r = await approver.client.post("/api/v1/signatures/verify", json=body, headers=bearer(bob))
        assert r.status_code == 200, r.text
        return dict(r.json())

    ok = await verify(sig["record"])
    assert ok["valid"] is True, ok
    assert ok["manifestation"].startswith("Signed by Bob Reviewer (")

    def failed(result: dict[str, Any]) -> set[str]:
        return {c["check"] for c in result["checks"] if not c["passed"]}

    # Presented as a signature of version 2: the binding check names the mismatch.
    moved = await verify(sig["record"], version=2)
    assert moved["valid"] is False
    assert failed(moved) == {"version_binding"}
    assert "belongs to another version" in next(
        c["detail"] for c in moved["checks"] if c["check"] == "version_binding"
    )
    # Rewritten to claim version 2 and its hash: the seal no longer matches.
    rewritten = {**sig["record"], "version": 2, "version_hash": version_hash(other.data)}
    assert "seal" in failed(await verify(rewritten))
    # Any edited byte (the reason) breaks the seal too.
    edited = {**sig["record"], "reason": sig["record"]["reason"] + "!"}
    assert failed(await verify(edited)) == {"seal"}


async def test_signing_with_a_stale_login_is_refused(
    approver_factory: Any, oidc_provider: Any, kafka: Any, events: Any, model: str
) -> None:
    async with approver_factory(
        auth_mode="oidc",
        oidc_issuer=oidc_provider.issuer,
        oidc_audience=oidc_provider.audience,
        approver_signing_max_auth_age_s=3,
    ) as approver:
        approval_id, reg = await open_case(
            approver, kafka, events, model, ("someone-else", "Sam Scientist"), "high"
        )
        good = version_hash(reg.data)
        login = oidc_provider.login("bob")
        await asyncio.sleep(4.5)
        # A refreshed token is new (valid, unexpired) but carries the old login's auth_time.
        refreshed = oidc_provider.refresh(login)
        assert (
            claims_of(refreshed.access_token)["auth_time"]
            == claims_of(login.access_token)["auth_time"]
        )
        stale = await sign(approver, approval_id, refreshed.access_token, version_hash=good)
        assert stale.status_code == 403, stale.text
        assert stale.json()["type"].endswith("/stale-authentication")
        assert "log in again" in stale.json()["detail"]
        # Positive control: a fresh login signs.
        fresh = await sign(
            approver, approval_id, oidc_provider.login("bob").access_token, version_hash=good
        )
        assert fresh.status_code == 201, fresh.text


async def test_cli_signs_with_a_bearer_token_and_shows_the_manifestation(
    sso_approver: Any, oidc_provider: Any, kafka: Any, events: Any, model: str
) -> None:
    """`paved approve` (PAVED_TOKEN from a fresh login), `approvals show`, `approvals verify`
    against the approver served over HTTP."""
    import socket

    import uvicorn
    from paved_cli.main import app as cli
    from typer.testing import CliRunner

    approval_id, _ = await open_case(
        sso_approver, kafka, events, model, ("someone-else", "Sam Scientist"), "medium"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(sso_approver.app, host="127.0.0.1", port=port, lifespan="off",
                       log_config=None, access_log=False)
    )  # fmt: skip
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        await wait_for(started, what="approver serving HTTP")
        env = {
            "PAVED_APPROVER_URL": f"http://127.0.0.1:{port}",
            "PAVED_TOKEN": oidc_provider.login("carol").access_token,
            "COLUMNS": "200",
        }

        def run(*args: str) -> Any:
            return CliRunner().invoke(cli, list(args), env=env)

        signed = await asyncio.to_thread(run, "approve", approval_id, "--reason", "Reviewed.")
        assert signed.exit_code == 0, signed.output
        assert "state granted" in signed.output
        assert "Signed by Carol Quality (" in signed.output
        assert "meaning: approval; bound to sha256:" in signed.output
        shown = await asyncio.to_thread(run, "approvals", "show", approval_id)
        assert "Signed by Carol Quality (" in shown.output
        assert "reason: Reviewed." in shown.output
        verified = await asyncio.to_thread(run, "approvals", "verify", approval_id)
        assert verified.exit_code == 0, verified.output
        assert f"all 1 signatures of {approval_id} verify" in verified.output
        env["PAVED_TOKEN"] = "not-a-jwt"
        refused = await asyncio.to_thread(run, "approvals", "show", approval_id)
        assert refused.exit_code != 0
        assert "401" in refused.output
    finally:
        server.should_exit = True
        await serving


async def test_a_team_sees_its_own_models_unless_granted_more(
    sso_approver: Any, oidc_provider: Any, kafka: Any, events: Any, model: str
) -> None:
    approval_id, _ = await open_case(
        sso_approver, kafka, events, model, ("someone-else", "Sam Scientist"), "medium"
    )
    url = f"/api/v1/approvals/{approval_id}"

    async def as_user(user: str, path: str, **params: str) -> httpx.Response:
        token = oidc_provider.password_token(user)
        response: httpx.Response = await sso_approver.client.get(
            path, params=params, headers=bearer(token)
        )
        return response

    frank = await as_user("frank", url)  # team fraud
    assert frank.status_code == 403
    assert "belongs to team 'churn'" in frank.json()["detail"]
    assert (await as_user("frank", "/api/v1/approvals", model=model)).json()["items"] == []
    for user in ("bob", "carol", "erin"):  # team churn, teams-all, auditor
        seen = await as_user(user, "/api/v1/approvals", model=model)
        assert [a["approval_id"] for a in seen.json()["items"]] == [approval_id], user
        assert (await as_user(user, url)).json()["owner_team"] == "churn"
