"""Who may read the audit trail: the one place the audit API learns its caller.

Authentication is the platform's (``paved_shared.auth``): an OIDC bearer token in
``oidc`` mode, the ``X-Paved-*`` dev headers only in dev-headers mode, which settings
refuse outside dev/test. The router is an ``authenticated_router(current_principal)``
(no route but health and the OpenAPI document answers anonymously) and every route
depends on ``require_auditor``: the caller must hold the ``auditor`` or ``admin`` role
(401 without valid credentials, 403 without the role).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Request
from paved_shared.auth import AuthSettings, Principal, Role, require_role
from paved_shared.http import principal_of

READ_ROLES: Final = (Role.AUDITOR, Role.ADMIN)

__all__ = ["READ_ROLES", "Principal", "current_principal", "require_auditor"]


def _auth_settings(request: Request) -> AuthSettings:
    settings: AuthSettings = request.app.state.runtime.settings
    return settings


current_principal = principal_of(_auth_settings)
"""The caller (OIDC bearer token, or dev headers in dev/test); raises ``AuthError``."""


async def require_auditor(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """The caller, when one of its roles may read the audit trail; else ``ForbiddenError``."""
    require_role(principal, *READ_ROLES, action="read the audit trail")
    return principal
