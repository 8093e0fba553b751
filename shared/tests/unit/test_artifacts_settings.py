"""Artifact-store settings: read from PAVED_ARTIFACT_* without changing how a service's
own settings are read, and turned into the config store_for takes."""

from __future__ import annotations

import pytest
from paved_shared.artifacts import (
    ArtifactError,
    ArtifactStoreSettings,
    LocalArtifactStore,
    object_name,
    split_bucket_uri,
    store_for,
)
from paved_shared.settings import PavedSettings

pytestmark = pytest.mark.unit


class _ServiceSettings(PavedSettings, ArtifactStoreSettings):
    pass


def test_mixing_in_keeps_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVED_DATABASE_URL", "postgresql://u@db.example:5432/p")
    monkeypatch.setenv("PAVED_ARTIFACT_S3_ENDPOINT_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("PAVED_ARTIFACT_AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("PAVED_ARTIFACT_AWS_ACCESS_KEY_ID", "fake-id")
    monkeypatch.setenv("PAVED_ARTIFACT_GCS_ENDPOINT_URL", "http://127.0.0.1:8888")
    settings = _ServiceSettings()
    assert str(settings.database_url) == "postgresql://u@db.example:5432/p"
    config = settings.artifact_store_config()
    assert config.s3_endpoint_url == "http://127.0.0.1:9999"
    assert config.aws_secret_access_key == "fake-secret"
    assert config.gcs_endpoint_url == "http://127.0.0.1:8888"
    assert "fake-secret" not in repr(settings)


def test_store_for_picks_by_scheme_without_io() -> None:
    assert isinstance(store_for("file:///tmp/x.pkl"), LocalArtifactStore)
    assert store_for("s3://bucket/key.onnx").scheme == "s3"
    assert store_for("gs://bucket/key.onnx").scheme == "gs"
    with pytest.raises(ArtifactError, match=r"scheme 'http'.*file://, s3://, gs://"):
        store_for("http://example.invalid/m.pkl")


def test_bucket_uris_are_split_and_checked() -> None:
    assert split_bucket_uri("s3://b/dir/m.pkl", "s3") == ("b", "dir/m.pkl")
    with pytest.raises(ArtifactError, match="BUCKET/KEY"):
        split_bucket_uri("s3://b", "s3")
    with pytest.raises(ArtifactError, match="not a gs:// URI"):
        split_bucket_uri("s3://b/k", "gs")
    assert object_name("gs://b/dir/mod%C3%A8le.onnx") == "modèle.onnx"
    with pytest.raises(ArtifactError, match="does not end in a file name"):
        object_name("s3://b/")
