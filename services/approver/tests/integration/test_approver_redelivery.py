"""Exactly one approval per version, whatever Kafka redelivers; and the real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest
from paved_schemas.events import ApprovalGranted, ApprovalRequested
from paved_shared.devstack import free_port
from paved_shared.testing import unique, wait_for

pytestmark = pytest.mark.integration


async def _barrier(approver: Any, kafka: Any, events: Any, model: str) -> None:
    """Publish one event per input topic with ``model``'s key and wait until the approver
    applied both: everything published before them on those partitions is then handled."""
    marks = (events.retired(model, 999), events.validated(model, 999, passed=False))
    await kafka.publish(*marks)
    await approver.wait_processed(*(m.id for m in marks))


async def test_redelivered_and_repeated_events_open_one_approval(
    approver_factory: Any, kafka: Any, events: Any, model: str
) -> None:
    schema = unique("t_approver")
    reg = events.registered(model, tier="low")
    val = events.validated(model)
    async with approver_factory(schema=schema) as first:
        await kafka.publish(reg, val)
        approval_id = (await first.wait_approval(model, state="granted"))["approval_id"]
        # The same envelopes again (a redelivery), and the same facts in new envelopes
        # (the registry re-emits, the validator runs again).
        again_reg = reg.model_copy(update={"id": unique("re")})
        again_val = val.model_copy(update={"id": unique("re")})
        await kafka.publish(reg, val, again_reg, again_val)
        await _barrier(first, kafka, events, model)
        assert await first.fetchval("SELECT count(*) FROM approvals") >= 1
        assert (
            await first.fetchval("SELECT count(*) FROM approvals WHERE model_name = $1", model) == 1
        )
        assert await first.processed(again_reg.id, again_val.id)

    # Restarted with its offsets lost (a new consumer group on the same schema): every
    # event is handed over again and nothing new happens.
    async with approver_factory(schema=schema, group=unique("t-approver")) as second:
        await _barrier(second, kafka, events, model)
        rows = await second.fetch("SELECT approval_id, state FROM approvals WHERE model_name = $1",
                                  model)  # fmt: skip
        assert [(r["approval_id"], r["state"]) for r in rows] == [(approval_id, "granted")]
        assert await second.processed(reg.id, val.id)

    published = await kafka.approval_events(approval_id, expect=2, linger_s=1.5)
    assert [type(e.data) for e in published] == [ApprovalRequested, ApprovalGranted]


async def test_the_process_serves_http_and_consumes_until_sigterm(
    stack: Any, approver: Any, kafka: Any, events: Any, model: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PAVED_KAFKA_BOOTSTRAP": stack.bootstrap,
        "PAVED_DATABASE_URL": stack.dsn,
        "PAVED_APPROVER_DB_SCHEMA": unique("t_approver"),
        "PAVED_APPROVER_CONSUMER_GROUP": unique("t-approver"),
        "PAVED_APPROVER_HTTP_PORT": str(port),
        "PAVED_LOG_JSON": "false",
        "PAVED_ENVIRONMENT": "test",
    }
    proc = subprocess.Popen(  # noqa: ASYNC220 - a child we stop below
        [sys.executable, "-m", "paved_approver"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return proc.poll() is not None  # stop waiting if it died

            await wait_for(ready, timeout_s=60, what="approver /readyz")
            assert proc.poll() is None, "the approver process exited early"
            assert (await client.get("/healthz")).json() == {"status": "ok"}

            await kafka.publish(events.registered(model, tier="high"), events.validated(model))

            items: list[dict[str, Any]] = []

            async def opened() -> bool:
                resp = await client.get(
                    "/api/v1/approvals",
                    params={"model": model},
                    headers={"X-Paved-User": "reader", "X-Paved-User-Name": "Reader"},
                )
                items[:] = resp.json()["items"]
                return bool(items)

            await wait_for(opened, what="approval opened by the process")
            approval_id = items[0]["approval_id"]
            headers = {"X-Paved-User": "bob", "X-Paved-User-Name": "Bob Reviewer"}
            body = {"decision": "approve", "reason": "ok"}
            url = f"/api/v1/approvals/{approval_id}/decisions"
            first = await client.post(url, json=body, headers=headers)
            assert first.status_code == 201, first.text
            assert first.json()["state"] == "pending"
            headers = {"X-Paved-User": "carol", "X-Paved-User-Name": "Carol Quality"}
            second = await client.post(url, json=body, headers=headers)
            assert second.json()["state"] == "granted"
        published = await kafka.approval_events(approval_id, expect=2)
        assert [type(e.data) for e in published] == [ApprovalRequested, ApprovalGranted]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
    # uvicorn shuts down gracefully (lifespan: runtime.stop), then re-raises the signal.
    assert proc.returncode in (0, -signal.SIGTERM), out[-3000:]
    assert "approver stopped" in out, out[-3000:]
