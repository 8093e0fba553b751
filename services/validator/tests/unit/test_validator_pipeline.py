"""The validation pipeline (fetch, digest, format, smoke, latency) with an in-process fake
sandbox, and the real Sandbox class when bubblewrap is missing (nothing runs)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from paved_schemas.events import CheckOutcome
from paved_validator.adapters.sandbox import Sandbox
from paved_validator.ports import SandboxRun, SandboxStatus
from paved_validator.validation import Validator

pytestmark = pytest.mark.unit


def _outcomes(result) -> dict[str, CheckOutcome]:
    return {c.name: c.outcome for c in result.checks}


async def test_benign_model_passes_every_check(vt, model_artifact, tmp_path: Path) -> None:
    path, digest = model_artifact
    sandbox = vt.FakeSandbox()
    result = await Validator(sandbox=sandbox, scratch_root=tmp_path).validate(
        vt.registration(path.as_uri(), digest)
    )
    assert result.passed, result.reasons
    assert [c.name for c in result.checks] == ["digest", "format", "smoke_inference", "latency"]
    assert set(_outcomes(result).values()) == {CheckOutcome.PASSED}
    assert result.observed_digest == digest
    assert "label int64[1]" in (result.checks[2].detail or "")
    assert sandbox.runs[0]["inputs"][0]["shape"] == [-1, vt.FEATURES]
    assert sandbox.runs[0]["latency_calls"] == 20
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob("paved-val-*")))
    assert leftovers == [], "scratch dirs are removed"


async def test_wrong_digest_fails_and_never_reaches_the_sandbox(vt, model_artifact) -> None:
    path, digest = model_artifact
    registered = "sha256:" + "0" * 64
    sandbox = vt.FakeSandbox()
    result = await Validator(sandbox=sandbox).validate(vt.registration(path.as_uri(), registered))
    assert not result.passed
    assert _outcomes(result) == {
        "digest": CheckOutcome.FAILED,
        "format": CheckOutcome.SKIPPED,
        "smoke_inference": CheckOutcome.SKIPPED,
        "latency": CheckOutcome.SKIPPED,
    }
    assert len(result.reasons) == 1
    assert digest in result.reasons[0]
    assert registered in result.reasons[0]
    assert sandbox.runs == []


async def test_missing_artifact_and_artifact_outside_the_root_fail(vt, tmp_path: Path) -> None:
    missing = (tmp_path / "nope.pkl").as_uri()
    result = await Validator(sandbox=vt.FakeSandbox()).validate(
        vt.registration(missing, "sha256:" + "1" * 64)
    )
    assert not result.passed
    assert result.reasons[0].startswith("digest: could not fetch")
    assert "does not exist" in result.reasons[0]

    outside, digest = vt.write_artifact(tmp_path / "elsewhere", vt.train_model())
    confined = Validator(sandbox=vt.FakeSandbox(), artifact_root=tmp_path / "artifacts")
    result = await confined.validate(vt.registration(outside.as_uri(), digest))
    assert not result.passed
    assert "outside the artifact root" in result.reasons[0]


async def test_unsupported_framework_fails_format(vt, model_artifact) -> None:
    path, digest = model_artifact
    sandbox = vt.FakeSandbox()
    result = await Validator(sandbox=sandbox).validate(
        vt.registration(path.as_uri(), digest, framework="onnx")
    )
    assert _outcomes(result)["format"] is CheckOutcome.FAILED
    assert result.reasons == [
        "format: framework 'onnx' not supported by this validator yet (only sklearn)"
    ]
    assert sandbox.runs == []


async def test_a_file_that_is_not_a_pickle_fails_format(vt, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"definitely not a pickle")
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    result = await Validator(sandbox=vt.FakeSandbox()).validate(
        vt.registration(path.as_uri(), digest)
    )
    assert _outcomes(result)["format"] is CheckOutcome.FAILED
    assert "not a readable pickle stream" in result.reasons[0]


async def test_output_not_matching_the_signature_fails_smoke(vt, model_artifact) -> None:
    path, digest = model_artifact
    signature = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, vt.FEATURES]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
    }
    result = await Validator(sandbox=vt.FakeSandbox()).validate(
        vt.registration(path.as_uri(), digest, signature=signature)
    )
    assert _outcomes(result)["smoke_inference"] is CheckOutcome.FAILED
    assert _outcomes(result)["latency"] is CheckOutcome.SKIPPED
    assert "output 'probability' has shape [1] not [-1, 1]" in result.reasons[0]


async def test_a_timed_out_sandbox_fails_smoke(vt, model_artifact) -> None:
    path, digest = model_artifact
    canned = SandboxRun(SandboxStatus.TIMEOUT, None, "killed after the 60 s limit", 60_000)
    result = await Validator(sandbox=vt.FakeSandbox(canned)).validate(
        vt.registration(path.as_uri(), digest)
    )
    assert _outcomes(result)["smoke_inference"] is CheckOutcome.FAILED
    assert result.reasons == ["smoke_inference: killed after the 60 s limit"]


async def test_without_bubblewrap_validation_fails_closed(vt, model_artifact) -> None:
    path, digest = model_artifact
    sandbox = Sandbox(timeout_s=5, memory_mb=512, cpu_s=5, bwrap="paved-no-such-bwrap")
    result = await Validator(sandbox=sandbox).validate(vt.registration(path.as_uri(), digest))
    assert not result.passed
    assert _outcomes(result)["smoke_inference"] is CheckOutcome.ERROR
    assert "'paved-no-such-bwrap'" in result.reasons[0]
    assert "refusing to run the model without a sandbox" in result.reasons[0]
    assert result.observations is not None
    assert result.observations["status"] == "unavailable"
