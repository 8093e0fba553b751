"""Wiring of the validator process; no I/O happens here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import metadata, resources

from paved_schemas import topics
from paved_schemas.events import ModelVersionRegistered, ModelVersionValidated
from paved_shared.db import load_migrations
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_validator.adapters.evidence import StoreEvidenceStore
from paved_validator.adapters.sandbox import Sandbox, default_masks
from paved_validator.adapters.scanners import ImportAllowlist, ModelScan, PickleScan
from paved_validator.adapters.signing import ModelSigningVerifier
from paved_validator.domain.archives import SizeLimits
from paved_validator.handlers import on_model_version_registered
from paved_validator.ports import EvidenceStore, SandboxPort, ScannerPort
from paved_validator.settings import ValidatorSettings
from paved_validator.validation import Validator

DESCRIPTION = (
    "Checks each registered model version (size, digest, signature, format allowlist, "
    "malicious-payload scan), runs a smoke inference, latency and metric checks in a "
    "network-less sandbox; publishes ModelVersionValidated with an evidence report."
)


def validator_version() -> str:
    """The installed version of this package (recorded in every result)."""
    return metadata.version("paved-validator")


def build_sandbox(settings: ValidatorSettings) -> SandboxPort:
    """The sandbox chosen by ``PAVED_VALIDATOR_RUNNER`` (bubblewrap, or a Kubernetes Job)."""
    if settings.validator_runner == "kubernetes":
        from kubernetes_asyncio import client, config

        from paved_validator.adapters.kubernetes import KubernetesJobSandbox

        if settings.validator_scratch_dir is None:
            raise ValueError(
                "PAVED_VALIDATOR_RUNNER=kubernetes needs PAVED_VALIDATOR_SCRATCH_DIR: the "
                "mount path of the scratch volume shared with the validation Jobs"
            )

        def api_client() -> client.ApiClient:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()

        return KubernetesJobSandbox(
            api_client=api_client,
            namespace=settings.validator_k8s_namespace,
            image=settings.validator_k8s_image,
            claim=settings.validator_k8s_scratch_claim,
            scratch_root=settings.validator_scratch_dir,
            timeout_s=settings.validator_sandbox_timeout_s,
            memory_mb=settings.validator_sandbox_memory_mb,
            cpu_s=settings.validator_sandbox_cpu_s,
            runtime_class=settings.validator_k8s_runtime_class,
            poll_s=settings.validator_k8s_poll_s,
        )
    masks = [settings.validator_evidence_dir.resolve()]
    return Sandbox(
        timeout_s=settings.validator_sandbox_timeout_s,
        memory_mb=settings.validator_sandbox_memory_mb,
        cpu_s=settings.validator_sandbox_cpu_s,
        bwrap=settings.validator_bwrap,
        masks=default_masks(masks),
    )


def build_validator(settings: ValidatorSettings, sandbox: SandboxPort) -> Validator:
    """The validation pipeline with the scanners, verifier and limits from settings."""
    scanner_types: dict[str, Callable[[], ScannerPort]] = {
        "modelscan": lambda: ModelScan(settings.validator_scan_timeout_s),
        "picklescan": lambda: PickleScan(settings.validator_scan_timeout_s),
        "import-allowlist": ImportAllowlist,
    }
    return Validator(
        sandbox=sandbox,
        scanners=[scanner_types[n]() for n in settings.validator_scanners],
        verifier=ModelSigningVerifier(settings.validator_trusted_keys),
        store_config=settings.artifact_store_config(),
        artifact_root=settings.validator_artifact_root,
        scratch_root=settings.validator_scratch_dir,
        latency_calls=settings.validator_latency_calls,
        memory_mb=settings.validator_sandbox_memory_mb,
        cpu_s=settings.validator_sandbox_cpu_s,
        limits=SizeLimits(
            max_bytes=settings.validator_max_artifact_mb * 2**20,
            max_unpacked_bytes=settings.validator_max_unpacked_mb * 2**20,
            max_ratio=settings.validator_max_compression_ratio,
            max_members=settings.validator_max_archive_members,
        ),
        signature_required_from=settings.validator_signature_required_from,
        eval_max_rows=settings.validator_eval_max_rows,
    )


def create_runtime(
    settings: ValidatorSettings,
    *,
    sandbox: SandboxPort | None = None,
    evidence: EvidenceStore | None = None,
    validator: Validator | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> ServiceRuntime:
    """The validator's runtime: subscribed to registrations, emitting validation results.

    `sandbox`, `evidence`, `validator` and `metrics_registry` replace the defaults (tests
    use them).
    """
    sandbox = sandbox or build_sandbox(settings)
    validator = validator or build_validator(settings, sandbox)
    if evidence is None:
        evidence = StoreEvidenceStore(
            validator.store,
            root=settings.validator_evidence_root,
            fallback_root=settings.validator_evidence_dir.resolve().as_uri(),
            scratch=settings.validator_scratch_dir,
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
    runtime.subscribe(
        topics.MODEL_EVENTS,
        functools.partial(
            on_model_version_registered,
            runtime=runtime,
            validator=validator,
            sandbox=sandbox,
            evidence=evidence,
            validator_version=validator_version(),
        ),
        event_types={ModelVersionRegistered.TYPE},
        description="Validate each newly registered model version once.",
    )
    runtime.declare_emits(ModelVersionValidated)
    return runtime
