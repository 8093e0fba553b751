"""The audit benchmark runs end to end (with a tiny N): it prints its figures and a
replay that reproduces the signed root. Speed is never asserted."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[4] / "bench" / "audit" / "bench_audit.py"


async def test_bench_prints_its_figures(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("paved_bench_audit", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(events=60, bootstrap=stack.bootstrap, dsn=stack.dsn)
    assert await bench.main_async(args) == 0
    out = capsys.readouterr().out
    for figure in ("raw Kafka consume", "audit ingest", "verify (topic)", "replay+verify"):
        assert re.search(rf"^{re.escape(figure)}\s+[\d,]+ events/s$", out, re.M), out
    assert re.search(r"^events\s+60$", out, re.M)
    assert "replay reproduces the signed root: yes" in out
