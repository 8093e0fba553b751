"""OIDC verification against a real OpenID provider (Keycloak, the `oidc_provider` fixture):
the RFC 8725 token attack matrix is rejected, genuine tokens are accepted, and a rotated
signing key is picked up without a restart, with a rate-limited JWKS refresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from paved_shared.auth import (
    Authenticator,
    AuthError,
    AuthSettings,
    JwksCache,
    Role,
    TokenRejectedError,
    TokenVerifier,
    discover_jwks_url,
    fetch_json,
)

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(h + "==")),
        json.loads(base64.urlsafe_b64decode(p + "==")),
        s,
    )


class Clock:
    """A monotonic clock the test moves by hand (rate limits without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
async def jwks_url(oidc_provider: Any) -> str:
    return await discover_jwks_url(oidc_provider.issuer)


def verifier(
    provider: Any, jwks_url: str, *, clock: Any = time.time, mono: Any = None, **kw: Any
) -> TokenVerifier:
    jwks = JwksCache(jwks_url, min_refresh_s=30.0, clock=mono or time.monotonic)
    return TokenVerifier(
        issuer=provider.issuer, audience=provider.audience, jwks=jwks, leeway_s=5, clock=clock, **kw
    )


async def rejected(v: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenRejectedError) as exc:
        await v.verify(token)
    return str(exc.value)


async def test_genuine_tokens_are_accepted_with_roles_and_teams(
    oidc_provider: Any, jwks_url: str
) -> None:
    settings = AuthSettings(
        environment="test",
        auth_mode="oidc",
        oidc_issuer=oidc_provider.issuer,
        oidc_audience=oidc_provider.audience,
    )
    auth = Authenticator(settings)
    bob = await auth.authenticate(
        {"Authorization": f"Bearer {oidc_provider.password_token('bob')}"}
    )
    assert bob.printed_name == "Bob Reviewer"
    assert bob.username == "bob"
    assert bob.roles == {Role.APPROVER}
    assert bob.teams == {"churn"}
    assert bob.in_team("churn")
    assert not bob.in_team("fraud")
    assert bob.issuer == oidc_provider.issuer
    # The stable id is the provider's subject, not the (renamable) user name.
    assert bob.user_id != "bob"
    assert len(bob.user_id) >= 32

    pipeline = await auth.authenticate(
        {"Authorization": f"Bearer {oidc_provider.client_credentials_token()}"}
    )
    assert pipeline.username == "service-account-paved-pipeline"
    assert pipeline.roles == {Role.SCIENTIST}

    interactive = oidc_provider.login("carol")
    carol = await auth.authenticate({"Authorization": f"Bearer {interactive.access_token}"})
    assert carol.auth_time is not None
    assert abs(carol.auth_time.timestamp() - time.time()) < 120

    with pytest.raises(AuthError, match="Authorization: Bearer"):
        await auth.authenticate({"X-Paved-User": "bob", "X-Paved-User-Name": "Bob"})


async def test_alg_none_is_rejected(oidc_provider: Any, jwks_url: str) -> None:
    header, payload, _ = parts(oidc_provider.password_token("bob"))
    none_header = b64(json.dumps({**header, "alg": "none"}).encode())
    forged = f"{none_header}.{b64(json.dumps(payload).encode())}."
    assert "algorithm 'none' is not accepted" in await rejected(
        verifier(oidc_provider, jwks_url), forged
    )


async def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    oidc_provider: Any, jwks_url: str
) -> None:
    token = oidc_provider.password_token("bob")
    header, payload, _ = parts(token)
    jwks = await fetch_json(jwks_url)
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public_pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64(json.dumps({**header, 'alg': 'HS256'}).encode())}."
        f"{b64(json.dumps({**payload, 'groups': ['admins']}).encode())}"
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(mac)}"
    assert "algorithm 'HS256' is not accepted" in await rejected(
        verifier(oidc_provider, jwks_url), forged
    )
    # Nor can a verifier be configured to accept it.
    with pytest.raises(ValueError, match="HS256"):
        verifier(oidc_provider, jwks_url, algorithms=["RS256", "HS256"])


async def test_wrong_issuer_is_rejected(oidc_provider: Any, jwks_url: str) -> None:
    # The same realm and key, reached under another host name: Keycloak issues the
    # token as http://localhost:<port>/realms/paved, a different issuer.
    other_host = oidc_provider.base_url.replace("127.0.0.1", "localhost")
    token = oidc_provider.login("bob", base_url=other_host).access_token
    assert parts(token)[1]["iss"].startswith("http://localhost:")
    assert "is not the trusted issuer" in await rejected(verifier(oidc_provider, jwks_url), token)


async def test_wrong_audience_is_rejected(oidc_provider: Any, jwks_url: str) -> None:
    token = oidc_provider.password_token("bob", client_id="other-app")
    assert "does not include 'paved-api'" in await rejected(
        verifier(oidc_provider, jwks_url), token
    )


async def test_expired_token_is_rejected_and_skew_is_small(
    oidc_provider: Any, jwks_url: str
) -> None:
    token = oidc_provider.password_token("bob")
    exp = parts(token)[1]["exp"]
    v_now = verifier(oidc_provider, jwks_url)
    assert (await v_now.verify(token))["exp"] == exp  # positive control
    within_skew = verifier(oidc_provider, jwks_url, clock=lambda: exp + 4)
    await within_skew.verify(token)
    past = verifier(oidc_provider, jwks_url, clock=lambda: exp + 6)
    assert "token expired" in await rejected(past, token)


async def test_unknown_kid_is_rejected_after_one_rate_limited_refresh(
    oidc_provider: Any, jwks_url: str
) -> None:
    mono = Clock()
    v = verifier(oidc_provider, jwks_url, mono=mono)
    await v.verify(oidc_provider.password_token("bob"))
    assert v.jwks.fetches == 1
    # A genuine token of the provider's master realm: a key this issuer never published.
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{oidc_provider.base_url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": oidc_provider.admin_user,
                "password": oidc_provider.admin_password,
            },
        )
    master = answer.json()["access_token"]
    mono.now += 31
    assert "unknown key id" in await rejected(v, master)
    assert v.jwks.fetches == 2  # one refresh to look for the key
    for _ in range(5):
        mono.now += 1
        await rejected(v, master)
    assert v.jwks.fetches == 2  # junk tokens do not hammer the provider


async def test_tampered_payload_is_rejected(oidc_provider: Any, jwks_url: str) -> None:
    token = oidc_provider.password_token("bob")
    h, _, s = token.split(".")
    payload = parts(token)[1]
    payload["groups"] = [*payload["groups"], "admins", "teams-all"]
    tampered = f"{h}.{b64(json.dumps(payload).encode())}.{s}"
    assert "signature does not verify" in await rejected(
        verifier(oidc_provider, jwks_url), tampered
    )


async def test_rotated_key_is_picked_up_without_restart(oidc_provider: Any, jwks_url: str) -> None:
    mono = Clock()
    v = verifier(oidc_provider, jwks_url, mono=mono)
    before = oidc_provider.password_token("bob")
    await v.verify(before)
    old_kid = parts(before)[0]["kid"]
    assert v.jwks.fetches == 1

    new_kid = oidc_provider.rotate_signing_key()
    after = oidc_provider.password_token("bob")
    assert parts(after)[0]["kid"] == new_kid != old_kid
    mono.now += 31  # past the refresh rate limit
    claims = await v.verify(after)
    assert claims["preferred_username"] == "bob"
    assert v.jwks.fetches == 2
    assert {old_kid, new_kid} <= v.jwks.kids
    await v.verify(before)  # tokens signed before the rotation stay valid until they expire


async def test_discovery_issuer_must_match_exactly(oidc_provider: Any) -> None:
    with pytest.raises(TokenRejectedError, match="must be equal"):
        await discover_jwks_url(oidc_provider.issuer + "/", fetch=fetch_json)
