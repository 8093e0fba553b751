"""Settings of the audit process (environment prefix ``PAVED_``)."""

from __future__ import annotations

from typing import Self

from paved_schemas import topics
from paved_shared.settings import PavedSettings
from pydantic import Field, model_validator

_TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


class AuditSettings(PavedSettings):
    """Everything the audit worker reads from its environment; ``PAVED_AUDIT_*`` are its own."""

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
