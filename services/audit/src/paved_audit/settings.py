"""Settings of the audit process (environment prefix ``PAVED_``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from paved_schemas import topics
from paved_shared.auth import AuthSettings
from paved_shared.settings import PavedSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

_TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


def _default_key_path() -> Path:
    # Read when settings are built (not at import): the run folder of `make up`.
    return Path(os.environ.get("PAVED_RUN_DIR", ".run")) / "audit" / "checkpoint-ed25519.pem"


class AuditSettings(PavedSettings, AuthSettings):
    """Everything the audit worker reads from its environment: the shared Paved settings, the
    auth settings (``PAVED_AUTH_MODE``, ``PAVED_OIDC_*``) and its own ``PAVED_AUDIT_*``."""

    model_config = SettingsConfigDict(env_prefix="PAVED_", extra="ignore", frozen=True)

    service_name: str = Field(default="audit", description="Name used in logs, traces, metrics.")
    audit_db_schema: str = Field(
        default="audit",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding the audit chain (tests use one each).",
    )
    audit_consumer_group: str = Field(
        default=topics.GROUP_AUDIT,
        min_length=1,
        description="Kafka consumer group of the audit subscribers.",
    )
    audit_topics: tuple[str, ...] = Field(
        default=tuple(topics.LIFECYCLE_TOPICS),
        min_length=1,
        description="Topics whose every event is sealed into the chain (JSON list in the "
        "environment). Defaults to every lifecycle topic, dead letters included.",
    )
    audit_dead_letter_topic: str = Field(
        default=topics.DEAD_LETTER,
        pattern=_TOPIC_PATTERN,
        description="Where this worker dead-letters what it cannot seal; always consumed too, "
        "so the gap is itself sealed.",
    )
    audit_output_topic: str = Field(
        default=topics.AUDIT,
        pattern=_TOPIC_PATTERN,
        description="Topic receiving one AuditRecordSealed per sealed record (one partition).",
    )

    audit_http_host: str = Field(
        default="127.0.0.1", description="Interface the read-only audit API listens on."
    )
    audit_http_port: int = Field(
        default=8082, ge=1, le=65535, description="Port of the read-only audit API."
    )
    audit_checkpoint_key_path: Path = Field(
        default_factory=_default_key_path,
        description="Ed25519 private key (PEM) signing checkpoints, its public key beside it "
        "as <name>.pub.pem. Created (mode 0600) on first start only in dev/test; elsewhere a "
        "missing key stops the start (docs/runbooks/audit-checkpoint-key.md). "
        "Default: $PAVED_RUN_DIR/audit/checkpoint-ed25519.pem.",
    )
    audit_checkpoint_every_records: int = Field(
        default=1000,
        ge=1,
        description="Sign a checkpoint as soon as this many records were sealed since the last.",
    )
    audit_checkpoint_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="Also sign one this often when any record is not yet covered.",
    )

    @property
    def consumed_topics(self) -> tuple[str, ...]:
        """``audit_topics`` plus the dead-letter topic, each once, in order."""
        return tuple(dict.fromkeys((*self.audit_topics, self.audit_dead_letter_topic)))

    @model_validator(mode="after")
    def _does_not_consume_its_own_output(self) -> Self:
        if self.audit_output_topic in self.consumed_topics:
            raise ValueError(
                f"PAVED_AUDIT_OUTPUT_TOPIC {self.audit_output_topic!r} is also consumed; "
                "sealing the audit topic into itself would loop forever"
            )
        return self
