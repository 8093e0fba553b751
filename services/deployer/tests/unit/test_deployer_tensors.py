"""Request tensors checked against a declared signature (OIP v2)."""

from __future__ import annotations

import numpy as np
import pytest
from paved_deployer.domain.tensors import (
    RequestTensor,
    TensorError,
    check_inputs,
    encode_output,
    fit_shape,
)
from paved_schemas.events import ModelSignature, TensorSpec

pytestmark = pytest.mark.unit

SIG = ModelSignature.model_validate(
    {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1, 1]}],
    }
)


def tensor(data: object, shape: list[int], datatype: str = "FP32", name: str = "features"):
    return RequestTensor(name=name, shape=shape, datatype=datatype, data=data)


def test_flat_and_nested_data_give_the_same_array() -> None:
    flat = check_inputs(SIG, [tensor([1, 2, 3, 4, 5, 6], [2, 3])])["features"]
    nested = check_inputs(SIG, [tensor([[1, 2, 3], [4, 5, 6]], [2, 3])])["features"]
    assert flat.shape == (2, 3)
    assert flat.dtype == np.float32
    np.testing.assert_array_equal(flat, nested)
    np.testing.assert_array_equal(flat[1], [4, 5, 6])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (tensor([1, 2, 3], [1, 3], name="feats"), r"input 'feats' is not an input of the model"),
        (tensor([1, 2, 3], [1, 3], datatype="FP64"), r"'features' has datatype 'FP64' but .*FP32"),
        (tensor([1, 2, 3, 4], [1, 4]), r"'features' has shape \[1, 4\] .*dimension 1 must be 3"),
        (tensor([1, 2, 3], [3]), r"'features' has shape \[3\] \(1 dimensions\)"),
        (tensor([1, 2, 3], [2, 3]), r"'features' has 3 elements but shape \[2, 3\] needs 6"),
        (tensor([[1, 2, 3]], [2, 3]), r"nested data has shape \[1, 3\] but .* is \[2, 3\]"),
        (tensor([[1, 2, 3], [4, 5]], [2, 3]), r"'features': nested data is ragged"),
        (tensor([1, "x", 3], [1, 3]), r"'features': element 1 is 'x', not a finite number"),
        (tensor([1, True, 3], [1, 3]), r"element 1 is True, not a finite number"),
        (tensor({"a": 1}, [1, 3]), r"'features': data must be a JSON array"),
        (tensor([1, 2, 3], [-1, 3]), r"dimensions must be >= 0"),
    ],
)
def test_mismatches_name_the_input_and_the_problem(given: RequestTensor, message: str) -> None:
    with pytest.raises(TensorError, match=message):
        check_inputs(SIG, [given])


def test_missing_and_duplicate_inputs_are_refused() -> None:
    with pytest.raises(TensorError, match=r"input 'features' is missing"):
        check_inputs(SIG, [])
    twice = tensor([1, 2, 3], [1, 3])
    with pytest.raises(TensorError, match=r"input 'features' is given more than once"):
        check_inputs(SIG, [twice, twice])


def test_integer_types_check_kind_and_range() -> None:
    sig = ModelSignature.model_validate(
        {
            "inputs": [{"name": "ids", "datatype": "UINT8", "shape": [2]}],
            "outputs": [{"name": "y", "datatype": "BOOL", "shape": [2]}],
        }
    )
    ok = check_inputs(sig, [tensor([0, 255], [2], "UINT8", "ids")])["ids"]
    assert ok.dtype == np.uint8
    with pytest.raises(TensorError, match=r"element 1 is 256, out of range for UINT8"):
        check_inputs(sig, [tensor([0, 256], [2], "UINT8", "ids")])
    with pytest.raises(TensorError, match=r"element 0 is 1.5, not an integer"):
        check_inputs(sig, [tensor([1.5, 2], [2], "UINT8", "ids")])


def test_outputs_take_the_declared_shape_and_type() -> None:
    spec = TensorSpec(name="label", datatype="INT64", shape=[-1, 1])  # type: ignore[arg-type]
    out = encode_output(spec, np.array([2.0, 0.0, 1.0]))
    assert out == {"name": "label", "datatype": "INT64", "shape": [3, 1], "data": [2, 0, 1]}
    # A shape that cannot be honoured is reported as it is, not invented.
    assert fit_shape(np.zeros((2, 3)), [-1, 4]).shape == (2, 3)
    words = TensorSpec(name="w", datatype="BYTES", shape=[-1])  # type: ignore[arg-type]
    assert encode_output(words, np.array(["a", "b"]))["data"] == ["a", "b"]
