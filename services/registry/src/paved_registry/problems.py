"""The registry's problems: its domain errors as RFC 9457 problems, and MLflow's fields.

The problem machinery itself (handlers, ``ProblemError``, the body size limit) is
``paved_shared.http``; this module only says which status and slug each registry error
gets, and adds ``error_code``/``message`` on MLflow paths so MLflow clients raise the
exception their callers expect.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from paved_shared.authz import NotVisibleError
from paved_shared.http import (
    PROBLEM_JSON,
    FieldProblem,
    Problem,
    ProblemError,
    ProblemMapper,
    problem_response,
    safe_value,
)

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

__all__ = [
    "MAPPERS",
    "PROBLEM_JSON",
    "FieldProblem",
    "Problem",
    "ProblemError",
    "decorate_mlflow",
    "problem_response",
]

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


def decorate_mlflow(request: Request, content: dict[str, Any], problem: ProblemError) -> None:
    """On MLflow paths, add MLflow's ``error_code`` and ``message`` (the problem fields stay
    for everyone else)."""
    if request.url.path.startswith(MLFLOW_PREFIXES):
        content["error_code"] = mlflow_error_code(problem.status, problem.slug, request.url.path)
        content["message"] = problem.detail


def _domain_problem(exc: Exception) -> ProblemError:
    assert isinstance(exc, RegistryError)
    status, slug = _DOMAIN_STATUS.get(type(exc), (409, "conflict"))
    errors = None
    field = getattr(exc, "parameter", None) or getattr(exc, "field", None)
    if field is not None:
        status = 422 if status == 409 else status
        errors = [
            FieldProblem(field=field, value=safe_value(getattr(exc, "value", None)),
                         message=str(exc))
        ]  # fmt: skip
    return ProblemError(status, slug, exc.title, str(exc), errors=errors)


def _illegal_problem(exc: Exception) -> ProblemError:
    return ProblemError(409, "illegal-transition", "Illegal transition", str(exc))


def _not_visible_problem(exc: Exception) -> ProblemError:
    # Exactly what an unknown model answers: whether it exists is not the caller's to know.
    error = UnknownModelError(str(exc))
    return ProblemError(404, "unknown-model", error.title, str(error))


MAPPERS: dict[type[Exception], ProblemMapper] = {
    RegistryError: _domain_problem,
    IllegalTransitionError: _illegal_problem,
    NotVisibleError: _not_visible_problem,
}
"""The registry's exceptions → problems (for ``paved_shared.http.install_http``)."""
