"""Smoke run of bench/registry with a tiny N: both servers start, seed, register and search.

It checks that the benchmark works end to end, not how fast anything is.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[4] / "bench" / "registry" / "bench_registry.py"


async def test_registry_benchmark_runs_against_paved_and_mlflow(stack: Any) -> None:
    cmd = [
        sys.executable, str(BENCH), "--bootstrap", stack.bootstrap, "--dsn", stack.dsn,
        "--versions", "300", "--registrations", "20", "--concurrency", "2",
        "--searches", "3", "--pages", "2",
    ]  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=240, check=False
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "failed registrations" not in out, out[-3000:]
    throughput = re.search(r"versions/s \(2 clients\)\s+(\d+)\s+(\d+)", out)
    assert throughput is not None, out[-3000:]
    assert int(throughput[1]) > 0
    assert int(throughput[2]) > 0
    for label in ("one model's versions", "tag filter", "word search", "paging (2 x 100)"):
        line = next((ln for ln in out.splitlines() if ln.startswith(label)), None)
        assert line is not None, (label, out[-3000:])
        assert "x" in line, (label, out[-3000:])
