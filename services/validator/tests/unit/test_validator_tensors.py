"""Input synthesis and output checking against declared signatures."""

from __future__ import annotations

import numpy as np
import pytest
from paved_validator.domain.tensors import (
    MAX_ELEMENTS,
    Observed,
    SignatureError,
    check_output,
    concrete_shape,
    synthesize,
)

pytestmark = pytest.mark.unit


def test_variable_dimensions_become_one() -> None:
    assert concrete_shape("x", [-1, 4]) == (1, 4)
    assert concrete_shape("x", [-1, -1, 3]) == (1, 1, 3)
    assert concrete_shape("x", []) == ()


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64)],
)
def test_floats_are_small_and_of_the_declared_width(datatype: str, dtype: type) -> None:
    x = synthesize("x", datatype, [-1, 12])
    assert x.shape == (1, 12)
    assert x.dtype == dtype
    assert np.all(np.abs(x) <= 0.3)
    assert len(np.unique(x)) > 1, "inputs should not be constant"


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("INT8", np.int8), ("INT32", np.int32), ("INT64", np.int64), ("UINT8", np.uint8)],
)
def test_integers_are_zero_or_one(datatype: str, dtype: type) -> None:
    x = synthesize("ids", datatype, [2, 3])
    assert x.shape == (2, 3)
    assert x.dtype == dtype
    assert set(x.ravel().tolist()) == {0, 1}


def test_bools_and_bytes() -> None:
    flags = synthesize("flags", "BOOL", [-1, 4])
    assert flags.dtype == np.bool_
    assert flags.tolist() == [[False, True, False, True]]
    text = synthesize("text", "BYTES", [-1, 2])
    assert text.dtype == object
    assert text.tolist() == [[b"paved", b"paved"]]


def test_unknown_datatype_and_huge_shapes_are_refused_with_the_value() -> None:
    with pytest.raises(SignatureError, match="'COMPLEX128'"):
        synthesize("x", "COMPLEX128", [1])
    with pytest.raises(SignatureError, match=str(MAX_ELEMENTS)):
        synthesize("x", "FP32", [-1, 100_000, 100])


def test_output_matching_shape_and_family_passes() -> None:
    assert check_output("label", "INT64", [-1], Observed("i", "int64", (1,))) is None
    assert check_output("label", "INT32", [-1], Observed("u", "uint8", (5,))) is None
    assert check_output("p", "FP32", [-1, 2], Observed("f", "float64", (1, 2))) is None
    assert check_output("ok", "BOOL", [3], Observed("b", "bool", (3,))) is None
    assert check_output("name", "BYTES", [-1], Observed("U", "<U5", (1,))) is None


def test_output_rank_mismatch_is_named() -> None:
    problem = check_output("probability", "FP32", [-1, 1], Observed("f", "float32", (1,)))
    assert problem == "output 'probability' has shape [1] not [-1, 1]"


def test_output_fixed_dimension_mismatch_is_named() -> None:
    problem = check_output("p", "FP64", [-1, 3], Observed("f", "float64", (1, 2)))
    assert problem == "output 'p' has shape [1, 2] not [-1, 3]"


def test_output_wrong_family_is_named() -> None:
    problem = check_output("label", "INT64", [-1], Observed("f", "float64", (1,)))
    assert problem is not None
    assert "float64 (float)" in problem
    assert "INT64 (integer)" in problem


def test_observed_of_lists_and_arrays() -> None:
    assert Observed.of([1, 2, 3]) == Observed("i", "int64", (3,))
    assert Observed.of(np.zeros((2, 2), dtype=np.float32)) == Observed("f", "float32", (2, 2))
