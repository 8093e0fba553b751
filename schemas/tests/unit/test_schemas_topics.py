"""Topic names, settings and consumer groups."""

from __future__ import annotations

import pytest
from paved_schemas import CONTRACTS, topics
from paved_schemas.topics import ALL_TOPICS, AUDIT, DEAD_LETTER, LIFECYCLE_TOPICS, topic_spec

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
    first, second = ALL_TOPICS[0], ALL_TOPICS[1]
    assert first.config == second.config
    assert first.config is not second.config


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
