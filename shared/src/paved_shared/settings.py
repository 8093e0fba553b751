"""Typed settings shared by every service; each service subclasses with its own env prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PostgresDsn, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "dev"})


class PavedSettings(BaseSettings):
    """Settings every Paved process reads from its environment (prefix ``PAVED_``)."""

    model_config = SettingsConfigDict(env_prefix="PAVED_", extra="ignore", frozen=True)

    environment: Literal["dev", "test", "staging", "prod"] = Field(
        default="dev", description="Deployment environment; placeholder secrets only in dev/test."
    )
    service_name: str = Field(default="paved", description="Name used in logs, traces, metrics.")
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    database_url: PostgresDsn = Field(
        default=PostgresDsn("postgresql://postgres@127.0.0.1:5433/paved"),
        description="PostgreSQL DSN; each service uses its own schema in this database.",
    )
    database_password: SecretStr | None = Field(
        default=None, description="Password for database_url when it has none (kept out of logs)."
    )
    db_pool_min: int = Field(default=1, ge=0, description="Minimum pooled DB connections.")
    db_pool_max: int = Field(default=10, ge=1, description="Maximum pooled DB connections.")
    log_level: str = Field(default="INFO", description="Root log level.")
    log_json: bool = Field(default=True, description="Emit JSON log lines (false: plain text).")
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces."
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port for /metrics of a worker (0: no server)."
    )
    http_max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body an HTTP API accepts (413 beyond), bytes.",
    )
    consumer_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Attempts before a failing (non-transient) event is dead-lettered.",
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_dev(self) -> PavedSettings:
        if self.environment in {"staging", "prod"}:
            pw = self.database_password
            if pw is not None and pw.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "PAVED_DATABASE_PASSWORD is a placeholder; set a real secret outside dev/test"
                )
            if self.database_url.hosts()[0].get("password") in PLACEHOLDER_SECRETS - {""}:
                raise ValueError(
                    "PAVED_DATABASE_URL carries a placeholder password; use a real secret"
                )
        return self
