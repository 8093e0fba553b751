"""Benign scikit-learn, ONNX and safetensors models pass every check with full evidence,
through the real scanners and sandbox, from local files, S3 (moto server) and GCS (the
emulator), with the evidence report stored next to the artifact through the same store.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from paved_schemas.envelope import Envelope
from paved_schemas.events import CheckOutcome, ModelVersionRegistered
from paved_shared.artifacts import ArtifactStoreConfig, store_for
from paved_shared.cloud_emulators import GCSEmulator, MotoServer
from paved_validator.adapters.evidence import StoreEvidenceStore
from paved_validator.adapters.sandbox import Sandbox, default_masks
from paved_validator.adapters.scanners import ImportAllowlist, ModelScan, PickleScan
from paved_validator.domain.evidence import canonical_bytes
from paved_validator.handlers import _store_evidence
from paved_validator.validation import EVAL_DIGEST_TAG, EVAL_URI_TAG, Validator

pytestmark = pytest.mark.integration

STEPS = ["size", "digest", "signature", "format", "scan", "smoke_inference", "latency", "metrics"]


@pytest.fixture(scope="module", autouse=True)
def _bubblewrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (apt-get install -y bubblewrap)")


def _data(rows: int = 200) -> tuple[Any, Any]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(np.int64)
    return x, y


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _eval_set(folder: Path) -> Path:
    x, y = _data(300)
    path = folder / "eval.npz"
    np.savez(path, X=x[200:], y=y[200:])
    return path


async def _upload(local: Path, uri: str, config: ArtifactStoreConfig) -> str:
    return await store_for(uri, config=config).put(local, uri)


def _validator(config: ArtifactStoreConfig | None = None, **kw: Any) -> Validator:
    return Validator(
        **kw,
        sandbox=Sandbox(timeout_s=60, memory_mb=1024, cpu_s=60, masks=default_masks()),
        scanners=[ModelScan(), PickleScan(), ImportAllowlist()],
        store_config=config,
        latency_calls=10,
    )


async def _validate_and_store(
    validator: Validator, reg: ModelVersionRegistered, fallback: Path
) -> tuple[Any, dict[str, Any], str]:
    result = await validator.validate(reg)
    env = Envelope.new(reg, source="/paved/registry", actor="user:alice", actorname="Alice")
    evidence = StoreEvidenceStore(validator.store, fallback_root=fallback.as_uri())
    uri, digest = await _store_evidence(
        reg, env, result, evidence=evidence, sandbox=validator.sandbox, validator_version="test"
    )
    return result, {"uri": uri, "digest": digest}, f"{reg.artifact_uri}.evidence/"


async def _read(uri: str, config: ArtifactStoreConfig | None, tmp: Path) -> bytes:
    return (await store_for(uri, config=config).fetch(uri, tmp / "read")).read_bytes()


def _assert_full_evidence(document: dict[str, Any], result: Any) -> None:
    assert document["passed"] is True
    assert [c["name"] for c in document["checks"]] == STEPS
    assert document["observed_digest"] == document["artifact_digest"]
    assert document["sandbox_profile"]["isolation"] == "bubblewrap"
    assert document["sandbox_observations"]["report"]["load"]["ok"] is True
    assert set(document["details"]) >= {"size", "digest", "signature", "format", "metrics"}
    assert document["validation_id"] == result.validation_id


async def test_a_sklearn_pickle_passes_with_metrics_on_an_evaluation_set(vt, tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    path = tmp_path / "artifacts" / "clf.pkl"
    path.parent.mkdir()
    path.write_bytes(__import__("pickle").dumps(LogisticRegression().fit(x[:200], y[:200])))
    eval_path = _eval_set(tmp_path / "artifacts")
    signature = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probability", "datatype": "FP64", "shape": [-1, 2]},
        ],
    }
    reg = vt.registration(
        path.as_uri(),
        _digest(path),
        signature=signature,
        risk_tier="medium",
        tags={EVAL_URI_TAG: eval_path.as_uri(), EVAL_DIGEST_TAG: _digest(eval_path)},
        thresholds={
            "accuracy": {"min": 0.9},
            "auc": {"min": 0.95},
            "latency_p95_ms": {"max": 1000},
        },
    )
    result, stored, prefix = await _validate_and_store(_validator(), reg, tmp_path / "fallback")

    assert result.passed, result.reasons
    outcomes = {c.name: c.outcome for c in result.checks}
    assert outcomes["scan"] is CheckOutcome.PASSED
    assert outcomes["metrics"] is CheckOutcome.PASSED
    assert {s["scanner"]: s["status"] for s in result.details["scan"]} == {
        "modelscan": "clean",
        "picklescan": "clean",
        "import-allowlist": "clean",
    }
    measured = result.details["metrics"]["measured"]
    assert measured["accuracy"] >= 0.9
    assert measured["auc"] >= 0.95

    assert stored["uri"].startswith(prefix)
    raw = await _read(stored["uri"], None, tmp_path)
    assert _digest_bytes(raw) == stored["digest"]
    document = json.loads(raw)
    _assert_full_evidence(document, result)
    html = (await _read(document["html_report_uri"], None, tmp_path / "h")).decode()
    assert "PASSED" in html
    assert "accuracy" in html


def _digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_an_onnx_model_from_s3_passes_with_evidence_in_s3(
    vt, tmp_path, moto_server: MotoServer
) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    model = LogisticRegression().fit(x[:200], y[:200])
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    local = tmp_path / "model.onnx"
    local.write_bytes(onx.SerializeToString())
    eval_local = _eval_set(tmp_path)
    config = moto_server.store_config()
    bucket = moto_server.create_bucket()
    uri = await _upload(local, f"s3://{bucket}/churn/3/model.onnx", config)
    eval_uri = await _upload(eval_local, f"s3://{bucket}/churn/3/eval.npz", config)
    signature = {
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
    }
    reg = vt.registration(
        uri,
        _digest(local),
        framework="onnx",
        signature=signature,
        tags={EVAL_URI_TAG: eval_uri, EVAL_DIGEST_TAG: _digest(eval_local)},
        thresholds={"auc": {"min": 0.95}},
    )
    validator = _validator(config)
    result, stored, prefix = await _validate_and_store(validator, reg, tmp_path / "fallback")

    assert result.passed, result.reasons
    outcomes = {c.name: c.outcome for c in result.checks}
    assert outcomes["scan"] is CheckOutcome.SKIPPED  # ONNX carries no code to scan for
    assert outcomes["metrics"] is CheckOutcome.PASSED
    assert result.details["format"]["onnx"].startswith("ONNX IR ")
    assert stored["uri"] == f"{prefix}{result.validation_id}.json"
    assert stored["uri"].startswith(f"s3://{bucket}/churn/3/model.onnx.evidence/")
    raw = await _read(stored["uri"], config, tmp_path)
    assert _digest_bytes(raw) == stored["digest"]
    document = json.loads(raw)
    _assert_full_evidence(document, result)
    assert document["sandbox_observations"]["report"]["evaluation"]["rows"] == 100
    html = await _read(document["html_report_uri"], config, tmp_path / "h")
    assert b"Validation evidence: churn version 1" in html


def _mlp(path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    save_file(
        {
            "layers.0.weight": rng.normal(size=(8, 4)).astype(np.float32),
            "layers.0.bias": np.zeros(8, dtype=np.float32),
            "layers.1.weight": rng.normal(size=(3, 8)).astype(np.float32),
            "layers.1.bias": np.zeros(3, dtype=np.float32),
        },
        str(path),
        metadata={"paved.architecture": "mlp", "paved.activation": "relu"},
    )


async def test_safetensors_weights_from_gcs_pass_with_evidence_in_gcs(
    vt, tmp_path, gcs_emulator: GCSEmulator
) -> None:
    local = tmp_path / "weights.safetensors"
    _mlp(local)
    config = gcs_emulator.store_config()
    bucket = gcs_emulator.create_bucket()
    uri = await _upload(local, f"gs://{bucket}/mlp/1/weights.safetensors", config)
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}],
    }
    reg = vt.registration(uri, _digest(local), framework="safetensors", signature=signature)
    validator = _validator(config)
    result, stored, prefix = await _validate_and_store(validator, reg, tmp_path / "fallback")

    assert result.passed, result.reasons
    assert result.details["format"]["tensors"]["layers.0.weight"] == ["F32", [8, 4]]
    assert "safetensors: 4 tensors, 67 parameters" in (result.checks[3].detail or "")
    assert stored["uri"].startswith(f"{prefix}")
    raw = await _read(stored["uri"], config, tmp_path)
    document = json.loads(raw)
    _assert_full_evidence(document, result)
    assert canonical_bytes(document) == raw


async def test_evidence_falls_back_when_the_artifact_place_refuses_it(
    vt, tmp_path, moto_server: MotoServer
) -> None:
    """A registration naming a bucket that does not exist: failed validation, evidence kept."""
    uri = f"s3://paved-no-such-bucket-{tmp_path.name[-8:].lower()}/m.pkl"
    reg = vt.registration(uri, "sha256:" + "2" * 64)
    # Confined to an artifact root: the fallback (the validator's own folder) still works.
    validator = _validator(moto_server.store_config(), artifact_root=tmp_path / "artifacts")
    result, stored, _ = await _validate_and_store(validator, reg, tmp_path / "fallback")
    assert not result.passed
    assert result.reasons[0].startswith("size: artifact: artifact ")
    assert "does not exist" in result.reasons[0]
    assert stored["uri"].startswith((tmp_path / "fallback").as_uri() + "/churn/1/")
    assert json.loads(await _read(stored["uri"], None, tmp_path))["passed"] is False
