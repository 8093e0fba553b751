"""RFC 9457 problem details for the audit API: every error is ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from paved_shared.auth import AuthError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://paved.dev/problems/"


class ProblemError(Exception):
    """Raise from a route (or dependency) to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers = headers
        self.errors = errors


def problem_response(request: Request, exc: ProblemError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + exc.slug,
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": request.url.path,
    }
    if exc.errors:
        body["errors"] = exc.errors
    return JSONResponse(body, exc.status, headers=exc.headers, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error with problem+json; bad input is a 4xx naming the value."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(request, exc)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "location": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", ""),
                "input": repr(err.get("input"))[:200],
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']} (got {e['input']})" for e in errors)
        problem = ProblemError(422, "invalid-request", "Invalid request", detail, errors=errors)
        return problem_response(request, problem)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else repr(exc.detail)
        if exc.status_code == 404:
            detail = f"no route for {request.method} {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} {request.url.path}: the audit API is read-only"
        problem = ProblemError(
            exc.status_code, "http-error", "HTTP error", detail, headers=dict(exc.headers or {})
        )
        return problem_response(request, problem)

    async def on_auth(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        title = "Unauthenticated" if exc.status == 401 else "Forbidden"
        problem = ProblemError(exc.status, exc.code, title, exc.detail, headers=exc.headers)
        return problem_response(request, problem)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(AuthError, on_auth)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(StarletteHTTPException, on_http)
