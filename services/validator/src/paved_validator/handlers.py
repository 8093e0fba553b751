"""Consumer handlers of the validator."""

from __future__ import annotations

import logging
from typing import Any

from paved_schemas.envelope import Envelope
from paved_schemas.events import ModelVersionRegistered, ModelVersionValidated
from paved_shared.artifacts import ArtifactError
from paved_shared.consumer import PermanentError
from paved_shared.db import Connection
from paved_shared.service import ServiceRuntime

from paved_validator.domain.evidence import canonical_bytes, evidence_document, sha256_digest
from paved_validator.domain.report_html import render
from paved_validator.ports import EvidenceStore, SandboxPort
from paved_validator.validation import ValidationResult, Validator

log = logging.getLogger(__name__)

ACTOR = "service:validator"
ACTOR_NAME = "Paved validator"


async def on_model_version_registered(
    env: Envelope[Any],
    conn: Connection,
    *,
    runtime: ServiceRuntime,
    validator: Validator,
    sandbox: SandboxPort,
    evidence: EvidenceStore,
    validator_version: str,
) -> None:
    """Validate a newly registered version once; store the result and emit it (outbox).

    Runs inside the consumer's transaction. The slow part (fetch and sandbox run) comes
    first and writes nothing to the database; the row and the outgoing event follow.
    """
    registration = env.data
    if not isinstance(registration, ModelVersionRegistered):
        raise PermanentError(f"expected {ModelVersionRegistered.TYPE}, got {env.type!r}")
    name, version = registration.model_name, registration.version
    prior = await conn.fetchrow(
        "SELECT artifact_digest, validation_id FROM validations "
        "WHERE model_name = $1 AND version = $2",
        name, version,
    )  # fmt: skip
    if prior is not None:
        if prior["artifact_digest"] != registration.artifact_digest:
            raise PermanentError(
                f"{name} version {version} was validated with digest {prior['artifact_digest']}; "
                f"a registration with digest {registration.artifact_digest} contradicts it"
            )
        log.info("%s version %d already validated (%s); not again", name, version,
                 prior["validation_id"])  # fmt: skip
        return

    result = await validator.validate(registration)
    evidence_uri, evidence_digest = await _store_evidence(
        registration, env, result, evidence=evidence, sandbox=sandbox,
        validator_version=validator_version,
    )  # fmt: skip

    event = runtime.new_event(
        ModelVersionValidated(
            model_name=name,
            version=version,
            artifact_digest=registration.artifact_digest,
            passed=result.passed,
            reasons=result.reasons,
            checks=result.checks,
            evidence_uri=evidence_uri,
            evidence_digest=evidence_digest,
            validator_version=validator_version,
        ),
        cause=env,
        actor=ACTOR,
        actorname=ACTOR_NAME,
    )
    inserted = await conn.fetchval(
        "INSERT INTO validations (validation_id, model_name, version, artifact_digest, "
        "observed_digest, passed, reasons, checks, evidence_uri, evidence_digest, "
        "validator_version, registration_event_id, result_event_id, started_at, finished_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
        "ON CONFLICT (model_name, version) DO NOTHING RETURNING true",
        result.validation_id, name, version, registration.artifact_digest,
        result.observed_digest, result.passed, result.reasons,
        [c.model_dump(mode="json") for c in result.checks], evidence_uri, evidence_digest,
        validator_version, env.id, event.id, result.started_at, result.finished_at,
    )  # fmt: skip
    if not inserted:
        # Another consumer validated this version meanwhile; its result stands.
        log.info("%s version %d was validated concurrently; dropping this result", name, version)
        return
    await runtime.emit(conn, event)
    log.info(
        "validated %s version %d: %s (evidence %s)",
        name, version, "passed" if result.passed else "failed: " + "; ".join(result.reasons),
        evidence_uri,
    )  # fmt: skip


async def _store_evidence(
    registration: ModelVersionRegistered,
    env: Envelope[Any],
    result: ValidationResult,
    *,
    evidence: EvidenceStore,
    sandbox: SandboxPort,
    validator_version: str,
) -> tuple[str, str]:
    """Write the report at the first place that accepts it; return its URI and digest."""
    name, version = registration.model_name, registration.version
    refusals = []
    for base in evidence.locations(registration.artifact_uri, name, version, result.validation_id):
        document = evidence_document(
            validation_id=result.validation_id,
            registration=registration,
            registration_event_id=env.id,
            correlation_id=env.correlationid,
            validator_version=validator_version,
            observed_digest=result.observed_digest,
            checks=result.checks,
            passed=result.passed,
            reasons=result.reasons,
            started_at=result.started_at,
            finished_at=result.finished_at,
            sandbox_profile=sandbox.profile,
            observations=result.observations,
            details=result.details,
            html_uri=f"{base}.html",
        )
        report = canonical_bytes(document)
        html = render(document, evidence_uri=f"{base}.json").encode()
        try:
            json_uri, _ = await evidence.put(base, report, html)
        except ArtifactError as exc:
            log.warning("evidence refused at %s: %s", base, exc)
            refusals.append(f"{base}.json: {exc}")
            continue
        return json_uri, sha256_digest(report)
    # Refused for good everywhere: retrying cannot help, and a result without its evidence
    # must never be published.
    raise PermanentError(
        f"evidence for {name} version {version} could not be stored ("
        + "; ".join(refusals)
        + "); set PAVED_VALIDATOR_EVIDENCE_ROOT to a writable place"
    )
