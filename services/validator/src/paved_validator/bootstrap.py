"""Wiring of the validator process; no I/O happens here."""

from __future__ import annotations

import functools
from importlib import metadata, resources

from paved_schemas import topics
from paved_schemas.events import ModelVersionRegistered, ModelVersionValidated
from paved_shared.db import load_migrations
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_validator.adapters.evidence import FileEvidenceStore
from paved_validator.adapters.sandbox import Sandbox, default_masks
from paved_validator.handlers import on_model_version_registered
from paved_validator.ports import EvidenceStore, SandboxPort
from paved_validator.settings import ValidatorSettings
from paved_validator.validation import Validator

DESCRIPTION = (
    "Checks each registered model version (digest, format allowlist) and runs a smoke "
    "inference in a network-less sandbox; publishes ModelVersionValidated with evidence."
)


def validator_version() -> str:
    """The installed version of this package (recorded in every result)."""
    return metadata.version("paved-validator")


def create_runtime(
    settings: ValidatorSettings,
    *,
    sandbox: SandboxPort | None = None,
    evidence: EvidenceStore | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The validator's runtime: subscribed to registrations, emitting validation results.

    `sandbox`, `evidence` and `metrics_registry` replace the defaults (tests use them).
    """
    evidence_dir = settings.validator_evidence_dir.resolve()
    if sandbox is None:
        sandbox = Sandbox(
            timeout_s=settings.validator_sandbox_timeout_s,
            memory_mb=settings.validator_sandbox_memory_mb,
            cpu_s=settings.validator_sandbox_cpu_s,
            bwrap=settings.validator_bwrap,
            masks=default_masks([evidence_dir]),
        )
    runtime = ServiceRuntime(
        settings,
        service="validator",
        schema=settings.validator_db_schema,
        group=settings.validator_consumer_group,
        migrations=load_migrations("validator", resources.files("paved_validator") / "migrations"),
        description=DESCRIPTION,
        metrics_registry=metrics_registry,
    )
    validator = Validator(
        sandbox=sandbox,
        artifact_root=settings.validator_artifact_root,
        scratch_root=settings.validator_scratch_dir,
        latency_calls=settings.validator_latency_calls,
        memory_mb=settings.validator_sandbox_memory_mb,
        cpu_s=settings.validator_sandbox_cpu_s,
    )
    runtime.subscribe(
        topics.MODEL_EVENTS,
        functools.partial(
            on_model_version_registered,
            runtime=runtime,
            validator=validator,
            sandbox=sandbox,
            evidence=evidence or FileEvidenceStore(evidence_dir),
            validator_version=validator_version(),
        ),
        event_types={ModelVersionRegistered.TYPE},
        description="Validate each newly registered model version once.",
    )
    runtime.declare_emits(ModelVersionValidated)
    return runtime
