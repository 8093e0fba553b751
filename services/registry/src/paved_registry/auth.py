"""Who is calling: the one place the API learns its caller.

The shared ``paved_shared.auth`` decides: in ``oidc`` mode a bearer JWT verified
against the issuer's JWKS; in ``dev-headers`` mode (dev/test only) the caller names
itself in ``X-Paved-User`` / ``X-Paved-User-Name`` (and ``X-Paved-Roles`` /
``X-Paved-Teams``). The mode and the issuer come from the registry's settings
(``PAVED_AUTH_MODE``, ``PAVED_OIDC_*``). Every router of the registry is an
``authenticated_router(current_principal)``: no route but health answers anonymously.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from paved_shared.auth import NAME_HEADER, USER_HEADER, AuthSettings, Principal
from paved_shared.http import principal_of

from paved_registry.catalog import Actor

__all__ = [
    "NAME_HEADER",
    "USER_HEADER",
    "CurrentActor",
    "CurrentPrincipal",
    "current_actor",
    "current_principal",
]


def _settings_of(request: Request) -> AuthSettings:
    settings = request.app.state.runtime.settings
    if isinstance(settings, AuthSettings):
        return settings
    # Settings without the auth fields: read them from the environment once per app.
    cached = getattr(request.app.state, "paved_auth_settings", None)
    if not isinstance(cached, AuthSettings):
        cached = AuthSettings(environment=settings.environment)
        request.app.state.paved_auth_settings = cached
    return cached


current_principal = principal_of(_settings_of)
"""The verified caller with roles and teams (401/403 problem+json when refused)."""


async def current_actor(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Actor:
    """The caller of a mutating request, as the catalog records it."""
    if (principal.username or "").startswith("service-account-"):
        return Actor(id=principal.user_id, name=principal.printed_name, kind="service")
    return Actor(id=principal.user_id, name=principal.printed_name)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
