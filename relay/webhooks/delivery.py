"""The ``webhooks`` component (docs/webhooks.md): every configured endpoint, delivered concurrently.

Each endpoint runs its own ingest, delivery and stats loops and its own HTTP connection pool,
so a slow or failing endpoint never holds up another. See docs/webhooks.md.

Only one replica delivers at a time: the component holds a lease (``<p>:webhooks:lease``) and
the others stand by, taking over within one lease TTL, so a Deployment with several replicas
does not send every event once per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from relay import logs
from relay.redis.single_active_lease import SingleActiveLease
from relay.tasks import cancel_and_wait
from relay.webhooks.endpoint import EndpointWorker

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.redis.keys import Keys

log = logs.get_logger("webhooks")

STATS_INTERVAL_S = 2.0


class WebhookDelivery:
    """Pushes legacy and v3 events to the configured HTTP endpoints, signed and in order."""

    name = "webhooks"

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
        keys: Keys,
        stats_interval_s: float = STATS_INTERVAL_S,
        partition: int | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        # ``session`` (the shared one, with Clever's timeout) is not used: each endpoint needs
        # its own timeout and connection pool.
        del session
        self.loops = "webhooks" if partition is None else f"webhooks:p{partition}"
        """Prefix of the loop names (health), one per partition."""
        self.gate = gate
        """With partitions: asked before taking the lease (this replica's fair share)."""
        self.step_down = False
        """Set to hand the lease over (a partition rebalance)."""
        self.workers = [
            EndpointWorker(
                endpoint=endpoint,
                cfg=cfg,
                redis=redis,
                keys=keys,
                health=health,
                loops=self.loops,
            )
            for endpoint in cfg.webhooks.endpoints
        ]
        self.stats_interval_s = stats_interval_s
        self.cancel_deadline_s = cfg.relay.cancel_deadline_s
        self.health = health
        self.lease = SingleActiveLease(
            redis,
            key=keys.webhooks_lease,
            owner=cfg.relay.instance or socket.gethostname(),
            ttl_s=cfg.relay.lease_ttl_s,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver while holding the lease, stand by otherwise, until ``stop`` is set."""
        loop_name = f"{self.loops}:lease"
        self.health.register(loop_name, self.lease.ttl_ms / 1000 * 3 + 30)
        try:
            while not stop.is_set():
                self.health.tick(loop_name)
                try:
                    acquired = (self.gate is None or self.gate()) and await self.lease.acquire()
                except RedisError as exc:
                    log.warning("webhooks_lease_unavailable", error=type(exc).__name__)
                    acquired = False
                if acquired:
                    log.info("webhooks_active", fence=self.lease.fence)
                    await self._active(stop, loop_name)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.lease.ttl_ms / 3000)
        finally:
            self.health.unregister(loop_name)

    async def _active(self, stop: asyncio.Event, loop_name: str) -> None:
        """Deliver until ``stop`` is set or the lease is lost, then release it."""
        inner = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(stop, inner, loop_name), name=loop_name)
        try:
            await self._deliver(inner)
        finally:
            await cancel_and_wait([keeper], deadline_s=self.cancel_deadline_s)
            with contextlib.suppress(RedisError):
                await self.lease.release()

    async def _keep_lease(self, stop: asyncio.Event, inner: asyncio.Event, loop_name: str) -> None:
        """Renew the lease every third of its TTL; set ``inner`` on stop or when it is lost."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.lease.ttl_ms / 3000)
            self.health.tick(loop_name)
            if stop.is_set():
                break
            if self.step_down:
                self.step_down = False
                log.info("webhooks_rebalance_release", loops=self.loops)
                break
            try:
                renewed = await self.lease.renew()
            except RedisError:
                renewed = False
                self.lease.lost()
            if not renewed:
                log.warning("webhooks_lease_lost")
                break
        inner.set()

    async def _deliver(self, stop: asyncio.Event) -> None:
        """Run every endpoint's loops until ``stop``; return once attempts in flight settle."""
        for worker in self.workers:
            worker.sender.open()
        log.info("webhooks_started", endpoints=[w.name for w in self.workers])
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._wake_on_stop(stop), name="webhooks:stop")
                for worker in self.workers:
                    name = f"webhooks:{worker.name}"
                    group.create_task(worker.ingest(stop), name=f"{name}:ingest")
                    group.create_task(worker.deliver(stop), name=f"{name}:delivery")
                    group.create_task(
                        worker.report(stop, self.stats_interval_s), name=f"{name}:stats"
                    )
        finally:
            for worker in self.workers:
                await worker.sender.close()
            log.info("webhooks_stopped")

    async def _wake_on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        for worker in self.workers:
            worker.wake.set()

    def status(self) -> dict[str, Any]:
        """This replica's role and each endpoint's state, for ``/status``."""
        return {
            "role": "active" if self.lease.held else "standby",
            "endpoints": {worker.name: worker.status() for worker in self.workers},
        }
