"""What a caller may do: one table of rules, pure functions, no I/O.

Every Paved API asks the same two questions of an authenticated ``Principal``:

- *May it see this team's records?* ``can_see`` / ``visible_teams``: members see their
  own teams' models, ``all_teams`` members, auditors and admins see every team. What a
  caller cannot see does not exist for it: routes answer 404 exactly as for an unknown
  name, so probing names leaks nothing (``NotVisibleError``).
- *May it do this to this team's model?* ``decide`` reads ``RULES`` (the action → roles
  table, plus the owner team) and returns a ``Decision``; ``authorize`` raises
  ``ForbiddenError`` (403) naming the missing role or team. Writes need both a role and
  membership of the model's owner team (``all_teams`` or admin stand in for membership).

The checks are plain data so the table in ``docs/registry.md`` and the unit tests can
be read against the code line by line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from paved_shared.auth import ForbiddenError, Principal, Role


class Action(StrEnum):
    """Something a caller asks the registry to do."""

    READ = "read"
    CREATE_MODEL = "create_model"
    UPDATE_MODEL = "update_model"
    CHANGE_OWNER = "change_owner"
    REGISTER_VERSION = "register_version"
    UPDATE_VERSION = "update_version"
    RETIRE_VERSION = "retire_version"
    SET_ALIAS = "set_alias"
    SET_PROTECTED_ALIAS = "set_protected_alias"
    REQUEST_DEPLOYMENT = "request_deployment"
    UNDEPLOY = "undeploy"


@dataclass(frozen=True)
class Rule:
    """Who may do an action: one of ``roles``, and (when ``team_scoped``) membership of
    the model's owner team."""

    roles: frozenset[Role]
    team_scoped: bool
    what: str
    """The action in words, for refusals ("register a version of model 'x'")."""


_ANY_ROLE: Final = frozenset(Role)
_SCIENTIST: Final = frozenset({Role.SCIENTIST, Role.ADMIN})
_DEPLOYER: Final = frozenset({Role.DEPLOYER, Role.ADMIN})

RULES: Final[Mapping[Action, Rule]] = {
    Action.READ: Rule(_ANY_ROLE, True, "read"),
    Action.CREATE_MODEL: Rule(_SCIENTIST, True, "create a model owned by"),
    Action.UPDATE_MODEL: Rule(_SCIENTIST, True, "change the description, tags or risk of"),
    Action.CHANGE_OWNER: Rule(frozenset({Role.ADMIN}), False, "change the owner team of"),
    Action.REGISTER_VERSION: Rule(_SCIENTIST, True, "register a version of"),
    Action.UPDATE_VERSION: Rule(_SCIENTIST, True, "change a version of"),
    Action.RETIRE_VERSION: Rule(_SCIENTIST, True, "deprecate or retire a version of"),
    Action.SET_ALIAS: Rule(
        frozenset({Role.SCIENTIST, Role.DEPLOYER, Role.ADMIN}), True, "move an alias of"
    ),
    Action.SET_PROTECTED_ALIAS: Rule(_DEPLOYER, True, "move or remove a protected alias of"),
    Action.REQUEST_DEPLOYMENT: Rule(_DEPLOYER, True, "request a deployment of"),
    Action.UNDEPLOY: Rule(_DEPLOYER, True, "take down a deployment of"),
}
"""The authorization table (``docs/registry.md`` shows it to people)."""


class NotVisibleError(Exception):
    """The caller may not see the team's records: answer as if they did not exist (404)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of ``decide``: allowed, or why not (``missing``: "role", "visibility"
    or "team")."""

    allowed: bool
    reason: str
    missing: str | None = None


def sees_all_teams(principal: Principal) -> bool:
    """True for callers who read every team's records: ``all_teams``, auditors, admins."""
    return principal.all_teams or principal.has_role(Role.AUDITOR, Role.ADMIN)


def visible_teams(principal: Principal) -> frozenset[str] | None:
    """The teams whose records the caller sees; ``None`` means all (for SQL filters).

    A caller without any role sees nothing.
    """
    if not principal.roles:
        return frozenset()
    return None if sees_all_teams(principal) else principal.teams


def can_see(principal: Principal, team: str | None) -> bool:
    """True if the caller may see records owned by ``team`` (None: owned by nobody)."""
    teams = visible_teams(principal)
    return teams is None or (bool(principal.roles) and (team is None or team in teams))


def acts_for_team(principal: Principal, team: str | None) -> bool:
    """True if the caller may write on behalf of ``team``: a member, ``all_teams`` or admin.

    Auditors see every team but act for none (they hold no writing role either).
    """
    if principal.all_teams or principal.has_role(Role.ADMIN):
        return True
    return team is not None and team in principal.teams


def role_decision(principal: Principal, action: Action, *, subject: str) -> Decision:
    """The role half of ``decide``: it depends on the caller alone, never on the record,
    so routes check it before they look the record up (a refusal then says nothing about
    whether the record exists)."""
    rule = RULES[action]
    if principal.has_role(*rule.roles):
        return Decision(True, f"{principal.user_id} holds a role that may {rule.what} {subject}")
    held = sorted(r.value for r in principal.roles) or ["none"]
    needed = " or ".join(sorted(r.value for r in rule.roles))
    return Decision(
        False,
        f"{principal.user_id} cannot {rule.what} {subject}: needs role {needed}, holds {held}",
        "role",
    )


def require_action_role(principal: Principal, action: Action, *, subject: str) -> None:
    """``ForbiddenError`` unless the caller holds a role ``action`` needs."""
    decision = role_decision(principal, action, subject=subject)
    if not decision.allowed:
        raise ForbiddenError(decision.reason)


def decide(principal: Principal, action: Action, team: str | None, *, subject: str) -> Decision:
    """May ``principal`` do ``action`` on ``subject`` (a model) owned by ``team``?

    Checked in this order: the role (says nothing about the model), then whether the
    caller sees the team (``missing="visibility"``: answer 404), then team membership.
    """
    rule = RULES[action]
    who = principal.user_id
    by_role = role_decision(principal, action, subject=subject)
    if not by_role.allowed:
        return by_role
    if action is not Action.CREATE_MODEL and not can_see(principal, team):
        return Decision(False, f"{who} cannot see {subject}", "visibility")
    if rule.team_scoped and action is not Action.READ and not acts_for_team(principal, team):
        mine = sorted(principal.teams) or ["none"]
        return Decision(
            False,
            f"{who} cannot {rule.what} {subject}: it belongs to team {team!r}, and {who} is "
            f"in teams {mine}",
            "team",
        )
    return Decision(True, f"{who} may {rule.what} {subject}")


def authorize(principal: Principal, action: Action, team: str | None, *, subject: str) -> None:
    """Raise unless ``decide`` allows ``action``: ``NotVisibleError`` when the caller cannot
    see ``team``'s records (the API answers 404, as for an unknown name), else
    ``ForbiddenError`` (403) naming the missing role or team.

    ``CREATE_MODEL`` names a team the caller chose, so its refusal names the team.
    """
    decision = decide(principal, action, team, subject=subject)
    if decision.missing == "visibility":
        raise NotVisibleError(subject)
    if not decision.allowed:
        raise ForbiddenError(decision.reason)


def readable_teams(principal: Principal) -> frozenset[str] | None:
    """For list and search routes: the teams to filter by (``None``: all), or
    ``ForbiddenError`` for a caller without any role."""
    if not principal.roles:
        raise ForbiddenError(
            f"{principal.user_id} cannot read the catalog: needs any role "
            f"({', '.join(r.value for r in Role)}), holds none"
        )
    return visible_teams(principal)
