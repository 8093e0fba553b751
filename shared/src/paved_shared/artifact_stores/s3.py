"""``s3://bucket/key`` artifacts through aioboto3 (AWS S3 or any S3-compatible endpoint)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from paved_shared.artifacts import (
    CHUNK,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactStoreConfig,
    object_name,
    split_bucket_uri,
)

_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120
)
"""Few retries: the caller (a consumer) retries transient failures itself."""
_DENIED = frozenset({"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId"})


class S3ArtifactStore:
    """Objects in S3; one short-lived client per call, so nothing needs closing."""

    scheme = "s3"

    def __init__(self, config: ArtifactStoreConfig | None = None) -> None:
        self.config = config or ArtifactStoreConfig()
        self._session = aioboto3.Session()

    @asynccontextmanager
    async def _client(self, uri: str) -> AsyncIterator[Any]:
        kwargs: dict[str, Any] = {"config": _CLIENT_CONFIG}
        c = self.config
        if c.s3_endpoint_url:
            kwargs["endpoint_url"] = c.s3_endpoint_url
        if c.s3_region:
            kwargs["region_name"] = c.s3_region
        if c.aws_access_key_id and c.aws_secret_access_key:
            kwargs["aws_access_key_id"] = c.aws_access_key_id
            kwargs["aws_secret_access_key"] = c.aws_secret_access_key
        try:
            async with self._session.client("s3", **kwargs) as client:
                yield client
        except ClientError as exc:
            raise _translate(exc, uri) from exc
        except BotoCoreError as exc:  # no credentials, bad endpoint, connection refused
            raise OSError(f"S3 request for {uri!r} failed: {exc}") from exc

    async def _head(self, uri: str) -> dict[str, Any]:
        bucket, key = split_bucket_uri(uri, self.scheme)
        async with self._client(uri) as s3:
            head: dict[str, Any] = await s3.head_object(Bucket=bucket, Key=key)
            return head

    async def fetch(self, uri: str, dest: Path) -> Path:
        bucket, key = split_bucket_uri(uri, self.scheme)
        name = object_name(uri)
        await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
        target = dest / name
        async with self._client(uri) as s3:
            response = await s3.get_object(Bucket=bucket, Key=key)
            fd = await asyncio.to_thread(os.open, target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                async for chunk in _chunks(response):
                    await asyncio.to_thread(os.write, fd, chunk)
            finally:
                await asyncio.to_thread(os.close, fd)
        return target

    async def sha256(self, uri: str) -> str:
        bucket, key = split_bucket_uri(uri, self.scheme)
        h = hashlib.sha256()
        async with self._client(uri) as s3:
            response = await s3.get_object(Bucket=bucket, Key=key)
            async for chunk in _chunks(response):
                h.update(chunk)
        return f"sha256:{h.hexdigest()}"

    async def put(self, path: Path, uri: str) -> str:
        bucket, key = split_bucket_uri(uri, self.scheme)
        async with self._client(uri) as s3:
            # upload_file does multipart for large files; the SHA-256 checksum makes S3
            # verify the bytes it received.
            await s3.upload_file(str(path), bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
        return uri

    async def exists(self, uri: str) -> bool:
        try:
            await self._head(uri)
        except ArtifactNotFoundError:
            return False
        return True

    async def size(self, uri: str) -> int:
        return int((await self._head(uri))["ContentLength"])


async def _chunks(response: dict[str, Any]) -> AsyncIterator[bytes]:
    body = response["Body"]
    try:
        async for chunk in body.iter_chunks(CHUNK):
            yield chunk
    finally:
        body.close()


def _translate(exc: ClientError, uri: str) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _MISSING or status == 404:
        return ArtifactNotFoundError(f"artifact {uri!r} does not exist ({code or status})")
    if code in _DENIED or status == 403:
        return ArtifactError(f"access to artifact {uri!r} was denied ({code or status})")
    if status is not None and 400 <= int(status) < 500:
        return ArtifactError(f"S3 refused {uri!r}: {code} {error.get('Message', '')}".strip())
    return OSError(f"S3 request for {uri!r} failed: {code or status} {error.get('Message', '')}")
