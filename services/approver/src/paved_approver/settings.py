"""Settings of the approver process (environment prefix ``PAVED_``)."""

from __future__ import annotations

from pathlib import Path

from paved_schemas import topics
from paved_shared.auth import AuthSettings
from paved_shared.settings import PavedSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict


class ApproverSettings(PavedSettings, AuthSettings):
    """The shared Paved settings, the auth settings (``PAVED_AUTH_MODE``, ``PAVED_OIDC_*``)
    and the approver's own (``PAVED_APPROVER_*``)."""

    model_config = SettingsConfigDict(env_prefix="PAVED_", extra="ignore", frozen=True)

    service_name: str = Field(default="approver", description="Name used in logs, traces, metrics.")
    approver_db_schema: str = Field(
        default="approver",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema the approver owns (tests use a fresh one each).",
    )
    approver_consumer_group: str = Field(
        default=topics.GROUP_APPROVER,
        min_length=1,
        description="Kafka consumer group of the approver's subscribers.",
    )
    approver_http_host: str = Field(
        default="127.0.0.1", description="Interface the HTTP API listens on."
    )
    approver_http_port: int = Field(
        default=8081, ge=0, le=65535, description="Port the HTTP API listens on."
    )
    approver_policy_file: Path | None = Field(
        default=None,
        description="YAML approval policy; unset: the packaged policies/default.yaml.",
    )
    approver_signing_max_auth_age_s: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="Signing needs a login (OIDC auth_time) at most this many seconds old.",
    )
    approver_expiry_check_s: float = Field(
        default=30.0, gt=0, description="How often granted approvals are checked for expiry."
    )
    approver_seal_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) sealing signature records; required outside "
        "dev/test (dev/test keep a generated key in the database).",
    )

    @model_validator(mode="after")
    def _seal_key_outside_dev(self) -> ApproverSettings:
        if self.environment not in {"dev", "test"} and self.approver_seal_key_file is None:
            raise ValueError(
                "PAVED_APPROVER_SEAL_KEY_FILE is required outside dev/test: signature seals "
                "need a key kept outside the database"
            )
        return self
