"""District leases: N relay replicas share the configured districts, one poller per district.

Why: one process cannot poll thousands of districts, and a single poller is a single point of
failure (issue 8). Each district is polled only by the replica holding its lease
``<p>:lease:<district>``, a string ``"<token>|<instance>|<nonce>"`` with a PX TTL
(``[relay] lease_ttl_s``) renewed every third of the TTL. ``token`` comes from the counter
``<p>:lease:<district>:fence``, incremented on every acquisition, so a value is never reused.

Fencing (Kleppmann, "How to do distributed locking"): holding a lease is only a belief. The
publish script (:mod:`.poller.publish`) compares the stored lease value with the poller's inside
the same Lua call that writes events and cursor, so a paused or partitioned ex-holder whose
lease was taken over can never write.

Fair share: every replica heartbeats into the sorted set ``<p>:replicas`` (scored by Redis's
own clock, members older than one TTL dropped), and aims for ``ceil(districts / replicas)``
leases. It releases only the surplus above that share (after the district's in-flight publish),
and acquires free leases only while below it, so shares settle without thrashing. A replica
that dies stops renewing: within about one TTL its leases expire and its heartbeat goes stale,
the others' shares grow and they pick its districts up at their next tick.

A restarted process that keeps its instance name (a container restart in the same pod, or
``cfg.relay.instance``) reclaims the leases of its earlier incarnation at start, with a new
token, instead of waiting for them to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

from relay.backoff import sleep_or_stop
from relay.logs import get_logger
from relay.throttle import Throttle

if TYPE_CHECKING:
    from collections.abc import Mapping

    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from relay.health import Health
    from relay.redis.keys import Keys

log = get_logger("leases")
_rng = random.SystemRandom()
"""Jitter and lease choice only need to differ between replicas, not be unpredictable."""

SEPARATOR = "|"
RENEW_FRACTION = 3
"""Renew (and heartbeat) every TTL / this, so two renewals may fail before the lease lapses."""
JITTER = 0.2
"""Each tick waits the interval times a random factor in 1 ± this, so replicas do not sync up."""
START_RATE = 500.0
"""Districts started per second when one tick acquires many (a replica starting with thousands):
each start reads Redis and polls Clever at once, and thousands at the same instant opened as many
Redis connections and slowed everything down; 5,000 districts start over 10 s."""

_ACQUIRE = """
local want = tonumber(ARGV[3])
local got = {}
for i = 1, #KEYS, 2 do
  if #got >= want * 2 then break end
  local cur = redis.call('GET', KEYS[i])
  local free = not cur
  if cur and ARGV[4] ~= '' then
    local owner = string.match(cur, '^%d+|(.*)$') or ''
    free = owner ~= ARGV[1] and string.sub(owner, 1, #ARGV[4]) == ARGV[4]
  end
  if free then
    local value = redis.call('INCR', KEYS[i + 1]) .. '|' .. ARGV[1]
    redis.call('SET', KEYS[i], value, 'PX', ARGV[2])
    got[#got + 1] = (i + 1) / 2
    got[#got + 1] = value
  end
end
return got
"""

_RENEW = """
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    n = n + redis.call('DEL', KEYS[i])
  end
end
return n
"""

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


def lease_holder(value: bytes | str | None) -> str | None:
    """The instance name inside a lease value (None for no lease or a malformed one)."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    parts = text.split(SEPARATOR)
    return SEPARATOR.join(parts[1:-1]) if len(parts) >= 3 else None


def fair_share(districts: int, replicas: int) -> int:
    """How many leases one replica aims for: the ceiling, so the shares always cover all."""
    return math.ceil(districts / max(1, replicas))


class LeaseTable:
    """The Redis side: this replica's leases, acquired, renewed and released in batches.

    Every script passes all the keys it touches in ``KEYS`` (they share the prefix's hash tag,
    hence one Cluster slot).
    """

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        keys: Keys,
        instance: str,
        districts: list[str],
        ttl_s: float,
    ) -> None:
        self.keys = keys
        self.instance = instance
        self.owner = f"{instance}{SEPARATOR}{secrets.token_hex(6)}"
        self.districts = list(districts)
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.held: dict[str, str] = {}
        """District id → the lease value this replica holds."""
        self.renewed_at = time.monotonic()
        self.replicas = 1
        self._acquire: AsyncScript = redis.register_script(_ACQUIRE)
        self._renew: AsyncScript = redis.register_script(_RENEW)
        self._release: AsyncScript = redis.register_script(_RELEASE)
        self._heartbeat: AsyncScript = redis.register_script(_HEARTBEAT)

    @property
    def target(self) -> int:
        """This replica's fair share at the last heartbeat."""
        return fair_share(len(self.districts), self.replicas)

    async def heartbeat(self, *, alive: bool = True) -> int:
        """Register (``alive=False``: remove) this replica; returns the live replica count."""
        count = await self._heartbeat(
            keys=[self.keys.replicas], args=[self.owner, self.ttl_ms, "1" if alive else "0"]
        )
        self.replicas = max(1, int(count))
        return self.replicas

    async def acquire(self, want: int, *, reclaim: bool = False) -> list[str]:
        """Take up to ``want`` free leases (random order); returns the districts now held.

        With ``reclaim``, leases held by an earlier process of the same instance name count as
        free (they get a new token, which fences that process if it is still alive).
        """
        candidates = [d for d in self.districts if d not in self.held]
        _rng.shuffle(candidates)
        acquired: list[str] = []
        for group in self._by_partition(candidates):
            if want - len(acquired) <= 0:
                break
            acquired += await self._acquire_in(group, want - len(acquired), reclaim=reclaim)
        return acquired

    def _by_partition(self, districts: list[str]) -> list[list[str]]:
        """``districts`` split by partition (order kept): one script never spans two Cluster
        slots. With one partition, one group."""
        groups: dict[str, list[str]] = {}
        for district in districts:
            groups.setdefault(self.keys.of(district).prefix, []).append(district)
        return list(groups.values())

    async def _acquire_in(self, candidates: list[str], want: int, *, reclaim: bool) -> list[str]:
        """Take up to ``want`` of ``candidates`` (all in one partition)."""
        if want <= 0 or not candidates:
            return []
        keys: list[str] = []
        for district in candidates:
            lease = self.keys.lease(district)
            keys += [lease, self.keys.lease_fence(district)]
        reclaim_prefix = f"{self.instance}{SEPARATOR}" if reclaim else ""
        got = await self._acquire(keys=keys, args=[self.owner, self.ttl_ms, want, reclaim_prefix])
        acquired = []
        for index, value in zip(got[::2], got[1::2], strict=True):
            district = candidates[int(index) - 1]
            self.held[district] = value.decode() if isinstance(value, bytes) else str(value)
            acquired.append(district)
        return acquired

    async def renew(self) -> list[str]:
        """Extend every held lease; returns (and forgets) the ones someone else holds now.

        When renewals have failed (Redis away) for a whole TTL, every lease is presumed lost.
        """
        if not self.held:
            self.renewed_at = time.monotonic()
            return []
        districts = list(self.held)
        try:
            lost = []
            for group in self._by_partition(districts):
                results = await self._renew(
                    keys=[self.keys.lease(d) for d in group],
                    args=[self.ttl_ms, *(self.held[d] for d in group)],
                )
                lost += [d for d, ok in zip(group, results, strict=True) if int(ok) != 1]
        except RedisError:
            if time.monotonic() - self.renewed_at < self.ttl_ms / 1000:
                raise
            lost = districts
        else:
            self.renewed_at = time.monotonic()
        for district in lost:
            self.held.pop(district, None)
        return lost

    async def release(self, districts: list[str]) -> None:
        """Give leases up at once so another replica need not wait for the TTL."""
        values = {d: self.held.pop(d) for d in districts if d in self.held}
        for group in self._by_partition(list(values)):
            await self._release(
                keys=[self.keys.lease(d) for d in group], args=[values[d] for d in group]
            )

    def forget(self, district: str) -> None:
        """Drop a lease a publish found fenced (someone else holds it now)."""
        self.held.pop(district, None)


class LeasedWork(Protocol):
    """What the runner starts for a held district (the district's poll loop)."""

    id: str

    async def run(self, stop: asyncio.Event, *, lease: str | None = None) -> None:
        """Work until ``stop`` is set or the lease is found lost; never raises."""

    @property
    def lease_lost(self) -> bool:
        """True when the last run ended because a fenced write found the lease taken."""


class LeaseRunner:
    """Runs the work of exactly the districts whose leases this replica holds.

    Args:
        table: the lease table of this replica.
        work: one runnable per configured district, by district id.
        health: heartbeats of the lease loop (``poller:leases``).
    """

    name = "poller:leases"

    def __init__(
        self, *, table: LeaseTable, work: Mapping[str, LeasedWork], health: Health
    ) -> None:
        self.table = table
        self.work = work
        self.health = health
        self._tasks: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._stop = asyncio.Event()
        self._outage = Throttle()
        self._next_work: Mapping[str, LeasedWork] | None = None

    def set_work(self, work: Mapping[str, LeasedWork]) -> None:
        """Replace the district set (discovery adds and removes districts) at the next tick.

        Applied inside a tick, so it never races an acquisition; removed districts are stopped
        (after their in-flight publish) and their leases released.
        """
        self._next_work = dict(work)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick (heartbeat, renew, rebalance) until ``stop``; then stop all work and release."""
        self._stop = stop
        interval_s = self.table.ttl_ms / 1000 / RENEW_FRACTION
        self.health.register(self.name, deadline_s=max(30.0, 10 * interval_s))
        first = True
        try:
            while not stop.is_set():
                self.health.tick(self.name)
                try:
                    await self.tick(reclaim=first)
                    first = False
                    self._outage.reset()
                except RedisError as exc:
                    # Rate-limited: the Redis watch names an outage; this says what it stalled.
                    quiet = self._outage.allow()
                    if quiet is not None:
                        log.warning("lease_tick_failed", error=repr(exc), suppressed=quiet)
                wait_s = interval_s * _rng.uniform(1 - JITTER, 1 + JITTER)
                await sleep_or_stop(wait_s, stop)
        finally:
            await self._shutdown()

    async def tick(self, *, reclaim: bool = False) -> None:
        """One round: renew, heartbeat, then give up the surplus or take free districts.

        Renewal comes first: with Redis away for a whole TTL it presumes every lease lost and
        stops their loops, which a failing heartbeat before it would prevent.
        """
        table = self.table
        await self._apply_work()
        for district in await table.renew():
            log.warning("lease_lost", district=district, instance=table.instance)
            await self._halt([district])
        await table.heartbeat()
        self._reap()
        surplus = len(table.held) - table.target
        if surplus > 0:
            extra = _rng.sample(sorted(table.held), surplus)
            log.info("lease_rebalance_release", districts=extra, target=table.target)
            await self._halt(extra)
            await table.release(extra)
        elif surplus < 0:
            for n, district in enumerate(await table.acquire(-surplus, reclaim=reclaim)):
                self._start(district, delay_s=n / START_RATE)

    async def _apply_work(self) -> None:
        work, self._next_work = self._next_work, None
        if work is None:
            return
        gone = [d for d in self.work if d not in work]
        await self._halt(gone)
        self.work = work
        self.table.districts = list(work)
        await self.table.release(gone)

    def holding(self) -> list[str]:
        """The districts this replica holds leases for, sorted."""
        return sorted(self.table.held)

    def _start(self, district: str, *, delay_s: float = 0.0) -> None:
        lease = self.table.held[district]
        log.info("lease_acquired", district=district, token=lease.split(SEPARATOR, 1)[0])
        stop = asyncio.Event()
        task = asyncio.create_task(
            self._run_after(district, lease, stop, delay_s), name=f"poller:{district}"
        )
        self._tasks[district] = (stop, task)

    async def _run_after(
        self, district: str, lease: str, stop: asyncio.Event, delay_s: float
    ) -> None:
        """Start the district's work after ``delay_s`` (see :data:`START_RATE`)."""
        if delay_s > 0 and await sleep_or_stop(delay_s, stop):
            return
        await self.work[district].run(stop, lease=lease)

    def _reap(self) -> None:
        """Forget leases whose work found them fenced; keep the others (a parked district)."""
        for district, (_, task) in list(self._tasks.items()):
            if task.done():
                del self._tasks[district]
                if self.work[district].lease_lost:
                    self.table.forget(district)

    async def _halt(self, districts: list[str]) -> None:
        """Stop the work of ``districts`` and wait for their in-flight publishes."""
        running = []
        for district in districts:
            entry = self._tasks.pop(district, None)
            if entry is not None:
                entry[0].set()
                running.append(entry[1])
        if running:
            await asyncio.wait(running)

    async def _shutdown(self) -> None:
        """Stop every district, then release leases and leave the replica set (best effort)."""
        self.health.unregister(self.name)
        await asyncio.shield(self._halt(list(self._tasks)))
        with contextlib.suppress(RedisError, OSError):
            await self.table.release(list(self.table.held))
            await self.table.heartbeat(alive=False)
