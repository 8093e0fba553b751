"""Domain errors: each says what was wrong, with the offending values."""

from __future__ import annotations

from typing import Any

from paved_schemas.events import ModelState


class RegistryError(Exception):
    """Base of every refusal the registry's domain can raise."""

    title = "Request refused"


class UnknownModelError(RegistryError):
    """The named model is not registered."""

    title = "Unknown model"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"model {name!r} is not registered; register the model first")


class UnknownVersionError(RegistryError):
    """The named model version is not registered."""

    title = "Unknown model version"

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        super().__init__(f"model version {name!r} version {version} is not registered")


class UnknownDeploymentError(RegistryError):
    """No deployment has this id."""

    title = "Unknown deployment"

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        super().__init__(f"deployment {deployment_id!r} is not known to the registry")


class ModelExistsError(RegistryError):
    """A model of that name exists already."""

    title = "Model exists"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"model {name!r} is already registered; choose another name")


class VersionConflictError(RegistryError):
    """The version number is taken by a different artifact (digests are immutable)."""

    title = "Version exists with another digest"

    def __init__(self, name: str, version: int, existing_digest: str, new_digest: str) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"model {name!r} version {version} is registered with digest {existing_digest}, "
            f"not {new_digest}; a version's artifact never changes, register a new version"
        )


class IdempotencyConflictError(RegistryError):
    """An idempotency key (request id) was reused for a different request."""

    title = "Idempotency key reused"

    def __init__(self, request_id: str, existing: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"request id {request_id!r} was already used for a different registration "
            f"({existing}); send a new key for a new request"
        )


class DigestMismatchError(RegistryError):
    """An event refers to a version with a digest other than the registered one."""

    title = "Artifact digest mismatch"

    def __init__(self, name: str, version: int, registered: str, received: str) -> None:
        super().__init__(
            f"model {name!r} version {version} is registered with digest {registered}, "
            f"but the event names {received}"
        )


class StateConflictError(RegistryError):
    """The version's lifecycle state does not allow the requested action."""

    title = "Not allowed in the current state"

    def __init__(self, name: str, version: int, state: ModelState, action: str) -> None:
        self.state = state
        super().__init__(f"model {name!r} version {version} is {state.value!r}; cannot {action}")


class ManualTransitionError(RegistryError):
    """A person asked for a state that only the platform's own events may set."""

    title = "State set by the platform"

    def __init__(self, to_state: ModelState) -> None:
        self.to_state = to_state
        super().__init__(
            f"state {to_state.value!r} cannot be requested: it follows from validation, "
            "approval and deployment events; request 'deprecated' or 'retired'"
        )


class PreconditionFailedError(RegistryError):
    """The client's ETag (If-Match) is not the record's current one: someone else changed it."""

    title = "Precondition failed"

    def __init__(self, what: str, given: str, current: str) -> None:
        self.current = current
        super().__init__(
            f"{what} changed since you read it: If-Match {given} but the current ETag is "
            f"{current}; read it again and re-apply your change"
        )


class PreconditionRequiredError(RegistryError):
    """An update came without If-Match (optimistic concurrency is mandatory)."""

    title = "Precondition required"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"updating {what} needs an If-Match header with the ETag you read "
            "(GET it first); this prevents overwriting someone else's change"
        )


class UnknownAliasError(RegistryError):
    """The model has no such alias."""

    title = "Unknown alias"

    def __init__(self, name: str, alias: str) -> None:
        self.name = name
        self.alias = alias
        super().__init__(f"model {name!r} has no alias {alias!r}")


class ProtectedAliasError(RegistryError):
    """A protected alias may only point to an approved (or deployed) version."""

    title = "Protected alias"

    def __init__(self, name: str, alias: str, version: int, state: ModelState) -> None:
        super().__init__(
            f"alias {alias!r} of model {name!r} is protected: it can only point to an approved "
            f"or deployed version, and version {version} is {state.value!r}"
        )


class ReasonRequiredError(RegistryError):
    """A change that must be justified came without a reason (21 CFR 11.10(e))."""

    title = "Reason required"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs a reason: send a non-blank 'reason'")


class ImmutableRecordError(RegistryError):
    """A request to delete or rename a record the registry keeps forever."""

    title = "Records are kept"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class InvalidChangeError(RegistryError):
    """A change that is well-formed but not acceptable (e.g. too many tags)."""

    title = "Invalid change"

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        super().__init__(f"{field}: {detail}")


class BadQueryError(RegistryError):
    """A query (or query parameter) that cannot be run: names the parameter and the value."""

    title = "Invalid query"

    def __init__(self, parameter: str, value: Any, detail: str) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(f"{parameter}: {detail} (got {value!r})")


class InvalidParameterError(BadQueryError):
    """A request parameter the registry cannot accept: names it and its value."""

    title = "Invalid parameter"
