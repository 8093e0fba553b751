"""Settings of the approver process (environment prefix ``PAVED_``)."""

from __future__ import annotations

from paved_schemas import topics
from paved_shared.settings import PavedSettings
from pydantic import Field


class ApproverSettings(PavedSettings):
    """The shared Paved settings plus the approver's own (``PAVED_APPROVER_*``)."""

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
