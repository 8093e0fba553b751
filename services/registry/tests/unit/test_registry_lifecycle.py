"""The lifecycle state machine: legal transitions only, and out-of-order facts."""

from __future__ import annotations

from itertools import pairwise, permutations

import pytest
from paved_registry.domain.lifecycle import (
    Fact,
    IllegalTransitionError,
    check_transition,
    implied_reason,
    is_legal,
    plan,
)
from paved_schemas.events import ModelState as S

pytestmark = pytest.mark.unit

# Written out from the specification, independently of the module's own table.
LEGAL: set[tuple[S | None, S]] = {
    (None, S.REGISTERED),
    (S.REGISTERED, S.VALIDATING),
    (S.VALIDATING, S.VALIDATED),
    (S.VALIDATING, S.VALIDATION_FAILED),
    (S.VALIDATED, S.PENDING_APPROVAL),
    (S.PENDING_APPROVAL, S.APPROVED),
    (S.PENDING_APPROVAL, S.REJECTED),
    (S.APPROVED, S.DEPLOYED),
    (S.DEPLOYED, S.DEPRECATED),
    # approval expiry: back to validated
    (S.PENDING_APPROVAL, S.VALIDATED),
    (S.APPROVED, S.VALIDATED),
    (S.DEPLOYED, S.VALIDATED),
} | {(s, S.RETIRED) for s in S if s is not S.RETIRED}

ALL_PAIRS = [(a, b) for a in [None, *S] for b in S]


@pytest.mark.parametrize(("from_state", "to_state"), sorted(LEGAL, key=str))
def test_legal_transitions_are_allowed(from_state: S | None, to_state: S) -> None:
    assert is_legal(from_state, to_state)
    check_transition(from_state, to_state)


@pytest.mark.parametrize(
    ("from_state", "to_state"), [p for p in ALL_PAIRS if p not in LEGAL], ids=str
)
def test_every_other_transition_is_refused_naming_both_states(
    from_state: S | None, to_state: S
) -> None:
    assert not is_legal(from_state, to_state)
    with pytest.raises(IllegalTransitionError) as refused:
        check_transition(from_state, to_state)
    message = str(refused.value)
    assert repr(to_state.value) in message
    if from_state is not None:
        assert repr(from_state.value) in message


def test_retired_is_final() -> None:
    assert [s for s in S if is_legal(S.RETIRED, s)] == []


def test_in_order_facts_each_take_one_step() -> None:
    assert plan(S.VALIDATING, Fact.VALIDATION_PASSED).steps == (S.VALIDATED,)
    assert plan(S.VALIDATING, Fact.VALIDATION_FAILED).steps == (S.VALIDATION_FAILED,)
    assert plan(S.VALIDATED, Fact.APPROVAL_REQUESTED).steps == (S.PENDING_APPROVAL,)
    assert plan(S.PENDING_APPROVAL, Fact.APPROVAL_GRANTED).steps == (S.APPROVED,)
    assert plan(S.PENDING_APPROVAL, Fact.APPROVAL_REJECTED).steps == (S.REJECTED,)
    assert plan(S.APPROVED, Fact.DEPLOYMENT_READY).steps == (S.DEPLOYED,)


def test_a_later_fact_drives_through_the_states_it_implies_in_order() -> None:
    assert plan(S.VALIDATING, Fact.APPROVAL_GRANTED).steps == (
        S.VALIDATED,
        S.PENDING_APPROVAL,
        S.APPROVED,
    )
    assert plan(S.REGISTERED, Fact.DEPLOYMENT_READY).steps == (
        S.VALIDATING,
        S.VALIDATED,
        S.PENDING_APPROVAL,
        S.APPROVED,
        S.DEPLOYED,
    )
    assert plan(S.VALIDATING, Fact.APPROVAL_REJECTED).steps == (
        S.VALIDATED,
        S.PENDING_APPROVAL,
        S.REJECTED,
    )


@pytest.mark.parametrize(
    ("current", "fact"),
    [
        (S.APPROVED, Fact.VALIDATION_PASSED),  # validation result after the approval
        (S.DEPLOYED, Fact.APPROVAL_GRANTED),
        (S.DEPLOYED, Fact.VALIDATION_PASSED),
        (S.PENDING_APPROVAL, Fact.VALIDATION_FAILED),
        (S.VALIDATION_FAILED, Fact.APPROVAL_REQUESTED),
        (S.REJECTED, Fact.DEPLOYMENT_READY),
        (S.APPROVED, Fact.APPROVAL_GRANTED),  # a duplicate
        (S.REGISTERED, Fact.APPROVAL_EXPIRED),
        (S.DEPRECATED, Fact.DEPLOYMENT_READY),
    ],
)
def test_stale_facts_are_ignored_with_a_reason(current: S, fact: Fact) -> None:
    result = plan(current, fact)
    assert result.steps == ()
    assert result.ignored


def test_a_retired_version_ignores_every_fact() -> None:
    for fact in Fact:
        result = plan(S.RETIRED, fact)
        assert result.steps == ()
        assert result.ignored


def test_retirement_from_every_other_state() -> None:
    for state in S:
        if state is not S.RETIRED:
            assert plan(state, Fact.RETIREMENT).steps == (S.RETIRED,)


def test_expiry_goes_back_to_validated() -> None:
    for state in (S.PENDING_APPROVAL, S.APPROVED, S.DEPLOYED):
        assert plan(state, Fact.APPROVAL_EXPIRED).steps == (S.VALIDATED,)


def test_after_an_expiry_a_ready_deployment_no_longer_implies_approval() -> None:
    assert plan(S.VALIDATED, Fact.DEPLOYMENT_READY, approval_lapsed=True).steps == ()
    # ... but after a fresh approval it deploys as usual.
    assert plan(S.APPROVED, Fact.DEPLOYMENT_READY, approval_lapsed=True).steps == (S.DEPLOYED,)


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("fact", list(Fact))
def test_plans_never_raise_and_only_take_legal_steps(current: S, fact: Fact) -> None:
    for lapsed in (False, True):
        result = plan(current, fact, approval_lapsed=lapsed)
        assert result.changes != bool(result.ignored)
        for before, after in pairwise((current, *result.steps)):
            assert is_legal(before, after)


@pytest.mark.parametrize(
    "order",
    list(
        permutations(
            [
                Fact.VALIDATION_PASSED,
                Fact.APPROVAL_REQUESTED,
                Fact.APPROVAL_GRANTED,
                Fact.DEPLOYMENT_READY,
            ]
        )
    ),
    ids=lambda o: ">".join(f.value for f in o),
)
def test_any_delivery_order_records_the_same_road_to_deployed(order: tuple[Fact, ...]) -> None:
    state = S.VALIDATING
    history = [state]
    for fact in order:
        steps = plan(state, fact).steps
        history.extend(steps)
        if steps:
            state = steps[-1]
    assert history == [
        S.VALIDATING,
        S.VALIDATED,
        S.PENDING_APPROVAL,
        S.APPROVED,
        S.DEPLOYED,
    ]


def test_implied_reason_names_the_event() -> None:
    reason = implied_reason(S.VALIDATED, "dev.paved.approval.granted.v1", "evt-1")
    assert "dev.paved.approval.granted.v1 evt-1" in reason
    assert "validation must have passed" in reason
