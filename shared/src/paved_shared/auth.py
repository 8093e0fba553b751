"""Who is calling: OpenID Connect JWT verification, roles, team scoping, dev headers.

Every Paved HTTP API authenticates through ``Authenticator.authenticate``. Two modes:

- ``oidc``: ``Authorization: Bearer <JWT>`` verified against the issuer's JWKS as
  RFC 8725 asks: exact ``iss`` and ``aud``, algorithms pinned by configuration (never
  ``none``, never HMAC), ``exp``/``nbf``/``iat`` with a small clock skew, a ``kid``
  that must name a key of the issuer. An unknown ``kid`` triggers at most one JWKS
  refresh per ``oidc_jwks_min_refresh_s`` (rotation without restart, and no
  amplification of junk tokens into requests to the provider).
- ``dev-headers``: the caller names itself in ``X-Paved-User``/``X-Paved-User-Name``
  (and optionally ``X-Paved-Roles``/``X-Paved-Teams``). For dev and tests only: it is
  the default when ``PAVED_ENVIRONMENT`` is dev/test and refused in staging/prod.

Roles come from the token's groups (``oidc_role_groups`` maps group → role; a group
named like a role is that role). Teams are groups with the ``oidc_team_prefix``
prefix; the ``oidc_all_teams_group`` grants every team.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import logging
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import jwt
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger(__name__)


class Role(StrEnum):
    """What a person may do on the platform."""

    SCIENTIST = "scientist"
    APPROVER = "approver"
    DEPLOYER = "deployer"
    AUDITOR = "auditor"
    ADMIN = "admin"


AuthMode = Literal["dev-headers", "oidc"]

USER_HEADER = "X-Paved-User"
NAME_HEADER = "X-Paved-User-Name"
ROLES_HEADER = "X-Paved-Roles"
TEAMS_HEADER = "X-Paved-Teams"

DEV_DEFAULT_ROLES = frozenset({Role.SCIENTIST, Role.APPROVER, Role.DEPLOYER, Role.AUDITOR})
"""Roles of a dev-headers caller that sends no ``X-Paved-Roles``: all but admin."""

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""The only algorithms a verifier may be pinned to (RFC 8725 §3.1: no none, no HMAC
with a public key)."""

_USER_ID = re.compile(r"^\S{1,250}$")
_ROLE_NAMES = frozenset(r.value for r in Role)


# --------------------------------------------------------------------------- errors


class AuthError(Exception):
    """Authentication failed (401) or an authenticated caller is not allowed (403).

    ``code`` is a stable slug (``invalid-token``, ``unauthenticated``, ``forbidden``,
    ``stale-authentication``); the message names the offending value.
    """

    status = 401

    def __init__(self, detail: str, *, code: str = "invalid-token") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code

    @property
    def headers(self) -> dict[str, str]:
        """``WWW-Authenticate`` as RFC 6750 describes it, for 401 answers."""
        if self.status != 401:
            return {}
        text = self.detail.replace("\\", "").replace('"', "'")[:300]
        error = "invalid_token" if self.code == "invalid-token" else "invalid_request"
        return {"WWW-Authenticate": f'Bearer realm="paved", error="{error}", '
                                    f'error_description="{text}"'}  # fmt: skip


class TokenRejectedError(AuthError):
    """A bearer token failed verification; the message says which check and why."""


class ForbiddenError(AuthError):
    """The caller is authenticated but lacks the role, team or freshness needed."""

    status = 403

    def __init__(self, detail: str, *, code: str = "forbidden") -> None:
        super().__init__(detail, code=code)


# --------------------------------------------------------------------------- principal


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: stable id, printed name, roles, teams, how and when."""

    user_id: str
    printed_name: str
    roles: frozenset[Role] = frozenset()
    teams: frozenset[str] = frozenset()
    all_teams: bool = False
    auth_mode: AuthMode = "oidc"
    auth_time: datetime | None = None
    """When the person last entered credentials (OIDC ``auth_time``); None if unknown."""
    issuer: str | None = None
    token_id: str | None = None
    username: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def has_role(self, *roles: Role) -> bool:
        """True if the caller holds any of ``roles``."""
        return any(r in self.roles for r in roles)

    def in_team(self, team: str | None) -> bool:
        """True if the caller may see and act on a model owned by ``team``.

        A model with no owner team is visible to everyone (nothing to scope it by).
        """
        return team is None or self.all_teams or team in self.teams

    def visible_teams(self) -> frozenset[str] | None:
        """Teams whose models the caller sees; None means every team (for SQL filters)."""
        return None if self.all_teams else self.teams


def require_role(principal: Principal, *roles: Role, action: str) -> None:
    """Raise ``ForbiddenError`` unless ``principal`` holds one of ``roles``."""
    if not principal.has_role(*roles):
        held = sorted(r.value for r in principal.roles) or ["none"]
        needed = " or ".join(r.value for r in roles)
        raise ForbiddenError(
            f"{principal.user_id} cannot {action}: needs role {needed}, holds {held}"
        )


def require_team(principal: Principal, team: str | None, *, action: str) -> None:
    """Raise ``ForbiddenError`` unless ``principal`` may act on ``team``'s models."""
    if not principal.in_team(team):
        mine = sorted(principal.teams) or ["none"]
        raise ForbiddenError(
            f"{principal.user_id} cannot {action}: the model belongs to team {team!r}, "
            f"and {principal.user_id} is in teams {mine}"
        )


def require_fresh_auth(principal: Principal, *, max_age_s: float, now: datetime) -> None:
    """Raise ``ForbiddenError`` (code ``stale-authentication``) unless the caller entered
    credentials within ``max_age_s`` (21 CFR 11.200: signing needs re-authentication)."""
    if principal.auth_time is None:
        raise ForbiddenError(
            f"{principal.user_id}'s token carries no auth_time, so when you last logged in "
            "is unknown; log in again interactively (prompt=login) and sign within "
            f"{int(max_age_s)} s",
            code="stale-authentication",
        )
    age = (now - principal.auth_time).total_seconds()
    if age > max_age_s:
        raise ForbiddenError(
            f"{principal.user_id} last logged in {int(age)} s ago (auth_time "
            f"{principal.auth_time.isoformat()}); signing needs a login within "
            f"{int(max_age_s)} s: log in again and retry",
            code="stale-authentication",
        )


# --------------------------------------------------------------------------- settings


class AuthSettings(BaseSettings):
    """How HTTP callers authenticate (``PAVED_AUTH_MODE``, ``PAVED_OIDC_*``).

    Mixed into each service's settings so that validation refuses an unsafe setup at
    start: dev headers outside dev/test, OIDC without issuer or audience, an
    unpinned or symmetric algorithm, plain-http issuer outside dev/test.
    """

    model_config = SettingsConfigDict(env_prefix="PAVED_", extra="ignore", frozen=True)

    environment: Literal["dev", "test", "staging", "prod"] = Field(
        default="dev", description="Deployment environment; placeholder secrets only in dev/test."
    )
    auth_mode: AuthMode | None = Field(
        default=None,
        description="'oidc' (bearer JWTs) or 'dev-headers' (X-Paved-User, dev/test only); "
        "unset: dev-headers in dev/test, oidc elsewhere.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="Exact issuer ('iss') of accepted tokens, e.g. https://sso.example/realms/paved.",
    )
    oidc_audience: str | None = Field(
        default=None, description="Audience ('aud') a token must name, e.g. paved-api."
    )
    oidc_jwks_url: str | None = Field(
        default=None,
        description="JWKS URL; unset: the jwks_uri of the issuer's discovery document.",
    )
    oidc_algorithms: tuple[str, ...] = Field(
        default=("RS256",), description="Accepted signature algorithms (asymmetric only)."
    )
    oidc_leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat, seconds."
    )
    oidc_jwks_min_refresh_s: float = Field(
        default=30.0,
        ge=0,
        description="At most one JWKS refresh per this many seconds for an unknown 'kid'.",
    )
    oidc_jwks_max_age_s: float = Field(
        default=600.0, gt=0, description="Refetch the JWKS when older than this, seconds."
    )
    oidc_user_id_claim: str = Field(
        default="sub", description="Claim holding the stable, never-reused user id."
    )
    oidc_name_claim: str = Field(
        default="name", description="Claim holding the printed name shown on signatures."
    )
    oidc_groups_claim: str = Field(default="groups", description="Claim listing groups.")
    oidc_role_groups: dict[str, Role] = Field(
        default_factory=lambda: {
            "scientists": Role.SCIENTIST,
            "approvers": Role.APPROVER,
            "deployers": Role.DEPLOYER,
            "auditors": Role.AUDITOR,
            "admins": Role.ADMIN,
        },
        description="Group name → role (JSON object in the environment).",
    )
    oidc_team_prefix: str = Field(
        default="team-", description="Groups starting with this name a team (the rest)."
    )
    oidc_all_teams_group: str = Field(
        default="teams-all", description="Group whose members see and act on every team."
    )

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not value:
            raise ValueError(
                f"PAVED_OIDC_ALGORITHMS {list(value)} must be a non-empty subset of "
                f"{sorted(ASYMMETRIC_ALGORITHMS)} ('none' and HMAC are never accepted)"
            )
        return value

    @property
    def resolved_auth_mode(self) -> AuthMode:
        """The mode in force: the configured one, else by environment."""
        if self.auth_mode is not None:
            return self.auth_mode
        return "dev-headers" if self.environment in {"dev", "test"} else "oidc"

    @model_validator(mode="after")
    def _safe_outside_dev(self) -> AuthSettings:
        mode = self.resolved_auth_mode
        if mode == "dev-headers" and self.environment not in {"dev", "test"}:
            raise ValueError(
                f"PAVED_AUTH_MODE=dev-headers is refused in environment {self.environment!r}: "
                "anyone could claim any identity; set PAVED_AUTH_MODE=oidc"
            )
        if mode == "oidc":
            if not self.oidc_issuer or not self.oidc_audience:
                raise ValueError(
                    "PAVED_AUTH_MODE=oidc needs PAVED_OIDC_ISSUER and PAVED_OIDC_AUDIENCE "
                    f"(got issuer={self.oidc_issuer!r}, audience={self.oidc_audience!r})"
                )
            if self.environment not in {"dev", "test"}:
                for name, url in (("ISSUER", self.oidc_issuer), ("JWKS_URL", self.oidc_jwks_url)):
                    if url is not None and not url.startswith("https://"):
                        raise ValueError(
                            f"PAVED_OIDC_{name} {url!r} must use https outside dev/test"
                        )
        return self


# --------------------------------------------------------------------------- JWKS


async def fetch_json(url: str, *, timeout_s: float = 5.0) -> Any:
    """GET ``url`` and parse JSON (stdlib client, in a thread: no event-loop blocking)."""
    if not url.startswith(("https://", "http://")):
        raise TokenRejectedError(f"refusing to fetch {url!r}: only http(s) URLs")

    def get() -> Any:
        req = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            return json.loads(resp.read(1_000_000))

    return await asyncio.to_thread(get)


Fetcher = Callable[[str], Awaitable[Any]]


class JwksCache:
    """The issuer's signing keys by ``kid``; refreshed on age, or on an unknown ``kid``
    at most once per ``min_refresh_s`` (single flight: concurrent misses share one fetch).
    """

    def __init__(
        self,
        url: str | Callable[[], Awaitable[str]],
        *,
        min_refresh_s: float = 30.0,
        max_age_s: float = 600.0,
        fetch: Fetcher = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._min_refresh_s = min_refresh_s
        self._max_age_s = max_age_s
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched (tests check the rate limit with it)."""

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def key(self, kid: str) -> dict[str, Any] | None:
        """The JWK with ``kid``, refreshing when stale or (rate-limited) when unknown."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self._max_age_s:
            await self._refresh(force=True)
        elif kid not in self._keys and now - self._fetched_at >= self._min_refresh_s:
            await self._refresh(force=False)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        fetched_before = self._fetched_at
        async with self._lock:
            if self._fetched_at != fetched_before:
                return  # another request refreshed while this one waited
            url = self._url if isinstance(self._url, str) else await self._url()
            try:
                doc = await self._fetch(url)
                keys = _parse_jwks(doc, url)
            except Exception as exc:
                # Keep serving the keys we have; an unknown kid stays unknown.
                log.warning("JWKS refresh from %s failed: %s", url, exc)
                if force and self._fetched_at is None:
                    raise TokenRejectedError(
                        f"the issuer's signing keys could not be fetched from {url}: {exc}"
                    ) from exc
                self._fetched_at = self._clock()
                return
            self.fetches += 1
            self._keys = keys
            self._fetched_at = self._clock()
            log.info("JWKS from %s: keys %s", url, sorted(keys))


def _parse_jwks(doc: Any, url: str) -> dict[str, dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f"{url} is not a JWKS document (no 'keys' list)")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig":
            continue  # encryption keys never verify signatures
        keys[jwk["kid"]] = jwk
    return keys


_KTY_OF_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


# --------------------------------------------------------------------------- verifier


def _b64json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise TokenRejectedError(f"malformed token: its {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise TokenRejectedError(f"malformed token: its {what} is not a JSON object")
    return value


class TokenVerifier:
    """Verifies one issuer's JWTs (RFC 8725); ``clock`` is injectable for tests."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JwksCache,
        algorithms: Iterable[str] = ("RS256",),
        leeway_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.algorithms = tuple(algorithms)
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not self.algorithms:
            raise ValueError(f"algorithms {bad or '[]'} are not allowed; use asymmetric ones")
        self.leeway_s = leeway_s
        self._clock = clock

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``TokenRejectedError`` naming the failed check."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejectedError(
                f"malformed token: a JWS has 3 dot-separated parts, this one has {len(parts)}"
            )
        header = _b64json(parts[0], "header")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRejectedError(
                f"token algorithm {alg!r} is not accepted; accepted: {list(self.algorithms)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejectedError("token header has no 'kid': cannot tell which key signed it")
        jwk = await self.jwks.key(kid)
        if jwk is None:
            raise TokenRejectedError(
                f"token signed with unknown key id {kid!r}: not in the issuer's JWKS "
                f"(known: {sorted(self.jwks.kids)})"
            )
        if jwk.get("kty") != _KTY_OF_ALG[alg[:2]] or jwk.get("alg", alg) != alg:
            raise TokenRejectedError(
                f"key {kid!r} ({jwk.get('kty')}, {jwk.get('alg')}) cannot verify alg {alg!r}"
            )
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "verify_signature": True,
                    "verify_exp": False,  # checked below against the injectable clock
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": True,
                    "verify_iss": True,
                    "require": ["exp", "iat", "iss", "aud"],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenRejectedError(
                f"token signature does not verify with key {kid!r}: altered or forged"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            iss = _b64json(parts[1], "payload").get("iss")
            raise TokenRejectedError(
                f"token issuer {iss!r} is not the trusted issuer {self.issuer!r}"
            ) from exc
        except jwt.InvalidAudienceError as exc:
            aud = _b64json(parts[1], "payload").get("aud")
            raise TokenRejectedError(
                f"token audience {aud!r} does not include {self.audience!r}"
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejectedError(f"token lacks the required claim {exc.claim!r}") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"token rejected: {exc}") from exc
        self._check_times(claims)
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        for name in ("exp", "iat", "nbf"):
            if name in claims and not isinstance(claims[name], int | float):
                raise TokenRejectedError(f"token claim {name!r} is not a number")
        exp = claims["exp"]
        if now > exp + self.leeway_s:
            raise TokenRejectedError(
                f"token expired at {_iso(exp)} ({int(now - exp)} s ago; "
                f"{int(self.leeway_s)} s clock skew allowed)"
            )
        if "nbf" in claims and now + self.leeway_s < claims["nbf"]:
            raise TokenRejectedError(f"token not valid before {_iso(claims['nbf'])}")
        if now + self.leeway_s < claims["iat"]:
            raise TokenRejectedError(f"token issued in the future ({_iso(claims['iat'])})")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def discover_jwks_url(issuer: str, *, fetch: Fetcher = fetch_json) -> str:
    """The ``jwks_uri`` of ``issuer``'s discovery document; its ``issuer`` must match exactly."""
    doc = await fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if not isinstance(doc, dict) or doc.get("issuer") != issuer:
        found = doc.get("issuer") if isinstance(doc, dict) else None
        raise TokenRejectedError(
            f"the discovery document of {issuer!r} names issuer {found!r}; they must be equal"
        )
    url = doc.get("jwks_uri")
    if not isinstance(url, str):
        raise TokenRejectedError(f"the discovery document of {issuer!r} has no jwks_uri")
    return url


# --------------------------------------------------------------------------- claims → principal


def principal_from_claims(claims: Mapping[str, Any], settings: AuthSettings) -> Principal:
    """Map verified claims to a ``Principal`` (user id, printed name, roles, teams)."""
    user_id = claims.get(settings.oidc_user_id_claim)
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise TokenRejectedError(
            f"token claim {settings.oidc_user_id_claim!r} is not a user id: {user_id!r}"
        )
    name = claims.get(settings.oidc_name_claim)
    if not isinstance(name, str) or not name.strip():
        given = " ".join(
            str(claims[c]) for c in ("given_name", "family_name") if isinstance(claims.get(c), str)
        )
        name = given or claims.get("preferred_username") or user_id
    groups_raw = claims.get(settings.oidc_groups_claim, [])
    if not isinstance(groups_raw, list):
        raise TokenRejectedError(
            f"token claim {settings.oidc_groups_claim!r} must be a list, got {groups_raw!r}"
        )
    groups = {g.strip("/").rsplit("/", 1)[-1] for g in groups_raw if isinstance(g, str)}
    roles = {settings.oidc_role_groups[g] for g in groups if g in settings.oidc_role_groups}
    roles |= {Role(g) for g in groups if g in _ROLE_NAMES}
    prefix = settings.oidc_team_prefix
    teams = {g[len(prefix) :] for g in groups if prefix and g.startswith(prefix) and g != prefix}
    auth_time = claims.get("auth_time")
    return Principal(
        user_id=user_id,
        printed_name=str(name).strip()[:256],
        roles=frozenset(roles),
        teams=frozenset(teams),
        all_teams=settings.oidc_all_teams_group in groups,
        auth_mode="oidc",
        auth_time=(
            datetime.fromtimestamp(auth_time, UTC) if isinstance(auth_time, int | float) else None
        ),
        issuer=str(claims.get("iss")),
        token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
        username=claims.get("preferred_username")
        if isinstance(claims.get("preferred_username"), str)
        else None,
        claims=dict(claims),
    )


def _header_text(value: str) -> str:
    # HTTP header values arrive as latin-1; a UTF-8 client's "José" is recovered here.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def principal_from_dev_headers(headers: Mapping[str, str]) -> Principal:
    """The caller as named by dev headers (trusted blindly: dev and tests only)."""
    user = (headers.get(USER_HEADER) or "").strip()
    if not user:
        raise AuthError(
            f"missing {USER_HEADER} header: say who you are (dev-headers mode)",
            code="unauthenticated",
        )
    user = _header_text(user)
    if not _USER_ID.match(user):
        raise AuthError(
            f"{USER_HEADER} {user[:80]!r} is not a user id (one word, 1 to 250 characters)",
            code="unauthenticated",
        )
    name = _header_text((headers.get(NAME_HEADER) or "").strip())
    if not name:
        raise AuthError(
            f"missing {NAME_HEADER} header: a signature shows the signer's printed name",
            code="unauthenticated",
        )
    if len(name) > 256:
        raise AuthError(
            f"{NAME_HEADER} is {len(name)} characters long; at most 256", code="unauthenticated"
        )
    roles_text = headers.get(ROLES_HEADER)
    if roles_text is None:
        roles = DEV_DEFAULT_ROLES
    else:
        wanted = [r.strip() for r in roles_text.split(",") if r.strip()]
        unknown = [r for r in wanted if r not in _ROLE_NAMES]
        if unknown:
            raise AuthError(
                f"{ROLES_HEADER} names unknown roles {unknown}; known: {[r.value for r in Role]}",
                code="unauthenticated",
            )
        roles = frozenset(Role(r) for r in wanted)
    teams_text = headers.get(TEAMS_HEADER)
    teams = frozenset(t.strip() for t in (teams_text or "").split(",") if t.strip())
    return Principal(
        user_id=user,
        printed_name=name,
        roles=frozenset(roles),
        teams=teams,
        all_teams=teams_text is None,
        auth_mode="dev-headers",
    )


# --------------------------------------------------------------------------- authenticator


class Authenticator:
    """Turns request headers into a ``Principal`` in the configured mode."""

    def __init__(self, settings: AuthSettings, *, verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self.mode: AuthMode = settings.resolved_auth_mode
        if self.mode == "oidc" and verifier is None:
            verifier = verifier_from_settings(settings)
        self.verifier = verifier

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller, or ``AuthError`` (401) saying what is missing or wrong."""
        if self.mode == "dev-headers":
            return principal_from_dev_headers(headers)
        assert self.verifier is not None
        value = headers.get("Authorization") or headers.get("authorization") or ""
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            hint = (
                f" ({USER_HEADER} is accepted only in dev-headers mode)"
                if headers.get(USER_HEADER)
                else ""
            )
            raise AuthError(
                f"missing 'Authorization: Bearer <token>' header: log in to "
                f"{self.settings.oidc_issuer} and send its access token{hint}",
                code="unauthenticated",
            )
        claims = await self.verifier.verify(token.strip())
        return principal_from_claims(claims, self.settings)


def verifier_from_settings(
    settings: AuthSettings, *, fetch: Fetcher = fetch_json, clock: Callable[[], float] = time.time
) -> TokenVerifier:
    """A verifier for ``settings``' issuer; the JWKS URL is discovered on first use if unset."""
    issuer = settings.oidc_issuer
    audience = settings.oidc_audience
    if not issuer or not audience:
        raise ValueError("OIDC needs PAVED_OIDC_ISSUER and PAVED_OIDC_AUDIENCE")
    jwks_url: str | None = settings.oidc_jwks_url

    async def url() -> str:
        nonlocal jwks_url
        if jwks_url is None:
            jwks_url = await discover_jwks_url(issuer, fetch=fetch)
        return jwks_url

    jwks = JwksCache(
        url,
        min_refresh_s=settings.oidc_jwks_min_refresh_s,
        max_age_s=settings.oidc_jwks_max_age_s,
        fetch=fetch,
    )
    return TokenVerifier(
        issuer=issuer,
        audience=audience,
        jwks=jwks,
        algorithms=settings.oidc_algorithms,
        leeway_s=settings.oidc_leeway_s,
        clock=clock,
    )


# --------------------------------------------------------------------------- FastAPI


def authenticator_of(app_state: Any, settings: AuthSettings) -> Authenticator:
    """The app's ``Authenticator``, made once from ``settings`` and kept on ``app.state``."""
    auth = getattr(app_state, "paved_authenticator", None)
    if not isinstance(auth, Authenticator):
        auth = Authenticator(settings)
        app_state.paved_authenticator = auth
    return auth


def principal_dependency(
    settings_of: Callable[[Request], AuthSettings],
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency returning the caller's ``Principal`` (raises ``AuthError``).

    ``settings_of(request)`` gives the service's settings (an ``AuthSettings``); the
    ``Authenticator`` is built on first use and kept on ``app.state``, so JWKS keys are
    cached per process. Map ``AuthError`` to problem+json in the service.
    """
    from starlette.requests import Request as StarletteRequest

    async def dependency(request: StarletteRequest) -> Principal:
        auth = authenticator_of(request.app.state, settings_of(request))
        principal = await auth.authenticate(request.headers)
        request.state.principal = principal
        return principal

    # FastAPI reads the signature to inject the request; give it the real class, not
    # the postponed string annotation this module's __future__ import would leave.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=StarletteRequest
            )
        ],
        return_annotation=Principal,
    )
    return dependency
