"""Sandbox start-up overhead: bubblewrap (Paved's profile) versus a bare process.

    uv run python bench/sandbox/bench_sandbox.py              # 20 runs of each
    uv run python bench/sandbox/bench_sandbox.py --runs 5     # a smoke run

Measures, each N times, wall-clock from spawn to exit:
1. ``python -c pass`` bare, and inside the sandbox with the validator's exact flags
   (``adapters/sandbox.py``: namespaces, uid 65534, no capabilities, read-only /,
   masks, clean env): the cost of the isolation itself;
2. the smoke runner on a small scikit-learn pickle, bare (``execute`` in a fresh
   process) versus through ``Sandbox.run``: the cost seen by one validation.

Prints median / p95 / mean and the overhead; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from paved_schemas.events import ModelSignature
from paved_validator.adapters.sandbox import Sandbox, default_masks, prepare_scratch
from paved_validator.domain.smoke import runner_request
from paved_validator.ports import INPUT_DIR, WORK_DIR


def _stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, statistics.fmean(ordered)


def _line(label: str, samples: list[float]) -> tuple[float, float, float]:
    med, p95, mean = _stats(samples)
    print(f"  {label:<44} median {med:8.1f} ms   p95 {p95:8.1f} ms   mean {mean:8.1f} ms")
    return med, p95, mean


async def _time(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env
        )
        code = await proc.wait()
        samples.append((time.perf_counter() - started) * 1000)
        if code != 0:
            raise SystemExit(f"{argv[:3]}... exited with {code}")
    return samples


def _model_scratch(root: Path) -> tuple[Path, dict]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    scratch = Path(tempfile.mkdtemp(dir=root))
    (scratch / INPUT_DIR).mkdir()
    (scratch / INPUT_DIR / "model.pkl").write_bytes(pickle.dumps(model))
    signature = ModelSignature.model_validate({
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    })  # fmt: skip
    request = runner_request(model_file="model.pkl", framework="sklearn", signature=signature,
                             latency_calls=1, memory_mb=1024, cpu_s=60)  # fmt: skip
    prepare_scratch(scratch, request)
    return scratch, request


async def main(runs: int) -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SystemExit("bubblewrap is not installed (apt-get install -y bubblewrap)")
    sandbox = Sandbox(timeout_s=120, memory_mb=1024, cpu_s=60, masks=default_masks())
    root = Path(tempfile.mkdtemp(prefix="paved-bench-sandbox-"))
    try:
        scratch, request = _model_scratch(root)
        argv = sandbox.command(bwrap, scratch)
        runner_at = argv.index(sys.executable)
        sandboxed_pass = [*argv[:runner_at], sys.executable, "-I", "-c", "pass"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        print(f"sandbox start-up overhead, {runs} runs each (python {sys.version.split()[0]})")
        await _time([sys.executable, "-c", "pass"], 2)  # warm the page cache
        bare = _line("bare: python -c pass", await _time([sys.executable, "-I", "-c", "pass"],
                                                          runs, env))  # fmt: skip
        boxed = _line("bubblewrap: python -c pass", await _time(sandboxed_pass, runs, env))
        print(f"  => isolation overhead: {boxed[0] - bare[0]:+.1f} ms median, "
              f"{boxed[1] - bare[1]:+.1f} ms p95")  # fmt: skip

        runner = [sys.executable, "-I", "-m", "paved_validator.sandbox_runner",
                  str(scratch / INPUT_DIR / "request.json"),
                  str(scratch / WORK_DIR / "result.json")]  # fmt: skip
        bare_samples = await _time(runner, runs, env)
        bare_runner = _line("bare: smoke runner on a sklearn pickle", bare_samples)
        samples = []
        for _ in range(runs):
            run = await sandbox.run(scratch, request)
            if run.report is None:
                raise SystemExit(f"sandbox run failed: {run.detail}")
            samples.append(run.wall_ms)
        boxed_runner = _line("Sandbox.run: smoke runner on a sklearn pickle", samples)
        print(f"  => per-validation overhead: {boxed_runner[0] - bare_runner[0]:+.1f} ms median "
              f"({(boxed_runner[0] / bare_runner[0] - 1) * 100:+.1f} %)")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
