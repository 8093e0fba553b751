"""Deployment status for SDK users: an async iterator over the registry's server-sent events.

```python
async for env in deployment_events("http://127.0.0.1:8080", deployment_id="dep-1", until="ready"):
    print(env.data.status, env.data.endpoint_url)
```

Works wherever the registry's HTTP API does (no Kafka access needed). A dropped
connection is resumed with ``Last-Event-ID``, so no event is lost or repeated.
``paved_cli.sdk.watch_deployments`` is the same stream read from Kafka directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from paved_schemas.envelope import Envelope, parse_envelope_as
from paved_schemas.events import DeploymentSpec, DeploymentStatusChanged

from paved_cli.sdk import PavedError, identity_headers

TERMINAL = frozenset({"failed", "rolled_back", "retired"})


async def _frames(response: httpx.Response) -> AsyncIterator[tuple[str | None, str, str]]:
    """(id, event, data) of each SSE frame (comments and heartbeats skipped)."""
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event_id, event, "\n".join(data)
            event_id, event, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


async def deployment_events(  # noqa: PLR0912 - reconnects, filters and stop rules
    registry_url: str,
    *,
    deployment_id: str | None = None,
    model: str | None = None,
    from_beginning: bool | None = None,
    until: str | None = None,
    idle_timeout_s: float | None = None,
    reconnect_s: float = 1.0,
    client: httpx.AsyncClient | None = None,
    identity: dict[str, str] | None = None,
) -> AsyncIterator[Envelope[DeploymentStatusChanged]]:
    """Yield status events of one deployment (history first) or of many (live).

    Stops after `until` or any terminal status (failed, rolled_back, retired) when
    `until` is given, or after `idle_timeout_s` without an event. The caller is
    ``identity`` (default: ``identity_headers()`` from the environment); the registry
    streams only the deployments of models the caller may see.
    """
    base = registry_url.rstrip("/")
    if deployment_id is not None:
        url = f"{base}/api/v1/deployments/{deployment_id}/events"
        params: dict[str, str] = {}
    else:
        url = f"{base}/api/v1/deployments/events"
        params = {"model": model} if model else {}
    if from_beginning is not None:
        params["from_beginning"] = str(from_beginning).lower()
    if until is not None:
        params["until"] = until
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    last_id: str | None = None
    try:
        while True:
            headers = {**(identity or identity_headers()), "Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with http.stream("GET", url, params=params, headers=headers) as response:
                    if response.status_code >= 400:
                        body = (await response.aread()).decode(errors="replace")
                        raise _error(response.status_code, body)
                    frames = _frames(response)
                    while True:
                        try:
                            frame = await asyncio.wait_for(anext(frames), idle_timeout_s)
                        except (StopAsyncIteration, TimeoutError):
                            return
                        event_id, _, data = frame
                        env = parse_envelope_as(data.encode(), DeploymentStatusChanged)
                        last_id = event_id or env.id
                        yield env
                        status = env.data.status.value
                        if until is not None and (status == until or status in TERMINAL):
                            return
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                await asyncio.sleep(reconnect_s)
    finally:
        if own:
            await http.aclose()


def _error(status: int, body: str) -> PavedError:
    import json

    try:
        document: dict[str, Any] = json.loads(body)
    except ValueError:
        return PavedError(status, "HTTP error", body[:500])
    return PavedError(
        status, str(document.get("title", "HTTP error")), str(document.get("detail", body)),
        document,
    )  # fmt: skip


def deployment_spec(
    *,
    replicas: int = 1,
    canary_weight: int = 100,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A checked deployment spec as JSON (raises ValueError naming the bad field)."""
    spec = DeploymentSpec.model_validate(
        {
            "replicas": replicas,
            "canary_weight": canary_weight,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "cpu": cpu,
            "memory": memory,
            "env": env or {},
        }
    )
    return spec.model_dump(mode="json", exclude_none=True)
