"""The evidence report: what was validated, how, and what each check found."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from paved_schemas.events import ModelVersionRegistered, ValidationCheck

EVIDENCE_FORMAT = "paved.validation.evidence/v2"


def evidence_document(
    *,
    validation_id: str,
    registration: ModelVersionRegistered,
    registration_event_id: str,
    correlation_id: str,
    validator_version: str,
    observed_digest: str | None,
    checks: list[ValidationCheck],
    passed: bool,
    reasons: list[str],
    started_at: datetime,
    finished_at: datetime,
    sandbox_profile: dict[str, Any],
    observations: dict[str, Any] | None,
    details: dict[str, Any] | None = None,
    html_uri: str | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (times in UTC, ISO 8601)."""
    return {
        "format": EVIDENCE_FORMAT,
        "validation_id": validation_id,
        "model_name": registration.model_name,
        "version": registration.version,
        "artifact_uri": registration.artifact_uri,
        "artifact_digest": registration.artifact_digest,
        "observed_digest": observed_digest,
        "framework": registration.framework.value,
        "risk_tier": registration.model_card.risk_tier.value,
        "signature": registration.signature.model_dump(mode="json"),
        "metric_thresholds": {
            k: v.model_dump(mode="json")
            for k, v in (registration.model_card.metric_thresholds or {}).items()
        },
        "registered_by": registration.registered_by,
        "registration_event_id": registration_event_id,
        "correlation_id": correlation_id,
        "validator_version": validator_version,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "passed": passed,
        "reasons": reasons,
        "checks": [c.model_dump(mode="json") for c in checks],
        "details": details or {},
        "sandbox_profile": sandbox_profile,
        "sandbox_observations": observations,
        "html_report_uri": html_uri,
    }


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """Stable serialisation (sorted keys, no whitespace, UTF-8): the bytes that are hashed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of some bytes."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
