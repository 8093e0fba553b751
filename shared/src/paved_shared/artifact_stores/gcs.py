"""``gs://bucket/key`` artifacts through gcloud-aio-storage (GCS or its emulator)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from gcloud.aio.storage import Storage

from paved_shared.artifacts import (
    CHUNK,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactStoreConfig,
    object_name,
    split_bucket_uri,
)

TIMEOUT_S = 300


class GCSArtifactStore:
    """Objects in Google Cloud Storage; one short-lived client per call."""

    scheme = "gs"

    def __init__(self, config: ArtifactStoreConfig | None = None) -> None:
        self.config = config or ArtifactStoreConfig()

    @asynccontextmanager
    async def _storage(self, uri: str) -> AsyncIterator[Storage]:
        kwargs: dict[str, Any] = {}
        if self.config.gcs_endpoint_url:
            kwargs["api_root"] = self.config.gcs_endpoint_url.rstrip("/")
        if self.config.gcs_service_file:
            kwargs["service_file"] = self.config.gcs_service_file
        try:
            async with Storage(**kwargs) as storage:
                yield storage
        except aiohttp.ClientResponseError as exc:
            raise _translate(exc, uri) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OSError(f"GCS request for {uri!r} failed: {exc}") from exc

    async def _metadata(self, uri: str) -> dict[str, Any]:
        bucket, key = split_bucket_uri(uri, self.scheme)
        async with self._storage(uri) as gcs:
            return await gcs.download_metadata(bucket, key, timeout=TIMEOUT_S)

    async def fetch(self, uri: str, dest: Path) -> Path:
        bucket, key = split_bucket_uri(uri, self.scheme)
        name = object_name(uri)
        await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
        target = dest / name
        async with self._storage(uri) as gcs:
            stream = await gcs.download_stream(bucket, key, timeout=TIMEOUT_S)
            _raise_for_status(stream)
            fd = await asyncio.to_thread(os.open, target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                while chunk := await stream.read(CHUNK):
                    await asyncio.to_thread(os.write, fd, chunk)
            finally:
                await asyncio.to_thread(os.close, fd)
        return target

    async def sha256(self, uri: str) -> str:
        bucket, key = split_bucket_uri(uri, self.scheme)
        h = hashlib.sha256()
        async with self._storage(uri) as gcs:
            stream = await gcs.download_stream(bucket, key, timeout=TIMEOUT_S)
            _raise_for_status(stream)
            while chunk := await stream.read(CHUNK):
                h.update(chunk)
        return f"sha256:{h.hexdigest()}"

    async def put(self, path: Path, uri: str) -> str:
        bucket, key = split_bucket_uri(uri, self.scheme)
        async with self._storage(uri) as gcs:
            # Always raw bytes: no content-type sniffing, so no decompressive transcoding on
            # read (and the emulator parses JSON-typed bodies instead of storing them).
            await gcs.upload_from_filename(
                bucket, key, str(path), content_type="application/octet-stream", timeout=TIMEOUT_S
            )
        return uri

    async def exists(self, uri: str) -> bool:
        try:
            await self._metadata(uri)
        except ArtifactNotFoundError:
            return False
        return True

    async def size(self, uri: str) -> int:
        return int((await self._metadata(uri))["size"])


def _raise_for_status(stream: Any) -> None:
    # download_stream hands back the raw response without checking its status.
    response = stream._response
    if response.status >= 400:
        raise aiohttp.ClientResponseError(
            response.request_info,
            response.history,
            status=response.status,
            message=str(response.reason),
        )


def _translate(exc: aiohttp.ClientResponseError, uri: str) -> Exception:
    if exc.status == 404:
        return ArtifactNotFoundError(f"artifact {uri!r} does not exist (404)")
    if exc.status in {401, 403}:
        return ArtifactError(f"access to artifact {uri!r} was denied ({exc.status})")
    if 400 <= exc.status < 500:
        return ArtifactError(f"GCS refused {uri!r}: {exc.status} {exc.message}")
    return OSError(f"GCS request for {uri!r} failed: {exc.status} {exc.message}")
