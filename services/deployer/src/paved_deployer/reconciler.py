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
import logging
from collections.abc import Callable
from typing import Any

from paved_schemas.events import DeploymentSpec, DeploymentStatus
from paved_shared.db import Connection, Pool

from paved_deployer import store
from paved_deployer.domain.lifecycle import Action, Admit, Probe, Refuse, plan
from paved_deployer.ports import DeployTarget, Handle, ProvisionError, ProvisionRequest
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
    ) -> None:
        self._pool = pool
        self.schema = schema
        self.target = target
        self.writer = writer
        self.approval_wait_s = approval_wait_s
        self.interval_s = interval_s
        self.unready_limit = unready_limit
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

    async def _step(self, deployment_id: str) -> None:
        async with self._pool().acquire() as conn:
            row = await store.get(conn, deployment_id)
        if row is None:
            return
        if row.retiring:
            row = await self._stop_retiring(row)
        probe = Probe.NONE if row.handle is None else await self.target.probe(row.handle)
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
            if first_look and row.status is S.READY and probe is Probe.READY:
                log.info("adopted live model server of %s: %s", deployment_id, row.handle)
                self.adopted.add(deployment_id)
        elif action is Action.ADMIT:
            await self._admit(row)
        elif action is Action.MARK_READY:
            assert row.handle is not None
            try:
                await self._await_ready(row, row.handle)
            except ProvisionError:
                await self._reprovision(row)
        elif action is Action.REPROVISION:
            await self._reprovision(row)
        elif action is Action.RESTART:
            await self._restart(row, probe)
        elif action is Action.RETIRE:
            await self._retire(row)
        elif action is Action.RELEASE:
            assert row.handle is not None
            await self.target.stop(row.handle)
            await self._update(row, lambda conn, r: store.set_handle(conn, r, None, r.retiring))

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

    async def _admit(self, row: Deployment) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            locked = await store.get(conn, row.deployment_id, lock=True)
            if locked is None or not locked.same_generation(row):
                return
            verdict = await store.admission_of(
                conn, locked, wait_limit_s=self.approval_wait_s, frameworks=self.target.frameworks
            )
            if isinstance(verdict, Refuse):
                retiring = [*locked.retiring, locked.handle] if locked.handle else locked.retiring
                await self.writer.transition(
                    conn, locked, S.FAILED, reason=verdict.reason, handle=None, retiring=retiring
                )
                return
            if not isinstance(verdict, Admit):
                return
            admitted = await self.writer.transition(conn, locked, S.PROVISIONING)
        await self._provision(admitted)

    async def _reprovision(self, row: Deployment) -> None:
        """Provisioning was interrupted (deployer restart): start over, same revision."""
        if row.handle is not None:
            await self.target.stop(row.handle)
        fresh = await self._update(row, lambda conn, r: store.set_handle(conn, r, None, r.retiring))
        if fresh is not None:
            await self._provision(fresh)

    async def _restart(self, row: Deployment, probe: Probe) -> None:
        """A ready deployment lost its server: new revision, provisioning again."""
        old = row.handle
        if old is not None:
            await self.target.stop(old)
        what = f"model server {_describe(old)}"
        reason = f"{what} is gone" if probe is not Probe.NOT_READY else f"{what} stopped answering"

        async def bump(conn: Connection, locked: Deployment) -> Deployment:
            return await self.writer.transition(
                conn,
                locked,
                S.PROVISIONING,
                revision=locked.revision + 1,
                reason=f"{reason}; restarting",
                handle=None,
            )

        fresh = await self._update(row, bump)
        self._unready.pop(row.deployment_id, None)
        if fresh is not None:
            await self._provision(fresh)

    async def _retire(self, row: Deployment) -> None:
        if row.handle is not None:
            await self.target.stop(row.handle)
        reason = row.stop_reason or "deployment stopped"

        async def retire(conn: Connection, locked: Deployment) -> Deployment:
            return await self.writer.transition(conn, locked, S.RETIRED, reason=reason, handle=None)

        await self._update(row, retire)

    async def _provision(self, row: Deployment) -> None:
        """Start a server for `row` (status provisioning), record it, wait for ready."""
        handle: Handle | None = None
        recorded = False
        try:
            request = await self._request(row)
            handle = await self.target.start(request)

            async def record(conn: Connection, locked: Deployment) -> Deployment:
                # A server of an earlier revision keeps serving until this one is ready.
                previous = [locked.handle] if locked.handle else []
                return await store.set_handle(conn, locked, handle, [*locked.retiring, *previous])

            current = await self._update(row, record)
            if current is None:
                await self.target.stop(handle)
                return
            recorded = True
            await self._await_ready(current, handle)
        except ProvisionError as exc:
            if handle is not None:
                await self.target.stop(handle)
            reason = str(exc)
            await self._update(
                row,
                lambda conn, r: self.writer.transition(
                    conn, r, S.FAILED, reason=reason, handle=None
                ),
            )
        except asyncio.CancelledError:
            if handle is not None and not recorded:
                await asyncio.shield(self.target.stop(handle))
            raise

    async def _await_ready(self, row: Deployment, handle: Handle) -> None:
        url = await self.target.wait_ready(handle)

        async def ready(conn: Connection, locked: Deployment) -> Deployment:
            return await self.writer.transition(conn, locked, S.READY, endpoint_url=url)

        await self._update(row, ready)

    async def _request(self, row: Deployment) -> ProvisionRequest:
        async with self._pool().acquire() as conn:
            reg = await store.registration(conn, row.model_name, row.version)
            sig = await store.signature(conn, row.model_name, row.version)
        if reg is None or sig is None:
            raise ProvisionError(
                f"{row.model_name} version {row.version} ({row.artifact_digest}) is not registered"
            )
        return ProvisionRequest(
            deployment_id=row.deployment_id,
            revision=row.revision,
            model_name=row.model_name,
            version=row.version,
            artifact_uri=reg.artifact_uri,
            artifact_digest=row.artifact_digest,
            framework=reg.framework,
            signature=sig,
            spec=DeploymentSpec.model_validate(row.spec),
        )


def _describe(handle: Handle | None) -> str:
    if handle is None:
        return "(none recorded)"
    return f"pid {handle.get('pid')} port {handle.get('port')}"
