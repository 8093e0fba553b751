"""Paved's event contract: the CloudEvents envelope, every event and command, the topics."""

from paved_schemas.base import Command, Contract, Event
from paved_schemas.envelope import (
    ContractError,
    Envelope,
    dataschema_uri,
    parse_envelope,
    parse_envelope_as,
)
from paved_schemas.registry import CONTRACTS, EVENT_TYPES

__all__ = [
    "CONTRACTS",
    "EVENT_TYPES",
    "Command",
    "Contract",
    "ContractError",
    "Envelope",
    "Event",
    "dataschema_uri",
    "parse_envelope",
    "parse_envelope_as",
]
