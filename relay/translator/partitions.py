"""The translator with ``[redis] partitions`` > 1: one active translator per partition.

Each partition has its own events stream, consumer group, position and lease
(``<partition prefix>:translator:lease``), so partitions are translated independently and each
district's order holds (a district lives in one partition). This component runs one
:class:`~relay.translator.consumer.Translator` per partition in the process; each takes its
partition's lease only while the replica holds fewer than its fair share,
``ceil(partitions / replicas)`` (the replicas heartbeat into ``<p>:translator:replicas``,
scored by Redis's clock, as the district leases do), and a replica above its share hands a
partition over after its write in flight. A replica that dies stops renewing: its leases
lapse within one TTL, its heartbeat goes stale, and the others' shares grow to cover its
partitions. One process runs Python on one core, so P cores take P replicas (or processes);
see docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from relay.backoff import sleep_or_stop
from relay.logs import get_logger
from relay.redis.partition_share import PartitionShare
from relay.translator.consumer import Translator

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.redis.keys import Keys

log = get_logger("translator")
_rng = random.SystemRandom()


class PartitionedTranslator:
    """The ``translator`` component over every partition (see the module docstring)."""

    name = "translator"

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
        keys: Keys,
        consumer_name: str | None = None,
    ) -> None:
        self.ttl_s = cfg.legacy.lease_ttl_s
        self.translators = [
            Translator(
                cfg=cfg,
                redis=redis,
                session=session,
                health=health,
                keys=keys.partition(index),
                consumer_name=consumer_name,
                partition=index,
                gate=self._below_share,
            )
            for index in range(keys.partitions)
        ]
        self.share = PartitionShare(
            redis,
            key=keys.translator_replicas,
            member=self.translators[0].lease.owner,
            partitions=keys.partitions,
            ttl_s=self.ttl_s,
        )

    @property
    def target(self) -> int:
        """This replica's fair share of the partitions at the last heartbeat."""
        return self.share.target

    def active(self) -> list[int]:
        """The partitions whose lease this replica holds."""
        return [i for i, t in enumerate(self.translators) if t.lease.held]

    def _below_share(self) -> bool:
        return len(self.active()) < self.target

    async def run(self, stop: asyncio.Event) -> None:
        """Translate the partitions this replica holds until ``stop``."""
        # Join the replica set before taking leases, so replicas starting together share.
        with contextlib.suppress(RedisError, OSError):
            await self.share.beat(alive=True)
        runs = [asyncio.create_task(t.run(stop), name=t.name) for t in self.translators]
        try:
            await self._balance(stop)
        finally:
            await asyncio.gather(*runs, return_exceptions=True)
            try:
                await self.share.beat(alive=False)
            except (RedisError, OSError):
                log.warning("translator_leave_failed")

    async def _balance(self, stop: asyncio.Event) -> None:
        """Heartbeat every third of the lease TTL; hand over partitions above the share."""
        while not stop.is_set():
            # An unreachable Redis is reported by the translators themselves.
            with contextlib.suppress(RedisError, OSError):
                await self.share.beat(alive=True)
            surplus = len(self.active()) - self.target
            if surplus > 0:
                for index in _rng.sample(self.active(), surplus):
                    log.info("translator_rebalance_release", partition=index, target=self.target)
                    self.translators[index].step_down = True
            await sleep_or_stop(self.ttl_s / 3 * _rng.uniform(0.8, 1.2), stop)

    def status(self) -> dict[str, object]:
        """Each partition's translator (role, fence, position), and this replica's share."""
        return {
            "partitions": len(self.translators),
            "target": self.target,
            "active": self.active(),
            "by_partition": {str(i): t.status() for i, t in enumerate(self.translators)},
        }
