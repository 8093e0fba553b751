"""The HTTP edge every Paved API shares: identity on every route, RFC 9457 problems,
health and readiness, and a request body size limit.

A service adopts it in a few lines::

    app = FastAPI(...)
    install_http(app, max_body_bytes=settings.http_max_body_bytes,
                 mappers={MyDomainError: my_problem})
    add_health_routes(app, {"database": check_db, "kafka": check_kafka})
    principal = principal_of(lambda request: request.app.state.settings)
    router = authenticated_router(principal, prefix="/api/v1")

- ``authenticated_router``: every route of the router needs an authenticated
  ``Principal`` (401 problem otherwise); routes get the same principal with
  ``Depends(principal)`` (FastAPI solves it once per request). Only the health routes
  and the OpenAPI document stay public.
- ``install_problem_handlers``: every error is ``application/problem+json``: the
  service's own exceptions through ``mappers``, ``AuthError`` as 401/403 (with
  ``WWW-Authenticate``), invalid input as 422 naming field and value, and no traceback.
- ``BodySizeLimit``: 413 before the app reads a body that is too large, whether its
  ``Content-Length`` says so or a chunked body grows past the limit while streamed (the
  body is counted as it arrives and never buffered past the limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paved_shared.auth import AuthError, AuthSettings, Principal, principal_dependency

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
PROBLEM_BASE: Final = "https://paved.dev/problems/"
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
"""8 MiB: far more than any JSON request of the APIs, far less than memory."""
PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"})
"""The only paths that answer without an identity."""


# --------------------------------------------------------------------------- problems


class FieldProblem(BaseModel):
    """One invalid part of a request."""

    field: str = Field(description="Where: a body field path, a header or a query parameter.")
    value: Any = Field(default=None, description="The offending value, as received.")
    message: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="URI identifying the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence, with the values.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldProblem] | None = Field(
        default=None, description="For invalid input: each offending field and value."
    )


class ProblemError(Exception):
    """Raise from a route or dependency to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers) if headers else None
        self.errors = errors


class PayloadTooLargeError(StarletteHTTPException):
    """The request body is larger than the API accepts (413)."""

    def __init__(self, limit: int, seen: int | None = None) -> None:
        said = f"{seen} bytes" if seen is not None else f"more than {limit} bytes"
        super().__init__(
            413,
            detail=f"request body of {said} is larger than the {limit}-byte limit; "
            "send a smaller body (artifacts go to the artifact store, not the API)",
        )
        self.limit = limit


ProblemMapper = Callable[[Exception], ProblemError]
"""Turns a service's own exception into the problem to answer with."""
ProblemDecorator = Callable[[Request, dict[str, Any], ProblemError], None]
"""Adds fields to a problem body before it is sent (e.g. MLflow's ``error_code``)."""


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem answers for ``statuses``."""
    return {
        code: {"model": Problem, "content": {PROBLEM_JSON: {}}}
        for code in (401, 403, 413, *statuses)
    }


def problem_body(problem: ProblemError, instance: str | None) -> dict[str, Any]:
    """The JSON document of ``problem``."""
    body = Problem(
        type=PROBLEM_BASE + problem.slug,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=instance,
        errors=problem.errors,
    )
    content: dict[str, Any] = jsonable_encoder(body.model_dump(exclude_none=True))
    return content


def problem_response(
    request: Request, problem: ProblemError, *, decorate: ProblemDecorator | None = None
) -> JSONResponse:
    """``problem`` as an ``application/problem+json`` response."""
    content = problem_body(problem, request.url.path)
    decorate = decorate or getattr(request.app.state, "paved_problem_decorator", None)
    if decorate is not None:
        decorate(request, content, problem)
    return JSONResponse(
        content, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _shorten(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def safe_value(value: Any) -> Any:
    """``value`` as JSON if it can be, else its repr (the input may be anything)."""
    try:
        return jsonable_encoder(value)
    except Exception:
        return repr(value)


def _auth_problem(exc: Exception) -> ProblemError:
    assert isinstance(exc, AuthError)
    title = "Unauthenticated" if exc.status == 401 else "Forbidden"
    return ProblemError(exc.status, exc.code, title, exc.detail, headers=exc.headers or None)


def install_problem_handlers(
    app: FastAPI,
    *,
    mappers: Mapping[type[Exception], ProblemMapper] | None = None,
    decorate: ProblemDecorator | None = None,
    service: str = "the service",
) -> None:
    """Answer every error with problem+json; bad input is a 4xx naming field and value.

    ``mappers`` turn the service's exceptions (matched by class, most specific first as
    Starlette does) into problems; ``decorate`` adds fields to every problem body.
    """
    app.state.paved_problem_decorator = decorate

    def mapped(mapper: ProblemMapper) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return problem_response(request, mapper(exc))

        return handler

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            FieldProblem(
                field=_field_name(tuple(e.get("loc", ()))),
                value=safe_value(e.get("input")),
                message=str(e.get("msg", "invalid")),
            )
            for e in exc.errors()
        ]
        detail = "; ".join(f"{p.field}: {p.message} (got {_shorten(p.value)})" for p in errors)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            problem = ProblemError(400, "malformed-json", "Malformed JSON body", detail,
                                   errors=errors)  # fmt: skip
        else:
            problem = ProblemError(422, "invalid-request", "Invalid request", detail,
                                   errors=errors)  # fmt: skip
        return problem_response(request, problem)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        slug = f"http-{exc.status_code}"
        if exc.status_code == 404:
            detail = f"no such resource: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        elif isinstance(exc, PayloadTooLargeError):
            slug = "payload-too-large"
        headers = dict(exc.headers) if exc.headers else None
        if isinstance(exc, PayloadTooLargeError):
            headers = {**(headers or {}), "Connection": "close"}
        return problem_response(
            request,
            ProblemError(exc.status_code, slug, detail.split(":")[0], detail, headers=headers),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            ProblemError(500, "internal-error", "Internal error",
                         f"{service} failed to handle this request; it was logged, retry later"),
        )  # fmt: skip

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(AuthError, mapped(_auth_problem))
    for exc_type, mapper in (mappers or {}).items():
        app.add_exception_handler(exc_type, mapped(mapper))
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


# --------------------------------------------------------------------------- body size


class BodySizeLimit:
    """ASGI middleware: refuse (413 problem) request bodies larger than ``max_bytes``.

    A ``Content-Length`` above the limit is refused before the app runs, without
    reading a byte of the body. A body without one (chunked) is counted as the app
    reads it: the read that crosses the limit raises ``PayloadTooLargeError``, which the
    problem handlers answer with 413, so at most ``max_bytes`` plus one chunk is ever
    held. The connection is closed afterwards (the rest of the body is never read).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_problem(scope, send, PayloadTooLargeError(self.max_bytes, declared))
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLargeError as exc:
            # Read outside the app's exception handlers (e.g. by another middleware).
            if started:
                raise
            await _send_problem(scope, send, exc)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


async def _send_problem(scope: Scope, send: Send, exc: PayloadTooLargeError) -> None:
    problem = ProblemError(413, "payload-too-large", "Payload too large", str(exc.detail))
    body = json.dumps(problem_body(problem, scope.get("path"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- identity


def principal_of(
    settings_of: Callable[[Request], AuthSettings],
) -> Callable[..., Awaitable[Principal]]:
    """The FastAPI dependency giving the caller's ``Principal`` (``AuthError`` → 401/403
    problem through ``install_problem_handlers``). Make it once per app and use the same
    object everywhere: FastAPI then authenticates once per request."""
    return principal_dependency(settings_of)


def authenticated_router(
    principal: Callable[..., Awaitable[Principal]], **kwargs: Any
) -> APIRouter:
    """An ``APIRouter`` every route of which needs an authenticated caller."""
    dependencies = [Depends(principal), *kwargs.pop("dependencies", [])]
    return APIRouter(dependencies=dependencies, **kwargs)


# --------------------------------------------------------------------------- health

ReadyCheck = Callable[[], Awaitable[Mapping[str, Any] | None]]
"""A readiness probe: raises (or times out) when not ready; may return extra fields."""


def add_health_routes(
    app: FastAPI, checks: Mapping[str, ReadyCheck], *, timeout_s: float = 3.0
) -> None:
    """``GET /healthz`` (the process answers) and ``GET /readyz`` (every check passes
    within ``timeout_s``; 503 problem naming each failing check otherwise)."""

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, Any]:
        """Readiness: every dependency the service needs is reachable."""
        results: dict[str, str] = {}
        extra: dict[str, Any] = {}
        for name, check in checks.items():
            try:
                found = await asyncio.wait_for(check(), timeout=timeout_s)
                extra.update(found or {})
                results[name] = "ok"
            except Exception as exc:  # any failure means not ready, with the reason
                results[name] = f"unreachable: {exc!r}"[:300]
        if all(v == "ok" for v in results.values()):
            return {"status": "ready", "checks": results, **extra}
        detail = "; ".join(f"{k}: {v}" for k, v in results.items() if v != "ok")
        return problem_response(request, ProblemError(503, "not-ready", "Not ready", detail))


def install_http(
    app: FastAPI,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    mappers: Mapping[type[Exception], ProblemMapper] | None = None,
    decorate: ProblemDecorator | None = None,
    service: str = "the service",
) -> None:
    """Problem handlers and the body size limit on ``app`` (health routes and routers
    are added by the service: ``add_health_routes``, ``authenticated_router``)."""
    install_problem_handlers(app, mappers=mappers, decorate=decorate, service=service)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
