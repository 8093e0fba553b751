"""The envelope: building, serialising and parsing, and the errors a bad message gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from paved_schemas import (
    CONTRACTS,
    Contract,
    ContractError,
    Envelope,
    dataschema_uri,
    parse_envelope,
    parse_envelope_as,
)
from paved_schemas.events import ModelVersionRegistered, ModelVersionRetired
from paved_schemas.jsonschema import example_data
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def _retired() -> ModelVersionRetired:
    return ModelVersionRetired(
        model_name="churn-classifier", version=3, reason="superseded", retired_by="alice"
    )


def _envelope(**overrides: Any) -> Envelope[ModelVersionRetired]:
    return Envelope.new(
        _retired(), source="/paved/registry", actor="user:alice", actorname="Alice", **overrides
    )


def _wire(**changes: Any) -> bytes:
    document = json.loads(_envelope().to_json_bytes())
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.__name__)
def test_every_contract_round_trips_through_the_wire(contract: type[Contract]) -> None:
    data = contract.model_validate(example_data(contract))
    sent = Envelope.new(data, source="/paved/test", actor="service:test", actorname="Test")

    received = parse_envelope(sent.to_json_bytes())

    assert received == sent
    assert type(received.data) is contract
    assert received.type == contract.TYPE
    assert received.schemaversion == contract.SCHEMA_VERSION
    assert received.dataschema == dataschema_uri(contract.TYPE)
    assert received.data.key()
    assert received.to_json_bytes() == sent.to_json_bytes()


def test_new_fills_attributes_from_the_data_class() -> None:
    envelope = _envelope()

    assert envelope.specversion == "1.0"
    assert envelope.type == "dev.paved.model.version.retired.v1"
    assert envelope.subject == "models/churn-classifier/versions/3"
    assert envelope.correlationid == envelope.id  # a new workflow starts with this event
    assert envelope.causationid is None
    assert envelope.time.tzinfo is UTC
    assert envelope.datacontenttype == "application/json"


def test_a_caused_event_carries_the_correlation_and_causation_of_its_cause() -> None:
    cause = _envelope()
    effect = _envelope(cause=cause, subject="models/churn-classifier")

    assert effect.correlationid == cause.correlationid
    assert effect.causationid == cause.id
    assert effect.id != cause.id
    assert effect.subject == "models/churn-classifier"


def test_absent_optional_attributes_are_omitted_not_null() -> None:
    document = json.loads(_envelope().to_json_bytes())

    for name in ("causationid", "traceparent", "tracestate"):
        assert name not in document
    assert document["data"]["model_name"] == "churn-classifier"


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ContractError, match=r"time: Input should have timezone info"):
        parse_envelope(_wire(time="2025-03-14T09:26:53"))


def test_aware_datetimes_are_normalised_to_utc() -> None:
    envelope = parse_envelope(_wire(time="2025-03-14T10:26:53+01:00"))

    assert envelope.time == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert envelope.time.utcoffset() == timedelta(0)
    assert b'"time":"2025-03-14T09:26:53Z"' in envelope.to_json_bytes()


def test_naive_datetime_in_python_is_rejected_too() -> None:
    with pytest.raises(ValidationError):
        Envelope[ModelVersionRetired](
            source="/x",
            type=ModelVersionRetired.TYPE,
            schemaversion=1,
            correlationid="c",
            actor="user:a",
            actorname="A",
            time=datetime(2025, 1, 1),  # naive on purpose
            data=_retired(),
        )
    other_zone = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=5)))
    assert _envelope().model_copy(update={"time": other_zone}).time.hour == 12  # no revalidation
    assert parse_envelope(_wire(time=other_zone.isoformat())).time.hour == 7


def test_unknown_attributes_and_fields_are_ignored_for_rolling_upgrades() -> None:
    document = json.loads(_envelope().to_json_bytes())
    document["newextension"] = "from a newer producer"
    document["data"]["new_optional_field"] = 42

    envelope = parse_envelope(json.dumps(document).encode())

    assert envelope == _envelope().model_copy(
        update={"id": document["id"], "time": envelope.time, "correlationid": document["id"]}
    )


def test_envelopes_and_payloads_are_frozen() -> None:
    envelope = _envelope()
    with pytest.raises(ValidationError, match="frozen"):
        envelope.id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        envelope.data.version = 4  # type: ignore[misc]


def test_bad_json_names_the_problem_and_the_bytes() -> None:
    with pytest.raises(ContractError, match=r"not valid JSON .*b'\{oops'"):
        parse_envelope(b"{oops")


def test_non_utf8_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="not valid JSON"):
        parse_envelope(b"\xff\xfe")


def test_a_json_array_is_not_an_envelope() -> None:
    with pytest.raises(ContractError, match=r"not a JSON object: \[1, 2\]"):
        parse_envelope(b"[1, 2]")


def test_missing_type_is_named() -> None:
    with pytest.raises(ContractError, match=r"no string 'type' attribute \(got None\)"):
        parse_envelope(b'{"id": "x"}')


def test_unknown_type_is_named() -> None:
    with pytest.raises(ContractError, match=r"unknown event type 'dev.paved.model.exploded.v1'"):
        parse_envelope(_wire(type="dev.paved.model.exploded.v1"))


def test_invalid_field_names_the_path_and_the_value() -> None:
    document = json.loads(_envelope().to_json_bytes())
    document["data"]["model_name"] = "Churn Classifier!"
    document["data"]["version"] = 0

    with pytest.raises(ContractError) as caught:
        parse_envelope(json.dumps(document).encode())

    message = str(caught.value)
    assert f"invalid dev.paved.model.version.retired.v1 event '{document['id']}'" in message
    assert "data.model_name: String should match pattern" in message
    assert "(got 'Churn Classifier!')" in message
    assert "data.version: Input should be greater than or equal to 1 (got 0)" in message


def test_missing_field_is_named() -> None:
    document = json.loads(_envelope().to_json_bytes())
    del document["data"]["retired_by"]
    del document["actor"]

    with pytest.raises(ContractError, match=r"actor: Field required.*data.retired_by: Field"):
        parse_envelope(json.dumps(document).encode())


def test_bad_actor_is_named() -> None:
    with pytest.raises(ContractError, match=r"actor: String should match pattern .*'alice'"):
        parse_envelope(_wire(actor="alice"))


def test_wrong_specversion_is_named() -> None:
    with pytest.raises(ContractError, match=r"specversion: Input should be '1.0' \(got '0.3'\)"):
        parse_envelope(_wire(specversion="0.3"))


def test_schemaversion_must_match_the_type() -> None:
    with pytest.raises(ContractError, match=r"schemaversion: .* is schema version 1 \(got 2\)"):
        parse_envelope(_wire(schemaversion=2))


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(ContractError) as caught:
        parse_envelope(_wire(actor="x" * 10_000))
    assert len(str(caught.value)) < 600


def test_parse_as_checks_the_type() -> None:
    raw = _envelope().to_json_bytes()

    assert parse_envelope_as(raw, ModelVersionRetired).data.retired_by == "alice"
    with pytest.raises(ContractError, match=r"expected event type 'dev\.paved\.model\.version"):
        parse_envelope_as(raw, ModelVersionRegistered)


def test_new_reports_bad_attributes_as_contract_errors() -> None:
    with pytest.raises(ContractError, match=r"cannot build .* actor: .*\(got 'alice'\)"):
        Envelope.new(_retired(), source="/paved/registry", actor="alice", actorname="Alice")
