"""Deployment status rules, the admission gate and the reconciler's plan, as pure functions.

A deployment has a *desired* state (running or stopped, set by commands and events)
and an *actual* status (the `DeploymentStatus` published on every transition). The
reconciler compares both, plus what a probe of the serving process says, and picks
one `Action`; the I/O lives elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from paved_schemas.events import DeploymentStatus

S = DeploymentStatus

TRANSITIONS: Mapping[DeploymentStatus | None, frozenset[DeploymentStatus]] = MappingProxyType(
    {
        None: frozenset({S.PENDING}),
        S.PENDING: frozenset({S.PENDING, S.PROVISIONING, S.FAILED, S.RETIRED}),
        S.PROVISIONING: frozenset({S.PENDING, S.READY, S.FAILED, S.RETIRED}),
        # ready -> provisioning: the server died and is restarted (a new revision).
        S.READY: frozenset({S.PENDING, S.PROVISIONING, S.FAILED, S.RETIRED}),
        S.FAILED: frozenset({S.PENDING}),
        S.RETIRED: frozenset({S.PENDING}),
        S.ROLLED_BACK: frozenset({S.PENDING, S.RETIRED}),
    }
)
"""Allowed status changes; `pending` is entered only by a new rollout (a new revision)."""

ACTIVE = frozenset({S.PENDING, S.PROVISIONING, S.READY})
"""Statuses in which the deployer still owes the deployment some work or a server."""


class InvalidTransitionError(ValueError):
    """A status change the rules forbid; names both statuses."""


def check_transition(current: DeploymentStatus | None, new: DeploymentStatus) -> None:
    """Raise `InvalidTransitionError` unless `current -> new` is allowed."""
    if new not in TRANSITIONS[current]:
        allowed = sorted(s.value for s in TRANSITIONS[current])
        raise InvalidTransitionError(
            f"a deployment cannot go from {current.value if current else 'nothing'} to "
            f"{new.value}; allowed: {allowed}"
        )


def is_new_rollout(
    current: tuple[str, int, str, Mapping[str, object]] | None,
    requested: tuple[str, int, str, Mapping[str, object]],
    status: DeploymentStatus | None,
    desired: str | None,
) -> bool:
    """Whether a deployment request starts a new revision.

    A request repeating exactly what an active deployment already runs (model, version,
    digest, spec) is a no-op; anything else — a change, or a retry after failure or
    retirement — is a new rollout.
    """
    if current is None or status is None:
        return True
    return not (current == requested and status in ACTIVE and desired == "running")


# --------------------------------------------------------------------------- admission


@dataclass(frozen=True)
class Registration:
    """What the registry said about a model version (ModelVersionRegistered)."""

    artifact_uri: str
    artifact_digest: str
    framework: str


@dataclass(frozen=True)
class Approval:
    """The latest approval decision seen for one (model, version, digest)."""

    state: Literal["approved", "revoked"]
    reason: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Admit:
    """Every fact is known and allows the deployment."""


@dataclass(frozen=True)
class Wait:
    """A fact is still missing (events from other topics may arrive later)."""

    reason: str


@dataclass(frozen=True)
class Refuse:
    """The deployment must fail; `reason` names the digest and the cause."""

    reason: str


Admission = Admit | Wait | Refuse


def admission(  # noqa: PLR0911 - a decision table reads best as early returns
    *,
    model_name: str,
    version: int,
    digest: str,
    registration: Registration | None,
    approval: Approval | None,
    retired_reason: str | None,
    waited_s: float,
    wait_limit_s: float,
    now: datetime,
    frameworks: Collection[str],
    target: str,
) -> Admission:
    """Decide whether a pending deployment may be provisioned now, later, or never."""
    what = f"artifact digest {digest} of {model_name} version {version}"
    if retired_reason is not None:
        return Refuse(f"{model_name} version {version} is retired ({retired_reason}); {digest} "
                      "cannot be deployed")  # fmt: skip
    if approval is not None and approval.state == "revoked":
        return Refuse(f"{what} is not approved: {approval.reason or 'approval revoked'}")
    if registration is not None:
        if registration.artifact_digest != digest:
            return Refuse(
                f"{what} does not match the registered digest {registration.artifact_digest}"
            )
        if registration.framework not in frameworks:
            return Refuse(
                f"{what}: framework {registration.framework!r} cannot be served by the "
                f"{target} target (supported: {sorted(frameworks)})"
            )
    if approval is not None and approval.expires_at is not None and approval.expires_at <= now:
        return Refuse(f"{what} is not approved: the approval expired at "
                      f"{approval.expires_at.isoformat()}")  # fmt: skip
    if approval is not None and registration is not None:
        return Admit()
    missing = []
    if approval is None:
        missing.append("no approval seen")
    if registration is None:
        missing.append("no registration seen")
    if waited_s >= wait_limit_s:
        return Refuse(f"{what} is not approved: {' and '.join(missing)} within "
                      f"{wait_limit_s:g} s of the request")  # fmt: skip
    return Wait(f"{what}: {' and '.join(missing)} yet")


# --------------------------------------------------------------------------- reconcile plan


class Probe(StrEnum):
    """What a probe of a deployment's serving process found."""

    READY = "ready"
    NOT_READY = "not_ready"
    GONE = "gone"
    NONE = "none"
    """No process is recorded for the deployment."""


class Action(StrEnum):
    """What the reconciler does with one deployment in one pass."""

    KEEP = "keep"
    """Nothing to do: actual matches desired (a live ready server is adopted as is)."""
    ADMIT = "admit"
    """Evaluate the admission gate; provision, wait, or fail."""
    MARK_READY = "mark_ready"
    """Provisioning was interrupted after the server came up: publish ready."""
    REPROVISION = "reprovision"
    """Provisioning was interrupted before the server was ready: start over, same revision."""
    RESTART = "restart"
    """A ready deployment's server is gone or stuck: a new revision, provisioning again."""
    RETIRE = "retire"
    """Desired stopped: stop the server, publish retired."""
    RELEASE = "release"
    """A stray server of a failed/retired deployment: stop it, status unchanged."""


def plan(  # noqa: PLR0911 - a decision table reads best as early returns
    *,
    desired: str,
    status: DeploymentStatus,
    probe: Probe,
    unready_streak: int = 0,
    unready_limit: int = 5,
) -> Action:
    """The next step for one deployment (no provisioning of it is in flight)."""
    if desired == "stopped":
        if status in ACTIVE:
            return Action.RETIRE
        return Action.KEEP if probe is Probe.NONE else Action.RELEASE
    if status is S.PENDING:
        return Action.ADMIT
    if status is S.PROVISIONING:
        return Action.MARK_READY if probe is Probe.READY else Action.REPROVISION
    if status is S.READY:
        if probe is Probe.READY:
            return Action.KEEP
        if probe is Probe.NOT_READY and unready_streak < unready_limit:
            return Action.KEEP
        return Action.RESTART
    return Action.KEEP if probe is Probe.NONE else Action.RELEASE
