"""Evidence reports stored through the artifact stores (file://, s3://, gs://).

Default place: next to the artifact, ``<artifact-uri>.evidence/<validation-id>.json``
(and ``.html``); with a root URI, ``<root>/<model>/<version>/<validation-id>.json``.
If that place refuses the write (no such bucket, denied, outside the artifact root),
the fallback root is used, so a failed validation of a missing artifact still has
its evidence.
Each object is written once under a fresh validation id; the local store writes
atomically (temp file, fsync, rename) and the object stores replace whole objects.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from paved_shared.artifacts import ArtifactStore, LocalArtifactStore


class StoreEvidenceStore:
    """Writes evidence JSON + HTML through the store that serves each URI."""

    def __init__(
        self,
        store_for: Callable[[str], ArtifactStore],
        *,
        root: str | None = None,
        fallback_root: str | None = None,
        scratch: Path | None = None,
    ) -> None:
        self.store_for = store_for
        self.root = root.rstrip("/") if root else None
        self.fallback_root = fallback_root.rstrip("/") if fallback_root else None
        self.scratch = scratch
        # The fallback is the validator's own folder: never confined to the artifact root.
        self._fallback_store = (
            LocalArtifactStore(Path(unquote(urlparse(self.fallback_root).path)))
            if self.fallback_root and self.fallback_root.startswith("file://")
            else None
        )

    def _store(self, uri: str) -> ArtifactStore:
        if self._fallback_store is not None and uri.startswith(f"{self.fallback_root}/"):
            return self._fallback_store
        return self.store_for(uri)

    def locations(
        self, artifact_uri: str, model_name: str, version: int, validation_id: str
    ) -> list[str]:
        """Next to the artifact (or under the root), then under the fallback root."""
        found = []
        if self.root is None:
            found.append(f"{artifact_uri}.evidence/{validation_id}")
        for root in (self.root, self.fallback_root):
            if root is not None:
                found.append(f"{root}/{quote(model_name, safe='')}/{version}/{validation_id}")
        return found

    async def put(self, base: str, document: bytes, html: bytes) -> tuple[str, str]:
        """Store ``<base>.json`` and ``<base>.html``; return their URIs."""
        json_uri, html_uri = f"{base}.json", f"{base}.html"
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="paved-evidence-",
                                              dir=self.scratch))  # fmt: skip
        try:
            # HTML first: once the JSON (whose digest is published) exists, so does its page.
            for uri, data, name in ((html_uri, html, "report.html"),
                                    (json_uri, document, "evidence.json")):  # fmt: skip
                path = folder / name
                await asyncio.to_thread(path.write_bytes, data)
                await self._store(uri).put(path, uri)
        finally:
            await asyncio.to_thread(_rmtree, folder)
        return json_uri, html_uri


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
