"""Who may read the audit trail: the one place the audit API learns its caller.

Until OIDC lands (``paved_shared.auth``), the caller names itself and its roles in two
headers. Swap ``current_principal`` for a token-verifying dependency; the routes only
depend on ``require_auditor``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Header

from paved_audit.problems import ProblemError

USER_HEADER: Final = "X-Paved-User"
ROLES_HEADER: Final = "X-Paved-Roles"
READ_ROLES: Final = frozenset({"auditor", "admin"})
_USER_ID = re.compile(r"^\S{1,250}$")
_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    roles: frozenset[str]


async def current_principal(
    user_id: Annotated[
        str | None, Header(alias=USER_HEADER, description="User id of the caller.")
    ] = None,
    roles: Annotated[
        str | None,
        Header(alias=ROLES_HEADER, description="Comma-separated roles, e.g. `auditor`."),
    ] = None,
) -> Principal:
    """The caller; 401 problem+json when it cannot be told."""
    if user_id is None or not _USER_ID.match(user_id):
        raise ProblemError(
            401, "unauthenticated", "Unauthenticated",
            f"header {USER_HEADER} must name you (one word, 1-250 characters), got {user_id!r}",
            headers={"WWW-Authenticate": f'PavedUser header="{USER_HEADER}"'},
        )  # fmt: skip
    names = [r.strip() for r in (roles or "").split(",") if r.strip()]
    bad = [r for r in names if not _ROLE.match(r)]
    if bad:
        raise ProblemError(
            400, "invalid-roles", "Invalid roles",
            f"header {ROLES_HEADER} holds invalid role names {bad!r}",
        )  # fmt: skip
    return Principal(user_id, frozenset(names))


async def require_auditor(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """The caller, when one of its roles may read the audit trail; else 403."""
    if not principal.roles & READ_ROLES:
        held = ", ".join(sorted(principal.roles)) or "none"
        raise ProblemError(
            403, "forbidden", "Forbidden",
            f"user {principal.user_id!r} holds roles [{held}]; reading the audit trail needs "
            f"one of {sorted(READ_ROLES)}",
        )  # fmt: skip
    return principal
