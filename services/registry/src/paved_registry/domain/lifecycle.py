"""The lifecycle state machine of a model version, as pure code.

Legal transitions::

    (none)            -> registered
    registered        -> validating
    validating        -> validated | validation_failed
    validated         -> pending_approval
    pending_approval  -> approved | rejected
    approved          -> deployed
    deployed          -> deprecated
    pending_approval | approved | deployed -> validated   (approval expired)
    any state but retired -> retired

Facts arrive from several topics, and Kafka orders messages only within one topic
and key, so the registry can learn a later fact first (an ``ApprovalGranted``
before the ``ModelVersionValidated`` it implies). ``plan`` therefore answers, for
the current state and a fact, the states to enter in order: the implied
intermediate ones first, then the fact's own target. A fact the version has
already moved past is stale and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Final

from paved_schemas.events import ModelState

S = ModelState

TRANSITIONS: Final[Mapping[ModelState | None, frozenset[ModelState]]] = MappingProxyType(
    {
        None: frozenset({S.REGISTERED}),
        S.REGISTERED: frozenset({S.VALIDATING, S.RETIRED}),
        S.VALIDATING: frozenset({S.VALIDATED, S.VALIDATION_FAILED, S.RETIRED}),
        S.VALIDATED: frozenset({S.PENDING_APPROVAL, S.RETIRED}),
        S.VALIDATION_FAILED: frozenset({S.RETIRED}),
        S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.VALIDATED, S.RETIRED}),
        S.APPROVED: frozenset({S.DEPLOYED, S.VALIDATED, S.RETIRED}),
        S.REJECTED: frozenset({S.RETIRED}),
        S.DEPLOYED: frozenset({S.DEPRECATED, S.VALIDATED, S.RETIRED}),
        S.DEPRECATED: frozenset({S.RETIRED}),
        S.RETIRED: frozenset(),
    }
)
"""Every legal transition: from-state (None for a new version) -> states it may enter."""

DEPLOYABLE: Final = frozenset({S.APPROVED, S.DEPLOYED})
"""States in which a deployment may be requested."""

ALIAS_PROTECTABLE: Final = frozenset({S.APPROVED, S.DEPLOYED})
"""States of a version a protected alias (e.g. ``champion``) may point to."""

MANUAL_TARGETS: Final = frozenset({S.DEPRECATED, S.RETIRED})
"""States a person may request directly; every other state follows from the facts
the validator, approver and deployers publish."""


class IllegalTransitionError(ValueError):
    """A transition the lifecycle does not allow; the message names both states."""

    def __init__(self, from_state: ModelState | None, to_state: ModelState) -> None:
        self.from_state = from_state
        self.to_state = to_state
        allowed = sorted(s.value for s in TRANSITIONS[from_state])
        source = "(new version)" if from_state is None else repr(from_state.value)
        super().__init__(
            f"illegal lifecycle transition {source} -> {to_state.value!r}; "
            f"from there only {allowed or 'nothing'} is allowed"
        )


def is_legal(from_state: ModelState | None, to_state: ModelState) -> bool:
    """Whether the lifecycle allows moving from ``from_state`` to ``to_state``."""
    return to_state in TRANSITIONS[from_state]


def check_transition(from_state: ModelState | None, to_state: ModelState) -> None:
    """Raise ``IllegalTransitionError`` unless ``from_state -> to_state`` is legal."""
    if not is_legal(from_state, to_state):
        raise IllegalTransitionError(from_state, to_state)


class Fact(StrEnum):
    """Something the registry learned about a version that may move its state."""

    VALIDATION_PASSED = "validation_passed"
    VALIDATION_FAILED = "validation_failed"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GRANTED = "approval_granted"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    DEPLOYMENT_READY = "deployment_ready"
    RETIREMENT = "retirement"


_TO_APPROVAL = (S.REGISTERED, S.VALIDATING, S.VALIDATED, S.PENDING_APPROVAL)

# The one path from `registered` to each forward-moving fact's target: a fact implies
# every state before its target on its path.
PATHS: Final[Mapping[Fact, tuple[ModelState, ...]]] = MappingProxyType(
    {
        Fact.VALIDATION_PASSED: (S.REGISTERED, S.VALIDATING, S.VALIDATED),
        Fact.VALIDATION_FAILED: (S.REGISTERED, S.VALIDATING, S.VALIDATION_FAILED),
        Fact.APPROVAL_REQUESTED: _TO_APPROVAL,
        Fact.APPROVAL_GRANTED: (*_TO_APPROVAL, S.APPROVED),
        Fact.APPROVAL_REJECTED: (*_TO_APPROVAL, S.REJECTED),
        Fact.DEPLOYMENT_READY: (*_TO_APPROVAL, S.APPROVED, S.DEPLOYED),
    }
)

_EXPIRABLE = frozenset({S.PENDING_APPROVAL, S.APPROVED, S.DEPLOYED})


@dataclass(frozen=True)
class Plan:
    """What a fact does to a version: the states to enter in order, or why nothing."""

    steps: tuple[ModelState, ...] = ()
    ignored: str | None = None

    @property
    def changes(self) -> bool:
        return bool(self.steps)


def plan(current: ModelState, fact: Fact, *, approval_lapsed: bool = False) -> Plan:  # noqa: PLR0911
    """The transitions ``fact`` causes for a version in state ``current``.

    ``approval_lapsed`` tells whether an approval of this version has expired before:
    a deployment that became ready then is no proof of a current approval, so it no
    longer implies one (a fresh ``ApprovalGranted`` must be seen first).
    """
    if fact is Fact.RETIREMENT:
        if current is S.RETIRED:
            return Plan(ignored="the version is already retired")
        return Plan((S.RETIRED,))
    if current is S.RETIRED:
        return Plan(ignored="the version is retired; its state no longer changes")
    if fact is Fact.APPROVAL_EXPIRED:
        if current in _EXPIRABLE:
            return Plan((S.VALIDATED,))
        return Plan(ignored=f"no approval to expire in state {current.value!r}")
    path = PATHS[fact]
    target = path[-1]
    if current is target:
        return Plan(ignored=f"the version is already {target.value!r}")
    if current not in path:
        return Plan(
            ignored=f"stale: the version is {current.value!r}, past or beside "
            f"{target.value!r} that this fact leads to"
        )
    steps = path[path.index(current) + 1 :]
    if approval_lapsed and S.APPROVED in steps[:-1]:
        return Plan(
            ignored="an earlier approval of this version expired; a ready deployment "
            "does not imply a new approval"
        )
    for before, after in pairwise((current, *steps)):
        check_transition(before, after)
    return Plan(steps)


_IMPLIED_BY: Final[Mapping[ModelState, str]] = MappingProxyType(
    {
        S.VALIDATING: "validation must have started",
        S.VALIDATED: "validation must have passed",
        S.PENDING_APPROVAL: "an approval must have been requested",
        S.APPROVED: "the version must have been approved",
    }
)


def implied_reason(state: ModelState, event_type: str, event_id: str) -> str:
    """The recorded reason for entering ``state`` only because a later fact implies it."""
    why = _IMPLIED_BY.get(state, f"the version must have been {state.value}")
    return f"implied by {event_type} {event_id} (received out of order): {why}"
