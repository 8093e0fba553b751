"""Who sent a command over Kafka: verified like an HTTP caller, never read from the payload.

A person's tool or a pipeline that publishes a command (``RegisterModelVersion``) puts
the same credential it would send to the HTTP API into the record's headers:
``Authorization: Bearer <access token>`` (OIDC), or in dev-headers mode (dev/test only)
``X-Paved-User`` / ``X-Paved-User-Name`` / ``X-Paved-Roles`` / ``X-Paved-Teams``. The
consuming service runs the same ``Authenticator`` as its HTTP API over those headers.

A token is judged at the time the broker appended the record (the command topics use
``message.timestamp.type=LogAppendTime``), not when the consumer gets to it: a command
queued while the registry was down is still accepted, and a sender cannot backdate one.
"""

from __future__ import annotations

from collections.abc import Mapping

from paved_shared.auth import (
    NAME_HEADER,
    ROLES_HEADER,
    TEAMS_HEADER,
    USER_HEADER,
    Authenticator,
    AuthError,
    Principal,
    TokenVerifier,
    principal_from_claims,
    principal_from_dev_headers,
)
from paved_shared.deadletter import Delivery

AUTHORIZATION = "Authorization"
IDENTITY_HEADERS = (AUTHORIZATION, USER_HEADER, NAME_HEADER, ROLES_HEADER, TEAMS_HEADER)
_BY_LOWER = {h.lower(): h for h in IDENTITY_HEADERS}


class CommandIdentityError(Exception):
    """The command carries no identity, or one that does not verify (dead-lettered)."""


def identity_headers(
    *,
    token: str | None = None,
    user: str | None = None,
    name: str | None = None,
    roles: str | None = None,
    teams: str | None = None,
) -> list[tuple[str, bytes]]:
    """Record headers naming the sender: a bearer token, or dev headers (dev/test only)."""
    if token:
        return [(AUTHORIZATION, f"Bearer {token}".encode())]
    out: list[tuple[str, bytes]] = []
    for header, value in ((USER_HEADER, user), (NAME_HEADER, name), (ROLES_HEADER, roles),
                          (TEAMS_HEADER, teams)):  # fmt: skip
        if value is not None:
            out.append((header, value.encode()))
    return out


def _text_headers(headers: Mapping[str, bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        canonical = _BY_LOWER.get(key.lower())
        if canonical is None:
            continue
        try:
            out[canonical] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandIdentityError(f"header {key!r} is not UTF-8") from exc
    return out


async def command_sender(delivery: Delivery, authenticator: Authenticator) -> Principal:
    """The verified sender of the command in ``delivery``, or ``CommandIdentityError``."""
    headers = _text_headers(delivery.headers)
    try:
        if authenticator.mode == "dev-headers":
            return principal_from_dev_headers(headers)
        verifier = authenticator.verifier
        assert verifier is not None
        value = headers.get(AUTHORIZATION, "")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CommandIdentityError(
                "the command carries no 'Authorization: Bearer <token>' header: a command "
                "is accepted only from a sender whose token verifies (dev headers are "
                "accepted in dev-headers mode only)"
            )
        if delivery.log_append_time and delivery.timestamp_ms is not None:
            appended = delivery.timestamp_ms / 1000.0
            verifier = TokenVerifier(
                issuer=verifier.issuer, audience=verifier.audience, jwks=verifier.jwks,
                algorithms=verifier.algorithms, leeway_s=verifier.leeway_s,
                clock=lambda: appended,
            )  # fmt: skip
        claims = await verifier.verify(token.strip())
        return principal_from_claims(claims, authenticator.settings)
    except AuthError as exc:
        raise CommandIdentityError(f"sender identity refused: {exc.detail}") from exc
