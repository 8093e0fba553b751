"""Domain errors: each says what was wrong, with the offending values."""

from __future__ import annotations

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
