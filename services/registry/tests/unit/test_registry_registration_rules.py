"""Registration rules without I/O: the idempotency fingerprint, implicit owners, settings."""

from __future__ import annotations

from typing import Any

import pytest
from paved_registry.domain.registration import implicit_owner_team, request_fingerprint
from paved_registry.settings import RegistrySettings
from paved_schemas import topics
from paved_schemas.events import (
    EXAMPLE_DIGEST,
    EXAMPLE_MODEL_CARD,
    EXAMPLE_SIGNATURE,
    RegisterModelVersion,
)
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def _command(**extra: Any) -> RegisterModelVersion:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "model_name": "churn",
        "artifact_uri": "file:///m.onnx",
        "artifact_digest": EXAMPLE_DIGEST,
        "framework": "onnx",
        "signature": EXAMPLE_SIGNATURE,
        "model_card": EXAMPLE_MODEL_CARD,
        "registered_by": "alice",
        "registered_by_name": "Alice Scientist",
    }
    fields.update(extra)
    return RegisterModelVersion.model_validate(fields)


def test_fingerprint_ignores_the_key_and_defaults_but_not_the_content() -> None:
    base = request_fingerprint(_command())
    assert base.startswith("sha256:")
    assert request_fingerprint(_command(request_id="another-key")) == base
    assert request_fingerprint(_command(tags={}, lineage=None)) == base
    assert request_fingerprint(_command(tags={"stage": "prod"})) != base
    assert request_fingerprint(_command(version=3)) != base
    assert request_fingerprint(_command(registered_by="mallory")) != base
    assert request_fingerprint(_command(artifact_uri="file:///other.onnx")) != base


def test_implicit_owner_team_comes_from_the_team_tag() -> None:
    assert implicit_owner_team(_command(tags={"team": "fraud"})) == "fraud"
    assert implicit_owner_team(_command(tags={"team": "  "})) == "unknown"
    assert implicit_owner_team(_command()) == "unknown"


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = RegistrySettings()
    assert (defaults.registry_http_host, defaults.registry_http_port) == ("127.0.0.1", 8080)
    assert defaults.registry_db_schema == "registry"
    assert defaults.registry_consumer_group == topics.GROUP_REGISTRY
    monkeypatch.setenv("PAVED_REGISTRY_HTTP_PORT", "9999")
    monkeypatch.setenv("PAVED_REGISTRY_DB_SCHEMA", "registry_b")
    configured = RegistrySettings()
    assert configured.registry_http_port == 9999
    assert configured.registry_db_schema == "registry_b"
    with pytest.raises(ValidationError, match="registry_db_schema"):
        RegistrySettings(registry_db_schema="Robert'); DROP TABLE models;--")
