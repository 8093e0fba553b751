"""The format allowlist: which artifact kinds the validator accepts, and their structure.

- ``sklearn``: a pickle (``.pkl``/``.pickle``) whose imports meet the allowlist in
  :mod:`paved_validator.domain.pickles`; loaded only in the sandbox, after scanning.
- ``onnx``: an ONNX protobuf (``.onnx``), checked with ``onnx.checker``, no external
  data files, operators only from the standard domains.
- ``safetensors``: a ``.safetensors`` file whose header is parsed here (bounded JSON,
  known dtypes, offsets that tile the data exactly); no code can hide in it.

Anything else (joblib, PyTorch, Keras, archives, ...) is refused with the reason.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath

from paved_schemas.events import Framework


class Kind(StrEnum):
    """What the validator knows how to load."""

    PICKLE = "pickle"
    ONNX = "onnx"
    SAFETENSORS = "safetensors"


SUFFIXES: dict[Framework, dict[str, Kind]] = {
    Framework.SKLEARN: {".pkl": Kind.PICKLE, ".pickle": Kind.PICKLE},
    Framework.ONNX: {".onnx": Kind.ONNX},
    Framework.SAFETENSORS: {".safetensors": Kind.SAFETENSORS},
}
"""The allowlist: per framework, the file suffixes accepted and how they are loaded."""

NOT_SCANNABLE = {
    ".joblib": "joblib files cannot be parsed by the pickle scanners; save a plain pickle "
    "(pickle.dump) or convert to ONNX (skl2onnx)",
    ".pt": "PyTorch pickles are not accepted; export to ONNX or save weights as safetensors",
    ".pth": "PyTorch pickles are not accepted; export to ONNX or save weights as safetensors",
    ".bin": "raw .bin weights are not accepted; use safetensors",
    ".h5": "Keras/HDF5 files are not accepted; export to ONNX",
    ".keras": "Keras archives are not accepted; export to ONNX",
    ".zip": "archives are not accepted; register the model file itself",
}

ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


class FormatError(ValueError):
    """The artifact is not on the allowlist or not well-formed; the message says why."""


def kind_for(framework: Framework, filename: str) -> Kind:
    """How an artifact of ``framework`` named ``filename`` is loaded; FormatError if refused."""
    suffix = PurePath(filename).suffix.lower()
    accepted = SUFFIXES.get(framework)
    if accepted is None:
        supported = ", ".join(f.value for f in SUFFIXES)
        raise FormatError(
            f"framework {framework.value!r} is not on the format allowlist (accepted: {supported})"
        )
    if suffix in accepted:
        return accepted[suffix]
    hint = NOT_SCANNABLE.get(suffix)
    allowed = ", ".join(sorted(accepted))
    raise FormatError(
        f"{framework.value} artifact {filename!r} has suffix {suffix or '(none)'!r}; only "
        f"{allowed} accepted" + (f" ({hint})" if hint else "")
    )


@dataclass(frozen=True)
class SafetensorsInfo:
    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]

    def describe(self) -> str:
        params = sum(_prod(shape) for _, shape in self.tensors.values())
        return f"safetensors: {len(self.tensors)} tensors, {params} parameters"


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def check_safetensors(path: Path) -> SafetensorsInfo:  # noqa: PLR0912 - one branch per rule
    """Parse and bound-check a safetensors header without trusting any of it."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise FormatError(f"safetensors file is {size} bytes, too short for a header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
            raise FormatError(f"safetensors header length {n} does not fit the {size}-byte file")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise FormatError("safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise FormatError("safetensors __metadata__ must map strings to strings")
    data_len = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"safetensors tensor {name!r} has a malformed entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise FormatError(f"safetensors tensor {name!r} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise FormatError(f"safetensors tensor {name!r} has a bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets)):  # fmt: skip
            raise FormatError(f"safetensors tensor {name!r} has bad offsets {offsets!r}")
        start, end = offsets
        if not 0 <= start <= end <= data_len:
            raise FormatError(
                f"safetensors tensor {name!r} spans bytes {start}..{end}, outside the "
                f"{data_len}-byte data section"
            )
        if end - start != _prod(tuple(shape)) * SAFETENSORS_DTYPES[dtype]:
            raise FormatError(
                f"safetensors tensor {name!r} ({dtype} {shape}) does not match its "
                f"{end - start}-byte span"
            )
        spans.append((start, end, name))
        tensors[name] = (dtype, tuple(shape))
    cursor = 0
    for start, end, name in sorted(spans):
        if start != cursor:
            raise FormatError(
                f"safetensors data section has a gap or overlap at byte {cursor} ({name!r})"
            )
        cursor = end
    if cursor != data_len:
        raise FormatError(f"safetensors data section has {data_len - cursor} unaccounted bytes")
    return SafetensorsInfo(tensors, metadata)


def check_onnx(path: Path) -> str:
    """Load and check an ONNX model's structure (no execution); return a summary."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise FormatError(f"not a readable ONNX model: {type(exc).__name__}: {exc}") from exc
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise FormatError(
                f"ONNX initializer {tensor.name!r} refers to external data; embed it in the file"
            )
    domains = {op.domain for op in model.opset_import} | {node.domain for node in model.graph.node}
    if extra := sorted(domains - ONNX_DOMAINS):
        raise FormatError(
            f"ONNX model uses operator domain(s) {extra}; only the standard ones "
            f"({', '.join(repr(d) for d in sorted(ONNX_DOMAINS))}) are accepted"
        )
    if model.functions:
        raise FormatError("ONNX model defines local functions; they are not accepted")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise FormatError(f"ONNX checker rejected the model: {exc}") from exc
    opsets = ", ".join(f"{op.domain or 'ai.onnx'} {op.version}" for op in model.opset_import)
    return (
        f"ONNX IR {model.ir_version}, opsets {opsets}, {len(model.graph.node)} nodes, "
        f"{len(model.graph.input)} inputs, {len(model.graph.output)} outputs"
    )
