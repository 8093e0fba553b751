"""Auth settings refuse unsafe setups; dev headers, claims and the freshness, role and
team checks map to principals and clear refusals (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from paved_shared.auth import (
    AuthError,
    AuthSettings,
    ForbiddenError,
    Principal,
    Role,
    TokenRejectedError,
    principal_from_claims,
    principal_from_dev_headers,
    require_fresh_auth,
    require_role,
    require_team,
)
from pydantic import ValidationError

pytestmark = pytest.mark.unit

ISSUER = "https://sso.example.com/realms/paved"


def test_mode_defaults_by_environment() -> None:
    assert AuthSettings(environment="dev").resolved_auth_mode == "dev-headers"
    assert AuthSettings(environment="test").resolved_auth_mode == "dev-headers"
    prod = AuthSettings(environment="prod", oidc_issuer=ISSUER, oidc_audience="paved-api")
    assert prod.resolved_auth_mode == "oidc"


def test_dev_headers_refused_outside_dev_and_test() -> None:
    for env in ("staging", "prod"):
        with pytest.raises(ValidationError, match="dev-headers is refused in environment"):
            AuthSettings(environment=env, auth_mode="dev-headers")


def test_oidc_needs_issuer_audience_https_and_asymmetric_algorithms() -> None:
    with pytest.raises(ValidationError, match="needs PAVED_OIDC_ISSUER and PAVED_OIDC_AUDIENCE"):
        AuthSettings(environment="prod")
    with pytest.raises(ValidationError, match="must use https outside dev/test"):
        AuthSettings(environment="prod", oidc_issuer="http://sso/realms/p", oidc_audience="a")
    for bad in (["none"], ["HS256"], ["RS256", "HS512"], []):
        with pytest.raises(ValidationError, match="PAVED_OIDC_ALGORITHMS"):
            AuthSettings(
                environment="prod", oidc_issuer=ISSUER, oidc_audience="a", oidc_algorithms=bad
            )
    ok = AuthSettings(
        environment="test",
        auth_mode="oidc",
        oidc_issuer="http://127.0.0.1:1/realms/p",
        oidc_audience="a",
    )
    assert ok.oidc_algorithms == ("RS256",)


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVED_ENVIRONMENT", "prod")
    monkeypatch.setenv("PAVED_AUTH_MODE", "dev-headers")
    with pytest.raises(ValidationError, match="dev-headers is refused"):
        AuthSettings()


def test_dev_headers_principal() -> None:
    p = principal_from_dev_headers({"X-Paved-User": "bob", "X-Paved-User-Name": "Bob R"})
    assert p.user_id == "bob"
    assert p.printed_name == "Bob R"
    assert Role.ADMIN not in p.roles
    assert Role.APPROVER in p.roles
    assert p.all_teams
    assert p.auth_mode == "dev-headers"
    assert p.auth_time is None

    scoped = principal_from_dev_headers(
        {
            "X-Paved-User": "dave",
            "X-Paved-User-Name": "Dave",
            "X-Paved-Roles": "admin, approver",
            "X-Paved-Teams": "churn",
        }
    )
    assert scoped.roles == {Role.ADMIN, Role.APPROVER}
    assert scoped.teams == {"churn"}
    assert not scoped.all_teams
    with pytest.raises(AuthError, match=r"unknown roles \['root'\]"):
        principal_from_dev_headers(
            {"X-Paved-User": "x", "X-Paved-User-Name": "X", "X-Paved-Roles": "root"}
        )
    with pytest.raises(AuthError, match="missing X-Paved-User header"):
        principal_from_dev_headers({})
    with pytest.raises(AuthError, match="not a user id"):
        principal_from_dev_headers({"X-Paved-User": "two words", "X-Paved-User-Name": "X"})


def test_claims_map_groups_to_roles_and_teams() -> None:
    settings = AuthSettings(environment="test")
    p = principal_from_claims(
        {
            "sub": "0b1c-uuid",
            "name": "Carol Quality",
            "groups": ["/approvers", "team-churn", "team-fraud", "auditor", "unrelated"],
            "auth_time": 1_700_000_000,
            "iss": ISSUER,
            "jti": "t1",
            "preferred_username": "carol",
        },
        settings,
    )
    assert p.user_id == "0b1c-uuid"
    assert p.username == "carol"
    assert p.roles == {Role.APPROVER, Role.AUDITOR}
    assert p.teams == {"churn", "fraud"}
    assert not p.all_teams
    assert p.auth_time == datetime.fromtimestamp(1_700_000_000, UTC)
    every = principal_from_claims({"sub": "s", "groups": ["teams-all"]}, settings)
    assert every.all_teams
    assert every.printed_name == "s"
    with pytest.raises(TokenRejectedError, match="not a user id"):
        principal_from_claims({"sub": ""}, settings)
    with pytest.raises(TokenRejectedError, match="must be a list"):
        principal_from_claims({"sub": "s", "groups": "admins"}, settings)


def test_fresh_auth_role_and_team_checks() -> None:
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    fresh = Principal("u", "U", frozenset({Role.APPROVER}), frozenset({"churn"}),
                      auth_time=now - timedelta(seconds=60))  # fmt: skip
    require_fresh_auth(fresh, max_age_s=300, now=now)
    stale = Principal("u", "U", auth_time=now - timedelta(minutes=30))
    with pytest.raises(ForbiddenError, match="last logged in 1800 s ago") as exc:
        require_fresh_auth(stale, max_age_s=300, now=now)
    assert exc.value.code == "stale-authentication"
    assert exc.value.status == 403
    with pytest.raises(ForbiddenError, match="carries no auth_time"):
        require_fresh_auth(Principal("u", "U"), max_age_s=300, now=now)

    require_role(fresh, Role.APPROVER, action="approve")
    with pytest.raises(ForbiddenError, match=r"needs role admin, holds \['approver'\]"):
        require_role(fresh, Role.ADMIN, action="administer")
    require_team(fresh, "churn", action="approve")
    require_team(fresh, None, action="approve")
    with pytest.raises(ForbiddenError, match="belongs to team 'fraud'"):
        require_team(fresh, "fraud", action="approve")
