"""The decision rules of an approval case (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from paved_approver.domain.approval import (
    Actor,
    AdministratorSigningError,
    AlreadySignedError,
    ApprovalCase,
    ApprovalClosedError,
    ApprovalState,
    Decision,
    InvalidDecisionError,
    RoleNotAllowedError,
    SeparationOfDutiesError,
    Signature,
    SigningRules,
    StaleAuthenticationError,
    TeamScopeError,
    VersionHashMismatchError,
    decide,
)
from paved_schemas.events import SignatureMeaning

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
HASH = "sha256:" + "ab" * 32
APPROVER = frozenset({"approver"})
ALICE = Actor("alice", "Alice Scientist", roles=frozenset({"scientist", "approver"}))
BOB = Actor("bob", "Bob Reviewer", roles=APPROVER, teams=frozenset({"churn"}))
CAROL = Actor("carol", "Carol Quality", roles=APPROVER, all_teams=True)
DAVE = Actor("dave", "Dave Admin", roles=frozenset({"admin", "approver"}), all_teams=True)
FRANK = Actor("frank", "Frank Fraud", roles=APPROVER, teams=frozenset({"fraud"}))
OIDC = SigningRules(max_auth_age_s=300, require_version_hash=True)


def case(
    required: int = 1,
    state: ApprovalState = ApprovalState.PENDING,
    *,
    required_roles: tuple[str, ...] = (),
    team: str | None = "churn",
) -> ApprovalCase:
    return ApprovalCase(
        approval_id="apr-1",
        model_name="churn",
        version=3,
        registered_by="alice",
        state=state,
        required_approvals=required,
        version_hash=HASH,
        required_roles=required_roles,
        owner_team=team,
        policy_version="p-1",
    )


def approve(
    c: ApprovalCase,
    actor: Actor,
    existing: tuple[Signature, ...] = (),
    meaning: SignatureMeaning | None = None,
    reason: str = "evidence reviewed",
) -> tuple[ApprovalState, tuple[Signature, ...]]:
    out = decide(c, existing, actor, Decision.APPROVE, reason=reason, meaning=meaning, now=NOW)
    return out.state, out.signatures


def test_one_approval_grants_a_medium_case_and_binds_the_signature() -> None:
    out = decide(case(1), (), BOB, Decision.APPROVE, reason="  looks good ", meaning=None, now=NOW)
    assert out.state is ApprovalState.GRANTED
    sig = out.signature
    assert (sig.signer_id, sig.printed_name, sig.signed_at) == ("bob", "Bob Reviewer", NOW)
    assert sig.meaning is SignatureMeaning.APPROVAL
    assert sig.reason == "looks good"
    assert sig.version_hash == HASH
    assert sig.manifestation() == (
        "Signed by Bob Reviewer (bob) on 2025-03-14 09:26:53 UTC; meaning: approval"
    )


def test_the_registrant_cannot_approve_or_reject() -> None:
    with pytest.raises(
        SeparationOfDutiesError,
        match=r"^separation of duties: alice registered churn v3 and cannot approve it$",
    ):
        approve(case(), ALICE)
    with pytest.raises(SeparationOfDutiesError, match=r"cannot reject it$"):
        decide(case(), (), ALICE, Decision.REJECT, reason="no", meaning=None, now=NOW)


def test_two_distinct_approvers_are_needed_for_two() -> None:
    state, sigs = approve(case(2), BOB)
    assert state is ApprovalState.PENDING
    with pytest.raises(AlreadySignedError, match=r"bob has already signed approval apr-1"):
        approve(case(2), BOB, sigs)
    state, sigs = approve(case(2), CAROL, sigs, meaning=SignatureMeaning.RESPONSIBILITY)
    assert state is ApprovalState.GRANTED
    assert [s.signer_id for s in sigs] == ["bob", "carol"]


def test_one_rejection_rejects_even_after_approvals() -> None:
    _, sigs = approve(case(2), BOB)
    out = decide(case(2), sigs, CAROL, Decision.REJECT, reason="bad data", meaning=None, now=NOW)
    assert out.state is ApprovalState.REJECTED
    assert out.signature.meaning is SignatureMeaning.REJECTION
    assert [s.signer_id for s in out.signatures] == ["bob", "carol"]
    assert [s.signer_id for s in out.approving_signatures] == ["bob"]


@pytest.mark.parametrize(
    "state", [ApprovalState.GRANTED, ApprovalState.REJECTED, ApprovalState.CLOSED]
)
def test_a_closed_case_takes_no_decision(state: ApprovalState) -> None:
    with pytest.raises(ApprovalClosedError, match=rf"apr-1 of churn v3 is {state.value}"):
        approve(case(1, state), BOB)


def test_meaning_must_fit_the_decision() -> None:
    with pytest.raises(InvalidDecisionError, match=r"'rejection' does not fit decision 'approve'"):
        approve(case(), BOB, meaning=SignatureMeaning.REJECTION)
    with pytest.raises(InvalidDecisionError, match=r"'review' does not fit decision 'reject'"):
        decide(case(), (), BOB, Decision.REJECT, reason="x", meaning=SignatureMeaning.REVIEW,
               now=NOW)  # fmt: skip


def test_reason_is_required() -> None:
    with pytest.raises(InvalidDecisionError, match=r"reason must not be empty"):
        approve(case(), BOB, reason="   ")


def test_review_signatures_count_as_approvals() -> None:
    state, _ = approve(case(1), BOB, meaning=SignatureMeaning.REVIEW)
    assert state is ApprovalState.GRANTED


def test_an_administrator_cannot_sign_even_holding_the_approver_role() -> None:
    with pytest.raises(AdministratorSigningError, match=r"dave .* admin role .* cannot approve"):
        approve(case(), DAVE)


def test_the_signer_needs_a_signing_role_and_the_models_team() -> None:
    scientist = Actor("sam", "Sam", roles=frozenset({"scientist"}), all_teams=True)
    with pytest.raises(RoleNotAllowedError, match=r"lets only roles \['approver'\] sign"):
        approve(case(), scientist)
    with pytest.raises(TeamScopeError, match=r"belongs to team 'churn'.*teams \['fraud'\]"):
        approve(case(), FRANK)
    assert approve(case(team=None), FRANK)[0] is ApprovalState.GRANTED


def test_signing_needs_a_fresh_login_with_oidc() -> None:
    def sign(actor: Actor, hash_: str | None = HASH) -> ApprovalState:
        return decide(case(), (), actor, Decision.APPROVE, reason="ok", meaning=None, now=NOW,
                      signed_version_hash=hash_, rules=OIDC).state  # fmt: skip

    fresh = Actor("bob", "Bob", roles=APPROVER, all_teams=True,
                  auth_time=NOW - timedelta(seconds=60))  # fmt: skip
    assert sign(fresh) is ApprovalState.GRANTED
    stale = Actor("bob", "Bob", roles=APPROVER, all_teams=True,
                  auth_time=NOW - timedelta(minutes=20))  # fmt: skip
    with pytest.raises(StaleAuthenticationError, match=r"last logged in 1200 s ago"):
        sign(stale)
    with pytest.raises(StaleAuthenticationError, match=r"carries no auth_time"):
        sign(Actor("bob", "Bob", roles=APPROVER, all_teams=True))
    with pytest.raises(VersionHashMismatchError, match=r"say what you sign"):
        sign(fresh, None)
    other = "sha256:" + "cd" * 32
    with pytest.raises(VersionHashMismatchError, match=rf"you signed version hash {other}"):
        sign(fresh, other)


def test_required_roles_must_be_covered_by_the_approvers() -> None:
    auditor = Actor("erin", "Erin", roles=frozenset({"approver", "auditor"}), all_teams=True)
    c = case(2, required_roles=("auditor",))
    state, sigs = approve(c, BOB)
    state, sigs = approve(c, CAROL, sigs)
    assert state is ApprovalState.PENDING  # two approvers, but no auditor among them
    state, sigs = approve(c, auditor, sigs)
    assert state is ApprovalState.GRANTED
    assert sigs[-1].signer_roles == ("approver", "auditor")
