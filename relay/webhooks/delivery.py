"""The ``webhooks`` component (CONTRACT §10): every configured endpoint, delivered concurrently.

Each endpoint runs its own ingest, delivery and stats loops and its own HTTP connection pool,
so a slow or failing endpoint never holds up another. See docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from relay import logs
from relay.webhooks.endpoint import EndpointWorker

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.keys import Keys

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
    ) -> None:
        # ``session`` (the shared one, with Clever's timeout) is not used: each endpoint needs
        # its own timeout and connection pool.
        del session
        self.workers = [
            EndpointWorker(endpoint=endpoint, cfg=cfg, redis=redis, keys=keys, health=health)
            for endpoint in cfg.webhooks.endpoints
        ]
        self.stats_interval_s = stats_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; return once the attempts in flight are settled."""
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
        """Each endpoint's state, for ``/status``."""
        return {"endpoints": {worker.name: worker.status() for worker in self.workers}}
