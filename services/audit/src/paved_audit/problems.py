"""The audit API's problems: the shared RFC 9457 layer (``paved_shared.http``) and the
one thing the audit API adds to it, a 405 that says the API is read-only."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from paved_shared.http import ProblemError

__all__ = ["ProblemError", "decorate_read_only"]


def decorate_read_only(request: Request, content: dict[str, Any], problem: ProblemError) -> None:
    """A method the API does not serve is a write: say that the audit API is read-only."""
    if problem.status == 405:
        content["detail"] = f"{request.method} {request.url.path}: the audit API is read-only"
