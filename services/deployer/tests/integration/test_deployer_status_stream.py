"""Deployment status for consumers: the registry's server-sent events, the SDK's async
iterator over them, and `paved deployments watch --sse`, on a real registry + Kafka.

(The SSE routes live in `paved_registry.deployment_events`; they are tested here, with
the deployer's status events, because the deployer's engineer owns them.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from paved_cli.deploy_sdk import deployment_events
from paved_cli.sdk import PavedError
from paved_registry.bootstrap import create_app
from paved_registry.settings import RegistrySettings
from paved_schemas import topics
from paved_schemas.envelope import Envelope
from paved_schemas.events import DeploymentStatus, DeploymentStatusChanged, DeploymentTarget
from paved_shared.kafka import ensure_topics
from paved_shared.testing import unique
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration
DIGEST = "sha256:" + "c" * 64

# The stream needs an identity (dev-headers mode: every team, every role but admin).
WHO = {"X-Paved-User": "carol", "X-Paved-User-Name": "Carol Example"}


@pytest.fixture(scope="module")
def registry_url(stack: Any) -> Iterator[str]:
    """A real registry (own schema and group) behind uvicorn on a free loopback port."""
    settings = RegistrySettings(
        environment="test", kafka_bootstrap=stack.bootstrap, database_url=stack.dsn,
        registry_db_schema=unique("t_registry"), registry_consumer_group=unique("t-registry"),
        log_json=False,
    )  # fmt: skip
    app = create_app(settings, metrics_registry=CollectorRegistry())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))

    def serve() -> None:
        async def main() -> None:
            await ensure_topics(stack.bootstrap, topics.ALL_TOPICS)
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="sse-registry", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the registry died while starting"
        assert time.monotonic() < deadline, "the registry did not start within 60 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def status_event(dep: str, model: str, status: DeploymentStatus, revision: int = 1) -> Any:
    return Envelope.new(
        DeploymentStatusChanged(
            deployment_id=dep, model_name=model, version=1, artifact_digest=DIGEST,
            target=DeploymentTarget.LOCAL, status=status, revision=revision,
            endpoint_url="http://127.0.0.1:9/v2/models/m" if status == "ready" else None,
        ),
        source="/paved/deployer-local", actor="user:carol", actorname="Carol Example",
    )  # fmt: skip


async def test_sse_history_resume_live_and_refusals(
    stack: Any, kit: Any, registry_url: str
) -> None:
    model, dep = unique("churn"), unique("dep")
    history = [status_event(dep, model, s) for s in ("pending", "provisioning", "ready")]
    await kit.publish(stack.bootstrap, *history)

    # History of one deployment, closed at `ready`.
    seen = [e async for e in deployment_events(registry_url, deployment_id=dep, until="ready")]
    assert [e.id for e in seen] == [e.id for e in history]
    assert seen[-1].data.endpoint_url == "http://127.0.0.1:9/v2/models/m"

    # A client that saw the first event resumes after it.
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "GET", f"{registry_url}/api/v1/deployments/{dep}/events",
            params={"until": "ready"}, headers={**WHO, "Last-Event-ID": history[0].id},
        ) as response,
    ):  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        text = (await response.aread()).decode()
    ids = [line.removeprefix("id: ") for line in text.splitlines() if line.startswith("id: ")]
    assert ids == [history[1].id, history[2].id]
    assert "event: provisioning" in text

    # Live events of a model: only what is published after the stream opened (its first
    # frame, a comment, comes once the start position is fixed).
    other = unique("dep")
    live = status_event(other, model, DeploymentStatus.PENDING)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "GET", f"{registry_url}/api/v1/deployments/events", params={"model": model},
            headers=WHO,
        ) as response,
    ):  # fmt: skip
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith(":")
        await kit.publish(stack.bootstrap, live)
        async for line in lines:
            if line.startswith("id: "):
                assert line == f"id: {live.id}"
                break

    # Bad input is a 400 problem naming the value.
    with pytest.raises(PavedError, match="'Not A Slug!' is not a valid name"):
        async for _ in deployment_events(registry_url, model="Not A Slug!"):
            pass
    async with httpx.AsyncClient() as client:
        bad = await client.get(f"{registry_url}/api/v1/deployments/{dep}/events",
                               params={"until": "done"}, headers=WHO)  # fmt: skip
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "until 'done' is not a deployment status" in bad.json()["detail"]

    # The CLI follows the same stream.
    watch = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "paved_cli", "deployments", "watch", "--sse", "--deployment", dep,
         "--from-beginning", "--until", "ready", "--timeout", "30"],
        env={**os.environ, "PAVED_REGISTRY_URL": registry_url, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert watch.returncode == 0, watch.stderr
    lines = [line for line in watch.stdout.splitlines() if dep in line]
    assert [line.rsplit(": ", 1)[-1].split()[0] for line in lines] == [
        "pending", "provisioning", "ready",
    ]  # fmt: skip
