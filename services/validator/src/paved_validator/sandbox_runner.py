"""Loads an untrusted model and smoke-tests it. Runs INSIDE the sandbox only.

``python -I -m paved_validator.sandbox_runner REQUEST.json RESULT.json``

It lowers its own resource limits (address space, CPU seconds, file size, no core
dumps) before it reads the model, so that nothing the model does can raise them again
(the sandbox has no capabilities). It writes a JSON report of raw observations, and,
when an evaluation set is given, the model's predictions as ``.npy`` files next to it;
the validator, outside the sandbox, decides what they mean (it alone holds the labels).

Kinds: ``pickle`` (scikit-learn: ``predict`` then ``predict_proba``), ``onnx``
(onnxruntime, CPU, one thread; outputs by declared name) and ``safetensors`` (weights
of a dense network, ``paved.architecture = mlp`` in the header metadata, run in numpy).
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNNER_FORMAT = "paved-sandbox-runner/2"
FILE_SIZE_LIMIT_MB = 64
PREDICTIONS_FILE = "predictions.npy"
SCORES_FILE = "scores.npy"
_ERROR_CHARS = 1000

Predict = Callable[[Any], list[Any]]
"""Runs the model on one input batch; returns its outputs in declared order."""


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


def _load_pickle(path: Path, request: dict[str, Any]) -> Predict:
    from paved_validator.domain.tensors import SKLEARN_METHODS

    with path.open("rb") as f:
        model = pickle.load(f)  # noqa: S301 - this is the untrusted load the sandbox contains
    methods = [getattr(model, m) for m in SKLEARN_METHODS[: len(request["outputs"])]]
    return lambda x: [method(x) for method in methods]


def _load_onnx(path: Path, request: dict[str, Any]) -> Predict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o["name"] for o in request["outputs"]]
    input_name = request["inputs"][0]["name"]
    return lambda x: list(session.run(names, {input_name: x}))


def _load_safetensors(path: Path, request: dict[str, Any]) -> Predict:
    import numpy as np
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    architecture = metadata.get("paved.architecture")
    if architecture != "mlp":
        raise ValueError(
            f"safetensors metadata 'paved.architecture' is {architecture!r}; only 'mlp' "
            "(layers.N.weight [out, in], layers.N.bias [out]) can be run"
        )
    activation = metadata.get("paved.activation", "relu")
    acts: dict[str, Callable[[Any], Any]] = {
        "relu": lambda a: np.maximum(a, 0),
        "tanh": np.tanh,
        "identity": lambda a: a,
    }
    if activation not in acts:
        raise ValueError(f"unknown paved.activation {activation!r} (relu, tanh, identity)")
    layers: list[tuple[Any, Any]] = []
    while f"layers.{len(layers)}.weight" in tensors:
        i = len(layers)
        layers.append((tensors[f"layers.{i}.weight"], tensors.get(f"layers.{i}.bias")))
    if not layers:
        raise ValueError("no tensors named layers.0.weight, layers.1.weight, ...")
    act = acts[activation]

    def forward(x: Any) -> list[Any]:
        for i, (weight, bias) in enumerate(layers):
            x = x @ weight.T + (bias if bias is not None else 0)
            if i < len(layers) - 1:
                x = act(x)
        return [x]

    return forward


LOADERS: dict[str, Callable[[Path, dict[str, Any]], Predict]] = {
    "pickle": _load_pickle,
    "onnx": _load_onnx,
    "safetensors": _load_safetensors,
}


def execute(
    request: dict[str, Any], input_dir: Path, work_dir: Path | None = None
) -> dict[str, Any]:
    """Load the model, run one inference, the latency calls and the evaluation set."""
    from paved_validator.domain.tensors import Observed, synthesize

    report: dict[str, Any] = {"format": RUNNER_FORMAT}
    started = time.perf_counter()
    try:
        loader = LOADERS[request.get("kind", "pickle")]
        predict = loader(input_dir / request["model_file"], request)
    except BaseException as exc:  # the payload may raise anything, SystemExit included
        report["load"] = {"ok": False, "error": _error(exc), "ms": _ms(started)}
        return report
    report["load"] = {"ok": True, "ms": _ms(started)}

    started = time.perf_counter()
    try:
        spec = request["inputs"][0]
        x = synthesize(spec["name"], spec["datatype"], spec["shape"])
        outputs = [Observed.of(o) for o in predict(x)]
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
            predict(x)
            samples.append(_ms(call))
    except BaseException as exc:
        report["latency"] = {"ok": False, "error": _error(exc), "ms": _ms(started)}
        return report
    report["latency"] = {"ok": True, "ms": _ms(started), "samples_ms": samples}

    if request.get("eval_file") and work_dir is not None:
        report["evaluation"] = _evaluate(
            predict, input_dir / request["eval_file"], work_dir, x.dtype
        )
    return report


def _evaluate(predict: Predict, eval_file: Path, work_dir: Path, dtype: Any) -> dict[str, Any]:
    import numpy as np

    started = time.perf_counter()
    try:
        x = np.load(eval_file, allow_pickle=False).astype(dtype, copy=False)
        outputs = predict(x)
        np.save(work_dir / PREDICTIONS_FILE, np.asarray(outputs[0]), allow_pickle=False)
        files = [PREDICTIONS_FILE]
        if len(outputs) > 1:
            np.save(work_dir / SCORES_FILE, np.asarray(outputs[1]), allow_pickle=False)
            files.append(SCORES_FILE)
    except BaseException as exc:
        return {"ok": False, "error": _error(exc), "ms": _ms(started)}
    return {"ok": True, "ms": _ms(started), "rows": int(x.shape[0]), "files": files}


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
    report = execute(request, request_path.parent, result_path.parent)
    partial = result_path.with_suffix(".partial")
    partial.write_text(json.dumps(report))
    os.replace(partial, result_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
