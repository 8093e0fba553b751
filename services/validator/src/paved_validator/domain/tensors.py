"""Synthesise smoke-test inputs from a declared signature and check observed outputs.

Works on plain values (datatype names, shape lists) rather than the pydantic contract,
because the sandbox runner imports this module and should load as little as possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_ELEMENTS = 1_000_000
"""Largest synthetic input (elements) the smoke test builds; bigger signatures are refused."""

SKLEARN_METHODS = ("predict", "predict_proba")
"""sklearn outputs in declared order: the first comes from `predict`, the second from
`predict_proba`."""

VARIABLE_DIM = -1
"""A variable dimension in a declared shape; the smoke test uses 1 for it."""

_NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}

FAMILIES: dict[str, str] = {
    "BOOL": "bool",
    **dict.fromkeys(("UINT8", "UINT16", "UINT32", "UINT64"), "integer"),
    **dict.fromkeys(("INT8", "INT16", "INT32", "INT64"), "integer"),
    **dict.fromkeys(("FP16", "FP32", "FP64"), "float"),
    "BYTES": "bytes",
}
"""Datatype family of each Open Inference Protocol datatype; outputs are checked by family."""

_KIND_FAMILIES: dict[str, str] = {
    "b": "bool",
    "i": "integer",
    "u": "integer",
    "f": "float",
    "U": "bytes",
    "S": "bytes",
    "O": "bytes",
}


class SignatureError(ValueError):
    """A declared tensor cannot be synthesised (unknown datatype, absurd size)."""


@dataclass(frozen=True)
class Observed:
    """What a model returned for one output: numpy dtype kind and str, and shape."""

    dtype_kind: str
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def of(cls, value: Any) -> Observed:
        """Describe an array-like result (lists become arrays first)."""
        array = np.asarray(value)
        return cls(array.dtype.kind, str(array.dtype), tuple(int(d) for d in array.shape))


def concrete_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    """The shape the smoke test uses: every -1 becomes 1; refuses more than MAX_ELEMENTS."""
    dims = tuple(1 if d == VARIABLE_DIM else int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise SignatureError(f"input {name!r} has a negative dimension in shape {list(shape)}")
    elements = math.prod(dims)
    if elements > MAX_ELEMENTS:
        raise SignatureError(
            f"input {name!r} with shape {list(shape)} needs {elements} elements, "
            f"more than the smoke-test limit of {MAX_ELEMENTS}"
        )
    return dims


def synthesize(name: str, datatype: str, shape: Sequence[int]) -> npt.NDArray[Any]:
    """A small, deterministic input for one declared tensor.

    Floats are small values in [-0.3, 0.3], integers alternate 0/1, booleans alternate
    False/True, BYTES are the bytes b"paved" (an object array, as models expect strings).
    """
    dtype = _NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise SignatureError(f"input {name!r} has unknown datatype {datatype!r}")
    dims = concrete_shape(name, shape)
    n = math.prod(dims)
    index = np.arange(n)
    family = FAMILIES[datatype]
    flat: npt.NDArray[Any]
    if family == "float":
        flat = ((index % 7) - 3).astype(dtype) / 10
    elif family == "integer":
        flat = (index % 2).astype(dtype)
    elif family == "bool":
        flat = (index % 2) == 1
    else:
        flat = np.array([b"paved"] * n, dtype=object)
    return flat.reshape(dims)


def check_output(name: str, datatype: str, shape: Sequence[int], observed: Observed) -> str | None:
    """Why `observed` does not honour the declared output (None when it does).

    Rank must match; fixed dimensions must match; -1 accepts any size; the element type
    must be of the declared datatype's family (float, integer, bool, bytes).
    """
    declared = list(shape)
    got = list(observed.shape)
    if len(got) != len(declared) or any(
        d not in (VARIABLE_DIM, g) for d, g in zip(declared, got, strict=False)
    ):
        return f"output {name!r} has shape {got} not {declared}"
    want_family = FAMILIES.get(datatype)
    if want_family is None:
        return f"output {name!r} declares unknown datatype {datatype!r}"
    got_family = _KIND_FAMILIES.get(observed.dtype_kind, f"unsupported ({observed.dtype})")
    if got_family != want_family:
        return (
            f"output {name!r} has element type {observed.dtype} ({got_family}), "
            f"declared {datatype} ({want_family})"
        )
    return None
