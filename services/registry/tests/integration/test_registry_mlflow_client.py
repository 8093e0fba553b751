"""The real ``mlflow`` client (3.x) driving Paved's MLflow-compatible registry API.

Paved is served by uvicorn on a free port; the client is MLflow's own
(``MlflowClient(tracking_uri=..., registry_uri=...)`` and ``mlflow.register_model``),
unmodified. Who the caller is travels in Paved's identity headers through MLflow's
request-header provider plugin point (with SSO, ``MLFLOW_TRACKING_TOKEN`` carries a
bearer token instead).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.tracking.request_header.abstract_request_header_provider import (
    RequestHeaderProvider,
)
from mlflow.tracking.request_header.registry import _request_header_provider_registry
from paved_schemas import topics

pytestmark = pytest.mark.integration

IDENTITY: dict[str, str] = {}


class PavedIdentity(RequestHeaderProvider):
    """Adds the caller's identity headers to every MLflow request (when one is set)."""

    def in_context(self) -> bool:
        return bool(IDENTITY)

    def request_headers(self) -> dict[str, str]:
        return dict(IDENTITY)


@pytest.fixture(scope="module")
def mlflow_client(live_registry: Any) -> Iterator[MlflowClient]:
    _request_header_provider_registry.register(PavedIdentity)
    provider = _request_header_provider_registry._registry[-1]
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(live_registry.url)
    mlflow.set_registry_uri(live_registry.url)
    IDENTITY.update({"X-Paved-User": "alice", "X-Paved-User-Name": "Alice Scientist"})
    try:
        yield MlflowClient(tracking_uri=live_registry.url, registry_uri=live_registry.url)
    finally:
        IDENTITY.clear()
        _request_header_provider_registry._registry.remove(provider)
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _artifact(tmp_path: Path, name: str = "model.onnx", content: bytes = b"onnx-bytes") -> Path:
    path = tmp_path / name
    path.write_bytes(content + name.encode())
    return path


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _paved_version(live: Any, name: str, version: int) -> dict[str, Any]:
    rows = live.fetch(
        "SELECT state, artifact_uri, artifact_digest, framework, model_card, lineage, tags, "
        "description FROM model_versions WHERE model_name = $1 AND version = $2",
        name, version,
    )  # fmt: skip
    assert len(rows) == 1
    row: dict[str, Any] = rows[0]
    return row


def test_register_model_pins_the_digest_and_starts_the_paved_lifecycle(
    mlflow_client: MlflowClient, live_registry: Any, kit: Any, tmp_path: Path
) -> None:
    name = kit.model_name()
    artifact = _artifact(tmp_path)

    first = mlflow.register_model(artifact.as_uri(), name, tags={"stage": "candidate"})
    # Already registered: register_model goes on to a new version (RESOURCE_ALREADY_EXISTS).
    second = mlflow.register_model(str(artifact), name)

    assert (first.name, first.version, second.version) == (name, "1", "2")
    assert first.status == "READY"
    assert first.source == artifact.as_uri()
    assert first.tags["stage"] == "candidate"
    assert first.tags["paved.artifact_digest"] == _sha(artifact)
    assert first.tags["paved.state"] == "validating"
    assert first.tags["paved.framework"] == "onnx"
    fetched = mlflow_client.get_model_version(name, "1")
    assert fetched.user_id == "alice"
    assert fetched.current_stage == "None"

    stored = _paved_version(live_registry, name, 1)
    assert stored["state"] == "validating"
    assert stored["artifact_digest"] == _sha(artifact)
    assert stored["framework"] == "onnx"
    # Nothing declared a card: conservative defaults, so a person has to approve it.
    assert stored["model_card"]["risk_tier"] == "high"
    assert stored["model_card"]["data_classification"] == "confidential"
    assert stored["tags"] == {"stage": "candidate"}
    model = live_registry.fetch("SELECT created_via, created_by FROM models WHERE name = $1", name)
    assert model == [{"created_via": "mlflow", "created_by": "alice"}]
    assert _paved_version(live_registry, name, 2)["artifact_uri"] == artifact.as_uri()


def test_client_create_get_update_tags_search_and_history(
    mlflow_client: MlflowClient, live_registry: Any, kit: Any, tmp_path: Path
) -> None:
    name = kit.model_name()
    created = mlflow_client.create_registered_model(
        name, tags={"team": "fraud", "domain": "payments"}, description="Flags card fraud."
    )
    assert created.name == name
    assert created.description == "Flags card fraud."
    assert created.tags["team"] == "fraud"
    assert created.tags["paved.owner_team"] == "fraud"

    mlflow_client.update_registered_model(name, description="Flags card-not-present fraud.")
    mlflow_client.set_registered_model_tag(name, "tier", "gold")
    mlflow_client.delete_registered_model_tag(name, "domain")
    model = mlflow_client.get_registered_model(name)
    assert model.description == "Flags card-not-present fraud."
    assert {k: v for k, v in model.tags.items() if not k.startswith("paved.")} == {
        "team": "fraud",
        "tier": "gold",
    }

    pkl = _artifact(tmp_path, "model.pkl")
    card = '{"risk_tier": "low", "data_classification": "internal", "license": "MIT"}'
    version = mlflow_client.create_model_version(
        name, pkl.as_uri(), run_id="run-123", description="first cut",
        tags={"paved.model_card": card, "paved.intended_use": "Ranking alerts for analysts.",
              "owner": "alice"},
    )  # fmt: skip
    assert version.version == "1"
    assert version.run_id == "run-123"
    assert version.description == "first cut"
    assert version.tags["paved.risk_tier"] == "low"
    assert version.tags["owner"] == "alice"
    stored = _paved_version(live_registry, name, 1)
    assert stored["framework"] == "sklearn"
    assert stored["model_card"]["intended_use"] == "Ranking alerts for analysts."
    assert stored["model_card"]["license"] == "MIT"
    assert stored["lineage"]["training_run"] == "mlflow-run:run-123"
    assert "paved.model_card" not in stored["tags"]

    mlflow_client.update_model_version(name, "1", description="first cut, recalibrated")
    mlflow_client.set_model_version_tag(name, "1", "validation", "passed")
    mlflow_client.delete_model_version_tag(name, "1", "owner")
    got = mlflow_client.get_model_version(name, "1")
    assert got.description == "first cut, recalibrated"
    assert {k: v for k, v in got.tags.items() if not k.startswith("paved.")} == {
        "validation": "passed"
    }
    # The artifact and its digest are untouched by annotation edits.
    assert _paved_version(live_registry, name, 1)["artifact_digest"] == _sha(pkl)

    for i in (2, 3):
        mlflow_client.create_model_version(name, _artifact(tmp_path, f"m{i}.onnx").as_uri())
    found = mlflow_client.search_registered_models(filter_string=f"name = '{name}'")
    assert [m.name for m in found] == [name]
    assert found[0].latest_versions[0].version == "3"
    assert [m.name for m in mlflow_client.search_registered_models(f"name LIKE '{name[:8]}%'")]
    assert name in [m.name for m in mlflow_client.search_registered_models("tags.tier = 'gold'")]
    versions = mlflow_client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in versions) == ["1", "2", "3"]
    by_run = mlflow_client.search_model_versions("run_id = 'run-123'")
    assert [(v.name, v.version) for v in by_run] == [(name, "1")]
    tagged = mlflow_client.search_model_versions(f"name = '{name}' AND tags.validation = 'passed'")
    assert [v.version for v in tagged] == ["1"]
    # Pages: the client's page token is Paved's cursor.
    page1 = mlflow_client.search_model_versions(
        f"name = '{name}'", max_results=2, order_by=["version_number ASC"]
    )
    assert [v.version for v in page1] == ["1", "2"]
    assert page1.token
    page2 = mlflow_client.search_model_versions(
        f"name = '{name}'", max_results=2, order_by=["version_number ASC"], page_token=page1.token
    )
    assert [v.version for v in page2] == ["3"]
    assert not page2.token
    assert mlflow_client.get_model_version_download_uri(name, "1") == pkl.as_uri()
    latest = mlflow_client.get_latest_versions(name)
    assert [v.version for v in latest] == ["3"]

    # Every edit above is in the catalog's change history, with old and new values.
    changes = live_registry.fetch(
        "SELECT action, changes, actor FROM catalog_changes WHERE model_name = $1 ORDER BY id",
        name,
    )
    assert [c["action"] for c in changes] == [
        "model_created", "model_updated", "model_updated", "model_updated",
        "version_updated", "version_updated", "version_updated",
    ]  # fmt: skip
    assert {"field": "tags.domain", "old": "payments", "new": None} in changes[3]["changes"]
    assert {c["actor"] for c in changes} == {"user:alice"}


async def test_aliases_and_protected_aliases_through_the_client(
    mlflow_client: MlflowClient, live_registry: Any, kit: Any, tmp_path: Path
) -> None:
    name = kit.model_name()
    mlflow_client.create_registered_model(name)
    v1 = mlflow_client.create_model_version(name, _artifact(tmp_path, "a.onnx").as_uri())
    v2 = mlflow_client.create_model_version(name, _artifact(tmp_path, "b.onnx").as_uri())

    mlflow_client.set_registered_model_alias(name, "candidate", "1")
    assert mlflow_client.get_model_version_by_alias(name, "candidate").version == "1"
    mlflow_client.set_registered_model_alias(name, "candidate", "2")
    assert mlflow_client.get_model_version_by_alias(name, "candidate").version == "2"

    # champion is protected: only an approved (or deployed) version.
    with pytest.raises(MlflowException) as refused:
        mlflow_client.set_registered_model_alias(name, "champion", "1")
    assert refused.value.error_code == "INVALID_STATE"
    assert "protected" in refused.value.message
    assert "'validating'" in refused.value.message

    digest = v1.tags["paved.artifact_digest"]
    await kit.publish(
        live_registry.bootstrap,
        kit.validated(name, 1, digest),
        kit.approval_requested(name, 1, digest),
        kit.approval_granted(name, 1, digest),
    )
    await _wait(
        lambda: mlflow_client.get_model_version(name, "1").tags["paved.state"] == "approved"
    )
    assert mlflow_client.get_model_version(name, "1").current_stage == "Staging"
    mlflow_client.set_registered_model_alias(name, "champion", "1")
    champion = mlflow_client.get_model_version_by_alias(name, "champion")
    assert (champion.version, champion.tags["paved.artifact_digest"]) == ("1", digest)
    assert sorted(champion.aliases) == ["champion"]
    model = mlflow_client.get_registered_model(name)
    assert model.aliases == {"candidate": "2", "champion": "1"}
    with pytest.raises(MlflowException, match="'validating'"):
        mlflow_client.set_registered_model_alias(name, "champion", v2.version)

    mlflow_client.delete_registered_model_alias(name, "candidate")
    with pytest.raises(MlflowException) as gone:
        mlflow_client.get_model_version_by_alias(name, "candidate")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    events = await kit.events_on(
        live_registry.bootstrap, topics.MODEL_EVENTS, kit.about(name), expect=12
    )
    moves = [
        (e.data.alias, e.data.from_version, e.data.to_version)
        for e in events
        if type(e.data).__name__ == "ModelAliasChanged"
    ]
    assert moves == [
        ("candidate", None, 1), ("candidate", 1, 2), ("champion", None, 1),
        ("candidate", 2, None),
    ]  # fmt: skip


def test_what_a_regulated_registry_refuses_is_a_clear_mlflow_error(
    mlflow_client: MlflowClient, live_registry: Any, kit: Any, tmp_path: Path
) -> None:
    name = kit.model_name()
    mlflow_client.create_registered_model(name)
    mlflow_client.create_model_version(name, _artifact(tmp_path).as_uri())

    cases = {
        "deleted": lambda: mlflow_client.delete_registered_model(name),
        "renamed": lambda: mlflow_client.rename_registered_model(name, name + "-x"),
        "stages": lambda: mlflow_client.transition_model_version_stage(name, "1", "Production"),
        "deleted ": lambda: mlflow_client.delete_model_version(name, "1"),
    }
    for expected, call in cases.items():
        with pytest.raises(MlflowException) as refused:
            call()
        assert refused.value.error_code == "INVALID_STATE"
        assert expected.strip() in refused.value.message

    with pytest.raises(MlflowException) as bad_name:
        mlflow_client.create_registered_model("My Model")
    assert bad_name.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "'My Model'" in bad_name.value.message

    for source, why in [
        (f"runs:/abc/{name}", "tracking server"),
        (tmp_path.as_uri(), "is a directory"),
        ((tmp_path / "missing.onnx").as_uri(), "cannot read the artifact"),
    ]:
        with pytest.raises(MlflowException) as bad_source:
            mlflow_client.create_model_version(name, source)
        assert bad_source.value.error_code == "INVALID_PARAMETER_VALUE"
        assert why in bad_source.value.message

    with pytest.raises(MlflowException, match=r"paved\.state"):
        mlflow_client.set_model_version_tag(name, "1", "paved.state", "approved")
    with pytest.raises(MlflowException) as unknown:
        mlflow_client.get_model_version(name, "9")
    assert unknown.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as bad_filter:
        mlflow_client.search_model_versions("name != 'x'")
    assert "name != ['x']" in bad_filter.value.message
    assert bad_filter.value.error_code == "INVALID_PARAMETER_VALUE"

    saved = dict(IDENTITY)
    IDENTITY.clear()
    try:
        with pytest.raises(MlflowException) as anonymous:
            mlflow_client.create_registered_model(kit.model_name())
        assert anonymous.value.error_code == "UNAUTHENTICATED"
    finally:
        IDENTITY.update(saved)
    # Only failures above: one model, one version.
    assert live_registry.fetch(
        "SELECT count(*) AS n FROM model_versions WHERE model_name = $1", name
    ) == [{"n": 1}]


async def _wait(check: Any, timeout_s: float = 30.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)
