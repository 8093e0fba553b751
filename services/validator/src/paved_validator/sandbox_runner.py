"""Loads an untrusted model and smoke-tests it. Runs INSIDE the sandbox only.

``python -I -m paved_validator.sandbox_runner REQUEST.json RESULT.json``

It lowers its own resource limits (address space, CPU seconds, file size, no core
dumps) before it reads the model, so that nothing the model does can raise them again
(the sandbox has no capabilities). It writes a JSON report of raw observations; the
validator, outside the sandbox, decides what they mean.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import time
from pathlib import Path
from typing import Any

RUNNER_FORMAT = "paved-sandbox-runner/1"
FILE_SIZE_LIMIT_MB = 64
_ERROR_CHARS = 1000


def apply_limits(memory_mb: int, cpu_s: int) -> None:
    """Hard limits for this process and everything it starts (they cannot be raised)."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # SIGXCPU at the soft limit, SIGKILL one second later at the hard one.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    size = FILE_SIZE_LIMIT_MB * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def execute(request: dict[str, Any], input_dir: Path) -> dict[str, Any]:
    """Load the model, run one inference and the latency calls; report what happened."""
    from paved_validator.domain.tensors import SKLEARN_METHODS, Observed, synthesize

    report: dict[str, Any] = {"format": RUNNER_FORMAT}
    started = time.perf_counter()
    try:
        with (input_dir / request["model_file"]).open("rb") as f:
            model = pickle.load(f)  # noqa: S301 - this is the untrusted load the sandbox contains
    except BaseException as exc:  # the payload may raise anything, SystemExit included
        report["load"] = {"ok": False, "error": _error(exc), "ms": _ms(started)}
        return report
    report["load"] = {"ok": True, "ms": _ms(started)}

    started = time.perf_counter()
    try:
        spec = request["inputs"][0]
        x = synthesize(spec["name"], spec["datatype"], spec["shape"])
        methods = SKLEARN_METHODS[: len(request["outputs"])]
        outputs = [Observed.of(getattr(model, method)(x)) for method in methods]
    except BaseException as exc:
        report["inference"] = {"ok": False, "error": _error(exc), "ms": _ms(started)}
        return report
    report["inference"] = {
        "ok": True,
        "ms": _ms(started),
        "outputs": [
            {"dtype_kind": o.dtype_kind, "dtype": o.dtype, "shape": list(o.shape)} for o in outputs
        ],
    }

    started = time.perf_counter()
    samples: list[float] = []
    try:
        for _ in range(int(request["latency_calls"])):
            call = time.perf_counter()
            model.predict(x)
            samples.append(_ms(call))
    except BaseException as exc:
        report["latency"] = {"ok": False, "error": _error(exc), "ms": _ms(started)}
        return report
    report["latency"] = {"ok": True, "ms": _ms(started), "samples_ms": samples}
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -I -m paved_validator.sandbox_runner REQUEST RESULT", file=sys.stderr)
        return 2
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    if request.get("format") != RUNNER_FORMAT:
        print(f"unsupported request format {request.get('format')!r}", file=sys.stderr)
        return 2
    limits = request["limits"]
    apply_limits(int(limits["memory_mb"]), int(limits["cpu_s"]))
    report = execute(request, request_path.parent)
    partial = result_path.with_suffix(".partial")
    partial.write_text(json.dumps(report))
    os.replace(partial, result_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
