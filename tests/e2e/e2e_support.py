"""Helpers of the end-to-end tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paved_cli.sdk import PavedClient
from paved_shared.artifacts import sha256_file
from paved_shared.kafka import KafkaAuth
from paved_shared.kafka_acl import SecretsDir
from paved_shared.platform import Platform

SIGNATURE = {
    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
}


def card(risk_tier: str = "low") -> dict[str, Any]:
    return {
        "description": "Iris species classifier.",
        "intended_use": "End-to-end tests.",
        "limitations": "Iris only.",
        "risk_tier": risk_tier,
        "data_classification": "public",
        "license": "BSD-3-Clause",
    }


@dataclass
class E2E:
    """Handles on the running platform."""

    platform: Platform
    bootstrap: str
    dsn: str
    artifacts: Path
    secrets: SecretsDir

    def auth(self, principal: str) -> KafkaAuth:
        """A Kafka principal of the platform (``pipeline``, ``auditor``, a service's)."""
        return self.secrets.auth(principal)

    def client(self, user: str = "sam", name: str = "Sam Scientist") -> PavedClient:
        return PavedClient(
            self.platform.url("registry"), self.platform.url("approver"), user=user, user_name=name
        )

    def env(self) -> dict[str, str]:
        return {
            "PAVED_REGISTRY_URL": self.platform.url("registry"),
            "PAVED_APPROVER_URL": self.platform.url("approver"),
            "PAVED_KAFKA_BOOTSTRAP": self.bootstrap,
            "PAVED_DATABASE_URL": self.dsn,
            # The CLI runs as a pipeline does: its own principal, nobody else's secret.
            **self.auth("pipeline").env(),
        }


@dataclass(frozen=True)
class TrainedModel:
    path: Path
    digest: str
    model: Any
    x: Any

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


def train(folder: Path, iris: tuple[Any, Any], name: str, c: float = 1.0) -> TrainedModel:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    model = LogisticRegression(max_iter=500, C=c).fit(x, y)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pkl"
    path.write_bytes(pickle.dumps(model))
    return TrainedModel(path, sha256_file(path), model, x)


async def read_envelopes(bootstrap: str, topic_names: list[str]) -> list[Any]:
    """Every envelope on the topics, from offset 0 up to their current end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from paved_schemas.envelope import ContractError, parse_envelope
    from paved_shared.kafka import kafka_auth

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        parts = [
            TopicPartition(t, p)
            for t in topic_names
            for p in sorted(consumer.partitions_for_topic(t) or await _parts(consumer, t))
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    try:
                        out.append(parse_envelope(r.value or b""))
                    except ContractError:
                        continue
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


async def _parts(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return set(consumer.partitions_for_topic(topic) or set())


def wait_state(
    client: PavedClient, model: str, version: int, states: set[str], timeout_s: float = 90.0
) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while True:
        v = client.get_version(model, version)
        if not seen or seen[-1] != v["state"]:
            seen.append(v["state"])
        if v["state"] in states:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{model} v{version} went through {seen}, never reached {states}")
        time.sleep(0.2)
