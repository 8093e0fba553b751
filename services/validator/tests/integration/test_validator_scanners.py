"""One contract for every scanner, the unit tests' fake included: a benign scikit-learn
pickle is clean, an os.system pickle is found, a file that is not a pickle is unparsable
(fail closed), and a scanner that cannot run is an error, never a pass."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from paved_validator.adapters import scanners
from paved_validator.adapters.scanners import ImportAllowlist, ModelScan, PickleScan
from paved_validator.ports import ScanStatus

pytestmark = pytest.mark.integration


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.fixture(params=["fake", "modelscan", "picklescan", "import-allowlist"])
def scanner(request, vt):
    return {
        "fake": vt.FakeScanner,
        "modelscan": ModelScan,
        "picklescan": PickleScan,
        "import-allowlist": ImportAllowlist,
    }[request.param]()


def _file(tmp_path: Path, data: bytes) -> Path:
    folder = tmp_path / "input"
    folder.mkdir(parents=True)
    path = folder / "model.pkl"
    path.write_bytes(data)
    return path


async def test_scanner_contract_benign_is_clean(scanner, tmp_path, vt) -> None:
    verdict = await scanner.scan(_file(tmp_path, pickle.dumps(vt.train_model())))
    assert verdict.status is ScanStatus.CLEAN, verdict.detail


async def test_scanner_contract_os_system_is_found(scanner, tmp_path) -> None:
    verdict = await scanner.scan(_file(tmp_path, pickle.dumps(_System())))
    assert verdict.status is ScanStatus.FOUND, verdict.detail
    assert "system" in verdict.detail


async def test_scanner_contract_not_a_pickle_is_unparsable(scanner, tmp_path) -> None:
    verdict = await scanner.scan(_file(tmp_path, b"garbage, not a pickle"))
    assert verdict.status is ScanStatus.UNPARSABLE, verdict.detail
    assert verdict.detail.startswith("could not scan the file")


async def test_a_scanner_that_cannot_run_is_an_error(monkeypatch, tmp_path, vt) -> None:
    monkeypatch.setattr(scanners, "_executable", lambda name: None)
    for scanner in (ModelScan(), PickleScan()):
        verdict = await scanner.scan(_file(tmp_path / scanner.name, pickle.dumps(1)))
        assert verdict.status is ScanStatus.ERROR
        assert "is not installed" in verdict.detail


async def test_a_scanner_that_hangs_is_killed_and_an_error(monkeypatch, tmp_path) -> None:
    sleeper = tmp_path / "slow-scanner"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(scanners, "_executable", lambda name: str(sleeper))
    verdict = await PickleScan(timeout_s=0.5).scan(_file(tmp_path, pickle.dumps(1)))
    assert verdict.status is ScanStatus.ERROR
    assert verdict.detail == "timed out after 0.5 s"
