"""A replica's fair share of the partitions, for the per-partition single-active leases.

With ``[redis] partitions`` > 1 the translator and webhook delivery each hold one
:class:`~relay.redis.single_active_lease.SingleActiveLease` per partition. To spread the
partitions over the replicas (and so over cores), every replica heartbeats into a sorted set
scored by Redis's own clock (members older than one TTL are dropped, as for the district
leases) and takes a partition's lease only while it holds fewer than
``ceil(partitions / replicas)``; one above that hands a partition over. A replica that dies
stops heartbeating and renewing: within about one TTL the others' shares grow to cover it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

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


class PartitionShare:
    """This replica's membership in ``key`` and its share of ``partitions``."""

    def __init__(
        self, redis: aioredis.Redis, *, key: str, member: str, partitions: int, ttl_s: float
    ) -> None:
        self.key = key
        self.member = member
        self.partitions = partitions
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.replicas = 1
        self._heartbeat: AsyncScript = redis.register_script(_HEARTBEAT)

    @property
    def target(self) -> int:
        """How many partitions this replica aims to hold (the ceiling: shares cover all)."""
        return math.ceil(self.partitions / max(1, self.replicas))

    async def beat(self, *, alive: bool = True) -> int:
        """Register (``alive=False``: remove) this replica; returns the live replica count."""
        count = await self._heartbeat(
            keys=[self.key], args=[self.member, self.ttl_ms, "1" if alive else "0"]
        )
        self.replicas = max(1, int(count))
        return self.replicas
