"""`bench/serving` runs (tiny, Paved only: starting MLflow belongs to the real benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[4] / "bench" / "serving" / "bench_serving.py"


def test_serving_benchmark_smoke_run() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--only", "paved", "--only", "router", "--duration", "0.5",
         "--warmup", "0.2", "--concurrency", "2", "--rows", "4"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0] for line in done.stdout.splitlines() if line}
    assert {"paved", "server"} <= lines, done.stdout
    assert "paved via router" in done.stdout
