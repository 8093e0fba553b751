"""One validation of one model version: fetch, digest, format, sandboxed smoke run, latency."""

from __future__ import annotations

import asyncio
import pickletools
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from paved_schemas.events import CheckOutcome, ModelVersionRegistered, ValidationCheck
from paved_shared.artifacts import ArtifactError, sha256_file, store_for

from paved_validator.domain import checks
from paved_validator.domain.checks import CheckLog
from paved_validator.domain.smoke import (
    judge_latency,
    judge_smoke,
    runner_request,
    sklearn_signature_problem,
)
from paved_validator.ports import INPUT_DIR, SandboxPort, SandboxStatus


@dataclass(frozen=True)
class ValidationResult:
    """Everything one validation found, ready for the evidence report and the event."""

    validation_id: str
    checks: list[ValidationCheck]
    passed: bool
    reasons: list[str]
    observed_digest: str | None
    started_at: datetime
    finished_at: datetime
    observations: dict[str, Any] | None


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


class Validator:
    """Runs the checks of `paved_validator.domain.checks.STEPS` for one registration."""

    def __init__(
        self,
        *,
        sandbox: SandboxPort,
        artifact_root: Path | None = None,
        scratch_root: Path | None = None,
        latency_calls: int = 20,
        memory_mb: int = 1024,
        cpu_s: int = 60,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sandbox = sandbox
        self.artifact_root = artifact_root
        self.scratch_root = scratch_root
        self.latency_calls = latency_calls
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.clock = clock

    async def validate(self, registration: ModelVersionRegistered) -> ValidationResult:
        """Validate one version. Raises only for trouble worth retrying (I/O errors)."""
        validation_id = str(uuid.uuid4())
        started_at = self.clock()
        log = CheckLog()
        observed: str | None = None
        observations: dict[str, Any] | None = None
        scratch = Path(
            await asyncio.to_thread(
                tempfile.mkdtemp, prefix="paved-validate-", dir=self.scratch_root
            )
        )
        try:
            observed, model_file = await self._digest(registration, scratch, log)
            if model_file is not None and not log.stopped:
                await self._format(registration, model_file, log)
            if model_file is not None and not log.stopped:
                observations = await self._smoke(registration, model_file, scratch, log)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
        log.skip_rest()
        return ValidationResult(
            validation_id=validation_id,
            checks=log.checks,
            passed=log.passed,
            reasons=log.reasons,
            observed_digest=observed,
            started_at=started_at,
            finished_at=self.clock(),
            observations=observations,
        )

    async def _digest(
        self, registration: ModelVersionRegistered, scratch: Path, log: CheckLog
    ) -> tuple[str | None, Path | None]:
        """Fetch the artifact into the scratch input dir and compare its sha256."""
        started = time.monotonic()
        uri = registration.artifact_uri
        try:
            store = store_for(uri, local_root=self.artifact_root)
            fetched = await store.fetch(uri, scratch / "fetched")
        except (ArtifactError, PermissionError) as exc:
            # Unreadable for good: a verdict. Other OSErrors (a full scratch disk) propagate
            # and the consumer retries them.
            log.record(checks.DIGEST, CheckOutcome.FAILED, f"could not fetch: {exc}", _ms(started))
            return None, None
        # A fixed name inside the input dir: the artifact's own name cannot clash with ours.
        original = PurePosixPath(urlparse(uri).path).name
        model_file = scratch / INPUT_DIR / f"model{PurePosixPath(original).suffix.lower()}"
        model_file.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(fetched.rename, model_file)
        observed = await asyncio.to_thread(sha256_file, model_file)
        problem = checks.digest_problem(registration.artifact_digest, observed)
        if problem is not None:
            log.record(checks.DIGEST, CheckOutcome.FAILED, problem, _ms(started))
        else:
            log.record(checks.DIGEST, CheckOutcome.PASSED, f"{observed} matches", _ms(started))
        return observed, model_file if problem is None else None

    async def _format(
        self, registration: ModelVersionRegistered, model_file: Path, log: CheckLog
    ) -> None:
        """Allowlist: sklearn pickles only, and the file must parse as a pickle stream."""
        started = time.monotonic()
        original = PurePosixPath(urlparse(registration.artifact_uri).path).name
        problem = checks.format_problem(registration.framework, original)
        if problem is not None:
            log.record(checks.FORMAT, CheckOutcome.FAILED, problem, _ms(started))
            return
        try:
            summary = await asyncio.to_thread(_pickle_summary, model_file)
        except ValueError as exc:
            log.record(
                checks.FORMAT,
                CheckOutcome.FAILED,
                f"{original!r} is not a readable pickle stream: {exc}",
                _ms(started),
            )
            return
        log.record(
            checks.FORMAT,
            CheckOutcome.PASSED,
            f"sklearn pickle ({summary}); loaded only inside the sandbox",
            _ms(started),
        )

    async def _smoke(
        self,
        registration: ModelVersionRegistered,
        model_file: Path,
        scratch: Path,
        log: CheckLog,
    ) -> dict[str, Any] | None:
        """Load and call the model in the sandbox; record smoke_inference and latency."""
        started = time.monotonic()
        problem = sklearn_signature_problem(registration.signature)
        if problem is not None:
            log.record(checks.SMOKE_INFERENCE, CheckOutcome.FAILED, problem, _ms(started))
            return None
        request = runner_request(
            model_file=model_file.name,
            framework=registration.framework.value,
            signature=registration.signature,
            latency_calls=self.latency_calls,
            memory_mb=self.memory_mb,
            cpu_s=self.cpu_s,
        )
        run = await self.sandbox.run(scratch, request)
        observations: dict[str, Any] = {
            "status": run.status.value,
            "exit_code": run.exit_code,
            "detail": run.detail,
            "wall_ms": round(run.wall_ms, 3),
            "report": run.report.model_dump(mode="json") if run.report else None,
        }
        if run.status is SandboxStatus.UNAVAILABLE:
            log.record(checks.SMOKE_INFERENCE, CheckOutcome.ERROR, run.detail, run.wall_ms)
            return observations
        if run.report is None:
            log.record(checks.SMOKE_INFERENCE, CheckOutcome.FAILED, run.detail, run.wall_ms)
            return observations
        latency_ms = run.report.latency.ms if run.report.latency else 0.0
        outcome, detail = judge_smoke(list(registration.signature.outputs), run.report)
        log.record(checks.SMOKE_INFERENCE, outcome, detail, max(0.0, run.wall_ms - latency_ms))
        if outcome is CheckOutcome.PASSED:
            outcome, detail = judge_latency(run.report)
            log.record(checks.LATENCY, outcome, detail, latency_ms)
        return observations


def _pickle_summary(path: Path) -> str:
    """Walk the pickle opcodes without executing them; ValueError if it does not parse."""
    protocol = 0
    opcodes = 0
    imports = 0
    with path.open("rb") as f:
        try:
            for opcode, arg, _ in pickletools.genops(f):
                opcodes += 1
                if opcode.name == "PROTO":
                    protocol = int(arg) if isinstance(arg, int) else protocol
                elif opcode.name in {"GLOBAL", "STACK_GLOBAL", "INST"}:
                    imports += 1
        except OSError:
            raise
        except Exception as exc:  # pickletools reports malformed input in several ways
            raise ValueError(f"{type(exc).__name__}: {exc} (after {opcodes} opcodes)") from exc
    if opcodes == 0:
        raise ValueError("the file is empty")
    return f"protocol {protocol}, {opcodes} opcodes, {imports} imports"
