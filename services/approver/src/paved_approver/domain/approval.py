"""The approval case as a state machine, and the rules a decision must pass.

``decide`` is pure: given the case, the signatures it already holds and one
person's decision, it returns the new signature and the case's next state, or
raises a ``DecisionRefusedError`` subclass saying which rule refused it and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from paved_schemas.events import SignatureMeaning


class ApprovalState(StrEnum):
    """pending → granted | rejected | closed; granted → expired. Only granted is not final:
    it lapses when the policy's validity runs out."""

    PENDING = "pending"
    GRANTED = "granted"
    REJECTED = "rejected"
    CLOSED = "closed"
    EXPIRED = "expired"


class Decision(StrEnum):
    """What a signer decides."""

    APPROVE = "approve"
    REJECT = "reject"


APPROVING_MEANINGS = frozenset(
    {SignatureMeaning.APPROVAL, SignatureMeaning.REVIEW, SignatureMeaning.RESPONSIBILITY}
)
DEFAULT_MEANING = {
    Decision.APPROVE: SignatureMeaning.APPROVAL,
    Decision.REJECT: SignatureMeaning.REJECTION,
}


class DecisionRefusedError(Exception):
    """A decision a rule refuses; the message names the rule and the offending value."""


class SeparationOfDutiesError(DecisionRefusedError):
    """The registrant of a version tried to decide on its approval."""


class AlreadySignedError(DecisionRefusedError):
    """The same person tried to sign one approval twice."""


class ApprovalClosedError(DecisionRefusedError):
    """The approval is granted, rejected or closed: no decision is possible any more."""


class InvalidDecisionError(DecisionRefusedError):
    """The decision is malformed: meaning does not fit the decision, or reason is empty."""


class AdministratorSigningError(DecisionRefusedError):
    """An administrator (a login holding the admin role) tried to decide."""


class RoleNotAllowedError(DecisionRefusedError):
    """The signer holds none of the roles the policy lets sign this tier."""


class TeamScopeError(DecisionRefusedError):
    """The signer's teams do not include the team that owns the model."""


class StaleAuthenticationError(DecisionRefusedError):
    """The signer's last login is older than signing allows (fresh authentication)."""


class VersionHashMismatchError(DecisionRefusedError):
    """The signer signed a version hash other than the one of this case's version."""


REFUSAL_CODES: dict[type[DecisionRefusedError], str] = {
    SeparationOfDutiesError: "separation-of-duties",
    AdministratorSigningError: "administrator-cannot-sign",
    AlreadySignedError: "already-signed",
    ApprovalClosedError: "approval-closed",
    RoleNotAllowedError: "role-not-allowed",
    TeamScopeError: "team-scope",
    StaleAuthenticationError: "stale-authentication",
    VersionHashMismatchError: "version-hash-mismatch",
    InvalidDecisionError: "invalid-decision",
}
"""Stable slug of each refusal (problem type, and the audited decision record)."""


ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Actor:
    """An authenticated person: stable id, printed name, roles, teams and login."""

    user_id: str
    printed_name: str
    roles: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    all_teams: bool = False
    auth_mode: str = "oidc"
    auth_time: datetime | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class Signature:
    """One e-signature on an approval (21 CFR 11.50): who, when, meaning, why, bound to what."""

    signer_id: str
    printed_name: str
    signed_at: datetime
    meaning: SignatureMeaning
    reason: str
    version_hash: str
    signature_id: str = ""
    signer_roles: tuple[str, ...] = ()
    auth_mode: str = "oidc"
    auth_time: datetime | None = None
    issuer: str | None = None
    policy_version: str | None = None
    seal_key_id: str | None = None
    seal: str | None = None

    @property
    def approves(self) -> bool:
        return self.meaning in APPROVING_MEANINGS

    def manifestation(self) -> str:
        """The human-readable form shown wherever the signed record is shown (11.50(b))."""
        when = self.signed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return (
            f"Signed by {self.printed_name} ({self.signer_id}) on {when}; "
            f"meaning: {self.meaning.value}"
        )


@dataclass(frozen=True)
class ApprovalCase:
    """What the rules need to know about one approval."""

    approval_id: str
    model_name: str
    version: int
    registered_by: str
    state: ApprovalState
    required_approvals: int
    version_hash: str
    eligible_roles: tuple[str, ...] = ("approver",)
    required_roles: tuple[str, ...] = ()
    owner_team: str | None = None
    policy_version: str | None = None


@dataclass(frozen=True)
class SigningRules:
    """How strict signing is: login freshness and whether the signer must name the hash."""

    max_auth_age_s: float | None = 300.0
    """None: freshness is not checked (dev-headers mode has no login to check)."""
    require_version_hash: bool = True


DEV_SIGNING = SigningRules(max_auth_age_s=None, require_version_hash=False)
"""dev-headers mode: no login to check, and the version hash is optional."""


@dataclass(frozen=True)
class DecisionOutcome:
    """The signature to store and the state the case moves to (maybe unchanged)."""

    signature: Signature
    state: ApprovalState
    signatures: tuple[Signature, ...]
    """Every signature of the case, the new one last."""

    @property
    def approving_signatures(self) -> tuple[Signature, ...]:
        return tuple(s for s in self.signatures if s.approves)


def decide(
    case: ApprovalCase,
    existing: Sequence[Signature],
    actor: Actor,
    decision: Decision,
    *,
    reason: str,
    meaning: SignatureMeaning | None,
    now: datetime,
    signed_version_hash: str | None = None,
    rules: SigningRules = DEV_SIGNING,
    signature_id: str = "",
) -> DecisionOutcome:
    """Apply one person's decision to ``case``; raise ``DecisionRefusedError`` if refused.

    The checks run in a fixed order so a refusal always names the most basic rule
    broken: who you are (registrant, administrator), the case's state, a second
    signature, your role and team, your login's freshness, what you signed.
    """
    verb = decision.value
    what = f"{case.model_name} v{case.version}"
    if actor.user_id == case.registered_by:
        raise SeparationOfDutiesError(
            f"separation of duties: {actor.user_id} registered {what} and cannot {verb} it"
        )
    if ADMIN_ROLE in actor.roles:
        raise AdministratorSigningError(
            f"separation of duties: {actor.user_id} ({actor.printed_name}) is logged in with "
            f"the admin role and an administrator cannot {verb} {what}; sign from a login "
            "without the admin role"
        )
    if case.state is not ApprovalState.PENDING:
        raise ApprovalClosedError(
            f"approval {case.approval_id} of {what} is {case.state.value}; "
            "no further decision is possible"
        )
    if any(s.signer_id == actor.user_id for s in existing):
        raise AlreadySignedError(
            f"{actor.user_id} has already signed approval {case.approval_id} of "
            f"{what}; each approver signs once"
        )
    if not set(case.eligible_roles) & actor.roles:
        raise RoleNotAllowedError(
            f"{actor.user_id} cannot {verb} {what}: policy {case.policy_version} lets only "
            f"roles {sorted(case.eligible_roles)} sign, and {actor.user_id} holds "
            f"{sorted(actor.roles) or 'no role'}"
        )
    if case.owner_team and not (actor.all_teams or case.owner_team in actor.teams):
        raise TeamScopeError(
            f"{actor.user_id} cannot {verb} {what}: the model belongs to team "
            f"{case.owner_team!r}, and {actor.user_id} is in teams {sorted(actor.teams) or 'none'}"
        )
    _check_login_and_binding(case, actor, verb, what, rules, now, signed_version_hash)
    meaning = meaning or DEFAULT_MEANING[decision]
    if decision is Decision.APPROVE and meaning not in APPROVING_MEANINGS:
        allowed = sorted(m.value for m in APPROVING_MEANINGS)
        raise InvalidDecisionError(
            f"meaning {meaning.value!r} does not fit decision 'approve'; use one of {allowed}"
        )
    if decision is Decision.REJECT and meaning is not SignatureMeaning.REJECTION:
        raise InvalidDecisionError(
            f"meaning {meaning.value!r} does not fit decision 'reject'; use 'rejection'"
        )
    if not reason.strip():
        raise InvalidDecisionError("reason must not be empty: say why you sign")
    signature = Signature(
        signer_id=actor.user_id,
        printed_name=actor.printed_name,
        signed_at=now,
        meaning=meaning,
        reason=reason.strip(),
        version_hash=case.version_hash,
        signature_id=signature_id,
        signer_roles=tuple(sorted(actor.roles)),
        auth_mode=actor.auth_mode,
        auth_time=actor.auth_time,
        issuer=actor.issuer,
        policy_version=case.policy_version,
    )
    signatures = (*existing, signature)
    if decision is Decision.REJECT:
        state = ApprovalState.REJECTED
    elif granted(case, signatures):
        state = ApprovalState.GRANTED
    else:
        state = ApprovalState.PENDING
    return DecisionOutcome(signature=signature, state=state, signatures=signatures)


def _check_login_and_binding(
    case: ApprovalCase,
    actor: Actor,
    verb: str,
    what: str,
    rules: SigningRules,
    now: datetime,
    signed_version_hash: str | None,
) -> None:
    """Fresh login (21 CFR 11.200) and the signed hash equal to the case's version hash."""
    if rules.max_auth_age_s is not None:
        if actor.auth_time is None:
            raise StaleAuthenticationError(
                f"signing needs a fresh login: {actor.user_id}'s token carries no auth_time; "
                f"log in again interactively and sign within {int(rules.max_auth_age_s)} s"
            )
        age = (now - actor.auth_time).total_seconds()
        if age > rules.max_auth_age_s:
            raise StaleAuthenticationError(
                f"signing needs a fresh login: {actor.user_id} last logged in {int(age)} s ago "
                f"(auth_time {actor.auth_time.isoformat()}), more than "
                f"{int(rules.max_auth_age_s)} s; log in again and retry"
            )
    if signed_version_hash is None and rules.require_version_hash:
        raise VersionHashMismatchError(
            f"say what you sign: send version_hash {case.version_hash} of {what} "
            "(shown with the approval)"
        )
    if signed_version_hash is not None and signed_version_hash != case.version_hash:
        raise VersionHashMismatchError(
            f"you signed version hash {signed_version_hash} but approval {case.approval_id} "
            f"covers {what} with version hash {case.version_hash}; a signature cannot be "
            "moved to another version"
        )


def granted(case: ApprovalCase, signatures: Sequence[Signature]) -> bool:
    """Enough distinct approvers, and every required role held by one of them."""
    approving = [s for s in signatures if s.approves]
    if len({s.signer_id for s in approving}) < case.required_approvals:
        return False
    held = {role for s in approving for role in s.signer_roles}
    return set(case.required_roles) <= held
