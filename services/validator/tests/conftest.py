"""Helpers for the validator's tests: models, payloads, registrations, a fake sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from paved_schemas.events import ModelVersionRegistered
from paved_validator.domain import pickles
from paved_validator.domain.smoke import RunnerReport
from paved_validator.ports import (
    INPUT_DIR,
    WORK_DIR,
    SandboxRun,
    SandboxStatus,
    ScanFinding,
    ScanVerdict,
)
from paved_validator.sandbox_runner import execute
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

FEATURES = 4
SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, FEATURES]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probability", "datatype": "FP64", "shape": [-1, 2]},
    ],
}


def train_model() -> LogisticRegression:
    """A tiny LogisticRegression on 4 features, labels 0/1."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, FEATURES))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return LogisticRegression().fit(x, y)


def write_artifact(folder: Path, obj: Any, name: str = "model.pkl") -> tuple[Path, str]:
    """Pickle `obj` into `folder/name`; return the path and its sha256 digest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    data = pickle.dumps(obj)
    path.write_bytes(data)
    return path, f"sha256:{hashlib.sha256(data).hexdigest()}"


class Payload:
    """Pickles to `exec(code)`: what a malicious model does when it is unpickled."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (self.code,))


def registration(
    uri: str,
    digest: str,
    *,
    model_name: str = "churn",
    version: int = 1,
    framework: str = "sklearn",
    signature: dict[str, Any] | None = None,
    risk_tier: str = "low",
    tags: dict[str, str] | None = None,
    thresholds: dict[str, dict[str, float]] | None = None,
    metrics: dict[str, float] | None = None,
) -> ModelVersionRegistered:
    return ModelVersionRegistered.model_validate(
        {
            "model_name": model_name,
            "version": version,
            "artifact_uri": uri,
            "artifact_digest": digest,
            "framework": framework,
            "signature": signature or SIGNATURE,
            "tags": tags or {},
            "model_card": {
                "description": "Test model.",
                "intended_use": "Tests only.",
                "limitations": "Random data.",
                "risk_tier": risk_tier,
                "data_classification": "public",
                "license": "MIT",
                "metric_thresholds": thresholds,
                "metrics": metrics,
            },
            "registered_by": "alice",
            "registered_by_name": "Alice Scientist",
            "request_id": f"req-{model_name}-{version}",
        }
    )


class FakeSandbox:
    """Runs the runner in-process (NO isolation: trusted test models only).

    Records every request in `runs`; returns `canned` instead when it is set.
    """

    def __init__(self, canned: SandboxRun | None = None) -> None:
        self.canned = canned
        self.runs: list[dict[str, Any]] = []

    @property
    def profile(self) -> dict[str, Any]:
        return {"isolation": "none (in-process fake for tests)"}

    async def run(self, scratch: Path, request: dict[str, Any]) -> SandboxRun:
        self.runs.append(request)
        if self.canned is not None:
            return self.canned
        started = time.monotonic()
        (scratch / WORK_DIR).mkdir(parents=True, exist_ok=True)
        raw = await asyncio.to_thread(execute, request, scratch / INPUT_DIR, scratch / WORK_DIR)
        wall_ms = (time.monotonic() - started) * 1000
        try:
            report = RunnerReport.model_validate(raw)
        except ValidationError as exc:
            return SandboxRun(SandboxStatus.CRASHED, None, str(exc), wall_ms, 0)
        return SandboxRun(SandboxStatus.COMPLETED, report, "runner reported", wall_ms, 0)


class FakeScanner:
    """Flags a pickle whose imports leave numpy/sklearn/scipy (what the real scanners flag
    for the payloads used in unit tests); cannot parse what is not a pickle. Records calls.

    Its contract with modelscan and picklescan: tests/integration/test_validator_scanners.py.
    """

    name = "fake-scanner"

    def __init__(self) -> None:
        self.scanned: list[str] = []

    async def scan(self, path: Path) -> ScanVerdict:
        started = time.monotonic()
        self.scanned.append(path.name)
        try:
            summary = pickles.walk(path)
        except pickles.PickleFormatError as exc:
            return ScanVerdict.unparsable(self.name, f"could not scan the file: {exc}", started)
        dangerous = {"builtins", "posix", "os", "subprocess", "nt"}
        bad = [i for i in summary.imports
               if i.split(".")[0] in dangerous and pickles.import_problem(i)]  # fmt: skip
        if bad:
            findings = [ScanFinding("CRITICAL", f"unsafe import {b}") for b in bad]
            return ScanVerdict.found(self.name, findings, started)
        return ScanVerdict.clean(self.name, "no issues", started)


@pytest.fixture
def model_artifact(tmp_path: Path) -> tuple[Path, str]:
    """A benign pickled LogisticRegression and its digest."""
    return write_artifact(tmp_path / "artifacts", train_model())


class Helpers:
    """The helpers above, as one fixture (test modules cannot import conftest by name)."""

    FEATURES = FEATURES
    SIGNATURE = SIGNATURE
    Payload = Payload
    FakeSandbox = FakeSandbox
    FakeScanner = FakeScanner
    train_model = staticmethod(train_model)
    write_artifact = staticmethod(write_artifact)
    registration = staticmethod(registration)


@pytest.fixture
def vt() -> type[Helpers]:
    return Helpers
