"""What the validator needs from the outside world, as typed protocols."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
    """Keeps evidence reports (JSON, the record of truth, and its HTML rendering)."""

    def locations(
        self, artifact_uri: str, model_name: str, version: int, validation_id: str
    ) -> list[str]:
        """Where this validation's report may go (URIs without suffix), in order of preference."""
        ...

    async def put(self, base: str, document: bytes, html: bytes) -> tuple[str, str]:
        """Store ``<base>.json`` and ``<base>.html``; return their URIs (ArtifactError: refused)."""
        ...


@dataclass(frozen=True)
class ScanFinding:
    """One thing a scanner flagged."""

    severity: str
    description: str


class ScanStatus(StrEnum):
    """A scanner's verdict on one file."""

    CLEAN = "clean"
    FOUND = "found"
    """It flagged something."""
    UNPARSABLE = "unparsable"
    """It could not read the file (a rejection: fail closed)."""
    ERROR = "error"
    """It could not run (missing, crashed, timed out): a rejection too."""


@dataclass(frozen=True)
class ScanVerdict:
    """What one scanner said about one file."""

    scanner: str
    status: ScanStatus
    detail: str
    ms: float
    findings: list[ScanFinding] = field(default_factory=list)

    @classmethod
    def clean(cls, scanner: str, detail: str, started: float) -> ScanVerdict:
        return cls(scanner, ScanStatus.CLEAN, detail, _since(started))

    @classmethod
    def found(cls, scanner: str, findings: list[ScanFinding], started: float) -> ScanVerdict:
        text = "; ".join(f"{f.severity}: {f.description}" for f in findings)
        return cls(scanner, ScanStatus.FOUND, text, _since(started), findings)

    @classmethod
    def unparsable(cls, scanner: str, detail: str, started: float) -> ScanVerdict:
        return cls(scanner, ScanStatus.UNPARSABLE, detail, _since(started))

    @classmethod
    def error(cls, scanner: str, detail: str, started: float) -> ScanVerdict:
        return cls(scanner, ScanStatus.ERROR, detail, _since(started))


def _since(started: float) -> float:
    return (time.monotonic() - started) * 1000


class ScannerPort(Protocol):
    """Looks for malicious payloads in one model file without loading it."""

    name: str

    async def scan(self, path: Path) -> ScanVerdict:
        """Scan ``path``; never raises for a bad file (that is a verdict)."""
        ...


class SignatureVerdict(StrEnum):
    VERIFIED = "verified"
    INVALID = "invalid"


@dataclass(frozen=True)
class SignatureResult:
    """The outcome of verifying one OpenSSF model signature."""

    verdict: SignatureVerdict
    detail: str
    key_id: str | None = None


class SignatureVerifierPort(Protocol):
    """Verifies an OpenSSF model-signing bundle against the trusted keys."""

    @property
    def key_ids(self) -> list[str]:
        """Fingerprints (sha256 of the public key, hex) of the trusted keys."""
        ...

    async def verify(self, model_file: Path, signature_file: Path) -> SignatureResult:
        """Check ``signature_file`` covers ``model_file`` and was made by a trusted key."""
        ...


class JobRunnerPort(Protocol):
    """Runs a validation as an isolated unit elsewhere (a Kubernetes Job) and waits for it."""

    async def run(self, job_name: str, request: dict[str, Any]) -> dict[str, Any]:
        """Create the unit for ``request``, wait until it ends, return what it reported."""
        ...
