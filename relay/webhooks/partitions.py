"""Webhook delivery with ``[redis] partitions`` > 1: one active delivery per partition.

Each partition has its own legacy and events streams, so each has its own webhook state
(consumer groups, district queues, dead letters under ``<partition prefix>:webhooks``) and its
own single-active lease (``<partition prefix>:webhooks:lease``). This component runs one
:class:`~relay.webhooks.delivery.WebhookDelivery` per partition; each takes its lease only
while this replica holds fewer than its fair share of the partitions
(:mod:`relay.redis.partition_share`, heartbeats in ``<p>:webhooks:replicas``), and a replica
above its share hands one over. Per-district order holds: a district lives in one partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from relay import logs
from relay.redis.partition_share import PartitionShare
from relay.webhooks.delivery import WebhookDelivery

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.redis.keys import Keys

log = logs.get_logger("webhooks")
_rng = random.SystemRandom()


class PartitionedWebhooks:
    """The ``webhooks`` component over every partition (see the module docstring)."""

    name = "webhooks"

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
        keys: Keys,
    ) -> None:
        self.ttl_s = cfg.relay.lease_ttl_s
        self.deliveries = [
            WebhookDelivery(
                cfg=cfg,
                redis=redis,
                session=session,
                health=health,
                keys=keys.partition(index),
                partition=index,
                gate=self._below_share,
            )
            for index in range(keys.partitions)
        ]
        instance = cfg.relay.instance or socket.gethostname()
        self.share = PartitionShare(
            redis,
            key=keys.webhooks_replicas,
            member=f"{instance}:{secrets.token_hex(6)}",
            partitions=keys.partitions,
            ttl_s=self.ttl_s,
        )

    def active(self) -> list[int]:
        """The partitions whose delivery lease this replica holds."""
        return [i for i, d in enumerate(self.deliveries) if d.lease.held]

    def _below_share(self) -> bool:
        return len(self.active()) < self.share.target

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver the partitions this replica holds until ``stop``."""
        # Join the replica set before taking leases, so replicas starting together share.
        with contextlib.suppress(RedisError, OSError):
            await self.share.beat(alive=True)
        runs = [asyncio.create_task(d.run(stop), name=d.loops) for d in self.deliveries]
        try:
            while not stop.is_set():
                with contextlib.suppress(RedisError, OSError):
                    await self.share.beat(alive=True)
                surplus = len(self.active()) - self.share.target
                for index in _rng.sample(self.active(), max(0, surplus)):
                    self.deliveries[index].step_down = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ttl_s / 3 * _rng.uniform(0.8, 1.2))
        finally:
            await asyncio.gather(*runs, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await self.share.beat(alive=False)

    def status(self) -> dict[str, Any]:
        """Each partition's delivery (role, endpoints), and this replica's share."""
        return {
            "partitions": len(self.deliveries),
            "target": self.share.target,
            "active": self.active(),
            "by_partition": {str(i): d.status() for i, d in enumerate(self.deliveries)},
        }
