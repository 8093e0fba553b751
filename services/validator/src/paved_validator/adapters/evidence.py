"""Evidence reports as files: `<root>/<model>/<version>/<validation-id>.json`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


class FileEvidenceStore:
    """Writes each report once, atomically (temp file, fsync, rename); returns a file:// URI."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def put(self, model_name: str, version: int, validation_id: str, data: bytes) -> str:
        """Store one report; return its URI."""
        return await asyncio.to_thread(self._write, model_name, version, validation_id, data)

    def _write(self, model_name: str, version: int, validation_id: str, data: bytes) -> str:
        folder = (self.root / model_name / str(version)).resolve()
        if not folder.is_relative_to(self.root):
            raise ValueError(f"model name {model_name!r} would leave the evidence root {self.root}")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{validation_id}.json"
        partial = folder / f".{validation_id}.json.partial"
        with partial.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
        return target.as_uri()
