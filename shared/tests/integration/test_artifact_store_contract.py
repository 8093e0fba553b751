"""One contract, three stores: local files, S3 (real moto server), GCS (real emulator).

Every store must behave the same for the same calls; each test runs against all three.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from paved_shared.artifacts import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactStore,
    LocalArtifactStore,
    sha256_file,
    store_for,
)
from paved_shared.cloud_emulators import GCSEmulator, MotoServer


@dataclass
class Subject:
    """A store under test and a factory of fresh URIs it serves."""

    store: ArtifactStore
    new_uri: Callable[[str], str]
    missing_container_uri: str


@pytest.fixture(params=["file", "s3", "gs"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Subject:
    scheme = request.param
    if scheme == "file":
        root = tmp_path / "store"
        return Subject(
            store_for(f"file://{root}/x", local_root=root),
            lambda name: (root / uuid.uuid4().hex / name).as_uri(),
            (root / "no-such-dir" / "x.bin").as_uri(),
        )
    if scheme == "s3":
        aws: MotoServer = request.getfixturevalue("moto_server")
        bucket = aws.create_bucket()
        return Subject(
            store_for(f"s3://{bucket}/x", config=aws.store_config()),
            lambda name: f"s3://{bucket}/{uuid.uuid4().hex}/{name}",
            f"s3://{bucket}-missing/x.bin",
        )
    gcs: GCSEmulator = request.getfixturevalue("gcs_emulator")
    bucket = gcs.create_bucket()
    return Subject(
        store_for(f"gs://{bucket}/x", config=gcs.store_config()),
        lambda name: f"gs://{bucket}/{uuid.uuid4().hex}/{name}",
        f"gs://{bucket}-missing/x.bin",
    )


def _file(tmp_path: Path, data: bytes, name: str = "model.bin") -> Path:
    path = tmp_path / "src" / uuid.uuid4().hex / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


async def test_store_contract_put_then_read_back(subject: Subject, tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > 2 MiB: several chunks
    src = _file(tmp_path, data)
    uri = subject.new_uri("model.bin")
    store = subject.store

    assert await store.exists(uri) is False
    assert await store.put(src, uri) == uri
    assert await store.exists(uri) is True
    assert await store.size(uri) == len(data)
    assert await store.sha256(uri) == sha256_file(src)

    fetched = await store.fetch(uri, tmp_path / "dest" / "nested")
    assert fetched.name == "model.bin"
    assert fetched.read_bytes() == data


async def test_store_contract_put_overwrites(subject: Subject, tmp_path: Path) -> None:
    uri = subject.new_uri("card.json")
    await subject.store.put(_file(tmp_path, b"first version", "card.json"), uri)
    second = _file(tmp_path, b"second, longer version", "card.json")
    await subject.store.put(second, uri)
    assert await subject.store.size(uri) == len(b"second, longer version")
    assert await subject.store.sha256(uri) == sha256_file(second)
    assert (await subject.store.fetch(uri, tmp_path / "d")).read_bytes() == second.read_bytes()


async def test_store_contract_empty_object(subject: Subject, tmp_path: Path) -> None:
    if subject.store.scheme == "gs":
        pytest.skip("gcp-storage-emulator crashes on an empty media upload (len(None))")
    uri = subject.new_uri("empty.bin")
    await subject.store.put(_file(tmp_path, b""), uri)
    assert await subject.store.size(uri) == 0
    expected = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert await subject.store.sha256(uri) == expected
    assert (await subject.store.fetch(uri, tmp_path / "d")).read_bytes() == b""


async def test_store_contract_names_with_spaces_and_unicode(
    subject: Subject, tmp_path: Path
) -> None:
    uri = subject.new_uri("modèle v2.onnx")
    await subject.store.put(_file(tmp_path, b"onnx bytes"), uri)
    assert await subject.store.exists(uri)
    fetched = await subject.store.fetch(uri, tmp_path / "d")
    assert fetched.name == "modèle v2.onnx"
    assert fetched.read_bytes() == b"onnx bytes"


async def test_store_contract_missing_object(subject: Subject, tmp_path: Path) -> None:
    uri = subject.new_uri("absent.pkl")
    assert await subject.store.exists(uri) is False
    with pytest.raises(ArtifactNotFoundError, match=r"absent\.pkl"):
        await subject.store.size(uri)
    with pytest.raises(ArtifactNotFoundError, match=r"absent\.pkl"):
        await subject.store.sha256(uri)
    with pytest.raises(ArtifactNotFoundError, match=r"absent\.pkl"):
        await subject.store.fetch(uri, tmp_path / "d")


async def test_store_contract_missing_container(subject: Subject, tmp_path: Path) -> None:
    uri = subject.missing_container_uri
    assert await subject.store.exists(uri) is False
    with pytest.raises(ArtifactNotFoundError):
        await subject.store.fetch(uri, tmp_path / "d")


async def test_store_contract_refuses_other_schemes(subject: Subject, tmp_path: Path) -> None:
    other = "ftp://example.invalid/model.pkl"
    with pytest.raises(ArtifactError, match=re.escape(other)):
        await subject.store.exists(other)
    with pytest.raises(ArtifactError):
        await subject.store.put(_file(tmp_path, b"x"), other)


async def test_store_contract_scheme_matches_store_for(subject: Subject) -> None:
    uri = subject.new_uri("m.pkl")
    assert uri.startswith(f"{subject.store.scheme}://")


@pytest.mark.parametrize("uri", ["s3://bucket-only", "s3://bucket/dir/", "gs://", "gs://b/k?x=1"])
async def test_store_cloud_uri_must_name_an_object(
    uri: str, moto_server: MotoServer, gcs_emulator: GCSEmulator
) -> None:
    config = moto_server.store_config() if uri.startswith("s3") else gcs_emulator.store_config()
    with pytest.raises(ArtifactError, match="BUCKET/KEY"):
        await store_for(uri, config=config).exists(uri)


def test_store_for_unknown_scheme_names_it() -> None:
    with pytest.raises(ArtifactError, match=r"unsupported artifact URI scheme 'azure'.*file://"):
        store_for("azure://container/model.pkl")


async def test_store_local_root_confines_reads_and_writes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalArtifactStore(root)
    outside = (tmp_path / "elsewhere" / "m.pkl").as_uri()
    with pytest.raises(ArtifactError, match="outside the artifact root"):
        await store.put(_file(tmp_path, b"x"), outside)
    with pytest.raises(ArtifactError, match="outside the artifact root"):
        await store.exists((root / ".." / "elsewhere" / "m.pkl").as_uri())
    assert not (tmp_path / "elsewhere").exists()


async def test_store_s3_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    """A store that cannot be reached raises OSError (retry), not a verdict on the artifact."""
    from paved_shared.artifacts import ArtifactStoreConfig
    from paved_shared.cloud_emulators import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    s3 = store_for(
        "s3://b/k",
        config=ArtifactStoreConfig(
            s3_endpoint_url=dead, s3_region="us-east-1",
            aws_access_key_id="fake", aws_secret_access_key="fake",
        ),
    )  # fmt: skip
    gcs = store_for("gs://b/k", config=ArtifactStoreConfig(gcs_endpoint_url=dead))
    for store, uri in ((s3, "s3://b/k"), (gcs, "gs://b/k")):
        with pytest.raises(OSError) as info:
            await store.exists(uri)
        assert not isinstance(info.value, ArtifactError)
