"""The validation pipeline (size, digest, signature, format, scan, smoke, latency, metrics)
with an in-process fake sandbox and fake scanner, and the real Sandbox class when
bubblewrap is missing (nothing runs)."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from paved_schemas.events import CheckOutcome
from paved_validator.adapters.sandbox import Sandbox
from paved_validator.ports import SandboxRun, SandboxStatus
from paved_validator.validation import EVAL_DIGEST_TAG, EVAL_URI_TAG, Validator

pytestmark = pytest.mark.unit

STEPS = ["size", "digest", "signature", "format", "scan", "smoke_inference", "latency", "metrics"]


def _outcomes(result) -> dict[str, CheckOutcome]:
    return {c.name: c.outcome for c in result.checks}


def _validator(vt, **kwargs) -> Validator:
    kwargs.setdefault("sandbox", vt.FakeSandbox())
    kwargs.setdefault("scanners", [vt.FakeScanner()])
    return Validator(**kwargs)


async def test_benign_model_passes_every_check(vt, model_artifact, tmp_path: Path) -> None:
    path, digest = model_artifact
    sandbox, scanner = vt.FakeSandbox(), vt.FakeScanner()
    result = await Validator(sandbox=sandbox, scanners=[scanner], scratch_root=tmp_path).validate(
        vt.registration(path.as_uri(), digest)
    )
    assert result.passed, result.reasons
    assert [c.name for c in result.checks] == STEPS
    outcomes = _outcomes(result)
    assert outcomes["signature"] is CheckOutcome.SKIPPED  # unsigned, low tier
    assert outcomes["metrics"] is CheckOutcome.SKIPPED  # no thresholds declared
    assert {o for n, o in outcomes.items() if n not in {"signature", "metrics"}} == {
        CheckOutcome.PASSED
    }
    assert result.observed_digest == digest
    assert "label int64[1]" in (result.checks[5].detail or "")
    assert scanner.scanned == ["model.pkl"]
    assert sandbox.runs[0]["inputs"][0]["shape"] == [-1, vt.FEATURES]
    assert sandbox.runs[0]["kind"] == "pickle"
    assert (
        "sklearn.linear_model._logistic.LogisticRegression"
        in (result.details["format"]["pickle_imports"])
    )
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob("paved-validate-*")))
    assert leftovers == [], "scratch dirs are removed"


async def test_wrong_digest_fails_and_never_reaches_the_sandbox(vt, model_artifact) -> None:
    path, digest = model_artifact
    registered = "sha256:" + "0" * 64
    sandbox = vt.FakeSandbox()
    result = await _validator(vt, sandbox=sandbox).validate(
        vt.registration(path.as_uri(), registered)
    )
    assert not result.passed
    outcomes = _outcomes(result)
    assert outcomes["size"] is CheckOutcome.PASSED
    assert outcomes["digest"] is CheckOutcome.FAILED
    assert all(outcomes[s] is CheckOutcome.SKIPPED for s in STEPS[2:])
    assert result.reasons == [
        f"digest: fetched artifact has digest {digest}, but the registered digest is {registered}"
    ]
    assert sandbox.runs == []


async def test_missing_artifact_and_artifact_outside_the_root_fail(vt, tmp_path: Path) -> None:
    missing = (tmp_path / "nope.pkl").as_uri()
    result = await _validator(vt).validate(vt.registration(missing, "sha256:" + "1" * 64))
    assert not result.passed
    assert result.reasons[0].startswith("size: artifact: ")
    assert "does not exist" in result.reasons[0]

    outside, digest = vt.write_artifact(tmp_path / "elsewhere", vt.train_model())
    confined = _validator(vt, artifact_root=tmp_path / "artifacts")
    result = await confined.validate(vt.registration(outside.as_uri(), digest))
    assert not result.passed
    assert "outside the artifact root" in result.reasons[0]


async def test_an_oversized_artifact_is_refused_before_it_is_fetched(vt, model_artifact) -> None:
    from paved_validator.domain.archives import SizeLimits

    path, digest = model_artifact
    tiny = SizeLimits(max_bytes=100, max_unpacked_bytes=1000, max_ratio=10, max_members=5)
    result = await _validator(vt, limits=tiny).validate(vt.registration(path.as_uri(), digest))
    assert _outcomes(result)["size"] is CheckOutcome.FAILED
    assert f"({path.stat().st_size} bytes), over the 0.0 MiB limit" in result.reasons[0]


async def test_unsupported_framework_fails_format(vt, model_artifact) -> None:
    path, digest = model_artifact
    sandbox = vt.FakeSandbox()
    result = await _validator(vt, sandbox=sandbox).validate(
        vt.registration(path.as_uri(), digest, framework="pytorch")
    )
    assert _outcomes(result)["format"] is CheckOutcome.FAILED
    assert result.reasons == [
        "format: framework 'pytorch' is not on the format allowlist "
        "(accepted: sklearn, onnx, safetensors)"
    ]
    assert sandbox.runs == []


async def test_a_joblib_file_is_refused_with_the_way_out(vt, tmp_path: Path) -> None:
    path, digest = vt.write_artifact(tmp_path, vt.train_model(), name="model.joblib")
    result = await _validator(vt).validate(vt.registration(path.as_uri(), digest))
    assert _outcomes(result)["format"] is CheckOutcome.FAILED
    assert "'.joblib'" in result.reasons[0]
    assert "pickle.dump" in result.reasons[0]


async def test_a_file_that_is_not_a_pickle_fails_format(vt, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"definitely not a pickle")
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    result = await _validator(vt).validate(vt.registration(path.as_uri(), digest))
    assert _outcomes(result)["format"] is CheckOutcome.FAILED
    assert "not a readable pickle stream" in result.reasons[0]


async def test_a_pickle_importing_outside_the_allowlist_is_refused_unloaded(
    vt, tmp_path: Path
) -> None:
    import importlib

    from paved_validator.adapters.scanners import ImportAllowlist

    class Bypass:
        def __reduce__(self):
            return (importlib.import_module, ("os",))

    path, digest = vt.write_artifact(tmp_path, Bypass())
    sandbox, scanner = vt.FakeSandbox(), vt.FakeScanner()
    result = await _validator(vt, sandbox=sandbox, scanners=[scanner, ImportAllowlist()]).validate(
        vt.registration(path.as_uri(), digest)
    )
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("scan: fake-scanner: clean (no issues); import-allowlist: ")
    assert result.reasons[0].endswith(
        "found (not allowed: imports 'importlib.import_module', outside the allowed packages "
        "(numpy, scipy, sklearn))"
    )
    assert scanner.scanned == ["model.pkl"]
    assert sandbox.runs == []


async def test_a_scanner_finding_rejects(vt, tmp_path: Path) -> None:
    path, digest = vt.write_artifact(tmp_path, vt.train_model())
    from paved_validator.ports import ScanFinding, ScanVerdict

    class Flagging:
        name = "flagging"

        async def scan(self, p: Path) -> ScanVerdict:
            return ScanVerdict.found(self.name, [ScanFinding("HIGH", "something odd")], 0.0)

    sandbox = vt.FakeSandbox()
    validator = _validator(vt, sandbox=sandbox, scanners=[vt.FakeScanner(), Flagging()])
    result = await validator.validate(vt.registration(path.as_uri(), digest))
    assert _outcomes(result)["scan"] is CheckOutcome.FAILED
    assert "flagging: found (HIGH: something odd)" in result.reasons[0]
    assert sandbox.runs == []


async def test_without_scanners_a_pickle_is_refused(vt, model_artifact) -> None:
    path, digest = model_artifact
    result = await _validator(vt, scanners=[]).validate(vt.registration(path.as_uri(), digest))
    assert _outcomes(result)["scan"] is CheckOutcome.ERROR
    assert "refusing an unscanned pickle" in result.reasons[0]


async def test_output_not_matching_the_signature_fails_smoke(vt, model_artifact) -> None:
    path, digest = model_artifact
    signature = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, vt.FEATURES]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
    }
    result = await _validator(vt).validate(
        vt.registration(path.as_uri(), digest, signature=signature)
    )
    assert _outcomes(result)["smoke_inference"] is CheckOutcome.FAILED
    assert _outcomes(result)["latency"] is CheckOutcome.SKIPPED
    assert "output 'probability' has shape [1] not [-1, 1]" in result.reasons[0]


async def test_a_timed_out_sandbox_fails_smoke(vt, model_artifact) -> None:
    path, digest = model_artifact
    canned = SandboxRun(SandboxStatus.TIMEOUT, None, "killed after the 60 s limit", 60_000)
    result = await _validator(vt, sandbox=vt.FakeSandbox(canned)).validate(
        vt.registration(path.as_uri(), digest)
    )
    assert _outcomes(result)["smoke_inference"] is CheckOutcome.FAILED
    assert result.reasons == ["smoke_inference: killed after the 60 s limit"]


async def test_without_bubblewrap_validation_fails_closed(vt, model_artifact) -> None:
    path, digest = model_artifact
    sandbox = Sandbox(timeout_s=5, memory_mb=512, cpu_s=5, bwrap="paved-no-such-bwrap")
    result = await _validator(vt, sandbox=sandbox).validate(vt.registration(path.as_uri(), digest))
    assert not result.passed
    assert _outcomes(result)["smoke_inference"] is CheckOutcome.ERROR
    assert "'paved-no-such-bwrap'" in result.reasons[0]
    assert "refusing to run the model without a sandbox" in result.reasons[0]
    assert result.observations is not None
    assert result.observations["status"] == "unavailable"


def _eval_set(folder: Path, vt, rows: int = 60) -> tuple[Path, str]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(rows, vt.FEATURES))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "eval.npz"
    np.savez(path, X=x, y=y)
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


async def test_metric_thresholds_are_checked_on_the_evaluation_set(
    vt, model_artifact, tmp_path: Path
) -> None:
    path, digest = model_artifact
    eval_path, eval_digest = _eval_set(tmp_path / "eval", vt)
    tags = {EVAL_URI_TAG: eval_path.as_uri(), EVAL_DIGEST_TAG: eval_digest}
    ok = await _validator(vt).validate(
        vt.registration(
            path.as_uri(),
            digest,
            tags=tags,
            thresholds={
                "accuracy": {"min": 0.8},
                "auc": {"min": 0.9},
                "latency_p95_ms": {"max": 5000},
            },
        )
    )
    assert ok.passed, ok.reasons
    metrics = ok.details["metrics"]
    assert metrics["evaluation_rows"] == 60
    assert metrics["measured"]["accuracy"] >= 0.8
    assert "on 60 evaluation rows" in (ok.checks[-1].detail or "")

    strict = await _validator(vt).validate(
        vt.registration(path.as_uri(), digest, tags=tags, thresholds={"accuracy": {"min": 1.01}})
    )
    assert not strict.passed
    assert strict.reasons[0].startswith("metrics: accuracy = 0.")
    assert "below the declared minimum 1.01" in strict.reasons[0]

    unknown = await _validator(vt).validate(
        vt.registration(path.as_uri(), digest, tags=tags, thresholds={"bleu": {"min": 0.1}})
    )
    assert "'bleu' is not a metric the validator can compute" in unknown.reasons[0]


async def test_an_evaluation_set_must_be_pinned_and_plain(vt, model_artifact, tmp_path) -> None:
    path, digest = model_artifact
    eval_path, _ = _eval_set(tmp_path / "eval", vt)
    unpinned = await _validator(vt).validate(
        vt.registration(path.as_uri(), digest, tags={EVAL_URI_TAG: eval_path.as_uri()})
    )
    assert f"{EVAL_DIGEST_TAG} is not; pin the evaluation set's digest" in unpinned.reasons[0]

    pickled = tmp_path / "eval2" / "eval.npz"
    pickled.parent.mkdir()
    np.savez(pickled, X=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    pickled_digest = "sha256:" + hashlib.sha256(pickled.read_bytes()).hexdigest()
    tags = {EVAL_URI_TAG: pickled.as_uri(), EVAL_DIGEST_TAG: pickled_digest}
    result = await _validator(vt).validate(vt.registration(path.as_uri(), digest, tags=tags))
    assert _outcomes(result)["format"] is CheckOutcome.FAILED
    assert "is not a plain .npz" in result.reasons[0]


async def test_latency_threshold_gates_without_an_evaluation_set(vt, model_artifact) -> None:
    path, digest = model_artifact
    result = await _validator(vt).validate(
        vt.registration(
            path.as_uri(),
            digest,
            thresholds={"latency_p95_ms": {"max": 0.000001}, "auc": {"min": 0.5}},
        )
    )
    assert not result.passed
    assert "latency_p95_ms = " in result.reasons[0]
    assert "above the declared maximum 1e-06" in result.reasons[0]
    auc = next(t for t in result.details["metrics"]["thresholds"] if t["metric"] == "auc")
    assert auc["value"] is None  # not checked: no evaluation set


def test_benign_pickle_protocols_all_pass_the_allowlist(vt, tmp_path: Path) -> None:
    from paved_validator.domain import pickles

    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"m{protocol}.pkl"
        path.write_bytes(pickle.dumps(vt.train_model(), protocol=protocol))
        _, problems = pickles.check(path)
        assert problems == [], (protocol, problems)
