"""Settings of the registry process (environment prefix ``PAVED_``)."""

from __future__ import annotations

from pathlib import Path

from paved_schemas import topics
from paved_shared.artifacts import ArtifactStoreSettings
from paved_shared.auth import AuthSettings
from paved_shared.settings import PavedSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class RegistrySettings(PavedSettings, ArtifactStoreSettings, AuthSettings):
    """Everything the registry reads from its environment; ``PAVED_REGISTRY_*`` are its own."""

    # Restated: with two BaseSettings bases, the mixin's default config (no prefix) would win.
    model_config = SettingsConfigDict(env_prefix="PAVED_", extra="ignore", frozen=True)

    service_name: str = Field(default="registry", description="Name used in logs, traces, metrics.")
    registry_http_host: str = Field(
        default="127.0.0.1", description="Address the HTTP API listens on."
    )
    registry_http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port the HTTP API listens on."
    )
    registry_db_schema: str = Field(
        default="registry",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding the registry's tables (tests use one each).",
    )
    registry_consumer_group: str = Field(
        default=topics.GROUP_REGISTRY,
        min_length=1,
        description="Kafka consumer group of the registry's subscribers.",
    )
    registry_protected_aliases: tuple[str, ...] = Field(
        default=("champion", "production", "prod"),
        description="Aliases that may only point to an approved (or deployed) version, on "
        "every model (any alias can also be protected when it is set).",
    )
    registry_artifact_root: Path | None = Field(
        default=None,
        description="Confines the file:// artifacts the registry reads (to pin the digest "
        "of an MLflow-API registration); unset: any local path the process can read.",
    )
    registry_require_if_match: bool = Field(
        default=True,
        description="Refuse (428) PATCHes without If-Match: optimistic concurrency is mandatory.",
    )
    registry_mlflow_require_if_match: bool = Field(
        default=False,
        description="Refuse (428) MLflow-API writes without If-Match. Off by default: an "
        "unmodified MLflow client never sends one; an If-Match that is sent is always "
        "checked (412 when stale).",
    )
