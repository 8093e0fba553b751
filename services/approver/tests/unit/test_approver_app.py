"""The app's wiring without I/O: routes, documented problems, AsyncAPI, caller identity."""

from __future__ import annotations

import pytest
from paved_approver.api import ProblemError, current_actor
from paved_approver.bootstrap import create_app, create_runtime
from paved_approver.settings import ApproverSettings
from paved_schemas import topics
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
    }
    post = paths["/api/v1/approvals/{approval_id}/decisions"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(post["responses"])
    headers = {p["name"].lower() for p in post["parameters"] if p["in"] == "header"}
    assert headers == {"x-paved-user", "x-paved-user-name"}


def test_asyncapi_names_what_the_approver_consumes_and_publishes() -> None:
    runtime = create_runtime(ApproverSettings(), metrics_registry=CollectorRegistry())
    text = str(runtime.asyncapi())
    for name in (topics.MODEL_EVENTS, topics.VALIDATION_EVENTS, topics.APPROVAL_EVENTS):
        assert name in text
    for event in ("ApprovalRequested", "ApprovalGranted", "ApprovalRejected"):
        assert event in text


def test_actor_comes_from_the_headers() -> None:
    actor = current_actor(" bob ", " Bob Reviewer ")
    assert (actor.user_id, actor.printed_name) == ("bob", "Bob Reviewer")
    # A UTF-8 name arrives as latin-1 text over HTTP and is recovered.
    raw = "José Núñez".encode().decode("latin-1")
    assert current_actor("jose", raw).printed_name == "José Núñez"


@pytest.mark.parametrize(
    ("user", "name", "message"),
    [
        (None, "Bob", "missing X-Paved-User header"),
        ("  ", "Bob", "missing X-Paved-User header"),
        ("bob", None, "missing X-Paved-User-Name header"),
        ("bob smith", "Bob", "'bob smith' is not a user id"),
        ("b" * 251, "Bob", "is not a user id"),
        ("bob", "B" * 257, "257 characters long"),
    ],
)
def test_missing_or_malformed_identity_is_401(
    user: str | None, name: str | None, message: str
) -> None:
    with pytest.raises(ProblemError, match=message) as caught:
        current_actor(user, name)
    assert caught.value.status == 401
    assert caught.value.headers is not None
    assert "WWW-Authenticate" in caught.value.headers
