"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from paved_registry.domain.errors import (
    BadQueryError,
    DigestMismatchError,
    IdempotencyConflictError,
    ImmutableRecordError,
    InvalidChangeError,
    InvalidParameterError,
    ManualTransitionError,
    ModelExistsError,
    PreconditionFailedError,
    PreconditionRequiredError,
    ProtectedAliasError,
    ReasonRequiredError,
    RegistryError,
    StateConflictError,
    UnknownAliasError,
    UnknownDeploymentError,
    UnknownModelError,
    UnknownVersionError,
    VersionConflictError,
)
from paved_registry.domain.lifecycle import IllegalTransitionError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://paved.dev/problems/"


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
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers
        self.errors = errors


_DOMAIN_STATUS: dict[type[RegistryError], tuple[int, str]] = {
    UnknownModelError: (404, "unknown-model"),
    UnknownVersionError: (404, "unknown-version"),
    UnknownDeploymentError: (404, "unknown-deployment"),
    ModelExistsError: (409, "model-exists"),
    VersionConflictError: (409, "version-conflict"),
    IdempotencyConflictError: (409, "idempotency-conflict"),
    StateConflictError: (409, "state-conflict"),
    DigestMismatchError: (409, "digest-mismatch"),
    UnknownAliasError: (404, "unknown-alias"),
    PreconditionFailedError: (412, "precondition-failed"),
    PreconditionRequiredError: (428, "precondition-required"),
    ProtectedAliasError: (409, "protected-alias"),
    ReasonRequiredError: (422, "reason-required"),
    ImmutableRecordError: (409, "records-are-kept"),
    ManualTransitionError: (409, "state-set-by-platform"),
    InvalidChangeError: (422, "invalid-change"),
    BadQueryError: (422, "invalid-query"),
    InvalidParameterError: (422, "invalid-parameter"),
}

MLFLOW_PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
_MLFLOW_CODES: dict[int, str] = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "ENDPOINT_NOT_FOUND",
    409: "INVALID_STATE",
    412: "INVALID_STATE",
    422: "INVALID_PARAMETER_VALUE",
    428: "INVALID_STATE",
    503: "TEMPORARILY_UNAVAILABLE",
}


def mlflow_error_code(status: int, slug: str, path: str) -> str:
    """The MLflow ``error_code`` of a problem, so an MLflow client raises the exception its
    callers expect (``register_model`` relies on RESOURCE_ALREADY_EXISTS)."""
    if slug == "model-exists":
        return "RESOURCE_ALREADY_EXISTS"
    if status == 404 and slug.startswith("http-"):
        return "ENDPOINT_NOT_FOUND"
    return _MLFLOW_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[FieldProblem] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    content = jsonable_encoder(body.model_dump(exclude_none=True))
    if request.url.path.startswith(MLFLOW_PREFIXES):
        # MLflow clients read error_code and message; the problem fields stay for everyone else.
        content["error_code"] = mlflow_error_code(status, slug, request.url.path)
        content["message"] = detail
    return JSONResponse(
        content,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _shorten(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _safe_value(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except Exception:  # the input may be anything the client sent
        return repr(value)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error with problem+json; bad input is a 4xx naming field and value."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            request, exc.status, exc.slug, exc.title, exc.detail,
            headers=exc.headers, errors=exc.errors,
        )  # fmt: skip

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RegistryError)
        status, slug = _DOMAIN_STATUS.get(type(exc), (409, "conflict"))
        errors = None
        field = getattr(exc, "parameter", None) or getattr(exc, "field", None)
        if field is not None:
            status, slug = (422, slug) if status == 409 else (status, slug)
            errors = [
                FieldProblem(field=field, value=_safe_value(getattr(exc, "value", None)),
                             message=str(exc))
            ]  # fmt: skip
        return problem_response(request, status, slug, exc.title, str(exc), errors=errors)

    async def on_illegal(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, 409, "illegal-transition", "Illegal transition", str(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            FieldProblem(
                field=_field_name(tuple(e.get("loc", ()))),
                value=_safe_value(e.get("input")),
                message=str(e.get("msg", "invalid")),
            )
            for e in exc.errors()
        ]
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        detail = "; ".join(f"{p.field}: {p.message} (got {_shorten(p.value)})" for p in errors)
        if malformed:
            return problem_response(
                request, 400, "malformed-json", "Malformed JSON body", detail, errors=errors
            )
        return problem_response(
            request, 422, "invalid-request", "Invalid request", detail, errors=errors
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        if exc.status_code == 404:
            detail = f"no such resource: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return problem_response(
            request, exc.status_code, f"http-{exc.status_code}", detail.split(":")[0], detail,
            headers=dict(exc.headers) if exc.headers else None,
        )  # fmt: skip

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, "internal-error", "Internal error",
            "the registry failed to handle this request; it was logged, retry later",
        )  # fmt: skip

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RegistryError, on_domain)
    app.add_exception_handler(IllegalTransitionError, on_illegal)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
