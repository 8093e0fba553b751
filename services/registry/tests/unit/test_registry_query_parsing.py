"""Pure parsing: MLflow filter strings and order_by, discovery cursors, ETag checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from paved_registry.curation import check_if_match, etag
from paved_registry.domain.errors import (
    BadQueryError,
    PreconditionFailedError,
    PreconditionRequiredError,
)
from paved_registry.mlflow_compat import Clause, normalise_source, parse_filter, parse_order_by
from paved_registry.search import VERSION_SORTS, decode_cursor, encode_cursor

pytestmark = pytest.mark.unit


def test_mlflow_filters_the_client_sends_are_parsed() -> None:
    assert parse_filter(None) == []
    assert parse_filter("name = 'churn' AND tag.`mlflow.prompt.is_prompt` != 'true'") == [
        Clause("name", "=", ("churn",)),
        Clause("tags.mlflow.prompt.is_prompt", "!=", ("true",)),
    ]
    assert parse_filter("name ilike '%Ch_rn%' and tags.team = \"fraud\"") == [
        Clause("name", "ILIKE", ("%Ch_rn%",)),
        Clause("tags.team", "=", ("fraud",)),
    ]
    assert parse_filter("run_id IN ('a', 'b') AND version_number = 3") == [
        Clause("run_id", "IN", ("a", "b")),
        Clause("version_number", "=", ("3",)),
    ]
    assert parse_filter("name = 'it\\'s'") == [Clause("name", "=", ("it's",))]


@pytest.mark.parametrize(
    "text", ["name", "name = ", "name = 'a' OR name = 'b'", "name = 'a' AND", "= 'x'"]
)
def test_unparseable_filters_name_the_rest(text: str) -> None:
    with pytest.raises(BadQueryError) as refused:
        parse_filter(text)
    assert refused.value.parameter == "filter"
    assert "cannot parse" in str(refused.value)


def test_order_by() -> None:
    mapping = {"name": ("name", "-name"), "last_updated_timestamp": ("updated_at", "-updated_at")}
    assert parse_order_by([], mapping, "name") == "name"
    assert parse_order_by(["name DESC"], mapping, "x") == "-name"
    assert parse_order_by(["last_updated_timestamp", "name ASC"], mapping, "x") == "updated_at"
    with pytest.raises(BadQueryError, match="order by one of"):
        parse_order_by(["size DESC"], mapping, "x")


def test_sources() -> None:
    assert normalise_source("/models/m.onnx") == "file:///models/m.onnx"
    assert normalise_source("s3://b/k.onnx") == "s3://b/k.onnx"
    for bad in ("runs:/abc/model", "models:/m/1", "relative/path", " "):
        with pytest.raises(BadQueryError) as refused:
            normalise_source(bad)
        assert refused.value.parameter == "source"


def test_cursors_round_trip_and_refuse_what_they_were_not_issued_for() -> None:
    sort = VERSION_SORTS["-registered_at"]
    key = [datetime(2025, 3, 14, 9, 26, 53, 123456, tzinfo=UTC), "churn", 7]
    cursor = encode_cursor("-registered_at", key)
    assert decode_cursor(cursor, "-registered_at", sort) == key
    with pytest.raises(BadQueryError, match="issued for sort '-registered_at'"):
        decode_cursor(cursor, "name", VERSION_SORTS["name"])
    for bad in ("x", "e30", encode_cursor("-registered_at", ["not a time", "a", 1])):
        with pytest.raises(BadQueryError) as refused:
            decode_cursor(bad, "-registered_at", sort)
        assert refused.value.parameter == "cursor"


def test_if_match() -> None:
    check_if_match(None, 3, "m", required=False)
    check_if_match('"3"', 3, "m", required=True)
    check_if_match('"2", "3"', 3, "m", required=True)
    check_if_match("*", 3, "m", required=True)
    with pytest.raises(PreconditionRequiredError):
        check_if_match(None, 3, "m", required=True)
    with pytest.raises(PreconditionFailedError, match='current ETag is "3"'):
        check_if_match('"2"', 3, "m", required=True)
    with pytest.raises(PreconditionFailedError):
        check_if_match("*", None, "alias", required=False)
    assert etag(4) == '"4"'
