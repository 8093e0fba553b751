"""Artifact stores: where model files live, behind one interface.

Services never open an artifact URI themselves; they ask the store chosen by the
URI's scheme: ``file://`` (:class:`LocalArtifactStore`), ``s3://`` (S3 through
aioboto3) and ``gs://`` (GCS through gcloud-aio-storage). The cloud adapters live in
:mod:`paved_shared.artifact_stores` and are imported only when a URI needs them.

Every store keeps the same contract (one test suite runs against all three, the
clouds against moto server and the GCS emulator on loopback):

- a missing object raises :class:`ArtifactNotFoundError` (an :class:`ArtifactError`);
- a malformed or unsupported URI raises :class:`ArtifactError`;
- ``sha256`` hashes the stored bytes themselves, never trusting a stored checksum;
- ``put`` returns the URI it wrote, and overwrites an existing object.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlparse

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

CHUNK = 1024 * 1024


class ArtifactError(ValueError):
    """An artifact URI cannot be used (unknown scheme, malformed, outside the root, unreadable)."""


class ArtifactNotFoundError(ArtifactError):
    """No object exists at the URI."""


class ArtifactStore(Protocol):
    """Reads and writes model artifacts (and evidence) by URI."""

    scheme: str
    """The URI scheme this store serves: ``file``, ``s3`` or ``gs``."""

    async def fetch(self, uri: str, dest: Path) -> Path:
        """Copy the object at ``uri`` into folder ``dest`` (created); return the local file."""
        ...

    async def sha256(self, uri: str) -> str:
        """The object's digest as ``sha256:<hex>``, computed from its bytes."""
        ...

    async def put(self, path: Path, uri: str) -> str:
        """Store local file ``path`` at ``uri`` (replacing any object there); return ``uri``."""
        ...

    async def exists(self, uri: str) -> bool:
        """True if an object exists at ``uri``."""
        ...

    async def size(self, uri: str) -> int:
        """The object's size in bytes."""
        ...


@dataclass(frozen=True)
class ArtifactStoreConfig:
    """How to reach the cloud stores; ``None`` means the SDK's default (real AWS/GCP).

    Endpoints point the adapters at S3/GCS-compatible servers (moto, the GCS emulator,
    MinIO). Credentials left ``None`` come from the SDK's usual chain (environment,
    instance role, workload identity).
    """

    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    gcs_endpoint_url: str | None = None
    gcs_service_file: str | None = None


class ArtifactStoreSettings(BaseSettings):
    """Mixin for a service's settings (prefix ``PAVED_``): where the cloud stores are.

    ``class MySettings(PavedSettings, ArtifactStoreSettings)`` picks up
    ``PAVED_ARTIFACT_S3_ENDPOINT_URL`` and friends; ``artifact_store_config()`` turns them
    into the :class:`ArtifactStoreConfig` that :func:`store_for` takes.
    """

    # The same as PavedSettings', so mixing it in never changes how a service reads its env.
    model_config = SettingsConfigDict(env_prefix="PAVED_", extra="ignore", frozen=True)

    artifact_s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint (e.g. a moto or MinIO URL); unset: AWS's own endpoints.",
    )
    artifact_s3_region: str | None = Field(
        default=None, description="AWS region for S3; unset: the SDK's default."
    )
    artifact_aws_access_key_id: str | None = Field(
        default=None, description="Access key id for S3; unset: the SDK's credential chain."
    )
    artifact_aws_secret_access_key: SecretStr | None = Field(
        default=None, description="Secret key for S3; unset: the SDK's credential chain."
    )
    artifact_gcs_endpoint_url: str | None = Field(
        default=None,
        description="GCS API root (e.g. the emulator's http://127.0.0.1:PORT); unset: Google.",
    )
    artifact_gcs_service_file: str | None = Field(
        default=None, description="Service-account JSON for GCS; unset: default credentials."
    )

    def artifact_store_config(self) -> ArtifactStoreConfig:
        """These settings as the config :func:`store_for` takes."""
        secret = self.artifact_aws_secret_access_key
        return ArtifactStoreConfig(
            s3_endpoint_url=self.artifact_s3_endpoint_url,
            s3_region=self.artifact_s3_region,
            aws_access_key_id=self.artifact_aws_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            gcs_endpoint_url=self.artifact_gcs_endpoint_url,
            gcs_service_file=self.artifact_gcs_service_file,
        )


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a local file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def split_bucket_uri(uri: str, scheme: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://bucket/key`` or ``gs://bucket/key`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != scheme:
        raise ArtifactError(f"not a {scheme}:// URI: {uri!r}")
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key or key.endswith("/"):
        raise ArtifactError(f"{uri!r} does not name an object; expected {scheme}://BUCKET/KEY")
    if parsed.query or parsed.fragment:
        raise ArtifactError(f"{uri!r} has a query or fragment; expected {scheme}://BUCKET/KEY")
    return bucket, key


def object_name(uri: str) -> str:
    """The last path segment of an artifact URI (its file name)."""
    name = PurePosixPath(unquote(urlparse(uri).path)).name
    if not name or name in {".", ".."}:
        raise ArtifactError(f"{uri!r} does not end in a file name")
    return name


class LocalArtifactStore:
    """``file://`` artifacts, optionally confined to a root folder."""

    scheme = "file"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root.resolve() if root is not None else None

    def _resolve(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ArtifactError(f"not a file:// URI: {uri!r}")
        if parsed.netloc not in {"", "localhost"}:
            raise ArtifactError(f"file URI {uri!r} names host {parsed.netloc!r}; use file:///PATH")
        path = Path(unquote(parsed.path)).resolve()
        if self.root is not None and not path.is_relative_to(self.root):
            raise ArtifactError(f"artifact {uri!r} is outside the artifact root {self.root}")
        return path

    def path_of(self, uri: str) -> Path:
        """The local path of an existing ``file://`` artifact, checked against the root."""
        path = self._resolve(uri)
        if not path.is_file():
            raise ArtifactNotFoundError(f"artifact {uri!r} does not exist")
        return path

    async def fetch(self, uri: str, dest: Path) -> Path:
        src = await asyncio.to_thread(self.path_of, uri)
        return await asyncio.to_thread(self._copy, src, dest)

    @staticmethod
    def _copy(src: Path, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / src.name
        shutil.copyfile(src, target)
        return target

    async def sha256(self, uri: str) -> str:
        path = await asyncio.to_thread(self.path_of, uri)
        return await asyncio.to_thread(sha256_file, path)

    async def put(self, path: Path, uri: str) -> str:
        target = self._resolve(uri)
        await asyncio.to_thread(_atomic_copy, path, target)
        return uri

    async def exists(self, uri: str) -> bool:
        path = self._resolve(uri)
        return await asyncio.to_thread(path.is_file)

    async def size(self, uri: str) -> int:
        path = await asyncio.to_thread(self.path_of, uri)
        return (await asyncio.to_thread(path.stat)).st_size


def _atomic_copy(src: Path, target: Path) -> None:
    """Copy via a temp file, fsync, rename: a reader sees the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with src.open("rb") as fin, partial.open("wb") as fout:
        shutil.copyfileobj(fin, fout, CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(partial, target)


SCHEMES = ("file", "s3", "gs")


def store_for(
    uri: str,
    *,
    local_root: Path | None = None,
    config: ArtifactStoreConfig | None = None,
) -> ArtifactStore:
    """The store that serves ``uri``'s scheme (``file``, ``s3`` or ``gs``).

    ``local_root`` confines ``file://`` URIs; ``config`` says where S3/GCS are (default:
    the real clouds with the SDKs' default credentials). Building a store does no I/O.
    """
    scheme = urlparse(uri).scheme
    config = config or ArtifactStoreConfig()
    if scheme == "file":
        return LocalArtifactStore(local_root)
    if scheme == "s3":
        from paved_shared.artifact_stores.s3 import S3ArtifactStore

        return S3ArtifactStore(config)
    if scheme == "gs":
        from paved_shared.artifact_stores.gcs import GCSArtifactStore

        return GCSArtifactStore(config)
    raise ArtifactError(
        f"unsupported artifact URI scheme {scheme!r} in {uri!r}; use one of "
        + ", ".join(f"{s}://" for s in SCHEMES)
    )
