"""The reconciler: drives every deployment from its actual state toward its desired state.

It runs beside the service runtime, holds a per-schema advisory lock (one active
reconciler per deployer schema; others stand by), wakes on `pg_notify` from the
handlers' commits and polls every `interval_s`. Each deployment is worked on by at
most one task at a time. Every status change is written with its row change and its
outbox event in one transaction, after re-reading the row under a lock; if the row
changed meanwhile (a new request, a retirement) the step is dropped and the next pass
decides again. A deployer killed at any point therefore resumes correctly: a server
that was recorded and still answers is adopted, one that is gone is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from paved_schemas.events import DeploymentSpec, DeploymentStatus
from paved_shared.db import Connection, Pool

from paved_deployer import store
from paved_deployer.domain.lifecycle import (
    SERVING,
    Action,
    Admit,
    Probe,
    Refuse,
    Share,
    plan,
    split,
)
from paved_deployer.gateway import GatewayRoutes
from paved_deployer.ports import Backend, DeployTarget, Handle, ProvisionError, ProvisionRequest
from paved_deployer.store import Deployment, StatusWriter

log = logging.getLogger(__name__)

S = DeploymentStatus


class Reconciler:
    """Background loop that makes actual deployments match desired ones."""

    def __init__(
        self,
        pool: Callable[[], Pool],
        *,
        schema: str,
        target: DeployTarget,
        writer: StatusWriter,
        approval_wait_s: float,
        interval_s: float = 1.0,
        unready_limit: int = 5,
        gateway: GatewayRoutes | None = None,
    ) -> None:
        self._pool = pool
        self.schema = schema
        self.target = target
        self.writer = writer
        self.approval_wait_s = approval_wait_s
        self.interval_s = interval_s
        self.unready_limit = unready_limit
        self.gateway = gateway
        self.restarts = 0
        """Serving revisions replaced because a replica died or stopped answering."""
        self._routed: dict[str, str] = {}
        self.adopted: set[str] = set()
        """Deployments found ready with a live server on this reconciler's first look."""
        self.passes = 0
        self._seen: set[str] = set()
        self._unready: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop as a background task."""
        self._stopping.clear()
        self._main = asyncio.create_task(self.run(), name=f"reconciler-{self.schema}")

    def wake(self) -> None:
        """Run a pass now."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and cancel in-flight work (a cancelled step is like a crash)."""
        self._stopping.set()
        self._wake.set()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None

    async def run(self) -> None:
        """Take leadership, listen for commits, reconcile until stopped."""
        async with self._pool().acquire() as conn:
            lock = f"paved-deployer-reconciler:{self.schema}"
            while not self._stopping.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock):
                    break
                await self._sleep()
            else:
                return
            await conn.add_listener(store.channel(self.schema), self._on_notify)
            try:
                while not self._stopping.is_set():
                    try:
                        await self.reconcile_once()
                    except Exception:
                        log.exception("reconcile pass failed; retrying")
                    await self._sleep()
            finally:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(store.channel(self.schema), self._on_notify)
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _sleep(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def reconcile_once(self) -> None:
        """Start a step for every deployment that needs one and is not being worked on."""
        async with self._pool().acquire() as conn:
            rows = await store.needing_attention(conn, self.target.name)
        for row in rows:
            if row.deployment_id in self._tasks or self._stopping.is_set():
                continue
            task = asyncio.create_task(self._step(row.deployment_id))
            self._tasks[row.deployment_id] = task
            task.add_done_callback(functools.partial(self._done, row.deployment_id))
        self.passes += 1

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("reconciling %s failed: %r", key, task.exception())
        self._wake.set()

    async def idle(self) -> None:
        """Wait until no step is in flight (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- one deployment ----------------------------------------------------------------

    async def _step(self, deployment_id: str) -> None:  # noqa: PLR0912 - one branch per action
        async with self._pool().acquire() as conn:
            row = await store.get(conn, deployment_id)
        if row is None:
            return
        if row.status in SERVING and row.handle is not None:
            # A replacement started by an interrupted restart and never put in service.
            row = await self._orphan_handle(row)
        if row.retiring:
            row = await self._stop_retiring(row)
        probe = await self._probe(row)
        streak = self._unready.get(deployment_id, 0) + 1 if probe is Probe.NOT_READY else 0
        self._unready[deployment_id] = streak
        first_look = deployment_id not in self._seen
        self._seen.add(deployment_id)
        action = plan(
            desired=row.desired,
            status=row.status,
            probe=probe,
            unready_streak=streak,
            unready_limit=self.unready_limit,
        )
        if action is Action.KEEP:
            if row.status in SERVING and row.desired == "running":
                await self._keep_serving(row, first_look=first_look)
                if first_look and probe is Probe.READY:
                    log.info("adopted live model servers of %s", deployment_id)
                    self.adopted.add(deployment_id)
        elif action is Action.ADMIT:
            await self._admit(row)
        elif action is Action.MARK_READY:
            assert row.handle is not None
            try:
                await self.target.wait_ready(row.handle)
            except ProvisionError:
                await self._reprovision(row)
            else:
                await self._promote(row, row.handle)
        elif action is Action.REPROVISION:
            await self._reprovision(row)
        elif action is Action.RESTART:
            await self._restart(row)
        elif action is Action.RETIRE:
            await self._retire(row)
        elif action is Action.RELEASE:
            await self._release(row)

    async def _probe(self, row: Deployment) -> Probe:
        """In-flight revision while rolling out; the worst serving revision while serving;
        for finished deployments, whether anything is left (`NONE`: nothing)."""
        if row.desired == "running" and row.status in SERVING:
            worst = Probe.READY
            for handle in row.serving_handles:
                found = await self.target.probe(handle)
                if found is Probe.GONE:
                    return Probe.GONE
                if found is not Probe.READY:
                    worst = Probe.NOT_READY
            return worst if row.serving else Probe.GONE
        if row.desired == "running" and row.status in (S.PENDING, S.PROVISIONING):
            return Probe.NONE if row.handle is None else await self.target.probe(row.handle)
        leftover = row.handle is not None or row.serving or row.endpoint is not None
        return Probe.NOT_READY if leftover else Probe.NONE

    async def _update(
        self, row: Deployment, change: Callable[[Connection, Deployment], Any]
    ) -> Deployment | None:
        """Apply `change` to the locked row if its generation is unchanged; else None."""
        async with self._pool().acquire() as conn, conn.transaction():
            locked = await store.get(conn, row.deployment_id, lock=True)
            if locked is None or not locked.same_generation(row):
                return None
            result = await change(conn, locked)
            return result if isinstance(result, Deployment) else locked

    async def _stop_retiring(self, row: Deployment) -> Deployment:
        for handle in row.retiring:
            await self.target.stop(handle)
        async with self._pool().acquire() as conn, conn.transaction():
            locked = await store.get(conn, row.deployment_id, lock=True)
            assert locked is not None
            left = [h for h in locked.retiring if h not in row.retiring]
            return await store.set_handle(conn, locked, locked.handle, left)

    async def _orphan_handle(self, row: Deployment) -> Deployment:
        assert row.handle is not None
        await self.target.stop(row.handle)
        async with self._pool().acquire() as conn, conn.transaction():
            locked = await store.get(conn, row.deployment_id, lock=True)
            assert locked is not None
            if locked.handle != row.handle:
                return locked
            return await store.set_handle(conn, locked, None, locked.retiring)

    async def _admit(self, row: Deployment) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            locked = await store.get(conn, row.deployment_id, lock=True)
            if locked is None or not locked.same_generation(row):
                return
            verdict = await store.admission_of(
                conn, locked, wait_limit_s=self.approval_wait_s, frameworks=self.target.frameworks
            )
            if isinstance(verdict, Refuse):
                await store.refuse_rollout(conn, locked, verdict.reason, self.writer)
                return
            if not isinstance(verdict, Admit):
                return
            genai = await store.is_genai(conn, locked.model_name, locked.version)
            await conn.execute(
                "UPDATE deployments SET genai = $2 WHERE deployment_id = $1",
                locked.deployment_id, genai,
            )  # fmt: skip
            locked = replace(locked, genai=genai)
            admitted = await self.writer.transition(conn, locked, S.PROVISIONING)
        await self._provision(admitted)

    async def _reprovision(self, row: Deployment) -> None:
        """Provisioning was interrupted (deployer restart): start over, same revision."""
        if row.handle is not None:
            await self.target.stop(row.handle)
        fresh = await self._update(row, lambda conn, r: store.set_handle(conn, r, None, r.retiring))
        if fresh is not None:
            await self._provision(fresh)

    async def _provision(self, row: Deployment) -> None:
        """Start the revision of `row` (status provisioning), record it, wait, promote it."""
        handle: Handle | None = None
        recorded = False
        try:
            request = await self._request(row)
            handle = await self.target.start(request)

            async def record(conn: Connection, locked: Deployment) -> Deployment:
                return await store.set_handle(conn, locked, handle, locked.retiring)

            current = await self._update(row, record)
            if current is None:
                await self.target.stop(handle)
                return
            recorded = True
            await self.target.wait_ready(handle)
            await self._promote(current, handle)
        except ProvisionError as exc:
            if handle is not None:
                await self.target.stop(handle)
            reason = str(exc)

            async def refuse(conn: Connection, locked: Deployment) -> Deployment:
                locked = replace(locked, handle=None)
                return await store.refuse_rollout(conn, locked, reason, self.writer)

            await self._update(row, refuse)
        except asyncio.CancelledError:
            if handle is not None and not recorded:
                await asyncio.shield(self.target.stop(handle))
            raise

    async def _promote(self, row: Deployment, handle: Handle) -> None:
        """The revision of `row` is ready: put it in service with its canary weight."""
        spec = DeploymentSpec.model_validate(row.spec)
        shares = split(
            [Share(e["revision"], e["weight"]) for e in row.serving], row.revision,
            spec.canary_weight,
        )  # fmt: skip
        mine = {
            "revision": row.revision, "weight": 0, "handle": handle,
            "model_name": row.model_name, "version": row.version,
            "artifact_digest": row.artifact_digest, "spec": row.spec,
        }  # fmt: skip
        by_revision = {e["revision"]: e for e in row.serving if e["revision"] != row.revision}
        by_revision[row.revision] = mine
        serving = [{**by_revision[s.revision], "weight": s.weight} for s in shares]
        kept = {s.revision for s in shares}
        dropped = [
            e["handle"] for e in row.serving if e["revision"] not in kept or e["handle"] != (
                by_revision[e["revision"]]["handle"])
        ]  # fmt: skip
        endpoint = await self.target.route(
            row.deployment_id,
            model_name=row.model_name,
            genai=row.genai,
            backends=_backends(serving),
            endpoint=row.endpoint,
        )
        if row.genai and self.gateway is not None:
            await self.gateway.add(row.deployment_id, row.model_name, endpoint.url)
        split_text = ", ".join(f"revision {s.revision}: {s.weight}%" for s in shares)

        async def ready(conn: Connection, locked: Deployment) -> Deployment:
            return await self.writer.transition(
                conn,
                locked,
                S.READY,
                endpoint_url=endpoint.url,
                reason=f"serving {split_text}" if len(shares) > 1 else None,
                handle=None,
                serving=serving,
                endpoint=endpoint.handle,
                retiring=[*locked.retiring, *dropped],
            )

        if await self._update(row, ready) is None:
            self._routed.pop(row.deployment_id, None)
        else:
            self._routed[row.deployment_id] = _fingerprint(serving)

    async def _keep_serving(self, row: Deployment, *, first_look: bool) -> None:
        """Make sure the endpoint exists and routes exactly to the serving revisions."""
        fingerprint = _fingerprint(row.serving)
        alive = row.endpoint is not None and await self.target.endpoint_alive(row.endpoint)
        if alive and self._routed.get(row.deployment_id) == fingerprint and not first_look:
            return
        try:
            endpoint = await self.target.route(
                row.deployment_id,
                model_name=row.model_name,
                genai=row.genai,
                backends=_backends(row.serving),
                endpoint=row.endpoint,
            )
        except ProvisionError as exc:
            log.warning("cannot route %s: %s", row.deployment_id, exc)
            return
        if row.genai and self.gateway is not None:
            await self.gateway.add(row.deployment_id, row.model_name, endpoint.url)
        if endpoint.handle != row.endpoint:
            changed = await self._update(
                row, lambda conn, r: store.set_serving(conn, r, r.serving, endpoint=endpoint.handle)
            )
            if changed is None:
                return
        self._routed[row.deployment_id] = fingerprint

    async def _restart(self, row: Deployment) -> None:
        """Replace every serving revision that lost a replica or stopped answering.

        New servers start first and take over before the old ones stop, so surviving
        replicas keep answering meanwhile; no status changes (the deployment keeps its
        revision and spec), unless a replacement cannot start: then the deployment fails.
        """
        current: Deployment | None = row
        for entry in row.serving:
            if current is None:
                return
            if await self.target.probe(entry["handle"]) is not Probe.READY:
                current = await self._replace(current, entry)
        if current is not None:
            self._routed.pop(current.deployment_id, None)
            await self._keep_serving(current, first_look=False)

    async def _replace(self, row: Deployment, entry: dict[str, Any]) -> Deployment | None:
        what = f"revision {entry['revision']} of {row.deployment_id}"
        log.warning("%s lost a replica or stopped answering; replacing its servers", what)
        handle: Handle | None = None
        try:
            request = self._entry_request(row, entry, await self._facts(row, entry))
            handle = await self.target.start(request)
            new_handle = handle

            async def record(conn: Connection, locked: Deployment) -> Deployment:
                return await store.set_handle(conn, locked, new_handle, locked.retiring)

            if await self._update(row, record) is None:
                await self.target.stop(handle)
                return None
            await self.target.wait_ready(handle)
        except ProvisionError as exc:
            if handle is not None:
                await self.target.stop(handle)
            await self._fail_serving(row, f"{what} died and could not be restarted: {exc}")
            return None

        async def swap(conn: Connection, locked: Deployment) -> Deployment:
            serving = [
                {**e, "handle": new_handle} if e["revision"] == entry["revision"] else e
                for e in locked.serving
            ]
            # A target that recreates the revision under the same names (Kubernetes) has
            # nothing old left to stop.
            old = [] if entry["handle"] == new_handle else [entry["handle"]]
            locked = await store.set_handle(conn, locked, None, [*locked.retiring, *old])
            return await store.set_serving(conn, locked, serving)

        swapped = await self._update(row, swap)
        if swapped is not None:
            self.restarts += 1
        return swapped

    async def _fail_serving(self, row: Deployment, reason: str) -> None:
        await self._take_down(row)

        async def fail(conn: Connection, locked: Deployment) -> Deployment:
            stopped = [*locked.retiring, *locked.serving_handles]
            stopped += [locked.handle] if locked.handle else []
            return await self.writer.transition(
                conn, locked, S.FAILED, reason=reason, handle=None, serving=[], endpoint=None,
                retiring=stopped,
            )  # fmt: skip

        await self._update(row, fail)

    async def _take_down(self, row: Deployment) -> None:
        """Remove the gateway route and the endpoint (servers stop via `retiring`)."""
        if self.gateway is not None:
            await self.gateway.remove(row.deployment_id)
        if row.endpoint is not None:
            await self.target.unroute(row.endpoint)
        self._routed.pop(row.deployment_id, None)

    async def _retire(self, row: Deployment) -> None:
        await self._take_down(row)
        for handle in [*row.serving_handles, *([row.handle] if row.handle else [])]:
            await self.target.stop(handle)
        reason = row.stop_reason or "deployment stopped"

        async def retire(conn: Connection, locked: Deployment) -> Deployment:
            return await self.writer.transition(
                conn, locked, S.RETIRED, reason=reason, handle=None, serving=[], endpoint=None
            )

        await self._update(row, retire)

    async def _release(self, row: Deployment) -> None:
        await self._take_down(row)
        for handle in [*row.serving_handles, *([row.handle] if row.handle else [])]:
            await self.target.stop(handle)

        async def clear(conn: Connection, locked: Deployment) -> Deployment:
            locked = await store.set_handle(conn, locked, None, locked.retiring)
            return await store.set_serving(conn, locked, [], endpoint=None)

        await self._update(row, clear)

    async def _facts(self, row: Deployment, entry: dict[str, Any]) -> tuple[Any, Any]:
        async with self._pool().acquire() as conn:
            reg = await store.registration(conn, entry["model_name"], entry["version"])
            sig = await store.signature(conn, entry["model_name"], entry["version"])
        if reg is None or sig is None:
            raise ProvisionError(
                f"{entry['model_name']} version {entry['version']} "
                f"({entry['artifact_digest']}) is not registered"
            )
        return reg, sig

    def _entry_request(
        self, row: Deployment, entry: dict[str, Any], facts: tuple[Any, Any]
    ) -> ProvisionRequest:
        reg, sig = facts
        return ProvisionRequest(
            deployment_id=row.deployment_id,
            revision=entry["revision"],
            model_name=entry["model_name"],
            version=entry["version"],
            artifact_uri=reg.artifact_uri,
            artifact_digest=entry["artifact_digest"],
            framework=reg.framework,
            signature=sig,
            spec=DeploymentSpec.model_validate(entry["spec"]),
            genai=row.genai,
        )

    async def _request(self, row: Deployment) -> ProvisionRequest:
        entry = {
            "revision": row.revision, "model_name": row.model_name, "version": row.version,
            "artifact_digest": row.artifact_digest, "spec": row.spec,
        }  # fmt: skip
        return self._entry_request(row, entry, await self._facts(row, entry))


def _backends(serving: list[dict[str, Any]]) -> list[Backend]:
    return [Backend(e["revision"], e["weight"], e["handle"]) for e in serving]


def _fingerprint(serving: list[dict[str, Any]]) -> str:
    return json.dumps([[e["revision"], e["weight"], e["handle"]] for e in serving], sort_keys=True)
