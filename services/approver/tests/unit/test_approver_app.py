"""The app's wiring without I/O: routes, documented problems, AsyncAPI, caller identity."""

from __future__ import annotations

import pytest
from paved_approver.api import actor_of
from paved_approver.bootstrap import create_app, create_runtime
from paved_approver.domain.policy import BUILTIN_POLICY
from paved_approver.settings import ApproverSettings
from paved_schemas import topics
from paved_shared.auth import principal_from_dev_headers
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.unit


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DB_SCHEMA", "CONSUMER_GROUP", "HTTP_HOST", "HTTP_PORT"):
        monkeypatch.delenv(f"PAVED_APPROVER_{var}", raising=False)
    s = ApproverSettings()
    assert (s.approver_db_schema, s.approver_consumer_group) == ("approver", topics.GROUP_APPROVER)
    assert (s.approver_http_host, s.approver_http_port) == ("127.0.0.1", 8081)
    monkeypatch.setenv("PAVED_APPROVER_HTTP_PORT", "9999")
    monkeypatch.setenv("PAVED_APPROVER_DB_SCHEMA", "approver_x")
    s = ApproverSettings()
    assert (s.approver_http_port, s.approver_db_schema) == (9999, "approver_x")
    monkeypatch.setenv("PAVED_APPROVER_DB_SCHEMA", "bad; drop")
    with pytest.raises(ValueError, match="approver_db_schema"):
        ApproverSettings()


def test_create_app_does_no_io_and_documents_the_api() -> None:
    app = create_app(ApproverSettings(), metrics_registry=CollectorRegistry())
    spec = app.openapi()
    paths = spec["paths"]
    assert set(paths) >= {
        "/healthz",
        "/readyz",
        "/api/v1/approvals",
        "/api/v1/approvals/{approval_id}",
        "/api/v1/approvals/{approval_id}/decisions",
        "/api/v1/signatures/verify",
        "/api/v1/seal-keys",
    }
    post = paths["/api/v1/approvals/{approval_id}/decisions"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(post["responses"])
    body = spec["components"]["schemas"]["DecisionIn"]["properties"]
    assert {"decision", "meaning", "reason", "version_hash"} <= set(body)


def test_asyncapi_names_what_the_approver_consumes_and_publishes() -> None:
    runtime = create_runtime(
        ApproverSettings(), policy=BUILTIN_POLICY, metrics_registry=CollectorRegistry()
    )
    text = str(runtime.asyncapi())
    for name in (topics.MODEL_EVENTS, topics.VALIDATION_EVENTS, topics.APPROVAL_EVENTS):
        assert name in text
    for event in (
        "ApprovalRequested",
        "ApprovalGranted",
        "ApprovalRejected",
        "ApprovalExpired",
        "ApprovalDecisionRecorded",
    ):
        assert event in text


def test_settings_refuse_dev_headers_and_a_missing_seal_key_in_prod() -> None:
    with pytest.raises(ValueError, match="dev-headers is refused"):
        ApproverSettings(
            environment="prod", auth_mode="dev-headers", kafka_security_protocol="SASL_SSL"
        )
    with pytest.raises(ValueError, match="PAVED_APPROVER_SEAL_KEY_FILE is required"):
        ApproverSettings(
            environment="prod",
            oidc_issuer="https://sso.example/realms/p",
            oidc_audience="a",
            kafka_security_protocol="SASL_SSL",
        )
    assert ApproverSettings(environment="test").resolved_auth_mode == "dev-headers"


def test_the_actor_carries_roles_teams_and_login() -> None:
    principal = principal_from_dev_headers(
        {"X-Paved-User": "bob", "X-Paved-User-Name": "Bob R", "X-Paved-Roles": "approver",
         "X-Paved-Teams": "churn"}
    )  # fmt: skip
    actor = actor_of(principal)
    assert (actor.user_id, actor.printed_name) == ("bob", "Bob R")
    assert actor.roles == {"approver"}
    assert actor.teams == {"churn"}
    assert not actor.all_teams
    assert actor.auth_mode == "dev-headers"
    assert actor.auth_time is None
