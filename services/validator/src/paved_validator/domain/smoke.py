"""The smoke-inference contract between the validator and its sandbox runner.

The request is written by the validator (trusted). The report is written by a process
that ran untrusted model code, so it is parsed strictly and bounded in size, and every
verdict is computed here, outside the sandbox, from the raw observations it carries.
"""

from __future__ import annotations

import statistics
from typing import Annotated, Any

from paved_schemas.events import CheckOutcome, ModelSignature, TensorSpec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from paved_validator.domain.tensors import SKLEARN_METHODS, Observed, check_output
from paved_validator.sandbox_runner import RUNNER_FORMAT

MAX_ERROR_CHARS = 1000

ErrorText = Annotated[str, StringConstraints(max_length=MAX_ERROR_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputObservation(_Strict):
    """dtype and shape of one array a model returned."""

    dtype_kind: Annotated[str, StringConstraints(min_length=1, max_length=1)]
    dtype: Annotated[str, StringConstraints(max_length=64)]
    shape: list[Annotated[int, Field(ge=0)]] = Field(max_length=32)

    def observed(self) -> Observed:
        return Observed(self.dtype_kind, self.dtype, tuple(self.shape))


class Phase(_Strict):
    """One phase of the runner: whether it worked, its error, how long it took."""

    ok: bool
    error: ErrorText | None = None
    ms: Annotated[float, Field(ge=0)] = 0.0


class InferencePhase(Phase):
    outputs: list[OutputObservation] = Field(default_factory=list, max_length=16)


class LatencyPhase(Phase):
    samples_ms: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list, max_length=10_000)


class EvaluationPhase(Phase):
    rows: Annotated[int, Field(ge=0)] = 0
    files: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.npy$")]] = Field(
        default_factory=list, max_length=2
    )


class RunnerReport(_Strict):
    """What the sandbox runner observed; a phase is absent when it was not reached."""

    format: Annotated[str, StringConstraints(max_length=64)]
    load: Phase | None = None
    inference: InferencePhase | None = None
    latency: LatencyPhase | None = None
    evaluation: EvaluationPhase | None = None


def runner_request(
    *,
    model_file: str,
    framework: str,
    signature: ModelSignature,
    latency_calls: int,
    memory_mb: int,
    cpu_s: int,
    kind: str = "pickle",
    eval_file: str | None = None,
) -> dict[str, Any]:
    """The JSON request the sandbox runner reads."""
    return {
        "format": RUNNER_FORMAT,
        "model_file": model_file,
        "framework": framework,
        "kind": kind,
        "eval_file": eval_file,
        "inputs": [t.model_dump(mode="json") for t in signature.inputs],
        "outputs": [t.model_dump(mode="json") for t in signature.outputs],
        "latency_calls": latency_calls,
        "limits": {"memory_mb": memory_mb, "cpu_s": cpu_s},
    }


def signature_problem(kind: str, signature: ModelSignature) -> str | None:
    """Why a model of this kind cannot be smoke-tested against the signature (None: it can)."""
    if kind == "pickle":
        return sklearn_signature_problem(signature)
    if len(signature.inputs) != 1:
        return (
            f"the smoke test feeds one input tensor; the signature declares {len(signature.inputs)}"
        )
    if kind == "safetensors" and len(signature.outputs) != 1:
        return (
            f"a safetensors MLP gives one output; the signature declares {len(signature.outputs)}"
        )
    if not signature.outputs:
        return "the signature declares no outputs"
    return None


def sklearn_signature_problem(signature: ModelSignature) -> str | None:
    """Why an sklearn estimator cannot be smoke-tested against this signature (None: it can)."""
    if len(signature.inputs) != 1:
        return (
            f"an sklearn model takes one input tensor (its feature matrix); "
            f"the signature declares {len(signature.inputs)}"
        )
    if not 1 <= len(signature.outputs) <= len(SKLEARN_METHODS):
        return (
            "an sklearn model gives one or two outputs (predict, then predict_proba); "
            f"the signature declares {len(signature.outputs)}"
        )
    return None


def judge_smoke(outputs: list[TensorSpec], report: RunnerReport) -> tuple[CheckOutcome, str]:
    """The smoke_inference verdict from the runner's observations."""
    if report.load is None or not report.load.ok:
        error = report.load.error if report.load else "the runner stopped before loading"
        return CheckOutcome.FAILED, f"model could not be loaded: {error}"
    inference = report.inference
    if inference is None or not inference.ok:
        error = inference.error if inference else "the runner stopped before inference"
        return CheckOutcome.FAILED, f"inference raised: {error}"
    if len(inference.outputs) != len(outputs):
        return (
            CheckOutcome.FAILED,
            f"model returned {len(inference.outputs)} outputs, signature declares {len(outputs)}",
        )
    problems = [
        problem
        for spec, seen in zip(outputs, inference.outputs, strict=True)
        if (problem := check_output(spec.name, spec.datatype.value, spec.shape, seen.observed()))
    ]
    if problems:
        return CheckOutcome.FAILED, "; ".join(problems)
    described = ", ".join(
        f"{spec.name} {seen.dtype}{seen.shape}"
        for spec, seen in zip(outputs, inference.outputs, strict=True)
    )
    return CheckOutcome.PASSED, f"loaded in {report.load.ms:.1f} ms; outputs match: {described}"


def judge_latency(report: RunnerReport) -> tuple[CheckOutcome, str]:
    """The latency check: median (and p95) of the measured predict calls; not a gate."""
    latency = report.latency
    if latency is None or not latency.ok or not latency.samples_ms:
        error = latency.error if latency and latency.error else "no latency samples"
        return CheckOutcome.FAILED, f"latency could not be measured: {error}"
    samples = sorted(latency.samples_ms)
    median = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return (
        CheckOutcome.PASSED,
        f"median {median:.3f} ms, p95 {p95:.3f} ms over {len(samples)} predict calls "
        "(reported, not a gate)",
    )
