"""The one envelope around every event and command: CloudEvents 1.0, structured JSON mode.

Field names are the attribute names on the wire. Paved's own attributes are CloudEvents
extension attributes, hence lowercase letters and digits only (`correlationid`, not
`correlation_id`). See docs/adr/0002-event-envelope.md.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
)

from paved_schemas._types import UtcDatetime
from paved_schemas.base import Contract
from paved_schemas.registry import EVENT_TYPES

DataT = TypeVar("DataT", bound=Contract)
ContractT = TypeVar("ContractT", bound=Contract)

SCHEMA_BASE_URI = "https://paved.dev/schemas/"
"""Prefix of every `dataschema` and JSON Schema `$id`: `<prefix><type>.json`."""

# Optional attributes are omitted rather than sent as null: CloudEvents SDKs treat a
# present attribute as set, and some reject null for string attributes.
_OPTIONAL_ATTRIBUTES = frozenset(
    {"subject", "dataschema", "causationid", "traceparent", "tracestate"}
)


def dataschema_uri(event_type: str) -> str:
    """The `dataschema` URI (and JSON Schema `$id`) of an event type."""
    return f"{SCHEMA_BASE_URI}{event_type}.json"


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class ContractError(ValueError):
    """A message does not honour the event contract; the message says what and where."""


class Envelope(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event carrying one Paved event or command as `data`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"] = Field(
        default="1.0", description="CloudEvents specification version.", examples=["1.0"]
    )
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default_factory=_new_id,
        description="Unique id of this event (a UUID4); consumers deduplicate on it.",
        examples=["7f1b8f52-8c2b-4c8a-9a3e-5d2f1c0b9e77"],
    )
    source: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")] = (
        Field(
            description="URI-reference of the producing service.",
            examples=["/paved/registry"],
        )
    )
    type: Annotated[
        str, StringConstraints(max_length=256, pattern=r"^dev\.paved\.[a-z0-9.]+\.v[0-9]+$")
    ] = Field(
        description="Event type, reverse-DNS and versioned; selects the `data` schema.",
        examples=["dev.paved.model.version.registered.v1"],
    )
    subject: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None,
        description="The resource the event is about, within the source.",
        examples=["models/churn-classifier/versions/3"],
    )
    time: UtcDatetime = Field(
        default_factory=_now,
        description="When the occurrence happened, UTC (naive times are rejected).",
        examples=["2025-03-14T09:26:53Z"],
    )
    datacontenttype: Literal["application/json"] = Field(
        default="application/json",
        description="Media type of `data`.",
        examples=["application/json"],
    )
    dataschema: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None,
        description="URI of the JSON Schema `data` conforms to.",
        examples=["https://paved.dev/schemas/dev.paved.model.version.registered.v1.json"],
    )
    schemaversion: Annotated[int, Field(ge=1)] = Field(
        description="Extension: version of the `data` schema, equal to the `.vN` of `type`.",
        examples=[1],
    )
    correlationid: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Extension: id shared by every event of one workflow (the first event's id).",
        examples=["0b7e6a1c-3f2e-4d7a-9a51-2f0c6f9d8e11"],
    )
    causationid: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="Extension: `id` of the event that caused this one.",
        examples=["3c9d2e1f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"],
    )
    actor: Annotated[str, StringConstraints(max_length=256, pattern=r"^(user|service):\S+$")] = (
        Field(
            description="Extension: who caused the event, 'user:<id>' or 'service:<name>'.",
            examples=["user:alice", "service:validator"],
        )
    )
    actorname: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Extension: printed name of the actor (21 CFR Part 11 audit trail).",
        examples=["Alice Scientist", "Paved validator"],
    )
    traceparent: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None,
        description="Extension: W3C Trace Context `traceparent` of the producing span.",
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    )
    tracestate: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        default=None,
        description="Extension: W3C Trace Context `tracestate`.",
        examples=["paved=t61rcWkgMzE"],
    )
    data: DataT = Field(
        description="The event or command payload, as selected by `type`.",
        examples=[
            {
                "model_name": "churn-classifier",
                "version": 3,
                "reason": "superseded by version 4",
                "retired_by": "alice",
            }
        ],
    )

    @model_serializer(mode="wrap")
    def _omit_absent_attributes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = cast(dict[str, Any], handler(self))
        return {
            name: value
            for name, value in dumped.items()
            if value is not None or name not in _OPTIONAL_ATTRIBUTES
        }

    @classmethod
    def new(
        cls,
        data: ContractT,
        *,
        source: str,
        actor: str,
        actorname: str,
        correlationid: str | None = None,
        causationid: str | None = None,
        subject: str | None = None,
        cause: Envelope[Any] | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Envelope[ContractT]:
        """Wrap `data` in a new envelope; type, schema version and dataschema come from its class.

        `cause`, when given, supplies `correlationid` and `causationid` (explicit arguments
        win). Without either, the event starts a new workflow: `correlationid` is its own id.
        `subject` defaults to `data.default_subject()`.
        """
        contract = type(data)
        event_id = _new_id()
        if cause is not None:
            correlationid = correlationid or cause.correlationid
            causationid = causationid or cause.id
        envelope_class = cast(type[Envelope[ContractT]], Envelope[contract])  # type: ignore[valid-type]
        try:
            return envelope_class(
                id=event_id,
                source=source,
                type=contract.TYPE,
                subject=subject if subject is not None else data.default_subject(),
                dataschema=dataschema_uri(contract.TYPE),
                schemaversion=contract.SCHEMA_VERSION,
                correlationid=correlationid or event_id,
                causationid=causationid,
                actor=actor,
                actorname=actorname,
                traceparent=traceparent,
                tracestate=tracestate,
                data=data,
            )
        except ValidationError as exc:
            raise ContractError(_describe(exc, f"cannot build a {contract.TYPE} envelope")) from exc

    def to_json_bytes(self) -> bytes:
        """The structured-mode CloudEvents JSON (UTF-8) of this envelope."""
        return self.model_dump_json().encode()


def _shorten(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _describe(exc: ValidationError, what: str) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "(envelope)"
        problems.append(f"{path}: {error['msg']} (got {_shorten(error.get('input'))})")
    return f"{what}: " + "; ".join(problems)


def parse_envelope(raw: bytes) -> Envelope[Any]:
    """Parse a structured-mode CloudEvent into the typed envelope its `type` selects.

    Raises `ContractError` naming the problem and the offending value: bytes that are not
    a JSON object, a missing or unknown `type`, or any field that fails validation.
    """
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"message is not valid JSON ({exc}): {_shorten(raw)}") from exc
    if not isinstance(document, dict):
        raise ContractError(f"message is not a JSON object: {_shorten(document)}")
    event_type = document.get("type")
    if not isinstance(event_type, str):
        raise ContractError(f"message has no string 'type' attribute (got {_shorten(event_type)})")
    contract = EVENT_TYPES.get(event_type)
    if contract is None:
        raise ContractError(
            f"unknown event type {event_type!r}; this release knows {len(EVENT_TYPES)} types, "
            "see paved_schemas.registry.EVENT_TYPES"
        )
    return _validate(raw, document, contract)


def parse_envelope_as(raw: bytes, contract: type[ContractT]) -> Envelope[ContractT]:
    """Like `parse_envelope`, but the message must be of type `contract.TYPE`."""
    envelope = parse_envelope(raw)
    if not isinstance(envelope.data, contract):
        raise ContractError(f"expected event type {contract.TYPE!r}, got {envelope.type!r}")
    return cast(Envelope[ContractT], envelope)


def _validate(raw: bytes, document: dict[str, Any], contract: type[Contract]) -> Envelope[Any]:
    envelope_class: type[Envelope[Any]] = Envelope[contract]  # type: ignore[valid-type]
    try:
        # JSON mode, not the already-decoded dict: JSON's rules for types apply.
        envelope = envelope_class.model_validate_json(raw)
    except ValidationError as exc:
        event_id = _shorten(document.get("id"))
        raise ContractError(_describe(exc, f"invalid {contract.TYPE} event {event_id}")) from exc
    if envelope.schemaversion != contract.SCHEMA_VERSION:
        raise ContractError(
            f"schemaversion: {contract.TYPE} is schema version {contract.SCHEMA_VERSION} "
            f"(got {envelope.schemaversion})"
        )
    return envelope
