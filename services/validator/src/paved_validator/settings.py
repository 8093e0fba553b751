"""Settings of the validator (environment prefix `PAVED_`, e.g. `PAVED_VALIDATOR_EVIDENCE_DIR`)."""

from __future__ import annotations

from pathlib import Path

from paved_schemas import topics
from paved_shared.settings import PavedSettings
from pydantic import Field


class ValidatorSettings(PavedSettings):
    """What the validator worker reads from its environment."""

    service_name: str = Field(default="validator", description="Name in logs, traces, metrics.")
    validator_db_schema: str = Field(
        default="validator", description="PostgreSQL schema owned by the validator."
    )
    validator_consumer_group: str = Field(
        default=topics.GROUP_VALIDATOR, description="Kafka consumer group of the validator."
    )
    validator_evidence_dir: Path = Field(
        default=Path(".run/evidence"),
        description="Folder evidence reports are written to, as "
        "<dir>/<model>/<version>/<validation-id>.json.",
    )
    validator_artifact_root: Path | None = Field(
        default=None,
        description="If set, file:// artifacts outside this folder are refused.",
    )
    validator_scratch_dir: Path | None = Field(
        default=None,
        description="Where per-validation scratch folders are made (default: the system temp dir).",
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
