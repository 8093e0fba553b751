"""The authorization table, decision by decision: who may do what to which team's model."""

from __future__ import annotations

import pytest
from paved_shared.auth import ForbiddenError, Principal, Role
from paved_shared.authz import (
    RULES,
    Action,
    NotVisibleError,
    authorize,
    can_see,
    decide,
    readable_teams,
    visible_teams,
)

pytestmark = pytest.mark.unit

R = Role


def who(*roles: Role, teams: tuple[str, ...] = ("churn",), all_teams: bool = False) -> Principal:
    return Principal("u", "U", roles=frozenset(roles), teams=frozenset(teams), all_teams=all_teams)


SCIENTIST = who(R.SCIENTIST)
DEPLOYER = who(R.DEPLOYER)
APPROVER = who(R.APPROVER)
CAROL = who(R.APPROVER, teams=(), all_teams=True)
AUDITOR = who(R.AUDITOR, teams=())
ADMIN = who(R.ADMIN, teams=())
ROLELESS = who()
FRAUD_SCIENTIST = who(R.SCIENTIST, teams=("fraud",))
ALL_TEAMS_SCIENTIST = who(R.SCIENTIST, teams=(), all_teams=True)

# (principal, action, team of the model, expected: "ok", "role", "team" or "visibility")
MATRIX = [
    (SCIENTIST, Action.READ, "churn", "ok"),
    (APPROVER, Action.READ, "churn", "ok"),
    (DEPLOYER, Action.READ, "churn", "ok"),
    (SCIENTIST, Action.READ, "fraud", "visibility"),
    (CAROL, Action.READ, "fraud", "ok"),
    (AUDITOR, Action.READ, "fraud", "ok"),
    (ADMIN, Action.READ, "fraud", "ok"),
    (ROLELESS, Action.READ, "churn", "role"),
    (SCIENTIST, Action.CREATE_MODEL, "churn", "ok"),
    (SCIENTIST, Action.CREATE_MODEL, "fraud", "team"),
    (DEPLOYER, Action.CREATE_MODEL, "churn", "role"),
    (ADMIN, Action.CREATE_MODEL, "anything", "ok"),
    (SCIENTIST, Action.REGISTER_VERSION, "churn", "ok"),
    (FRAUD_SCIENTIST, Action.REGISTER_VERSION, "churn", "visibility"),
    (ALL_TEAMS_SCIENTIST, Action.REGISTER_VERSION, "churn", "ok"),
    (APPROVER, Action.REGISTER_VERSION, "churn", "role"),
    (CAROL, Action.REGISTER_VERSION, "churn", "role"),
    (AUDITOR, Action.REGISTER_VERSION, "churn", "role"),
    (SCIENTIST, Action.UPDATE_MODEL, "churn", "ok"),
    (FRAUD_SCIENTIST, Action.UPDATE_MODEL, "churn", "visibility"),
    (DEPLOYER, Action.UPDATE_MODEL, "churn", "role"),
    (SCIENTIST, Action.UPDATE_VERSION, "churn", "ok"),
    (SCIENTIST, Action.RETIRE_VERSION, "churn", "ok"),
    (FRAUD_SCIENTIST, Action.RETIRE_VERSION, "churn", "visibility"),
    (SCIENTIST, Action.CHANGE_OWNER, "churn", "role"),
    (ALL_TEAMS_SCIENTIST, Action.CHANGE_OWNER, "churn", "role"),
    (ADMIN, Action.CHANGE_OWNER, "churn", "ok"),
    (SCIENTIST, Action.SET_ALIAS, "churn", "ok"),
    (DEPLOYER, Action.SET_ALIAS, "churn", "ok"),
    (APPROVER, Action.SET_ALIAS, "churn", "role"),
    (SCIENTIST, Action.SET_PROTECTED_ALIAS, "churn", "role"),
    (DEPLOYER, Action.SET_PROTECTED_ALIAS, "churn", "ok"),
    (who(R.DEPLOYER, teams=("fraud",)), Action.SET_PROTECTED_ALIAS, "churn", "visibility"),
    (ADMIN, Action.SET_PROTECTED_ALIAS, "churn", "ok"),
    (DEPLOYER, Action.REQUEST_DEPLOYMENT, "churn", "ok"),
    (SCIENTIST, Action.REQUEST_DEPLOYMENT, "churn", "role"),
    (ROLELESS, Action.REQUEST_DEPLOYMENT, "churn", "role"),
    (who(R.DEPLOYER, R.AUDITOR, teams=("fraud",)), Action.REQUEST_DEPLOYMENT, "churn", "team"),
    (DEPLOYER, Action.UNDEPLOY, "churn", "ok"),
    (APPROVER, Action.UNDEPLOY, "churn", "role"),
]


@pytest.mark.parametrize(("principal", "action", "team", "expected"), MATRIX)
def test_decision(principal: Principal, action: Action, team: str, expected: str) -> None:
    decision = decide(principal, action, team, subject=f"model in {team}")
    assert decision.allowed == (expected == "ok"), decision.reason
    assert decision.missing == (None if expected == "ok" else expected)


@pytest.mark.parametrize(("principal", "action", "team", "expected"), MATRIX)
def test_authorize_raises_what_the_api_answers(
    principal: Principal, action: Action, team: str, expected: str
) -> None:
    if expected == "ok":
        authorize(principal, action, team, subject="model 'm'")
        return
    error = NotVisibleError if expected == "visibility" else ForbiddenError
    with pytest.raises(error) as refused:
        authorize(principal, action, team, subject="model 'm'")
    if expected == "role":
        assert "needs role" in str(refused.value)
    if expected == "team":
        assert f"team {team!r}" in str(refused.value)


def test_every_action_has_a_rule_and_only_admin_moves_owners() -> None:
    assert set(RULES) == set(Action)
    assert RULES[Action.CHANGE_OWNER].roles == {Role.ADMIN}
    writes = [a for a in Action if a is not Action.READ]
    assert all(Role.AUDITOR not in RULES[a].roles for a in writes)
    assert all(Role.APPROVER not in RULES[a].roles for a in writes)


def test_visible_teams_for_sql_filters() -> None:
    assert visible_teams(SCIENTIST) == {"churn"}
    assert visible_teams(CAROL) is None
    assert visible_teams(AUDITOR) is None
    assert visible_teams(ADMIN) is None
    assert visible_teams(ROLELESS) == frozenset()
    assert not can_see(ROLELESS, "churn")
    assert readable_teams(FRAUD_SCIENTIST) == {"fraud"}
    with pytest.raises(ForbiddenError, match="needs any role"):
        readable_teams(ROLELESS)


def test_refusals_name_the_missing_role_and_what_is_held() -> None:
    decision = decide(SCIENTIST, Action.REQUEST_DEPLOYMENT, "churn", subject="model 'm'")
    assert decision.reason == (
        "u cannot request a deployment of model 'm': needs role admin or deployer, "
        "holds ['scientist']"
    )
    team = decide(SCIENTIST, Action.CREATE_MODEL, "fraud", subject="team 'fraud'")
    assert "belongs to team 'fraud'" in team.reason
    assert "in teams ['churn']" in team.reason
