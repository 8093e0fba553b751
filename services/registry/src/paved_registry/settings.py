"""Settings of the registry process (environment prefix ``PAVED_``)."""

from __future__ import annotations

from paved_schemas import topics
from paved_shared.settings import PavedSettings
from pydantic import Field


class RegistrySettings(PavedSettings):
    """Everything the registry reads from its environment; ``PAVED_REGISTRY_*`` are its own."""

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
