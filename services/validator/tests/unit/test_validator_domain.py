"""Check ordering, skipping, verdicts, the smoke/latency judgements and the evidence bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from paved_schemas.events import CheckOutcome, Framework, ModelSignature
from paved_validator.domain import checks
from paved_validator.domain.checks import CheckLog
from paved_validator.domain.evidence import canonical_bytes, evidence_document, sha256_digest
from paved_validator.domain.formats import FormatError, Kind, kind_for
from paved_validator.domain.smoke import (
    RunnerReport,
    judge_latency,
    judge_smoke,
    sklearn_signature_problem,
)

pytestmark = pytest.mark.unit

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_digest_mismatch_names_both_digests() -> None:
    assert checks.digest_problem(A, A) is None
    problem = checks.digest_problem(A, B)
    assert problem is not None
    assert A in problem
    assert B in problem


def test_format_allowlist() -> None:
    assert kind_for(Framework.SKLEARN, "model.pkl") is Kind.PICKLE
    assert kind_for(Framework.SKLEARN, "MODEL.PICKLE") is Kind.PICKLE
    assert kind_for(Framework.ONNX, "model.onnx") is Kind.ONNX
    assert kind_for(Framework.SAFETENSORS, "w.safetensors") is Kind.SAFETENSORS
    with pytest.raises(FormatError, match=r"'\.joblib'.*pickle\.dump"):
        kind_for(Framework.SKLEARN, "model.joblib")
    with pytest.raises(FormatError, match=r"suffix '\.pkl'; only \.onnx accepted"):
        kind_for(Framework.ONNX, "model.pkl")
    with pytest.raises(FormatError, match="framework 'xgboost' is not on the format allowlist"):
        kind_for(Framework.XGBOOST, "model.json")


def test_failure_skips_later_steps_and_gives_reasons() -> None:
    log = CheckLog()
    log.record(checks.DIGEST, CheckOutcome.PASSED, "ok", 1.4)
    log.record(checks.FORMAT, CheckOutcome.FAILED, "not a pickle", 2)
    assert log.stopped
    log.skip_rest()
    assert [(c.name, c.outcome) for c in log.checks] == [
        (checks.DIGEST, CheckOutcome.PASSED),
        (checks.FORMAT, CheckOutcome.FAILED),
        (checks.SIZE, CheckOutcome.SKIPPED),
        (checks.SIGNATURE, CheckOutcome.SKIPPED),
        (checks.SCAN, CheckOutcome.SKIPPED),
        (checks.SMOKE_INFERENCE, CheckOutcome.SKIPPED),
        (checks.LATENCY, CheckOutcome.SKIPPED),
        (checks.METRICS, CheckOutcome.SKIPPED),
    ]
    assert log.checks[2].detail == "skipped because format did not pass"
    assert not log.passed
    assert log.reasons == ["format: not a pickle"]


def test_all_steps_passing_is_a_pass() -> None:
    log = CheckLog()
    for name in checks.STEPS:
        log.record(name, CheckOutcome.PASSED, "fine", 0)
    log.skip_rest()
    assert log.passed
    assert log.reasons == []
    assert len(log.checks) == len(checks.STEPS)


def test_an_error_is_not_a_pass() -> None:
    log = CheckLog()
    log.record(checks.DIGEST, CheckOutcome.PASSED, "", 0)
    log.record(checks.FORMAT, CheckOutcome.PASSED, "", 0)
    log.record(checks.SMOKE_INFERENCE, CheckOutcome.ERROR, "no sandbox", 0)
    log.skip_rest()
    assert not log.passed
    assert log.reasons == ["smoke_inference: no sandbox"]


def test_sklearn_signature_shape() -> None:
    one_in_two_out = ModelSignature.model_validate(
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "y", "datatype": "INT64", "shape": [-1]},
                {"name": "p", "datatype": "FP64", "shape": [-1, 2]},
            ],
        }
    )
    assert sklearn_signature_problem(one_in_two_out) is None
    two_in = ModelSignature.model_validate(
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [-1, 2]},
                {"name": "b", "datatype": "FP32", "shape": [-1, 2]},
            ],
            "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}],
        }
    )
    problem = sklearn_signature_problem(two_in)
    assert problem is not None
    assert "declares 2" in problem


def _report(**phases: object) -> RunnerReport:
    return RunnerReport.model_validate({"format": "paved-sandbox-runner/1", **phases})


def test_judge_smoke_outcomes() -> None:
    outputs = ModelSignature.model_validate(
        {"inputs": [], "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}]}
    ).outputs
    good = _report(
        load={"ok": True, "ms": 5},
        inference={"ok": True, "outputs": [{"dtype_kind": "i", "dtype": "int64", "shape": [1]}]},
    )
    assert judge_smoke(outputs, good)[0] is CheckOutcome.PASSED
    load_failed = _report(load={"ok": False, "error": "OSError: unreachable"})
    outcome, detail = judge_smoke(outputs, load_failed)
    assert outcome is CheckOutcome.FAILED
    assert "could not be loaded: OSError: unreachable" in detail
    wrong = _report(
        load={"ok": True},
        inference={"ok": True, "outputs": [{"dtype_kind": "f", "dtype": "float64", "shape": [1]}]},
    )
    outcome, detail = judge_smoke(outputs, wrong)
    assert outcome is CheckOutcome.FAILED
    assert "float64" in detail


def test_judge_latency_reports_the_median() -> None:
    outcome, detail = judge_latency(
        _report(latency={"ok": True, "samples_ms": [5.0, 1.0, 3.0, 2.0, 4.0]})
    )
    assert outcome is CheckOutcome.PASSED
    assert detail.startswith("median 3.000 ms")
    assert "5 predict calls" in detail
    assert judge_latency(_report())[0] is CheckOutcome.FAILED


def test_runner_reports_are_parsed_strictly() -> None:
    with pytest.raises(ValueError, match="extra"):
        _report(load={"ok": True, "sneaky": 1})
    with pytest.raises(ValueError, match="1000"):
        _report(load={"ok": False, "error": "x" * 5000})


def test_evidence_bytes_are_canonical_and_hashed(vt) -> None:
    reg = vt.registration("file:///m.pkl", A)
    log = CheckLog()
    log.record(checks.DIGEST, CheckOutcome.FAILED, "mismatch", 3)
    log.skip_rest()
    when = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    doc = evidence_document(
        validation_id="v1",
        registration=reg,
        registration_event_id="e1",
        correlation_id="c1",
        validator_version="0.1.0",
        observed_digest=B,
        checks=log.checks,
        passed=log.passed,
        reasons=log.reasons,
        started_at=when,
        finished_at=when,
        sandbox_profile={"isolation": "test"},
        observations=None,
    )
    data = canonical_bytes(doc)
    assert data == canonical_bytes(dict(reversed(list(doc.items()))))
    assert b'"started_at":"2025-03-14T09:26:53+00:00"' in data
    assert sha256_digest(data).startswith("sha256:")
    assert sha256_digest(data) != sha256_digest(data + b" ")
