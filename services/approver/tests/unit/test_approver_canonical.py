"""RFC 8785 canonical JSON and the version hash signatures bind to."""

from __future__ import annotations

import json
from typing import Any

import pytest
from paved_approver.domain.canonical import CanonicalizationError, canonical_json
from paved_approver.domain.version_hash import version_hash
from paved_schemas.events import ModelVersionRegistered

pytestmark = pytest.mark.unit


def test_objects_sort_keys_and_drop_whitespace() -> None:
    assert canonical_json({"b": [1, {"z": None, "a": True}], "a": "x"}) == (
        b'{"a":"x","b":[1,{"a":true,"z":null}]}'
    )


def test_rfc8785_sorting_example() -> None:
    # RFC 8785 section 3.2.3: keys ordered by UTF-16 code units.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (0.91, "0.91"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e16, "15000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (123456789.125, "123456789.125"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (333333333.3333332, "333333333.3333332"),
    ],
)
def test_numbers_use_the_ecmascript_form(number: float, text: str) -> None:
    assert canonical_json(number) == text.encode()


def test_strings_escape_like_json_stringify() -> None:
    assert canonical_json('a"\\\n\x01\u20ac\u2028') == '"a\\"\\\\\\n\\u0001\u20ac\u2028"'.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: "x"}, {"s": {1, 2}}])
def test_values_without_a_json_form_are_refused(bad: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(bad)


def test_agrees_with_the_rfc8785_reference_package_when_installed() -> None:
    rfc8785 = pytest.importorskip("rfc8785")
    value = {
        "metrics": {"auc": 0.91, "big": 1e22, "tiny": 3e-9, "int": 7},
        "name": "caf\u00e9 \U0001f600",
        "list": [None, True, False, -0.5],
        "\u20ac": 1,
        "\ufb33": 2,
        "\U0001f600": 3,
    }
    assert canonical_json(value) == rfc8785.dumps(value)


def registration(**changes: Any) -> ModelVersionRegistered:
    base: dict[str, Any] = {
        "model_name": "churn",
        "version": 3,
        "artifact_uri": "file:///models/churn/3/model.onnx",
        "artifact_digest": "sha256:" + "0" * 64,
        "framework": "onnx",
        "signature": {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        },
        "model_card": {
            "description": "d",
            "intended_use": "u",
            "limitations": "l",
            "risk_tier": "medium",
            "data_classification": "internal",
            "license": "MIT",
            "metrics": {"auc": 0.91},
        },
        "registered_by": "alice",
        "registered_by_name": "Alice Scientist",
        "request_id": "r-1",
    }
    base.update(changes)
    return ModelVersionRegistered.model_validate(base)


def test_version_hash_covers_content_not_bookkeeping() -> None:
    h = version_hash(registration())
    assert h.startswith("sha256:")
    assert len(h) == 7 + 64
    # Who registered it, where the bytes live, tags: not what an approver signs.
    assert version_hash(registration(registered_by="zed", request_id="r-2", tags={"a": "b"})) == h
    assert version_hash(registration(artifact_uri="s3://elsewhere/model.onnx")) == h
    # Any change to the artifact, the card, the signature or the identity changes it.
    assert version_hash(registration(artifact_digest="sha256:" + "1" * 64)) != h
    assert version_hash(registration(version=4)) != h
    assert version_hash(registration(model_name="churn2")) != h
    card = registration().model_card.model_dump(mode="json") | {"risk_tier": "high"}
    assert version_hash(registration(model_card=card)) != h
    sig = registration().signature.model_dump(mode="json")
    sig["inputs"][0]["shape"] = [-1, 3]
    assert version_hash(registration(signature=sig)) != h


def test_version_hash_is_the_sha256_of_the_canonical_document() -> None:
    import hashlib

    reg = registration()
    doc = reg.model_dump(mode="json")
    expected = {
        k: doc[k] for k in ("model_name", "version", "artifact_digest", "model_card", "signature")
    }
    assert version_hash(reg) == "sha256:" + hashlib.sha256(canonical_json(expected)).hexdigest()
