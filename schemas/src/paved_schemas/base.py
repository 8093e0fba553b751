"""Base classes for every event and command payload (the envelope's `data`)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """An immutable contract model that ignores unknown fields.

    Ignoring unknown fields lets a consumer on the previous release read events from a
    producer that already added an optional field (rolling upgrades).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())


class Contract(Frozen):
    """A message payload: the `data` of an envelope, for an event or a command.

    Subclasses set `TYPE` (the CloudEvents `type`, ending in `.v<SCHEMA_VERSION>`),
    `TOPIC` (a constant from `paved_schemas.topics`) and implement `key()`.
    """

    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[str]
    KIND: ClassVar[Literal["event", "command"]]

    @abstractmethod
    def key(self) -> str:
        """The Kafka message key: the aggregate whose messages must stay in order."""

    def default_subject(self) -> str | None:
        """The CloudEvents `subject` used when the producer does not give one."""
        return None


class Event(Contract):
    """Something that happened (past tense). Exactly one service writes its topic."""

    KIND: ClassVar[Literal["event", "command"]] = "event"


class Command(Contract):
    """A request for something to happen (imperative). Exactly one service consumes it."""

    KIND: ClassVar[Literal["event", "command"]] = "command"
