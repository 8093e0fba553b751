"""Settings and wiring of the audit worker (no I/O)."""

from __future__ import annotations

import pytest
from paved_audit.bootstrap import create_runtime
from paved_audit.delivery import DeliveryAwareConsumer, current_delivery
from paved_audit.settings import AuditSettings
from paved_schemas import topics
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def test_defaults_consume_every_lifecycle_topic_and_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PAVED_AUDIT_TOPICS", "PAVED_AUDIT_OUTPUT_TOPIC", "PAVED_AUDIT_DB_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    settings = AuditSettings()
    assert settings.audit_db_schema == "audit"
    assert settings.audit_consumer_group == topics.GROUP_AUDIT
    assert set(settings.consumed_topics) == set(topics.LIFECYCLE_TOPICS)
    assert topics.DEAD_LETTER in settings.consumed_topics
    assert topics.AUDIT not in settings.consumed_topics
    assert settings.audit_output_topic == topics.AUDIT


def test_topics_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAVED_AUDIT_TOPICS", '["a.v1", "b.v1"]')
    monkeypatch.setenv("PAVED_AUDIT_DEAD_LETTER_TOPIC", "dlq.v1")
    assert AuditSettings().consumed_topics == ("a.v1", "b.v1", "dlq.v1")


def test_refuses_to_consume_its_own_output() -> None:
    with pytest.raises(ValidationError, match=r"'paved.audit.v1' is also consumed"):
        AuditSettings(audit_topics=(topics.MODEL_EVENTS, topics.AUDIT))


def test_runtime_wiring_subscribes_every_topic_without_io() -> None:
    settings = AuditSettings(audit_db_schema="audit_unit", audit_dead_letter_topic="dlq.test")
    runtime = create_runtime(settings, metrics_registry=CollectorRegistry())
    assert isinstance(runtime.consumer, DeliveryAwareConsumer)
    assert runtime.consumer.deadletter_topic == "dlq.test"
    document = runtime.asyncapi()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert set(settings.consumed_topics) | {topics.AUDIT} <= addresses
    with pytest.raises(RuntimeError, match="DeliveryAwareConsumer"):
        current_delivery()
