"""Deployment status as server-sent events, for consumers without Kafka access.

- ``GET /api/v1/deployments/{deployment_id}/events``: one deployment's history, then
  live transitions (it reads only the partition its key hashes to).
- ``GET /api/v1/deployments/events?model=&deployment=``: live transitions of every
  deployment (optionally of one model); ``from_beginning=true`` replays history first.

Each event is one ``DeploymentStatusChanged`` envelope: ``id`` is the event id (a
reconnecting client sends it back as ``Last-Event-ID`` and resumes after it),
``event`` is the new status, ``data`` the CloudEvents JSON. ``until=ready`` (or any
status) closes the stream after that status or any terminal one (failed, rolled_back,
retired). The source is the ``paved.deployment.status.v1`` topic itself, read without a
consumer group (nothing committed, any number of watchers), so every transition a
deployer published is seen, in order per deployment.

Both routes need an authenticated caller, and a stream carries only the events of
models the caller may see (their owner team is looked up once per model per stream):
another team's deployments are skipped exactly as if they did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from paved_schemas import topics
from paved_schemas._types import SLUG_PATTERN
from paved_schemas.envelope import ContractError, parse_envelope
from paved_schemas.events import DeploymentStatus, DeploymentStatusChanged
from paved_shared.auth import Principal
from paved_shared.authz import can_see, readable_teams
from paved_shared.http import ProblemError, authenticated_router
from paved_shared.kafka import kafka_auth, topic_partitions
from paved_shared.service import ServiceRuntime

from paved_registry.auth import CurrentPrincipal, current_principal

PREFIX = "/api/v1"
HEARTBEAT_S = 15.0
TERMINAL = frozenset({"failed", "rolled_back", "retired"})
_SLUG = re.compile(SLUG_PATTERN)


def _check_slug(what: str, value: str | None) -> None:
    if value is not None and not _SLUG.fullmatch(value):
        raise ProblemError(
            400, "invalid-parameter", "Invalid parameter",
            f"{what} {value!r} is not a valid name (lowercase letters, digits, '.', '_', '-')",
        )  # fmt: skip


def _check_until(until: str | None) -> None:
    allowed = {s.value for s in DeploymentStatus}
    if until is not None and until not in allowed:
        raise ProblemError(
            400, "invalid-parameter", "Invalid parameter",
            f"until {until!r} is not a deployment status; use one of {sorted(allowed)}",
        )  # fmt: skip


Visible = Callable[[str], Awaitable[bool]]
"""May the caller see this model's deployments? (by model name)"""


def visibility(runtime: ServiceRuntime, principal: Principal) -> Visible:
    """``Visible`` for ``principal``: the model's owner team, read once per model."""
    teams = readable_teams(principal)  # 403 for a caller without any role
    known: dict[str, bool] = {}

    async def visible(model_name: str) -> bool:
        if teams is None:
            return True
        if model_name not in known:
            async with runtime.pool.acquire() as conn:
                team = await conn.fetchval("SELECT owner_team FROM models WHERE name = $1",
                                           model_name)  # fmt: skip
            # A model the registry does not know has no owner to check against: hidden.
            known[model_name] = team is not None and can_see(principal, team)
        return known[model_name]

    return visible


def format_event(event_id: str, status: str, data: bytes) -> bytes:
    """One SSE frame."""
    compact = json.dumps(json.loads(data), separators=(",", ":"))
    return f"id: {event_id}\nevent: {status}\ndata: {compact}\n\n".encode()


async def stream_status(  # noqa: PLR0912 - the filters and stop rules of one stream
    bootstrap: str,
    *,
    deployment_id: str | None,
    model: str | None,
    from_beginning: bool,
    last_event_id: str | None,
    until: str | None,
    is_disconnected: Any,
    visible: Visible | None = None,
    heartbeat_s: float = HEARTBEAT_S,
) -> AsyncIterator[bytes]:
    """SSE frames of matching status events (history first when asked), then heartbeats."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **kafka_auth().aiokafka(),
        enable_auto_commit=False,
        group_id=None,
        client_id=f"paved-registry-sse-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    try:
        ordered = [
            tp.partition for tp in await topic_partitions(consumer, topics.DEPLOYMENT_STATUS)
        ]
        if deployment_id is not None and ordered:
            # Producers partition by key with Kafka's default (murmur2) partitioner.
            chosen = DefaultPartitioner()(deployment_id.encode(), ordered, ordered)
            ordered = [chosen]
        assigned = [TopicPartition(topics.DEPLOYMENT_STATUS, p) for p in ordered]
        consumer.assign(assigned)
        replay = from_beginning or last_event_id is not None
        if replay:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        for partition in assigned:
            await consumer.position(partition)  # resolve the start before saying we are open
        skipping = last_event_id is not None
        yield b": paved deployment status stream\n\n"
        last_sent = time.monotonic()
        while not await is_disconnected():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        env = parse_envelope(record.value or b"")
                    except ContractError:
                        continue
                    data = env.data
                    if not isinstance(data, DeploymentStatusChanged):
                        continue
                    if deployment_id is not None and data.deployment_id != deployment_id:
                        continue
                    if model is not None and data.model_name != model:
                        continue
                    if visible is not None and not await visible(data.model_name):
                        continue
                    if skipping:
                        skipping = env.id != last_event_id
                        continue
                    yield format_event(env.id, data.status.value, record.value or b"{}")
                    last_sent = time.monotonic()
                    if until is not None and (data.status.value == until
                                              or data.status.value in TERMINAL):  # fmt: skip
                        return
            if time.monotonic() - last_sent > heartbeat_s:
                yield b": keepalive\n\n"
                last_sent = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(consumer.stop())


def build_router() -> APIRouter:
    """The SSE routes (include before the registry's own `/deployments/{id}` route)."""
    router = authenticated_router(current_principal, prefix=PREFIX, tags=["deployments"])

    def _response(request: Request, principal: Principal, **kwargs: Any) -> StreamingResponse:
        runtime: ServiceRuntime = request.app.state.runtime
        frames = stream_status(
            runtime.settings.kafka_bootstrap, is_disconnected=request.is_disconnected,
            visible=visibility(runtime, principal), **kwargs,
        )  # fmt: skip
        return StreamingResponse(
            frames,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/deployments/events", response_class=StreamingResponse)
    async def all_deployment_events(
        request: Request,
        principal: CurrentPrincipal,
        model: Annotated[str | None, Query(description="Only this model's deployments.")] = None,
        deployment: Annotated[str | None, Query(description="Only this deployment.")] = None,
        from_beginning: Annotated[bool, Query(description="Replay history first.")] = False,
        until: Annotated[str | None, Query(description="Close after this status.")] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Status events of all deployments (or one model's) as server-sent events."""
        _check_slug("model", model)
        _check_slug("deployment", deployment)
        _check_until(until)
        return _response(
            request, principal, deployment_id=deployment, model=model,
            from_beginning=from_beginning, last_event_id=last_event_id, until=until,
        )  # fmt: skip

    @router.get("/deployments/{deployment_id}/events", response_class=StreamingResponse)
    async def deployment_events(
        request: Request,
        principal: CurrentPrincipal,
        deployment_id: Annotated[str, Path(description="The deployment id.")],
        from_beginning: Annotated[bool, Query(description="Replay history first.")] = True,
        until: Annotated[str | None, Query(description="Close after this status.")] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """One deployment's status events (history, then live) as server-sent events."""
        _check_slug("deployment id", deployment_id)
        _check_until(until)
        return _response(
            request, principal, deployment_id=deployment_id, model=None,
            from_beginning=from_beginning, last_event_id=last_event_id, until=until,
        )  # fmt: skip

    return router
