"""Registration rules that need no I/O: the request fingerprint and implicit models."""

from __future__ import annotations

import hashlib
import json

from paved_schemas.events import RegisterModelVersion

UNKNOWN_TEAM = "unknown"
"""Owner team of a model created implicitly when its registration names no ``team`` tag."""


def request_fingerprint(command: RegisterModelVersion) -> str:
    """SHA-256 over the canonical JSON of a registration, its idempotency key left out.

    Two requests with one key and the same fingerprint are a replay; with different
    fingerprints, a conflict. Defaults are filled in first, so an omitted field and the
    same field sent with its default value are the same request.
    """
    body = command.model_dump(mode="json", exclude={"request_id"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def implicit_owner_team(command: RegisterModelVersion) -> str:
    """The owner team of a model that a pipeline's registration creates implicitly."""
    team = command.tags.get("team", "").strip()
    return team or UNKNOWN_TEAM
