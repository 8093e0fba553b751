"""What the validator needs from the outside world, as typed protocols."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from paved_validator.domain.smoke import RunnerReport

INPUT_DIR = "input"
"""Folder of a scratch dir holding the model and the request (read-only in the sandbox)."""
WORK_DIR = "work"
"""Folder of a scratch dir the sandboxed process may write (its only writable place)."""
REQUEST_FILE = "request.json"


class SandboxStatus(StrEnum):
    """How a sandbox run ended."""

    COMPLETED = "completed"
    """The runner wrote a report (which may still say the model failed)."""
    TIMEOUT = "timeout"
    """The wall-clock limit was reached and the whole process tree was killed."""
    CRASHED = "crashed"
    """The runner exited without a readable report (killed by a limit, crashed, lied)."""
    UNAVAILABLE = "unavailable"
    """The sandbox could not be set up; nothing ran (fail closed)."""


@dataclass(frozen=True)
class SandboxRun:
    """The outcome of one sandboxed smoke run."""

    status: SandboxStatus
    report: RunnerReport | None
    detail: str
    wall_ms: float
    exit_code: int | None = None


class SandboxPort(Protocol):
    """Runs the smoke runner on a model in isolation (no network, no host writes, no secrets)."""

    @property
    def profile(self) -> dict[str, Any]:
        """How runs are isolated and limited, for the evidence report."""
        ...

    async def run(self, scratch: Path, request: dict[str, Any]) -> SandboxRun:
        """Run `request` on the model in `scratch/input`; `scratch/work` is the writable dir."""
        ...


class EvidenceStore(Protocol):
    """Keeps evidence reports; returns where each one is."""

    async def put(self, model_name: str, version: int, validation_id: str, data: bytes) -> str:
        """Store one report; return its URI."""
        ...
