"""A command's sender, verified in OIDC mode against the session's real Keycloak: the
token in the record's headers decides who sent it, judged at the broker's append time;
dev headers, forged signatures and expired tokens are refused (the registry then
dead-letters the command, see test_kafka_attacks)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from paved_schemas import topics
from paved_shared.auth import Authenticator, AuthSettings, Role
from paved_shared.command_identity import CommandIdentityError, command_sender, identity_headers
from paved_shared.deadletter import Delivery

pytestmark = pytest.mark.integration


def _delivery(headers: list[tuple[str, bytes]], *, appended_at: float | None = None,
              broker_time: bool = True) -> Delivery:  # fmt: skip
    return Delivery(
        topic=topics.REGISTRATION_REQUESTS, partition=0, offset=0, key=b"m", value=b"{}",
        headers=dict(headers),
        timestamp_ms=int((appended_at if appended_at is not None else time.time()) * 1000),
        log_append_time=broker_time,
    )  # fmt: skip


def _exp(token: str) -> int:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return int(claims["exp"])


@pytest.fixture(scope="module")
def authenticator(oidc_provider: Any) -> Authenticator:
    return Authenticator(
        AuthSettings(
            environment="test",
            auth_mode="oidc",
            oidc_issuer=oidc_provider.issuer,
            oidc_audience=oidc_provider.audience,
        )
    )


async def test_a_genuine_token_names_the_sender(
    oidc_provider: Any, authenticator: Authenticator
) -> None:
    token = oidc_provider.password_token("alice")
    alice = await command_sender(_delivery(identity_headers(token=token)), authenticator)
    assert alice.username == "alice"
    assert Role.SCIENTIST in alice.roles
    assert alice.teams == {"churn"}
    pipeline = await command_sender(
        _delivery(identity_headers(token=oidc_provider.client_credentials_token())), authenticator
    )
    assert (pipeline.username or "").startswith("service-account-")


async def test_dev_headers_are_not_an_identity_in_oidc_mode(authenticator: Authenticator) -> None:
    forged = identity_headers(user="alice", name="Alice Scientist", roles="admin")
    with pytest.raises(CommandIdentityError, match="no 'Authorization: Bearer <token>' header"):
        await command_sender(_delivery(forged), authenticator)


async def test_a_forged_signature_is_refused(
    oidc_provider: Any, authenticator: Authenticator
) -> None:
    header, payload, sig = oidc_provider.password_token("frank").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["preferred_username"] = "dave"  # claim to be the admin
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(CommandIdentityError, match="signature does not verify"):
        await command_sender(
            _delivery(identity_headers(token=f"{header}.{forged_payload}.{sig}")), authenticator
        )


async def test_the_token_is_judged_at_the_brokers_append_time(
    oidc_provider: Any, authenticator: Authenticator
) -> None:
    token = oidc_provider.password_token("alice")
    exp = _exp(token)
    # Appended (by the broker's clock) an hour after the token expired: refused, even if
    # the consumer reads it while the token would still look valid to it.
    with pytest.raises(CommandIdentityError, match="expired"):
        await command_sender(
            _delivery(identity_headers(token=token), appended_at=exp + 3600), authenticator
        )
    # A producer-set timestamp (CreateTime) is not trusted: the consumer's clock decides.
    late_claim = _delivery(identity_headers(token=token), appended_at=exp + 3600,
                           broker_time=False)  # fmt: skip
    assert (await command_sender(late_claim, authenticator)).username == "alice"
    # Positive control: appended while valid, read later, still accepted.
    queued = _delivery(identity_headers(token=token), appended_at=time.time())
    assert (await command_sender(queued, authenticator)).username == "alice"
