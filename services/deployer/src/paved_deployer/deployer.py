"""`Deployer`: one deployer process — the service runtime plus the reconciler and a target."""

from __future__ import annotations

import asyncio
import logging
import signal

from paved_shared.service import ServiceRuntime

from paved_deployer import store
from paved_deployer.ports import DeployTarget
from paved_deployer.reconciler import Reconciler
from paved_deployer.settings import DeployerSettings

log = logging.getLogger(__name__)


class Deployer:
    """Consumes requests and lifecycle events, reconciles deployments on one target."""

    def __init__(
        self,
        settings: DeployerSettings,
        runtime: ServiceRuntime,
        reconciler: Reconciler,
        target: DeployTarget,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.reconciler = reconciler
        self.target = target

    async def start(self) -> None:
        """Start the runtime (migrate, consume, relay), then the reconciler."""
        await self.runtime.start()
        self.reconciler.start()

    async def stop(self) -> None:
        """Stop reconciling and consuming; stop model servers only if configured to."""
        await self.reconciler.stop()
        if self.settings.deployer_stop_servers_on_exit:
            await self._stop_servers()
        await self.runtime.stop()
        await self.target.close()

    async def stop_all(self) -> None:
        """Clean shutdown that also stops every model server of this deployer."""
        await self.reconciler.stop()
        await self._stop_servers()
        await self.runtime.stop()
        await self.target.close()

    async def _stop_servers(self) -> None:
        # Recorded handles first (they may live outside the run dir's scan), then a sweep.
        try:
            async with self.runtime.pool.acquire() as conn:
                rows = await store.with_servers(conn)
        except RuntimeError:
            rows = []
        for row in rows:
            for handle in [*([row.handle] if row.handle else []), *row.retiring,
                           *row.serving_handles]:  # fmt: skip
                await self.target.stop(handle)
            if row.endpoint is not None:
                await self.target.unroute(row.endpoint)
        stopped = await self.target.stop_everything()
        if rows or stopped:
            log.info("stopped model servers of %d deployments", len(rows))

    async def run_forever(self) -> None:
        """Start, run until SIGTERM/SIGINT, stop."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await self.start()
        try:
            await stopping.wait()
        finally:
            await self.stop()
