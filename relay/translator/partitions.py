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
import math
import random
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from relay.backoff import sleep_or_stop
from relay.logs import get_logger
from relay.translator.consumer import Translator

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from relay.config import Config
    from relay.health import Health
    from relay.redis.keys import Keys

log = get_logger("translator")
_rng = random.SystemRandom()

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZCARD', KEYS[1])
"""


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
        self.keys = keys
        self.ttl_s = cfg.legacy.lease_ttl_s
        self.replicas = 1
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
        self.member = self.translators[0].lease.owner
        self._heartbeat: AsyncScript = redis.register_script(_HEARTBEAT)

    @property
    def target(self) -> int:
        """This replica's fair share of the partitions at the last heartbeat."""
        return math.ceil(len(self.translators) / max(1, self.replicas))

    def active(self) -> list[int]:
        """The partitions whose lease this replica holds."""
        return [i for i, t in enumerate(self.translators) if t.lease.held]

    def _below_share(self) -> bool:
        return len(self.active()) < self.target

    async def run(self, stop: asyncio.Event) -> None:
        """Translate the partitions this replica holds until ``stop``."""
        runs = [asyncio.create_task(t.run(stop), name=t.name) for t in self.translators]
        try:
            await self._balance(stop)
        finally:
            await asyncio.gather(*runs, return_exceptions=True)
            try:
                await self._beat(alive=False)
            except (RedisError, OSError):
                log.warning("translator_leave_failed")

    async def _balance(self, stop: asyncio.Event) -> None:
        """Heartbeat every third of the lease TTL; hand over partitions above the share."""
        while not stop.is_set():
            # An unreachable Redis is reported by the translators themselves.
            with contextlib.suppress(RedisError, OSError):
                await self._beat(alive=True)
            surplus = len(self.active()) - self.target
            if surplus > 0:
                for index in _rng.sample(self.active(), surplus):
                    log.info("translator_rebalance_release", partition=index, target=self.target)
                    self.translators[index].step_down = True
            await sleep_or_stop(self.ttl_s / 3 * _rng.uniform(0.8, 1.2), stop)

    async def _beat(self, *, alive: bool) -> None:
        ttl_ms = max(1, int(self.ttl_s * 1000))
        count = await self._heartbeat(
            keys=[self.keys.translator_replicas],
            args=[self.member, ttl_ms, "1" if alive else "0"],
        )
        self.replicas = max(1, int(count))

    def status(self) -> dict[str, object]:
        """Each partition's translator (role, fence, position), and this replica's share."""
        return {
            "partitions": len(self.translators),
            "target": self.target,
            "active": self.active(),
            "by_partition": {str(i): t.status() for i, t in enumerate(self.translators)},
        }
