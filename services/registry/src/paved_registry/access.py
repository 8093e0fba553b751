"""Who may do what to which model: the shared rules (``paved_shared.authz``) applied to
the registry's records, inside the route's own transaction.

Every route asks here before it reads or writes a model's records. A model the caller
cannot see answers exactly as an unknown one (``UnknownModelError``, 404), so names
cannot be probed; a visible model the caller may not change answers 403 naming the
missing role or team.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from paved_shared.auth import Principal
from paved_shared.authz import (
    Action,
    NotVisibleError,
    authorize,
    readable_teams,
    require_action_role,
)
from paved_shared.db import Connection

from paved_registry.domain.errors import UnknownDeploymentError, UnknownModelError

_TEAM = "SELECT owner_team FROM models WHERE name = $1"
# Taken first by every write of a model, so writes of one model queue here and never
# deadlock on a later FOR UPDATE of the same row (NO KEY: version inserts still pass).
_LOCKED_TEAM = _TEAM + " FOR NO KEY UPDATE"

__all__ = [
    "Action",
    "check_alias",
    "check_create",
    "check_deployment",
    "check_model",
    "readable_teams",
]


async def check_model(
    conn: Connection, principal: Principal, name: str, action: Action, *, lock: bool = False
) -> str:
    """The model's owner team, once ``principal`` may do ``action`` on it.

    ``ForbiddenError`` (403) first if the caller lacks the role (whatever the model);
    then ``UnknownModelError`` if there is no such model *or* the caller cannot see it;
    then ``ForbiddenError`` if it sees it but is not of the owning team. ``lock``
    holds the model row until the transaction ends, so the owner team
    cannot change between this check and the write.
    """
    subject = f"model {name!r}"
    require_action_role(principal, action, subject=subject)  # first: says nothing of the model
    row = await conn.fetchrow(_LOCKED_TEAM if lock else _TEAM, name)
    if row is None:
        raise UnknownModelError(name)
    team: str = row["owner_team"]
    try:
        authorize(principal, action, team, subject=subject)
    except NotVisibleError:
        raise UnknownModelError(name) from None
    return team


def check_create(principal: Principal, name: str, owner_team: str) -> None:
    """``ForbiddenError`` unless ``principal`` may create model ``name`` owned by
    ``owner_team`` (a scientist of that team, or admin)."""
    authorize(principal, Action.CREATE_MODEL, owner_team, subject=f"team {owner_team!r}")


async def check_alias(
    conn: Connection,
    principal: Principal,
    name: str,
    alias: str,
    *,
    protected_names: Collection[str],
    protect: bool = False,
) -> None:
    """May ``principal`` move or remove ``alias`` of model ``name``? A protected alias
    (configured, already protected, or being protected now) needs the deployer role in
    the owning team; any other alias the scientist or deployer role."""
    protected = protect or alias in protected_names
    if not protected:
        protected = bool(
            await conn.fetchval(
                "SELECT protected FROM aliases WHERE model_name = $1 AND alias = $2", name, alias
            )
        )
    action = Action.SET_PROTECTED_ALIAS if protected else Action.SET_ALIAS
    await check_model(conn, principal, name, action, lock=True)


async def check_deployment(
    conn: Connection, principal: Principal, deployment_id: str, action: Action
) -> dict[str, Any]:
    """The deployment row (with its model's ``owner_team``), once ``principal`` may do
    ``action`` on it; ``UnknownDeploymentError`` if unknown or invisible to the caller."""
    subject = f"deployment {deployment_id!r}"
    require_action_role(principal, action, subject=subject)
    row = await conn.fetchrow(
        "SELECT d.*, m.owner_team FROM deployments d LEFT JOIN models m "
        "ON m.name = d.model_name WHERE d.deployment_id = $1",
        deployment_id,
    )
    if row is None:
        raise UnknownDeploymentError(deployment_id)
    try:
        authorize(principal, action, row["owner_team"], subject=f"deployment {deployment_id!r}")
    except NotVisibleError:
        raise UnknownDeploymentError(deployment_id) from None
    return dict(row.items())
