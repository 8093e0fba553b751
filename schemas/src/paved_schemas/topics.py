"""Kafka topic names, topic settings and consumer groups: the only place they are spelled.

Rules (see docs/adr/0003-topic-layout.md):

- an event topic has exactly one writing service; a command topic has exactly one
  consuming service (any authorised client may send the command);
- the message key is the aggregate (model name, or deployment id) so one aggregate's
  messages stay in order on one partition;
- a breaking change gets a new topic with the next `.vN` suffix, never an edit in place;
- nothing that auditors replay ever expires: `retention.ms=-1`, never compacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

REGISTRATION_REQUESTS: Final = "paved.registration.requests.v1"
"""Commands `RegisterModelVersion`, sent by pipelines and the API; consumed by the registry."""

MODEL_EVENTS: Final = "paved.model.events.v1"
"""Registry-owned model lifecycle: registered, state changed, retired. Key: model name."""

VALIDATION_EVENTS: Final = "paved.validation.events.v1"
"""Validator-owned: `ModelVersionValidated`. Key: model name."""

APPROVAL_EVENTS: Final = "paved.approval.events.v1"
"""Approver-owned: approval requested, granted, rejected, expired. Key: model name."""

DEPLOYMENT_REQUESTS: Final = "paved.deployment.requests.v1"
"""Commands `RequestDeployment` for every target; each deployer acts on its own target only."""

DEPLOYMENT_STATUS: Final = "paved.deployment.status.v1"
"""Deployer-owned: `DeploymentStatusChanged`. Key: deployment id (owned by one target)."""

RETIREMENT_REQUESTS: Final = "paved.retirement.requests.v1"
"""Commands `RetireModelVersion`; consumed by the registry. Key: model name."""

AUDIT: Final = "paved.audit.v1"
"""Audit-owned: `AuditRecordSealed`, `AuditCheckpointSigned`; one partition, kept forever."""

DEAD_LETTER: Final = "paved.deadletter.v1"
"""`DeadLetterRecorded` from any consumer that could not process a message; audited."""

GROUP_REGISTRY: Final = "paved-registry"
GROUP_VALIDATOR: Final = "paved-validator"
GROUP_APPROVER: Final = "paved-approver"
GROUP_DEPLOYER_LOCAL: Final = "paved-deployer-local"
GROUP_DEPLOYER_AWS: Final = "paved-deployer-aws"
GROUP_DEPLOYER_GCP: Final = "paved-deployer-gcp"
GROUP_AUDIT: Final = "paved-audit"

DEPLOYER_GROUPS: Final = MappingProxyType(
    {"local": GROUP_DEPLOYER_LOCAL, "aws": GROUP_DEPLOYER_AWS, "gcp": GROUP_DEPLOYER_GCP}
)
"""Consumer group of the deployer for each `DeploymentTarget` value."""

ALL_GROUPS: Final = (
    GROUP_REGISTRY,
    GROUP_VALIDATOR,
    GROUP_APPROVER,
    GROUP_DEPLOYER_LOCAL,
    GROUP_DEPLOYER_AWS,
    GROUP_DEPLOYER_GCP,
    GROUP_AUDIT,
)

KEEP_FOREVER: Final = MappingProxyType(
    {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
)
"""Topic settings for anything auditors replay: deleted by nobody, compacted never."""

# A dead letter carries the original message base64-encoded, and an audit record
# carries the original envelope, so both can exceed the 1 MiB broker default.
_LARGE_MESSAGES: Final = {"max.message.bytes": str(8 * 1024 * 1024)}


@dataclass(frozen=True)
class TopicSpec:
    """How a topic must be created: name, partition count and topic-level config."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=lambda: dict(KEEP_FOREVER))
    description: str = ""


# A command's sender proves who they are with a token; the broker stamps the time it took
# the command, so the token's lifetime is judged by a clock the sender does not control.
_BROKER_TIME: Final = {"message.timestamp.type": "LogAppendTime"}

ALL_TOPICS: Final = (
    TopicSpec(
        REGISTRATION_REQUESTS,
        3,
        {**KEEP_FOREVER, **_BROKER_TIME},
        description="RegisterModelVersion commands",
    ),
    TopicSpec(MODEL_EVENTS, 3, description="model lifecycle events (registry)"),
    TopicSpec(VALIDATION_EVENTS, 3, description="validation results (validator)"),
    TopicSpec(APPROVAL_EVENTS, 3, description="approval events (approver)"),
    TopicSpec(DEPLOYMENT_REQUESTS, 3, description="RequestDeployment commands"),
    TopicSpec(DEPLOYMENT_STATUS, 3, description="deployment status (deployers)"),
    TopicSpec(
        RETIREMENT_REQUESTS,
        3,
        {**KEEP_FOREVER, **_BROKER_TIME},
        description="RetireModelVersion commands",
    ),
    TopicSpec(
        AUDIT,
        1,
        {**KEEP_FOREVER, **_LARGE_MESSAGES},
        description="sealed, hash-chained audit records (audit); one partition, kept forever",
    ),
    TopicSpec(
        DEAD_LETTER,
        3,
        {**KEEP_FOREVER, **_LARGE_MESSAGES},
        description="messages no consumer could process (every service)",
    ),
)
"""Every topic the platform uses, with the settings it must be created with."""

LIFECYCLE_TOPICS: Final = (
    REGISTRATION_REQUESTS,
    MODEL_EVENTS,
    VALIDATION_EVENTS,
    APPROVAL_EVENTS,
    DEPLOYMENT_REQUESTS,
    DEPLOYMENT_STATUS,
    RETIREMENT_REQUESTS,
    DEAD_LETTER,
)
"""What the audit service consumes: every topic but its own, dead letters included."""


def topic_spec(name: str) -> TopicSpec:
    """The spec of the topic called `name`; `KeyError` names the unknown topic."""
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; known topics: {', '.join(t.name for t in ALL_TOPICS)}")


# -- Who may publish and read what (docs/adr/0013-threat-model.md) ----------------------
# One Kafka principal per service and per kind of external client. The broker enforces
# this map as ACLs (`paved_shared.kafka_acl`), and every consumer checks it again for each
# record it accepts (`paved_shared.consumer`): an event is taken only from the topic its
# type belongs to, sent by the service that owns that topic.

PRINCIPAL_REGISTRY: Final = "registry"
PRINCIPAL_VALIDATOR: Final = "validator"
PRINCIPAL_APPROVER: Final = "approver"
PRINCIPAL_DEPLOYER_LOCAL: Final = "deployer-local"
PRINCIPAL_DEPLOYER_AWS: Final = "deployer-aws"
PRINCIPAL_DEPLOYER_GCP: Final = "deployer-gcp"
PRINCIPAL_AUDIT: Final = "audit"
PRINCIPAL_PIPELINE: Final = "pipeline"
"""Pipelines and people's tools (SDK, CLI): send registration commands, watch status."""
PRINCIPAL_AUDITOR: Final = "auditor"
"""Inspectors replaying the audit trail: read-only."""

DEPLOYER_PRINCIPALS: Final = (PRINCIPAL_DEPLOYER_LOCAL, PRINCIPAL_DEPLOYER_AWS,
                              PRINCIPAL_DEPLOYER_GCP)  # fmt: skip
SERVICE_PRINCIPALS: Final = (
    PRINCIPAL_REGISTRY,
    PRINCIPAL_VALIDATOR,
    PRINCIPAL_APPROVER,
    *DEPLOYER_PRINCIPALS,
    PRINCIPAL_AUDIT,
)
ALL_PRINCIPALS: Final = (*SERVICE_PRINCIPALS, PRINCIPAL_PIPELINE, PRINCIPAL_AUDITOR)

TOPIC_WRITERS: Final = MappingProxyType(
    {
        REGISTRATION_REQUESTS: (PRINCIPAL_PIPELINE,),
        MODEL_EVENTS: (PRINCIPAL_REGISTRY,),
        VALIDATION_EVENTS: (PRINCIPAL_VALIDATOR,),
        APPROVAL_EVENTS: (PRINCIPAL_APPROVER,),
        DEPLOYMENT_REQUESTS: (PRINCIPAL_REGISTRY,),
        DEPLOYMENT_STATUS: DEPLOYER_PRINCIPALS,
        # Retirement goes through the registry API; no client principal may send it.
        RETIREMENT_REQUESTS: (),
        AUDIT: (PRINCIPAL_AUDIT,),
        DEAD_LETTER: SERVICE_PRINCIPALS,
    }
)
"""The principals the broker lets write each topic (the owning service of an event topic;
the clients of a command topic; every consumer for dead letters)."""

_DEPLOYER_READS: Final = (DEPLOYMENT_REQUESTS, APPROVAL_EVENTS, MODEL_EVENTS, VALIDATION_EVENTS)

PRINCIPAL_READS: Final = MappingProxyType(
    {
        PRINCIPAL_REGISTRY: (
            REGISTRATION_REQUESTS,
            RETIREMENT_REQUESTS,
            VALIDATION_EVENTS,
            APPROVAL_EVENTS,
            DEPLOYMENT_STATUS,
        ),
        PRINCIPAL_VALIDATOR: (MODEL_EVENTS,),
        PRINCIPAL_APPROVER: (MODEL_EVENTS, VALIDATION_EVENTS),
        PRINCIPAL_DEPLOYER_LOCAL: _DEPLOYER_READS,
        PRINCIPAL_DEPLOYER_AWS: _DEPLOYER_READS,
        PRINCIPAL_DEPLOYER_GCP: _DEPLOYER_READS,
        PRINCIPAL_AUDIT: (*LIFECYCLE_TOPICS, AUDIT),
        PRINCIPAL_PIPELINE: (VALIDATION_EVENTS, DEPLOYMENT_STATUS),
        PRINCIPAL_AUDITOR: (*LIFECYCLE_TOPICS, AUDIT),
    }
)
"""The topics each principal may read."""

PRINCIPAL_GROUPS: Final = MappingProxyType(
    {
        PRINCIPAL_REGISTRY: (GROUP_REGISTRY,),
        PRINCIPAL_VALIDATOR: (GROUP_VALIDATOR,),
        PRINCIPAL_APPROVER: (GROUP_APPROVER,),
        PRINCIPAL_DEPLOYER_LOCAL: (GROUP_DEPLOYER_LOCAL,),
        PRINCIPAL_DEPLOYER_AWS: (GROUP_DEPLOYER_AWS,),
        PRINCIPAL_DEPLOYER_GCP: (GROUP_DEPLOYER_GCP,),
        PRINCIPAL_AUDIT: (GROUP_AUDIT,),
        PRINCIPAL_PIPELINE: (),
        PRINCIPAL_AUDITOR: (),
    }
)
"""The consumer groups each principal may join (group-less readers need none)."""


def event_sources(topic: str) -> frozenset[str]:
    """The CloudEvents ``source`` values an event on ``topic`` may carry: ``/paved/<owner>``.

    Empty (no check) for command topics, whose senders are identified by a verified token
    instead, and for dead letters, which any consumer writes under its group's name (and a
    refused dead letter must not be dead-lettered again).
    """
    if topic in (REGISTRATION_REQUESTS, RETIREMENT_REQUESTS, DEAD_LETTER):
        return frozenset()
    return frozenset(f"/paved/{p}" for p in TOPIC_WRITERS.get(topic, ()))
