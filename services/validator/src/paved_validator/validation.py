"""One validation of one model version: every step of `domain.checks.STEPS`, in order.

size → digest → signature → format → scan → smoke_inference → latency → metrics.
A step that fails stops the rest (they are recorded as skipped). Nothing untrusted
is ever loaded here: the artifact is fetched, hashed, verified and parsed as data;
only the sandbox runs it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from paved_schemas.events import CheckOutcome, ModelVersionRegistered, RiskTier, ValidationCheck
from paved_shared.artifacts import (
    ArtifactError,
    ArtifactStore,
    ArtifactStoreConfig,
    object_name,
    sha256_file,
    store_for,
)

from paved_validator.domain import checks, pickles
from paved_validator.domain.archives import SizeLimits, expansion_problem, mib, size_problem
from paved_validator.domain.checks import CheckLog
from paved_validator.domain.formats import (
    FormatError,
    Kind,
    check_onnx,
    check_safetensors,
    kind_for,
)
from paved_validator.domain.metrics import (
    check_thresholds,
    latency_metrics,
    quality_metrics,
)
from paved_validator.domain.smoke import (
    judge_latency,
    judge_smoke,
    runner_request,
    signature_problem,
)
from paved_validator.ports import (
    INPUT_DIR,
    WORK_DIR,
    SandboxPort,
    SandboxStatus,
    ScannerPort,
    ScanStatus,
    SignatureVerdict,
    SignatureVerifierPort,
)
from paved_validator.sandbox_runner import PREDICTIONS_FILE, SCORES_FILE

EVAL_URI_TAG = "paved.eval_uri"
"""Tag naming an evaluation set (``.npz`` with arrays ``X`` and ``y``) for the metrics."""
EVAL_DIGEST_TAG = "paved.eval_digest"
"""Tag pinning the evaluation set's sha256 (required with ``paved.eval_uri``)."""
SIGNATURE_URI_TAG = "paved.signature_uri"
"""Tag naming the signature bundle; default: ``<artifact_uri>.sig``."""
EVAL_FILE = "eval_x.npy"
MAX_PREDICTION_BYTES = 64 * 1024 * 1024
TIER_ORDER = (RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH, RiskTier.CRITICAL)


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
    details: dict[str, Any] = field(default_factory=dict)
    """Per-step evidence (sizes, scanner verdicts, signer key, metric values, ...)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


@dataclass
class _Run:
    """The state of one validation as it moves through the steps."""

    registration: ModelVersionRegistered
    scratch: Path
    log: CheckLog
    store: ArtifactStore | None = None
    fetched: Path | None = None
    eval_fetched: Path | None = None
    observed: str | None = None
    kind: Kind | None = None
    model_file: Path | None = None
    eval_rows: int = 0
    eval_y: Any = None
    report: Any = None
    observations: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_uri(self) -> str | None:
        return self.registration.tags.get(EVAL_URI_TAG)


class Validator:
    """Runs the checks of `paved_validator.domain.checks.STEPS` for one registration."""

    def __init__(
        self,
        *,
        sandbox: SandboxPort,
        scanners: Sequence[ScannerPort] = (),
        verifier: SignatureVerifierPort | None = None,
        store_config: ArtifactStoreConfig | None = None,
        artifact_root: Path | None = None,
        scratch_root: Path | None = None,
        latency_calls: int = 20,
        memory_mb: int = 1024,
        cpu_s: int = 60,
        limits: SizeLimits | None = None,
        signature_required_from: RiskTier | None = RiskTier.HIGH,
        eval_max_rows: int = 100_000,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sandbox = sandbox
        self.scanners = list(scanners)
        self.verifier = verifier
        self.store_config = store_config or ArtifactStoreConfig()
        self.artifact_root = artifact_root
        self.scratch_root = scratch_root
        self.latency_calls = latency_calls
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.limits = limits or SizeLimits(
            max_bytes=2048 * 2**20,
            max_unpacked_bytes=2048 * 2**20,
            max_ratio=200,
            max_members=10_000,
        )
        self.signature_required_from = signature_required_from
        self.eval_max_rows = eval_max_rows
        self.clock = clock

    def store(self, uri: str) -> ArtifactStore:
        """The store serving ``uri`` (confined to the artifact root for file:// URIs)."""
        return store_for(uri, local_root=self.artifact_root, config=self.store_config)

    async def validate(self, registration: ModelVersionRegistered) -> ValidationResult:
        """Validate one version. Raises only for trouble worth retrying (I/O errors)."""
        validation_id = str(uuid.uuid4())
        started_at = self.clock()
        log = CheckLog()
        scratch = Path(
            await asyncio.to_thread(
                tempfile.mkdtemp, prefix="paved-validate-", dir=self.scratch_root
            )
        )
        run = _Run(registration, scratch, log)
        steps = (
            self._size,
            self._digest,
            self._signature,
            self._format,
            self._scan,
            self._smoke,
            self._metrics,
        )
        try:
            for step in steps:
                if log.stopped:
                    break
                await step(run)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
        log.skip_rest()
        return ValidationResult(
            validation_id=validation_id,
            checks=log.checks,
            passed=log.passed,
            reasons=log.reasons,
            observed_digest=run.observed,
            started_at=started_at,
            finished_at=self.clock(),
            observations=run.observations,
            details=run.details,
        )

    # ------------------------------------------------------------------ size

    async def _size(self, run: _Run) -> None:
        """Size before fetching, then what the fetched bytes would unpack to."""
        started = time.monotonic()
        found: dict[str, Any] = {}
        run.details[checks.SIZE] = found
        targets = [("artifact", run.registration.artifact_uri)]
        if run.eval_uri:
            targets.append(("evaluation set", run.eval_uri))
        for label, uri in targets:
            try:
                store = self.store(uri)
                size = await store.size(uri)
            except (ArtifactError, PermissionError) as exc:
                # Unreadable for good: a verdict. Other OSErrors (a store that is down, a full
                # scratch disk) propagate and the consumer retries them.
                run.log.record(checks.SIZE, CheckOutcome.FAILED, f"{label}: {exc}", _ms(started))
                return
            if problem := size_problem(object_name(uri), size, self.limits):
                run.log.record(checks.SIZE, CheckOutcome.FAILED, f"{label} {problem}", _ms(started))
                return
            try:
                fetched = await store.fetch(uri, run.scratch / "fetched" / label.replace(" ", "-"))
            except (ArtifactError, PermissionError) as exc:
                run.log.record(
                    checks.SIZE,
                    CheckOutcome.FAILED,
                    f"could not fetch {label}: {exc}",
                    _ms(started),
                )
                return
            actual = (await asyncio.to_thread(fetched.stat)).st_size
            if problem := size_problem(object_name(uri), actual, self.limits):
                run.log.record(checks.SIZE, CheckOutcome.FAILED, f"{label} {problem}", _ms(started))
                return
            problem, summary = await asyncio.to_thread(
                expansion_problem, fetched, object_name(uri), self.limits
            )
            found[label] = {"uri": uri, "bytes": actual, "compression": summary or None}
            if problem:
                run.log.record(
                    checks.SIZE, CheckOutcome.FAILED, f"{label}: {problem}", _ms(started)
                )
                return
            if label == "artifact":
                run.store, run.fetched = store, fetched
            else:
                run.eval_fetched = fetched
        described = "; ".join(f"{v['compression']}" for v in found.values())
        run.log.record(
            checks.SIZE,
            CheckOutcome.PASSED,
            f"{described}; limits {mib(self.limits.max_bytes)} packed, "
            f"{mib(self.limits.max_unpacked_bytes)} unpacked, {self.limits.max_ratio:g}:1",
            _ms(started),
        )

    # ------------------------------------------------------------------ digest

    async def _digest(self, run: _Run) -> None:
        """The fetched bytes must be the registered digest (and the eval set its pinned one)."""
        started = time.monotonic()
        assert run.fetched is not None
        run.observed = await asyncio.to_thread(sha256_file, run.fetched)
        problem = checks.digest_problem(run.registration.artifact_digest, run.observed)
        details: dict[str, Any] = {
            "registered": run.registration.artifact_digest,
            "observed": run.observed,
        }
        run.details[checks.DIGEST] = details
        if problem is not None:
            run.log.record(checks.DIGEST, CheckOutcome.FAILED, problem, _ms(started))
            return
        if run.eval_fetched is not None:
            pinned = run.registration.tags.get(EVAL_DIGEST_TAG)
            seen = await asyncio.to_thread(sha256_file, run.eval_fetched)
            details["evaluation_set"] = {"pinned": pinned, "observed": seen}
            if pinned is None:
                run.log.record(
                    checks.DIGEST,
                    CheckOutcome.FAILED,
                    f"tag {EVAL_URI_TAG} is set but {EVAL_DIGEST_TAG} is not; pin the "
                    f"evaluation set's digest (it is {seen})",
                    _ms(started),
                )
                return
            if pinned != seen:
                run.log.record(
                    checks.DIGEST,
                    CheckOutcome.FAILED,
                    f"evaluation set has digest {seen}, but {EVAL_DIGEST_TAG} pins {pinned}",
                    _ms(started),
                )
                return
        run.log.record(checks.DIGEST, CheckOutcome.PASSED, f"{run.observed} matches", _ms(started))

    # ------------------------------------------------------------------ signature

    async def _signature(self, run: _Run) -> None:
        """OpenSSF model signing: verified when present; required from a risk tier up."""
        started = time.monotonic()
        reg = run.registration
        uri = reg.tags.get(SIGNATURE_URI_TAG) or f"{reg.artifact_uri}.sig"
        tier = reg.model_card.risk_tier
        required = self.signature_required_from is not None and TIER_ORDER.index(
            tier
        ) >= TIER_ORDER.index(self.signature_required_from)
        details: dict[str, Any] = {
            "signature_uri": uri,
            "risk_tier": tier.value,
            "required": required,
        }
        run.details[checks.SIGNATURE] = details
        try:
            store = self.store(uri)
            present = await store.exists(uri)
        except ArtifactError as exc:
            run.log.record(
                checks.SIGNATURE,
                CheckOutcome.FAILED,
                f"signature {uri!r} cannot be read: {exc}",
                _ms(started),
            )
            return
        if not present:
            if required:
                run.log.record(
                    checks.SIGNATURE,
                    CheckOutcome.FAILED,
                    f"risk tier {tier.value!r} requires an OpenSSF model signature "
                    f"(from {self.signature_required_from.value if self.signature_required_from else '-'!r} "  # noqa: E501
                    f"up); none found at {uri}",
                    _ms(started),
                )
            else:
                run.log.record(
                    checks.SIGNATURE,
                    CheckOutcome.SKIPPED,
                    f"unsigned (no {uri}); not required for risk tier {tier.value!r}",
                    _ms(started),
                )
            return
        if self.verifier is None or not self.verifier.key_ids:
            run.log.record(
                checks.SIGNATURE,
                CheckOutcome.ERROR,
                f"{uri} is present but no trusted keys are configured "
                "(PAVED_VALIDATOR_TRUSTED_KEYS); cannot verify",
                _ms(started),
            )
            return
        size = await store.size(uri)
        if size > 1024 * 1024:
            run.log.record(
                checks.SIGNATURE,
                CheckOutcome.FAILED,
                f"signature {uri} is {size} bytes (limit 1 MiB)",
                _ms(started),
            )
            return
        bundle = await store.fetch(uri, run.scratch / "signature")
        assert run.fetched is not None
        result = await self.verifier.verify(run.fetched, bundle)
        details.update({"verdict": result.verdict.value, "key_id": result.key_id})
        if result.verdict is SignatureVerdict.VERIFIED:
            run.log.record(checks.SIGNATURE, CheckOutcome.PASSED, result.detail, _ms(started))
        else:
            run.log.record(checks.SIGNATURE, CheckOutcome.FAILED, result.detail, _ms(started))

    # ------------------------------------------------------------------ format

    async def _format(self, run: _Run) -> None:
        """The allowlist, and the structure of the file (parsed as data, never executed)."""
        started = time.monotonic()
        reg = run.registration
        assert run.fetched is not None
        original = run.fetched.name
        try:
            kind = kind_for(reg.framework, original)
            summary = await asyncio.to_thread(self._structure, kind, run.fetched, run)
        except FormatError as exc:
            run.log.record(checks.FORMAT, CheckOutcome.FAILED, str(exc), _ms(started))
            return
        run.kind = kind
        # A fixed name inside the input dir: the artifact's own name cannot clash with ours.
        model_file = run.scratch / INPUT_DIR / f"model{run.fetched.suffix.lower()}"
        await asyncio.to_thread(model_file.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, run.fetched, model_file)
        run.model_file = model_file
        if run.eval_fetched is not None:
            try:
                summary += "; " + await asyncio.to_thread(self._eval_set, run)
            except FormatError as exc:
                run.log.record(checks.FORMAT, CheckOutcome.FAILED, str(exc), _ms(started))
                return
        run.log.record(checks.FORMAT, CheckOutcome.PASSED, summary, _ms(started))

    def _structure(self, kind: Kind, path: Path, run: _Run) -> str:
        if kind is Kind.PICKLE:
            try:
                summary = pickles.walk(path)
            except pickles.PickleFormatError as exc:
                raise FormatError(f"{path.name!r} is not a readable pickle stream: {exc}") from exc
            run.details[checks.FORMAT] = {"kind": kind.value, "pickle_imports": summary.imports}
            return f"sklearn pickle ({summary.describe()}); scanned next, loaded only sandboxed"
        if kind is Kind.ONNX:
            text = check_onnx(path)
            run.details[checks.FORMAT] = {"kind": kind.value, "onnx": text}
            return text
        info = check_safetensors(path)
        run.details[checks.FORMAT] = {
            "kind": kind.value,
            "tensors": {k: [d, list(s)] for k, (d, s) in sorted(info.tensors.items())[:200]},
            "metadata": info.metadata,
        }
        return info.describe()

    def _eval_set(self, run: _Run) -> str:
        """Load the evaluation set as plain data (no pickles); keep y, hand X to the sandbox."""
        assert run.eval_fetched is not None
        name = run.eval_fetched.name
        if run.eval_fetched.suffix.lower() != ".npz":
            raise FormatError(f"evaluation set {name!r} must be a .npz with arrays X and y")
        try:
            with np.load(run.eval_fetched, allow_pickle=False) as data:
                if set(data.files) != {"X", "y"}:
                    raise FormatError(
                        f"evaluation set {name!r} holds arrays {sorted(data.files)}; "
                        "expected exactly X and y"
                    )
                x, y = data["X"], data["y"]
        except FormatError:
            raise
        except (ValueError, OSError) as exc:
            raise FormatError(f"evaluation set {name!r} is not a plain .npz: {exc}") from exc
        if x.dtype.kind not in "biuf" or x.ndim != 2:
            raise FormatError(
                f"evaluation set X must be a 2-D numeric array, not {x.dtype} {list(x.shape)}"
            )
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "biuf":
            raise FormatError(f"evaluation set y must be 1-D numeric with {x.shape[0]} rows")
        if x.shape[0] > self.eval_max_rows:
            raise FormatError(
                f"evaluation set has {x.shape[0]} rows, over the limit of {self.eval_max_rows}"
            )
        np.save(run.scratch / INPUT_DIR / EVAL_FILE, x, allow_pickle=False)
        run.eval_y = y
        run.eval_rows = int(x.shape[0])
        return f"evaluation set {x.shape[0]} rows x {x.shape[1]} features"

    # ------------------------------------------------------------------ scan

    async def _scan(self, run: _Run) -> None:
        """Every scanner on every pickle; a finding, a parse error or a scanner error rejects."""
        started = time.monotonic()
        if run.kind is not Kind.PICKLE:
            run.log.record(
                checks.SCAN,
                CheckOutcome.SKIPPED,
                f"{run.kind.value if run.kind else '?'} carries no code to scan for; its "
                "structure was parsed in the format check",
                _ms(started),
            )
            return
        assert run.model_file is not None
        if not self.scanners:
            run.log.record(
                checks.SCAN,
                CheckOutcome.ERROR,
                "no scanner is configured; refusing an unscanned pickle",
                _ms(started),
            )
            return
        verdicts = await asyncio.gather(*(s.scan(run.model_file) for s in self.scanners))
        run.details[checks.SCAN] = [
            {
                "scanner": v.scanner,
                "status": v.status.value,
                "detail": v.detail,
                "ms": round(v.ms, 1),
                "findings": [f.__dict__ for f in v.findings],
            }
            for v in verdicts
        ]
        text = "; ".join(f"{v.scanner}: {v.status.value} ({v.detail})" for v in verdicts)
        if any(v.status in (ScanStatus.FOUND, ScanStatus.UNPARSABLE) for v in verdicts):
            run.log.record(checks.SCAN, CheckOutcome.FAILED, text, _ms(started))
        elif any(v.status is ScanStatus.ERROR for v in verdicts):
            run.log.record(checks.SCAN, CheckOutcome.ERROR, text, _ms(started))
        else:
            run.log.record(checks.SCAN, CheckOutcome.PASSED, text, _ms(started))

    # ------------------------------------------------------------------ smoke + latency

    async def _smoke(self, run: _Run) -> None:
        """Load and call the model in the sandbox; record smoke_inference and latency."""
        started = time.monotonic()
        reg = run.registration
        assert run.kind is not None
        assert run.model_file is not None
        problem = signature_problem(run.kind.value, reg.signature)
        if problem is not None:
            run.log.record(checks.SMOKE_INFERENCE, CheckOutcome.FAILED, problem, _ms(started))
            return
        request = runner_request(
            model_file=run.model_file.name,
            framework=reg.framework.value,
            kind=run.kind.value,
            signature=reg.signature,
            latency_calls=self.latency_calls,
            memory_mb=self.memory_mb,
            cpu_s=self.cpu_s,
            eval_file=EVAL_FILE if run.eval_fetched is not None else None,
        )
        result = await self.sandbox.run(run.scratch, request)
        run.observations = {
            "status": result.status.value,
            "exit_code": result.exit_code,
            "detail": result.detail,
            "wall_ms": round(result.wall_ms, 3),
            "report": result.report.model_dump(mode="json") if result.report else None,
        }
        if result.status is SandboxStatus.UNAVAILABLE:
            run.log.record(
                checks.SMOKE_INFERENCE, CheckOutcome.ERROR, result.detail, result.wall_ms
            )
            return
        if result.report is None:
            run.log.record(
                checks.SMOKE_INFERENCE, CheckOutcome.FAILED, result.detail, result.wall_ms
            )
            return
        run.report = result.report
        latency_ms = result.report.latency.ms if result.report.latency else 0.0
        outcome, detail = judge_smoke(list(reg.signature.outputs), result.report)
        run.log.record(
            checks.SMOKE_INFERENCE, outcome, detail, max(0.0, result.wall_ms - latency_ms)
        )
        if outcome is CheckOutcome.PASSED:
            outcome, detail = judge_latency(result.report)
            run.log.record(checks.LATENCY, outcome, detail, latency_ms)

    # ------------------------------------------------------------------ metrics

    async def _metrics(self, run: _Run) -> None:
        """The card's thresholds against measured latency and evaluation-set quality."""
        started = time.monotonic()
        thresholds = dict(run.registration.model_card.metric_thresholds or {})
        measured: dict[str, float] = {}
        if run.report is not None and run.report.latency is not None:
            measured.update(latency_metrics(list(run.report.latency.samples_ms)))
        evaluated = run.eval_y is not None
        errors: dict[str, str] = {}
        if evaluated:
            evaluation = run.report.evaluation if run.report is not None else None
            if evaluation is None or not evaluation.ok:
                why = evaluation.error if evaluation else "the runner did not evaluate"
                run.log.record(
                    checks.METRICS,
                    CheckOutcome.FAILED,
                    f"evaluation set could not be scored: {why}",
                    _ms(started),
                )
                return
            try:
                predictions, scores = await asyncio.to_thread(self._predictions, run)
            except ValueError as exc:
                run.log.record(checks.METRICS, CheckOutcome.FAILED, str(exc), _ms(started))
                return
            names = set(thresholds) | set(run.registration.model_card.metrics or {})
            names -= {"latency_p95_ms", "latency_median_ms", "latency_max_ms"}
            quality, errors = await asyncio.to_thread(
                quality_metrics, names, run.eval_y, predictions, scores
            )
            # Metrics only reported on the card (no threshold) and not computable are not errors.
            errors = {k: v for k, v in errors.items() if k in thresholds}
            measured.update(quality)
        results, problems, unchecked = check_thresholds(
            thresholds, measured, errors, evaluated=evaluated
        )
        declared = dict(run.registration.model_card.metrics or {})
        run.details[checks.METRICS] = {
            "measured": measured,
            "declared": declared,
            "thresholds": [r.as_dict() for r in results],
            "evaluation_rows": run.eval_rows,
        }
        if problems:
            run.log.record(checks.METRICS, CheckOutcome.FAILED, "; ".join(problems), _ms(started))
            return
        if not thresholds:
            run.log.record(
                checks.METRICS,
                CheckOutcome.SKIPPED,
                "the model card declares no metric thresholds",
                _ms(started),
            )
            return
        checked = [r for r in results if r.value is not None]
        if not checked:
            run.log.record(
                checks.METRICS,
                CheckOutcome.SKIPPED,
                f"not checked: {', '.join(unchecked)} (no evaluation set; tag {EVAL_URI_TAG})",
                _ms(started),
            )
            return
        text = ", ".join(
            f"{r.metric} {r.value:.4g} within "
            f"[{_bound(r.threshold.min, '-inf')}, {_bound(r.threshold.max, 'inf')}]"
            for r in checked
            if r.value is not None
        )
        if evaluated:
            text += f" on {run.eval_rows} evaluation rows"
        if unchecked:
            text += f"; not checked: {', '.join(unchecked)} (no evaluation set)"
        run.log.record(checks.METRICS, CheckOutcome.PASSED, text, _ms(started))

    @staticmethod
    def _predictions(run: _Run) -> tuple[Any, Any]:
        work = run.scratch / WORK_DIR

        def load(name: str) -> Any:
            path = work / name
            if not path.is_file():
                return None
            if path.stat().st_size > MAX_PREDICTION_BYTES:
                raise ValueError(f"the model's {name} is over {MAX_PREDICTION_BYTES} bytes")
            array = np.load(path, allow_pickle=False)
            if array.dtype.kind not in "biuf":
                raise ValueError(f"the model's {name} is not numeric ({array.dtype})")
            if array.shape[:1] != (run.eval_rows,):
                raise ValueError(
                    f"the model gave {array.shape[:1]} predictions for {run.eval_rows} rows"
                )
            return array

        predictions = load(PREDICTIONS_FILE)
        if predictions is None:
            raise ValueError("the runner reported an evaluation but wrote no predictions")
        return predictions, load(SCORES_FILE)


def _bound(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{value:g}"
