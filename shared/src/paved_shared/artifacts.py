"""Artifact stores: where model files live, behind one interface.

Services never open an artifact URI themselves; they ask the store chosen by the
URI's scheme (``file://`` here; ``s3://`` and ``gs://`` adapters plug in the same way).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

CHUNK = 1024 * 1024


class ArtifactError(ValueError):
    """An artifact URI cannot be read (unknown scheme, missing object, outside the root)."""


class ArtifactStore(Protocol):
    """Reads model artifacts by URI."""

    scheme: str

    async def fetch(self, uri: str, dest: Path) -> Path:
        """Copy the artifact at ``uri`` into folder ``dest``; return the local file path."""
        ...

    async def sha256(self, uri: str) -> str:
        """The artifact's digest as ``sha256:<hex>``."""
        ...


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a local file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


class LocalArtifactStore:
    """``file://`` artifacts, optionally confined to a root folder."""

    scheme = "file"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root.resolve() if root is not None else None

    def path_of(self, uri: str) -> Path:
        """The local path of a ``file://`` URI, checked against the root."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ArtifactError(f"not a file:// URI: {uri!r}")
        path = Path(unquote(parsed.path)).resolve()
        if self.root is not None and not path.is_relative_to(self.root):
            raise ArtifactError(f"artifact {uri!r} is outside the artifact root {self.root}")
        if not path.is_file():
            raise ArtifactError(f"artifact {uri!r} does not exist")
        return path

    async def fetch(self, uri: str, dest: Path) -> Path:
        return await asyncio.to_thread(self._copy, self.path_of(uri), dest)

    @staticmethod
    def _copy(src: Path, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / src.name
        shutil.copyfile(src, target)
        return target

    async def sha256(self, uri: str) -> str:
        return await asyncio.to_thread(sha256_file, self.path_of(uri))


def store_for(uri: str, *, local_root: Path | None = None) -> ArtifactStore:
    """The store that serves ``uri``'s scheme."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return LocalArtifactStore(local_root)
    raise ArtifactError(f"unsupported artifact URI scheme {scheme!r} in {uri!r}; use file://")
