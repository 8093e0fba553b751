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
    """pending → granted | rejected | closed; the last three are final."""

    PENDING = "pending"
    GRANTED = "granted"
    REJECTED = "rejected"
    CLOSED = "closed"


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


@dataclass(frozen=True)
class Actor:
    """An authenticated person: stable id and printed name."""

    user_id: str
    printed_name: str


@dataclass(frozen=True)
class Signature:
    """One e-signature on an approval (21 CFR 11.50): who, when, meaning, why, bound to what."""

    signer_id: str
    printed_name: str
    signed_at: datetime
    meaning: SignatureMeaning
    reason: str
    version_hash: str

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
) -> DecisionOutcome:
    """Apply one person's decision to ``case``; raise ``DecisionRefusedError`` if refused."""
    verb = decision.value
    if actor.user_id == case.registered_by:
        raise SeparationOfDutiesError(
            f"separation of duties: {actor.user_id} registered {case.model_name} "
            f"v{case.version} and cannot {verb} it"
        )
    if case.state is not ApprovalState.PENDING:
        raise ApprovalClosedError(
            f"approval {case.approval_id} of {case.model_name} v{case.version} is "
            f"{case.state.value}; no further decision is possible"
        )
    if any(s.signer_id == actor.user_id for s in existing):
        raise AlreadySignedError(
            f"{actor.user_id} has already signed approval {case.approval_id} of "
            f"{case.model_name} v{case.version}; each approver signs once"
        )
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
    )
    signatures = (*existing, signature)
    if decision is Decision.REJECT:
        state = ApprovalState.REJECTED
    elif len({s.signer_id for s in signatures if s.approves}) >= case.required_approvals:
        state = ApprovalState.GRANTED
    else:
        state = ApprovalState.PENDING
    return DecisionOutcome(signature=signature, state=state, signatures=signatures)
