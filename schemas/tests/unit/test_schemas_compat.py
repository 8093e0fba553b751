"""The compatibility checker: every rule catches its break, every allowed change passes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from paved_schemas import CONTRACTS
from paved_schemas.compat import Incompatibility, check_compatibility
from paved_schemas.jsonschema import envelope_schema
from pydantic import BaseModel, Field

pytestmark = pytest.mark.unit


def _issues(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return [str(i) for i in check_compatibility(old.model_json_schema(), new.model_json_schema())]


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class FewerColors(StrEnum):
    RED = "red"


class MoreColors(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Inner(BaseModel):
    x: int
    y: str = "y"


class InnerWithoutY(BaseModel):
    x: int


class V1(BaseModel):
    name: Annotated[str, Field(max_length=10, pattern=r"^[a-z]+$")]
    count: int
    level: int = 0
    note: str | None = None
    color: Color
    items: list[Inner] = []


def test_identical_schemas_are_compatible() -> None:
    assert _issues(V1, V1) == []


def test_removed_field_is_a_break() -> None:
    class V2(BaseModel):
        name: Annotated[str, Field(max_length=10, pattern=r"^[a-z]+$")]
        count: int
        level: int = 0
        color: Color
        items: list[Inner] = []

    assert _issues(V1, V2) == ["$.note: property was removed"]


def test_retyped_field_is_a_break() -> None:
    class V2(V1):
        count: str  # type: ignore[assignment]

    assert _issues(V1, V2) == ["$.count: type changed from ['integer'] to ['string']"]


def test_new_required_field_is_a_break() -> None:
    class V2(V1):
        owner: str

    assert _issues(V1, V2) == ["$.owner: new property is required"]


def test_optional_field_becoming_required_is_a_break() -> None:
    class V2(V1):
        level: int

    assert _issues(V1, V2) == ["$.level: optional property became required"]


def test_removed_enum_value_is_a_break() -> None:
    class V2(V1):
        color: FewerColors  # type: ignore[assignment]

    assert _issues(V1, V2) == ["$.color: enum values ['green'] were removed"]


def test_tightened_max_length_is_a_break() -> None:
    class V2(V1):
        name: Annotated[str, Field(max_length=5, pattern=r"^[a-z]+$")]

    assert _issues(V1, V2) == ["$.name: maxLength tightened from 10 to 5"]


def test_changed_pattern_is_a_break_even_when_looser() -> None:
    class V2(V1):
        name: Annotated[str, Field(max_length=10, pattern=r"^[a-z0-9]+$")]

    assert _issues(V1, V2) == ["$.name: pattern changed from '^[a-z]+$' to '^[a-z0-9]+$'"]


def test_added_constraint_is_a_break() -> None:
    class V2(V1):
        count: Annotated[int, Field(ge=0)]

    assert _issues(V1, V2) == ["$.count: minimum tightened from none to 0"]


def test_changed_const_is_a_break() -> None:
    class Old(BaseModel):
        kind: Literal["a"]

    class New(BaseModel):
        kind: Literal["b"]

    assert _issues(Old, New) == ["$.kind: const changed from 'a' to 'b'"]


def test_changed_default_is_a_break() -> None:
    class V2(V1):
        level: int = 1

    assert _issues(V1, V2) == ["$.level: default changed from 0 to 1"]


def test_removed_union_branch_is_a_break() -> None:
    class V2(V1):
        note: str

    issues = _issues(V1, V2)
    assert "$.note: union branch of type 'null' was removed" in issues
    assert "$.note: optional property became required" in issues


def test_break_inside_a_nested_model_names_the_nested_path() -> None:
    class V2(V1):
        items: list[InnerWithoutY] = []  # type: ignore[assignment]

    assert _issues(V1, V2) == ["$.items[*].y: property was removed"]


def test_break_inside_an_optional_nested_model_is_reported_in_detail() -> None:
    class Old(BaseModel):
        inner: Inner | None = None

    class New(BaseModel):
        inner: InnerWithoutY | None = None

    assert _issues(Old, New) == ["$.inner.y: property was removed"]


def test_dict_values_are_checked() -> None:
    class Old(BaseModel):
        tags: dict[str, Annotated[str, Field(max_length=100)]]

    class New(BaseModel):
        tags: dict[str, Annotated[str, Field(max_length=99)]]

    assert _issues(Old, New) == ["$.tags.*: maxLength tightened from 100 to 99"]


def test_new_optional_field_is_allowed() -> None:
    class V2(V1):
        owner: str | None = None
        weight: float = 1.0

    assert _issues(V1, V2) == []


def test_added_enum_value_is_allowed() -> None:
    class V2(V1):
        color: MoreColors  # type: ignore[assignment]

    assert _issues(V1, V2) == []


def test_loosened_constraints_and_widened_types_are_allowed() -> None:
    class V2(V1):
        name: Annotated[str, Field(max_length=20, pattern=r"^[a-z]+$")]
        count: float  # type: ignore[assignment]
        level: int | None = 0  # type: ignore[assignment]

    assert _issues(V1, V2) == []


def test_added_union_branch_is_allowed() -> None:
    class V2(V1):
        note: str | int | None = None  # type: ignore[assignment]

    assert _issues(V1, V2) == []


def test_unknown_keywords_are_breaking_when_they_differ() -> None:
    old: dict[str, Any] = {"type": "object", "dependentRequired": {"a": ["b"]}}
    new: dict[str, Any] = {"type": "object", "dependentRequired": {"a": ["c"]}}
    assert check_compatibility(old, new) == [
        Incompatibility(
            "$", "keyword 'dependentRequired' changed and the checker cannot prove it compatible"
        )
    ]


def test_recursive_schemas_terminate() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    assert _issues(Node, Node) == []


def test_descriptions_and_examples_may_change() -> None:
    class Old(BaseModel):
        a: int = Field(description="old", examples=[1])

    class New(BaseModel):
        a: int = Field(description="new", examples=[2], title="A!")

    assert _issues(Old, New) == []


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.__name__)
def test_every_current_schema_is_compatible_with_itself(contract: Any) -> None:
    schema = envelope_schema(contract)
    assert check_compatibility(schema, schema) == []


def test_a_real_schema_break_is_caught_through_refs() -> None:
    from paved_schemas.events import ModelVersionRegistered

    old = envelope_schema(ModelVersionRegistered)
    new = envelope_schema(ModelVersionRegistered)
    del new["$defs"]["ModelCard"]["properties"]["license"]
    new["$defs"]["RiskTier"]["enum"].remove("critical")

    assert [str(i) for i in check_compatibility(old, new)] == [
        "$.data.model_card.risk_tier: enum values ['critical'] were removed",
        "$.data.model_card.license: property was removed",
    ]
