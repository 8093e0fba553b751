"""Who is calling: the one place the API learns its actor.

Until SSO arrives (OIDC, a later issue) the caller names itself in two headers.
Swap this dependency for a token-verifying one; nothing else needs to change.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from paved_registry.catalog import Actor
from paved_registry.problems import ProblemError

USER_HEADER = "X-Paved-User"
NAME_HEADER = "X-Paved-User-Name"
_USER_ID = re.compile(r"^\S{1,250}$")


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "unauthenticated",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": f'PavedUser header="{USER_HEADER}"'},
    )


async def current_actor(
    user_id: Annotated[
        str | None, Header(alias=USER_HEADER, description="User id of the caller.")
    ] = None,
    printed_name: Annotated[
        str | None, Header(alias=NAME_HEADER, description="Printed name of the caller.")
    ] = None,
) -> Actor:
    """The caller of a mutating request; 401 problem+json when it cannot be told."""
    if user_id is None or not user_id.strip():
        raise _unauthenticated(f"header {USER_HEADER} (your user id) is missing or empty")
    if not _USER_ID.match(user_id):
        raise _unauthenticated(
            f"header {USER_HEADER} must be one word of 1 to 250 characters, got {user_id!r}"
        )
    if printed_name is None or not printed_name.strip():
        raise _unauthenticated(f"header {NAME_HEADER} (your printed name) is missing or empty")
    if len(printed_name.strip()) > 256:
        raise _unauthenticated(f"header {NAME_HEADER} is longer than 256 characters")
    return Actor(id=user_id, name=printed_name.strip())
