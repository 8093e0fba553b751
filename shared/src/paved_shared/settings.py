"""Typed settings shared by every service; each service subclasses with its own env prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, PostgresDsn, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from paved_shared.kafka import KafkaAuth

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
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="SASL_PLAINTEXT",
        description="SASL_SSL outside dev/test; SASL_PLAINTEXT on loopback; PLAINTEXT never "
        "works against a Paved broker (it has no anonymous listener).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism of the service's principal."
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="The service's own Kafka principal, e.g. paved-registry."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="Its SCRAM password (from a secret; kept out of logs)."
    )
    kafka_sasl_password_file: str | None = Field(
        default=None, description="A file holding the SCRAM password (k8s secret volume)."
    )
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates (SASL_SSL)."
    )
    database_url: PostgresDsn = Field(
        default=PostgresDsn("postgresql://postgres@127.0.0.1:5433/paved"),
        description="PostgreSQL DSN; each service uses its own schema in this database.",
    )
    database_password: SecretStr | None = Field(
        default=None, description="Password for database_url when it has none (kept out of logs)."
    )
    database_migration_url: PostgresDsn | None = Field(
        default=None,
        description="DSN of the schema owner role (paved_owner) the service migrates with; "
        "it then serves with database_url, a runtime role granted only what its policy "
        "lists (paved_shared.dbroles). Unset: migrate and serve with database_url.",
    )
    database_migration_password: SecretStr | None = Field(
        default=None, description="Password for database_migration_url when it has none."
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

    def kafka_auth(self) -> KafkaAuth:
        """The Kafka principal every client of this process authenticates as."""
        from paved_shared.kafka import KafkaAuth

        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        if password is None and self.kafka_sasl_password_file:
            with open(self.kafka_sasl_password_file, encoding="utf-8") as fh:
                password = fh.read().strip()
        return KafkaAuth(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=password,
            ssl_cafile=self.kafka_ssl_cafile,
        )

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_dev(self) -> PavedSettings:
        if self.environment in {"staging", "prod"}:
            if self.kafka_security_protocol != "SASL_SSL":
                raise ValueError(
                    f"PAVED_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}: "
                    "outside dev/test Kafka traffic must be SASL_SSL (authenticated and encrypted)"
                )
            kpw = self.kafka_sasl_password
            if kpw is not None and kpw.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "PAVED_KAFKA_SASL_PASSWORD is a placeholder; set a real secret outside dev/test"
                )
            for name, pw in (
                ("PAVED_DATABASE_PASSWORD", self.database_password),
                ("PAVED_DATABASE_MIGRATION_PASSWORD", self.database_migration_password),
            ):
                if pw is not None and pw.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} is a placeholder; set a real secret outside dev/test")
            if self.database_url.hosts()[0].get("password") in PLACEHOLDER_SECRETS - {""}:
                raise ValueError(
                    "PAVED_DATABASE_URL carries a placeholder password; use a real secret"
                )
        return self
