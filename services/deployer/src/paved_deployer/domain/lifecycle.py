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
        # pending -> rolled_back: a rollout refused while an earlier revision keeps serving.
        S.PENDING: frozenset({S.PENDING, S.PROVISIONING, S.FAILED, S.ROLLED_BACK, S.RETIRED}),
        S.PROVISIONING: frozenset({S.PENDING, S.READY, S.FAILED, S.ROLLED_BACK, S.RETIRED}),
        # ready/rolled_back -> failed: a serving revision died and could not be restarted.
        S.READY: frozenset({S.PENDING, S.FAILED, S.RETIRED}),
        S.ROLLED_BACK: frozenset({S.PENDING, S.FAILED, S.RETIRED}),
        S.FAILED: frozenset({S.PENDING}),
        S.RETIRED: frozenset({S.PENDING}),
    }
)
"""Allowed status changes; `pending` is entered only by a new rollout (a new revision)."""

ACTIVE = frozenset({S.PENDING, S.PROVISIONING, S.READY, S.ROLLED_BACK})
"""Statuses in which the deployer still owes the deployment some work or a server."""

SERVING = frozenset({S.READY, S.ROLLED_BACK})
"""Statuses in which the deployment's endpoint answers (from its serving revisions)."""


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
    digest, spec) is a no-op; anything else — a change, or a retry after a failure, a
    rollback or a retirement — is a new rollout.
    """
    if current is None or status is None:
        return True
    in_hand = status in (S.PENDING, S.PROVISIONING, S.READY)
    return not (current == requested and in_hand and desired == "running")


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
class Validation:
    """The latest validation result seen for one (model, version, digest)."""

    passed: bool
    reasons: str | None = None


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
    validation: Validation | None,
    retired_reason: str | None,
    waited_s: float,
    wait_limit_s: float,
    now: datetime,
    frameworks: Collection[str],
    target: str,
) -> Admission:
    """Decide whether a pending deployment may be provisioned now, later, or never.

    Admitted only with a registration, a passed validation and a valid approval of
    exactly this digest. A missing fact is waited for (events of other topics arrive
    in any order) up to `wait_limit_s` after the request, then refused.
    """
    what = f"artifact digest {digest} of {model_name} version {version}"
    if retired_reason is not None:
        return Refuse(f"{model_name} version {version} is retired ({retired_reason}); {digest} "
                      "cannot be deployed")  # fmt: skip
    if approval is not None and approval.state == "revoked":
        return Refuse(f"{what} is not approved: {approval.reason or 'approval revoked'}")
    if validation is not None and not validation.passed:
        return Refuse(f"{what} did not pass validation: {validation.reasons or 'failed'}")
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
    if approval is not None and registration is not None and validation is not None:
        return Admit()
    missing = []
    if validation is None:
        missing.append("no passed validation seen")
    if approval is None:
        missing.append("no approval seen")
    if registration is None:
        missing.append("no registration seen")
    if waited_s >= wait_limit_s:
        return Refuse(f"{what} cannot be admitted: {' and '.join(missing)} within "
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
    """Nothing to do: actual matches desired (live ready servers are adopted as they are)."""
    ADMIT = "admit"
    """Evaluate the admission gate; provision, wait, or fail."""
    MARK_READY = "mark_ready"
    """Provisioning was interrupted after the servers came up: route to them, publish ready."""
    REPROVISION = "reprovision"
    """Provisioning was interrupted before the servers were ready: start over, same revision."""
    RESTART = "restart"
    """A serving revision lost a replica or is stuck: replace it (new servers, then re-route)."""
    RETIRE = "retire"
    """Desired stopped: remove the endpoint, stop every server, publish retired."""
    RELEASE = "release"
    """Stray servers or an endpoint of a failed/retired deployment: stop them, status unchanged."""


def plan(  # noqa: PLR0911 - a decision table reads best as early returns
    *,
    desired: str,
    status: DeploymentStatus,
    probe: Probe,
    unready_streak: int = 0,
    unready_limit: int = 5,
) -> Action:
    """The next step for one deployment (no provisioning of it is in flight).

    `probe` is about the in-flight revision while pending/provisioning, and about the
    worst of the serving revisions while ready/rolled back; for failed/retired ones it
    says whether anything at all is left running (`NONE`: nothing).
    """
    if desired == "stopped":
        if status in ACTIVE:
            return Action.RETIRE
        return Action.KEEP if probe is Probe.NONE else Action.RELEASE
    if status is S.PENDING:
        return Action.ADMIT
    if status is S.PROVISIONING:
        return Action.MARK_READY if probe is Probe.READY else Action.REPROVISION
    if status in SERVING:
        if probe is Probe.READY:
            return Action.KEEP
        if probe is Probe.NOT_READY and unready_streak < unready_limit:
            return Action.KEEP
        return Action.RESTART
    return Action.KEEP if probe is Probe.NONE else Action.RELEASE


# --------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Share:
    """One revision's share of a deployment's traffic, in percent."""

    revision: int
    weight: int


def split(current: list[Share], new_revision: int, canary_weight: int) -> list[Share]:
    """The traffic split once `new_revision` is ready (KServe's canary semantics).

    A full rollout (weight 100), or a first one, takes all traffic. A canary takes its
    weight from the *stable* revision — the one holding the most traffic now — which
    keeps the rest; any earlier canary is dropped. The result always sums to 100.
    """
    others = [s for s in current if s.revision != new_revision]
    if canary_weight >= 100 or not others:
        return [Share(new_revision, 100)]
    stable = max(others, key=lambda s: (s.weight, s.revision))
    if canary_weight <= 0:
        return [Share(stable.revision, 100), Share(new_revision, 0)]
    return [Share(stable.revision, 100 - canary_weight), Share(new_revision, canary_weight)]


def replicas_for(replicas: int, min_replicas: int | None, max_replicas: int | None) -> int:
    """How many replicas to start: the requested count within the autoscaling bounds
    (at least one: a revision with no replica could never become ready)."""
    count = replicas
    if max_replicas is not None:
        count = min(count, max_replicas)
    if min_replicas is not None:
        count = max(count, min_replicas)
    return max(count, 1)
