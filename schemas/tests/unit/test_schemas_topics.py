"""Topic names, settings and consumer groups."""

from __future__ import annotations

import pytest
from paved_schemas import CONTRACTS, topics
from paved_schemas.topics import (
    ALL_TOPICS,
    AUDIT,
    DEAD_LETTER,
    KEEP_FOREVER,
    LIFECYCLE_TOPICS,
    REGISTRATION_REQUESTS,
    RETIREMENT_REQUESTS,
    topic_spec,
)

pytestmark = pytest.mark.unit


def test_topic_names_are_unique_and_versioned() -> None:
    names = [spec.name for spec in ALL_TOPICS]
    assert len(names) == len(set(names)) == 9
    for name in names:
        assert name.startswith("paved.")
        assert name.endswith(".v1")


def test_audit_topic_is_one_partition_kept_forever() -> None:
    spec = topic_spec(AUDIT)
    assert spec.partitions == 1
    assert spec.config["cleanup.policy"] == "delete"
    assert spec.config["retention.ms"] == "-1"
    assert spec.config["retention.bytes"] == "-1"


def test_nothing_auditors_replay_expires_or_is_compacted() -> None:
    for spec in ALL_TOPICS:
        assert spec.config["retention.ms"] == "-1", spec.name
        assert spec.config["retention.bytes"] == "-1", spec.name
        assert "compact" not in spec.config["cleanup.policy"], spec.name
        assert spec.partitions >= 1


def test_specs_do_not_share_config_dicts() -> None:
    plain = [t for t in ALL_TOPICS if t.config == dict(KEEP_FOREVER)]
    first, second = plain[0], plain[1]
    assert first.config is not second.config


def test_command_topics_take_the_brokers_clock() -> None:
    """A command's token is judged at broker append time, which the sender cannot set."""
    for spec in ALL_TOPICS:
        if spec.name in (REGISTRATION_REQUESTS, RETIREMENT_REQUESTS):
            assert spec.config["message.timestamp.type"] == "LogAppendTime"
        assert spec.config["retention.ms"] == "-1"


def test_every_topic_has_an_owner_and_every_principal_a_purpose() -> None:
    from paved_schemas import topics

    assert set(topics.TOPIC_WRITERS) == {t.name for t in ALL_TOPICS}
    assert topics.TOPIC_WRITERS[topics.APPROVAL_EVENTS] == (topics.PRINCIPAL_APPROVER,)
    assert topics.TOPIC_WRITERS[topics.VALIDATION_EVENTS] == (topics.PRINCIPAL_VALIDATOR,)
    assert set(topics.TOPIC_WRITERS[topics.DEPLOYMENT_STATUS]) == set(topics.DEPLOYER_PRINCIPALS)
    pipeline_writes = [t for t, w in topics.TOPIC_WRITERS.items() if topics.PRINCIPAL_PIPELINE in w]
    assert pipeline_writes == [REGISTRATION_REQUESTS]
    for principal in topics.ALL_PRINCIPALS:
        assert principal in topics.PRINCIPAL_READS


def test_audit_consumes_every_topic_but_its_own() -> None:
    assert AUDIT not in LIFECYCLE_TOPICS
    assert DEAD_LETTER in LIFECYCLE_TOPICS
    written = {contract.TOPIC for contract in CONTRACTS} - {AUDIT}
    assert written == set(LIFECYCLE_TOPICS)


def test_every_topic_carries_some_contract() -> None:
    assert {spec.name for spec in ALL_TOPICS} == {contract.TOPIC for contract in CONTRACTS}


def test_consumer_groups() -> None:
    assert topics.GROUP_REGISTRY == "paved-registry"
    assert dict(topics.DEPLOYER_GROUPS) == {
        "local": "paved-deployer-local",
        "aws": "paved-deployer-aws",
        "gcp": "paved-deployer-gcp",
    }
    assert len(set(topics.ALL_GROUPS)) == 7


def test_unknown_topic_is_named() -> None:
    with pytest.raises(KeyError, match=r"unknown topic 'paved\.nope\.v1'"):
        topic_spec("paved.nope.v1")
