"""Settings of the validator (environment prefix `PAVED_`, e.g. `PAVED_VALIDATOR_BWRAP`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from paved_schemas import topics
from paved_schemas.events import RiskTier
from paved_shared.artifacts import ArtifactStoreSettings
from paved_shared.settings import PavedSettings
from pydantic import Field


class ValidatorSettings(PavedSettings, ArtifactStoreSettings):
    """What the validator worker reads from its environment."""

    service_name: str = Field(default="validator", description="Name in logs, traces, metrics.")
    validator_db_schema: str = Field(
        default="validator", description="PostgreSQL schema owned by the validator."
    )
    validator_consumer_group: str = Field(
        default=topics.GROUP_VALIDATOR, description="Kafka consumer group of the validator."
    )
    validator_evidence_root: str | None = Field(
        default=None,
        description="URI folder (file://, s3://, gs://) for evidence reports, as "
        "<root>/<model>/<version>/<validation-id>.{json,html}; unset: next to the artifact, "
        "as <artifact-uri>.evidence/<validation-id>.{json,html}.",
    )
    validator_evidence_dir: Path = Field(
        default=Path(".run/evidence"),
        description="Local fallback for evidence when its place next to the artifact refuses "
        "the write (e.g. a missing bucket); hidden from the sandbox.",
    )
    validator_artifact_root: Path | None = Field(
        default=None,
        description="If set, file:// artifacts (and evidence) outside this folder are refused.",
    )
    validator_scratch_dir: Path | None = Field(
        default=None,
        description="Where per-validation scratch folders are made (default: the system temp dir).",
    )
    validator_runner: Literal["bubblewrap", "kubernetes"] = Field(
        default="bubblewrap",
        description="Where untrusted models run: a local bubblewrap sandbox, or a Kubernetes "
        "Job (k8s/validator/) created through the API.",
    )
    validator_bwrap: str = Field(
        default="bwrap",
        description="The bubblewrap executable (name on PATH or path); without it, "
        "validation fails closed.",
    )
    validator_sandbox_timeout_s: float = Field(
        default=60.0, gt=0, description="Wall-clock limit of one sandbox run, seconds."
    )
    validator_sandbox_memory_mb: int = Field(
        default=1024, ge=128, description="Address-space limit (RLIMIT_AS) in the sandbox, MiB."
    )
    validator_sandbox_cpu_s: int = Field(
        default=60, ge=1, description="CPU-time limit (RLIMIT_CPU) in the sandbox, seconds."
    )
    validator_latency_calls: int = Field(
        default=20, ge=1, le=10_000, description="predict calls timed for the latency check."
    )
    validator_max_artifact_mb: int = Field(
        default=2048, ge=1, description="Largest artifact fetched, MiB (checked before fetching)."
    )
    validator_max_unpacked_mb: int = Field(
        default=2048, ge=1, description="Most a compressed artifact may unpack to, MiB."
    )
    validator_max_compression_ratio: float = Field(
        default=200.0, gt=1, description="Highest unpacked:packed ratio of a compressed file."
    )
    validator_max_archive_members: int = Field(
        default=10_000, ge=1, description="Most members a zip file may have."
    )
    validator_signature_required_from: RiskTier | None = Field(
        default=RiskTier.HIGH,
        description="Lowest risk tier that must carry a valid OpenSSF model signature "
        "(<artifact-uri>.sig); unset: never required (a present signature is still verified).",
    )
    validator_trusted_keys: list[Path] = Field(
        default_factory=list,
        description="PEM public keys (ECDSA) whose model signatures are trusted.",
    )
    validator_scanners: list[Literal["modelscan", "picklescan", "import-allowlist"]] = Field(
        default=["modelscan", "picklescan", "import-allowlist"],
        min_length=1,
        description="Scanners every pickle must pass (all of them, fail closed).",
    )
    validator_scan_timeout_s: float = Field(
        default=120.0, gt=0, description="Wall-clock limit of one scanner run, seconds."
    )
    validator_eval_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows an evaluation set may have."
    )
    validator_k8s_namespace: str = Field(
        default="paved",
        description="Namespace of validation Jobs (kubernetes): the validator's own.",
    )
    validator_k8s_image: str = Field(
        default="ghcr.io/paved/validator:latest", description="Image of validation Jobs."
    )
    validator_k8s_scratch_claim: str = Field(
        default="paved-validation-scratch",
        description="PVC shared by the validator (at PAVED_VALIDATOR_SCRATCH_DIR) and its Jobs.",
    )
    validator_k8s_runtime_class: str | None = Field(
        default=None, description="RuntimeClass of validation Jobs, e.g. 'gvisor'."
    )
    validator_k8s_poll_s: float = Field(
        default=2.0, gt=0, description="How often a Job's status is read (watch is not used)."
    )
