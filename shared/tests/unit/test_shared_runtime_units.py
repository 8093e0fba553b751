"""Unit tests of the small shared helpers: settings, logging, failpoints, consumer routing."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys

import pytest
from paved_shared.consumer import Route, _combine
from paved_shared.failpoints import failpoint
from paved_shared.logging import configure_logging, redact
from paved_shared.settings import PavedSettings
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def test_placeholder_secrets_are_refused_outside_dev() -> None:
    tls = {"kafka_security_protocol": "SASL_SSL"}
    with pytest.raises(ValidationError, match="PAVED_DATABASE_PASSWORD is a placeholder"):
        PavedSettings(environment="prod", database_password="changeme", **tls)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="placeholder password"):
        PavedSettings(
            environment="prod",
            database_url="postgresql://paved:secret@db:5432/paved",
            **tls,  # type: ignore[arg-type]
        )
    with pytest.raises(ValidationError, match="PAVED_KAFKA_SASL_PASSWORD is a placeholder"):
        PavedSettings(environment="prod", kafka_sasl_password="changeme", **tls)  # type: ignore[arg-type]
    # dev tolerates them; prod accepts a real one.
    PavedSettings(environment="dev", database_password="changeme")
    ok = PavedSettings(
        environment="prod",
        database_password="k8s-injected-7f3a9",
        kafka_sasl_username="paved-registry",
        kafka_sasl_password="k8s-injected-kafka-91c2",
        **tls,  # type: ignore[arg-type]
    )
    assert "k8s-injected" not in repr(ok)
    assert "k8s-injected" not in repr(ok.kafka_auth())


def test_kafka_outside_dev_must_be_encrypted() -> None:
    for protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        with pytest.raises(ValidationError, match=f"PAVED_KAFKA_SECURITY_PROTOCOL={protocol}"):
            PavedSettings(environment="staging", kafka_security_protocol=protocol)  # type: ignore[arg-type]


def test_kafka_auth_from_env_names_a_bad_value() -> None:
    from paved_shared.kafka import KafkaAuth

    with pytest.raises(ValueError, match="PAVED_KAFKA_SECURITY_PROTOCOL='SSL'"):
        KafkaAuth.from_env({"PAVED_KAFKA_SECURITY_PROTOCOL": "SSL"})
    with pytest.raises(ValueError, match="needs PAVED_KAFKA_SASL_USERNAME"):
        KafkaAuth.from_env({}).aiokafka()
    auth = KafkaAuth.from_env(
        {"PAVED_KAFKA_SASL_USERNAME": "paved-audit", "PAVED_KAFKA_SASL_PASSWORD": "s3cr3t-value"}
    )
    assert auth.aiokafka()["sasl_plain_username"] == "paved-audit"
    assert "s3cr3t" not in repr(auth)
    assert KafkaAuth.from_env(auth.env()) == auth


def test_redact_masks_secrets_and_dsn_passwords() -> None:
    line = "connect postgresql://paved:hunter2@db/paved token=abc123 api_key: 'xyz' ok=1"
    out = redact(line)
    assert "hunter2" not in out
    assert "abc123" not in out
    assert "xyz" not in out
    assert "ok=1" in out


def test_json_logs_carry_service_and_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("unit-svc", "INFO", json=True)
        logging.getLogger("x").info("login with password=s3cr3t for %s", "alice")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["service"] == "unit-svc"
    assert record["level"] == "INFO"
    assert "s3cr3t" not in record["message"]
    assert "alice" in record["message"]


def test_failpoint_is_inert_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAVED_FAILPOINTS", raising=False)
    failpoint("outbox.after_publish")
    monkeypatch.setenv("PAVED_FAILPOINTS", "a=raise,outbox.after_publish=raise")
    with pytest.raises(RuntimeError, match=r"failpoint outbox\.after_publish triggered"):
        failpoint("outbox.after_publish")
    failpoint("something.else")


def test_failpoint_kill_really_kills_the_process() -> None:
    code = "from paved_shared.failpoints import failpoint; failpoint('x'); print('survived')"
    env = {**os.environ, "PAVED_FAILPOINTS": "x=kill"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL
    assert "survived" not in proc.stdout


async def test_routes_of_one_topic_combine_by_event_type() -> None:
    calls: list[str] = []

    async def a(env: object, conn: object) -> None:
        calls.append("a")

    async def b(env: object, conn: object) -> None:
        calls.append("b")

    class Env:
        type = "t.b"

    handler, wanted = _combine([Route("t", a, {"t.a"}), Route("t", b, {"t.b"})])  # type: ignore[arg-type]
    assert wanted == frozenset({"t.a", "t.b"})
    await handler(Env(), None)  # type: ignore[arg-type]
    assert calls == ["b"]
    _, everything = _combine([Route("t", a, None), Route("t", b, {"t.b"})])  # type: ignore[arg-type]
    assert everything is None
