"""Load one model artifact into a `Predictor`: scikit-learn (pickle), ONNX (onnxruntime),
or the tiny deterministic language model behind the OpenAI-compatible endpoint.

Every loader re-checks the artifact's digest against the approved one before it
reads a byte of the model, and checks the declared signature against what the model
can do, so a server that starts is a server that can answer.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from paved_schemas.events import Datatype, ModelSignature
from paved_shared.artifacts import sha256_file

SERVABLE = frozenset({"sklearn", "onnx", "openai-compatible"})
"""Frameworks this model server loads."""

ONNX_TYPES: dict[str, Datatype] = {
    "tensor(float)": Datatype.FP32,
    "tensor(double)": Datatype.FP64,
    "tensor(float16)": Datatype.FP16,
    "tensor(int64)": Datatype.INT64,
    "tensor(int32)": Datatype.INT32,
    "tensor(int16)": Datatype.INT16,
    "tensor(int8)": Datatype.INT8,
    "tensor(uint8)": Datatype.UINT8,
    "tensor(uint16)": Datatype.UINT16,
    "tensor(uint32)": Datatype.UINT32,
    "tensor(uint64)": Datatype.UINT64,
    "tensor(bool)": Datatype.BOOL,
    "tensor(string)": Datatype.BYTES,
}


class ModelLoadError(RuntimeError):
    """The model file cannot be served; the message says why (the server refuses to start)."""


class PredictError(ValueError):
    """The model refused this input; answered 400 with the message."""


class Predictor(Protocol):
    """A loaded model: tensors in (by signature input name), tensors out (by output name)."""

    platform: str

    def predict(
        self, inputs: dict[str, npt.NDArray[Any]], wanted: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        """Run the model; return the `wanted` outputs."""
        ...


def verify_digest(model_file: Path, expected_digest: str) -> None:
    """Refuse a file whose sha256 is not the approved one."""
    digest = sha256_file(model_file)
    if digest != expected_digest:
        raise ModelLoadError(
            f"model file {model_file} has digest {digest}, not the approved {expected_digest}"
        )


class SklearnPredictor:
    """A pickled scikit-learn estimator: output 1 is `predict`, output 2 `predict_proba`."""

    platform = "sklearn"

    def __init__(self, model: Any, signature: ModelSignature) -> None:
        self.model = model
        self.index = {spec.name: i for i, spec in enumerate(signature.outputs)}

    def predict(
        self, inputs: dict[str, npt.NDArray[Any]], wanted: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        values = list(inputs.values())
        if len(values) == 1:
            features = values[0]
        else:
            rows = {a.shape[0] if a.ndim else 1 for a in values}
            if len(rows) != 1:
                raise PredictError(f"inputs have different batch sizes {sorted(rows)}")
            features = np.hstack([a.reshape(a.shape[0], -1) for a in values])
        out: dict[str, npt.NDArray[Any]] = {}
        try:
            for name in wanted:
                method = self.model.predict if self.index[name] == 0 else self.model.predict_proba
                out[name] = np.asarray(method(features))
        except (ValueError, TypeError) as exc:
            raise PredictError(f"the model rejected the input: {exc}") from exc
        return out


def load_sklearn(model_file: Path, signature: ModelSignature) -> SklearnPredictor:
    """Unpickle a scikit-learn model (the digest was checked by the caller)."""
    if not signature.inputs or not signature.outputs:
        raise ModelLoadError("the signature declares no inputs or no outputs")
    with model_file.open("rb") as f:
        # Only an approved digest reaches this point: the validator scanned and smoke-tested
        # this exact artifact in its sandbox before approval was possible.
        model = pickle.load(f)  # noqa: S301
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(f"{model_file}: {type(model).__name__} has no predict()")
    if len(signature.outputs) > 1 and not callable(getattr(model, "predict_proba", None)):
        raise ModelLoadError(
            f"{model_file}: the signature declares output {signature.outputs[1].name!r} "
            f"(predict_proba) but {type(model).__name__} has no predict_proba()"
        )
    if len(signature.outputs) > 2:
        raise ModelLoadError(
            f"the signature declares {len(signature.outputs)} outputs; a scikit-learn model "
            "serves at most two (predict, predict_proba)"
        )
    return SklearnPredictor(model, signature)


class OnnxPredictor:
    """An ONNX graph on onnxruntime's CPU provider; inputs and outputs matched by name."""

    platform = "onnxruntime_onnx"

    def __init__(self, session: Any, input_names: dict[str, str], output_names: dict[str, str]):
        self.session = session
        self.input_names = input_names
        self.output_names = output_names

    def predict(
        self, inputs: dict[str, npt.NDArray[Any]], wanted: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        feed = {self.input_names[name]: array for name, array in inputs.items()}
        try:
            results = self.session.run([self.output_names[n] for n in wanted], feed)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
            raise PredictError(f"the model rejected the input: {exc}") from exc
        return {name: np.asarray(value) for name, value in zip(wanted, results, strict=True)}


def _match(kind: str, declared: Sequence[Any], graph: Sequence[Any]) -> dict[str, str]:
    """Signature name -> graph name: by name, or by position when the counts agree."""
    by_name = {node.name: node for node in graph}
    if all(spec.name in by_name for spec in declared):
        pairs = [(spec, by_name[spec.name]) for spec in declared]
    elif len(declared) == len(graph):
        pairs = list(zip(declared, graph, strict=True))
    else:
        raise ModelLoadError(
            f"the signature's {kind}s {[s.name for s in declared]} do not match the ONNX "
            f"graph's {[n.name for n in graph]}"
        )
    for spec, node in pairs:
        onnx_type = ONNX_TYPES.get(node.type)
        if onnx_type is None:
            raise ModelLoadError(
                f"ONNX {kind} {node.name!r} has type {node.type}, which cannot be served as a "
                "tensor (convert classifiers with zipmap=False)"
            )
        if onnx_type is not spec.datatype:
            raise ModelLoadError(
                f"{kind} {spec.name!r} is declared {spec.datatype.value} but the ONNX graph "
                f"expects {onnx_type.value} ({node.type})"
            )
    return {spec.name: node.name for spec, node in pairs}


def load_onnx(model_file: Path, signature: ModelSignature) -> OnnxPredictor:
    """Open an ONNX model with onnxruntime and match it to the signature."""
    import onnxruntime as ort

    if not signature.inputs or not signature.outputs:
        raise ModelLoadError("the signature declares no inputs or no outputs")
    options = ort.SessionOptions()
    # One replica is one process: let processes, not threads, use the cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ModelLoadError(f"{model_file} is not a loadable ONNX model: {exc}") from exc
    inputs = _match("input", signature.inputs, session.get_inputs())
    outputs = _match("output", signature.outputs, session.get_outputs())
    return OnnxPredictor(session, inputs, outputs)


# --------------------------------------------------------------------------- tiny LM

TINY_LM_FORMAT = "paved-tiny-lm/1"
_WORD = re.compile(r"[a-z0-9']+")


class TinyLM:
    """A deterministic bigram language model: greedy, word by word.

    Artifact (JSON): ``{"format": "paved-tiny-lm/1", "bigrams": {"word": "next", ...},
    "max_tokens": 16}``. Generation starts from the last word of the last user message
    and follows the bigram table until it ends or `max_tokens` words are produced. It
    exists so the GenAI path (deployment, OpenAI-compatible endpoint, gateway) can be
    tested end to end with answers a test can compute.
    """

    platform = "paved-tiny-lm"

    def __init__(self, bigrams: dict[str, str], max_tokens: int) -> None:
        self.bigrams = bigrams
        self.max_tokens = max_tokens

    @staticmethod
    def words(text: str) -> list[str]:
        """Lower-case words of `text` (what counts as a token)."""
        return _WORD.findall(text.lower())

    def generate(self, prompt: str, max_tokens: int | None = None) -> tuple[str, str]:
        """The completion of `prompt` and the finish reason (`stop` or `length`)."""
        limit = self.max_tokens if max_tokens is None else min(max_tokens, self.max_tokens)
        words = self.words(prompt)
        word = words[-1] if words else ""
        out: list[str] = []
        while len(out) < limit:
            nxt = self.bigrams.get(word)
            if nxt is None:
                return " ".join(out), "stop"
            out.append(nxt)
            word = nxt
        return " ".join(out), "length"

    def predict(
        self, inputs: dict[str, npt.NDArray[Any]], wanted: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        raise PredictError("a GenAI model answers on /v1/chat/completions, not OIP inference")


def load_tiny_lm(model_file: Path) -> TinyLM:
    """Read a `paved-tiny-lm/1` artifact."""
    try:
        document = json.loads(model_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"{model_file} is not a {TINY_LM_FORMAT} JSON document: {exc}"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != TINY_LM_FORMAT:
        raise ModelLoadError(f"{model_file}: format must be {TINY_LM_FORMAT!r}")
    bigrams = document.get("bigrams")
    max_tokens = document.get("max_tokens", 16)
    if not isinstance(bigrams, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in bigrams.items()
    ):
        raise ModelLoadError(f"{model_file}: 'bigrams' must map words to words")
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
        raise ModelLoadError(f"{model_file}: 'max_tokens' must be an integer in [1, 4096]")
    return TinyLM(bigrams, max_tokens)


def load(
    framework: str, model_file: Path, *, expected_digest: str, signature: ModelSignature
) -> Predictor:
    """Verify the digest, then load `model_file` with the loader of `framework`."""
    if framework not in SERVABLE:
        raise ModelLoadError(
            f"framework {framework!r} cannot be served (supported: {sorted(SERVABLE)})"
        )
    verify_digest(model_file, expected_digest)
    if framework == "sklearn":
        return load_sklearn(model_file, signature)
    if framework == "onnx":
        return load_onnx(model_file, signature)
    return load_tiny_lm(model_file)
