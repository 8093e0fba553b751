"""Open Inference Protocol v2 tensors checked against a model's declared signature.

Pure functions (numpy only): the model server turns request tensors into arrays with
`check_inputs` and model results into response tensors with `encode_output`. Every
refusal is a `TensorError` whose message names the input and what was wrong with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from paved_schemas.events import Datatype, ModelSignature, TensorSpec

NUMPY_DTYPES: dict[Datatype, Any] = {
    Datatype.BOOL: np.bool_,
    Datatype.UINT8: np.uint8,
    Datatype.UINT16: np.uint16,
    Datatype.UINT32: np.uint32,
    Datatype.UINT64: np.uint64,
    Datatype.INT8: np.int8,
    Datatype.INT16: np.int16,
    Datatype.INT32: np.int32,
    Datatype.INT64: np.int64,
    Datatype.FP16: np.float16,
    Datatype.FP32: np.float32,
    Datatype.FP64: np.float64,
    Datatype.BYTES: np.object_,
}
"""numpy element type of each OIP v2 datatype (BYTES travel as Python strings)."""

_INTEGER = {
    Datatype.UINT8,
    Datatype.UINT16,
    Datatype.UINT32,
    Datatype.UINT64,
    Datatype.INT8,
    Datatype.INT16,
    Datatype.INT32,
    Datatype.INT64,
}
_FLOAT = {Datatype.FP16, Datatype.FP32, Datatype.FP64}


class TensorError(ValueError):
    """A request tensor does not match the signature; the message names input and problem."""


@dataclass(frozen=True)
class RequestTensor:
    """One input tensor of an inference request, as received (not yet checked)."""

    name: str
    shape: Sequence[int]
    datatype: str
    data: Any


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _flatten(name: str, data: Any) -> tuple[list[Any], list[int] | None]:
    """Leaves of `data` in row-major order, and its nested shape (None when flat)."""
    if not isinstance(data, list):
        raise TensorError(f"input {name!r}: data must be a JSON array, got {_short(data)}")
    if not any(isinstance(item, list) for item in data):
        return list(data), None
    if not all(isinstance(item, list) for item in data):
        raise TensorError(f"input {name!r}: data mixes nested arrays and scalars")
    leaves: list[Any] = []
    inner_shape: list[int] | None = None
    for index, item in enumerate(data):
        item_leaves, item_shape = _flatten(name, item)
        this_shape = [len(item)] if item_shape is None else item_shape
        if inner_shape is None:
            inner_shape = this_shape
        elif this_shape != inner_shape:
            raise TensorError(
                f"input {name!r}: nested data is ragged (row {index} has shape {this_shape}, "
                f"row 0 has {inner_shape})"
            )
        leaves.extend(item_leaves)
    return leaves, [len(data), *(inner_shape or [])]


def _check_elements(name: str, datatype: Datatype, leaves: list[Any]) -> None:
    for index, value in enumerate(leaves):
        if datatype is Datatype.BOOL:
            ok = isinstance(value, bool)
            kind = "a boolean"
        elif datatype in _INTEGER:
            ok = isinstance(value, int) and not isinstance(value, bool)
            kind = "an integer"
            if ok:
                info = np.iinfo(NUMPY_DTYPES[datatype])
                if not info.min <= value <= info.max:
                    raise TensorError(
                        f"input {name!r}: element {index} is {value}, out of range for "
                        f"{datatype.value} [{info.min}, {info.max}]"
                    )
        elif datatype in _FLOAT:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
            kind = "a finite number"
        else:
            ok = isinstance(value, str)
            kind = "a string"
        if not ok:
            raise TensorError(
                f"input {name!r}: element {index} is {_short(value)}, not {kind} ({datatype.value})"
            )


def _fast_array(  # noqa: PLR0911 - every early return hands over to the precise checker
    datatype: Datatype, shape: list[int], data: Any
) -> npt.NDArray[Any] | None:
    """numpy's own conversion when it is exact; None sends the tensor to the precise checker.

    Exact for numeric tensors of JSON numbers: numpy infers an integer or float dtype
    only when every leaf is one (strings, nulls and ragged rows give another kind or
    raise), ranges and finiteness are checked on the array. Booleans mixed into numbers
    would be coerced, so callers pass `fast=False` when the body contains any.
    """
    if (datatype not in _INTEGER and datatype not in _FLOAT) or not isinstance(data, list):
        return None
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        return None
    kind = array.dtype.kind
    target = NUMPY_DTYPES[datatype]
    if datatype in _FLOAT:
        if kind not in "fiu":
            return None
        array = array.astype(target, copy=False)
        if array.size and not np.isfinite(array).all():
            return None
    else:
        if kind not in "iu":
            return None
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            return None
        array = array.astype(target, copy=False)
    if array.size != math.prod(shape) or (array.ndim > 1 and list(array.shape) != shape):
        return None
    return array.reshape(shape)


def check_tensor(
    spec: TensorSpec, tensor: RequestTensor, *, fast: bool = False
) -> npt.NDArray[Any]:
    """The array for one input, or `TensorError` naming the input and the problem."""
    name = tensor.name
    if tensor.datatype != spec.datatype.value:
        raise TensorError(
            f"input {name!r} has datatype {tensor.datatype!r} but the model expects "
            f"{spec.datatype.value}"
        )
    shape = list(tensor.shape)
    if any(dim < 0 for dim in shape):
        raise TensorError(f"input {name!r} has shape {shape}; dimensions must be >= 0")
    if len(shape) != len(spec.shape):
        raise TensorError(
            f"input {name!r} has shape {shape} ({len(shape)} dimensions) but the model "
            f"expects {spec.shape} ({len(spec.shape)} dimensions)"
        )
    for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if want not in (-1, got):
            raise TensorError(
                f"input {name!r} has shape {shape} but the model expects {spec.shape} "
                f"(dimension {axis} must be {want})"
            )
    if fast:
        array = _fast_array(spec.datatype, shape, tensor.data)
        if array is not None:
            return array
    leaves, nested_shape = _flatten(name, tensor.data)
    if nested_shape is not None and nested_shape != shape:
        raise TensorError(
            f"input {name!r}: nested data has shape {nested_shape} but the tensor's shape "
            f"is {shape}"
        )
    needed = math.prod(shape)
    if len(leaves) != needed:
        raise TensorError(
            f"input {name!r} has {len(leaves)} elements but shape {shape} needs {needed}"
        )
    _check_elements(name, spec.datatype, leaves)
    return np.array(leaves, dtype=NUMPY_DTYPES[spec.datatype]).reshape(shape)


def check_inputs(
    signature: ModelSignature,
    tensors: Sequence[RequestTensor],
    *,
    model: str = "the model",
    fast: bool = False,
) -> dict[str, npt.NDArray[Any]]:
    """Arrays for every declared input, in signature order; `TensorError` on any mismatch."""
    declared = {spec.name: spec for spec in signature.inputs}
    given: dict[str, RequestTensor] = {}
    for tensor in tensors:
        if tensor.name in given:
            raise TensorError(f"input {tensor.name!r} is given more than once")
        if tensor.name not in declared:
            raise TensorError(
                f"input {tensor.name!r} is not an input of {model}; expected {sorted(declared)}"
            )
        given[tensor.name] = tensor
    missing = [name for name in declared if name not in given]
    if missing:
        raise TensorError(f"input {missing[0]!r} is missing (the model expects {list(declared)})")
    return {name: check_tensor(spec, given[name], fast=fast) for name, spec in declared.items()}


def _check_head(spec: TensorSpec, name: str, datatype: str, shape: list[int]) -> None:
    if datatype != spec.datatype.value:
        raise TensorError(
            f"input {name!r} has datatype {datatype!r} but the model expects {spec.datatype.value}"
        )
    if (
        len(shape) != len(spec.shape)
        or any(want not in (-1, got) for got, want in zip(shape, spec.shape, strict=True))
        or any(dim < 0 for dim in shape)
    ):
        raise TensorError(f"input {name!r} has shape {shape} but the model expects {spec.shape}")


def deserialize_bytes(name: str, raw: bytes) -> list[str]:
    """Triton's BYTES encoding: each element is a 4-byte little-endian length and the bytes."""
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise TensorError(f"input {name!r}: truncated BYTES element at offset {pos}")
        size = int.from_bytes(raw[pos : pos + 4], "little")
        pos += 4
        if pos + size > len(raw):
            raise TensorError(f"input {name!r}: BYTES element at offset {pos} overruns the data")
        out.append(raw[pos : pos + size].decode("utf-8", errors="replace"))
        pos += size
    return out


def serialize_bytes(values: Sequence[Any]) -> bytes:
    """The inverse of `deserialize_bytes`."""
    parts = []
    for value in values:
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(data).to_bytes(4, "little") + data)
    return b"".join(parts)


def check_binary(spec: TensorSpec, name: str, datatype: str, shape: list[int], raw: bytes
                 ) -> npt.NDArray[Any]:  # fmt: skip
    """The array of a tensor sent with Triton's binary extension, checked like JSON ones."""
    _check_head(spec, name, datatype, shape)
    needed = math.prod(shape)
    if spec.datatype is Datatype.BYTES:
        values = deserialize_bytes(name, raw)
        if len(values) != needed:
            raise TensorError(
                f"input {name!r} has {len(values)} elements but shape {shape} needs {needed}"
            )
        return np.array(values, dtype=np.object_).reshape(shape)
    dtype = np.dtype(NUMPY_DTYPES[spec.datatype]).newbyteorder("<")
    if len(raw) != needed * dtype.itemsize:
        raise TensorError(
            f"input {name!r} has {len(raw)} bytes of binary data but shape {shape} of "
            f"{spec.datatype.value} needs {needed * dtype.itemsize}"
        )
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if spec.datatype in _FLOAT and array.size and not np.isfinite(array).all():
        raise TensorError(f"input {name!r}: binary data contains NaN or infinity")
    return array


def encode_binary(spec: TensorSpec, array: npt.NDArray[Any]) -> tuple[dict[str, Any], bytes]:
    """A response tensor header and its bytes under Triton's binary extension."""
    shaped = fit_shape(np.asarray(array), spec.shape)
    if spec.datatype is Datatype.BYTES:
        raw = serialize_bytes(shaped.reshape(-1).tolist())
    else:
        dtype = np.dtype(NUMPY_DTYPES[spec.datatype]).newbyteorder("<")
        raw = np.ascontiguousarray(shaped.astype(dtype)).tobytes()
    header = {
        "name": spec.name,
        "datatype": spec.datatype.value,
        "shape": list(shaped.shape),
        "parameters": {"binary_data_size": len(raw)},
    }
    return header, raw


def fit_shape(array: npt.NDArray[Any], declared: Sequence[int]) -> npt.NDArray[Any]:
    """`array` reshaped to the declared output shape when the sizes allow, else unchanged.

    scikit-learn's `predict` returns shape `[n]` where signatures often declare `[-1, 1]`.
    """
    if list(array.shape) == list(declared) or declared.count(-1) > 1:
        return array
    try:
        return array.reshape(tuple(declared))
    except ValueError:
        return array


def encode_output(spec: TensorSpec, array: npt.NDArray[Any]) -> dict[str, Any]:
    """A response tensor (OIP v2 JSON, flat data) for `array` under the declared spec."""
    shaped = fit_shape(np.asarray(array), spec.shape)
    if spec.datatype is Datatype.BYTES:
        data: list[Any] = [str(v) for v in shaped.reshape(-1).tolist()]
    else:
        data = shaped.astype(NUMPY_DTYPES[spec.datatype]).reshape(-1).tolist()
    return {
        "name": spec.name,
        "datatype": spec.datatype.value,
        "shape": list(shaped.shape),
        "data": data,
    }
