"""The poller stays exact through a flaky Clever and a Redis that dies and comes back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from relay.simulator import Faults, SimOptions, World, running_simulator
from relay.simulator.faults import FaultsPatch
from tests.test_poller import (
    event_count,
    feed_ids,
    make_cfg,
    running_poller,
    sim_districts,
    stream_ids,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.redis_server import RedisServer

FLAKY = Faults(
    fail_rate=0.2,
    latency_ms=2.0,
    latency_jitter_ms=5.0,
    malformed_rate=0.05,
    truncate_rate=0.05,
    drop_rate=0.05,
    force_429_rate=0.05,
)


class TestPollerFaults:
    """Transient failures are retried forever without losing or repeating an event."""

    async def test_poller_exact_through_faults_and_rate_limit(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """5xx, latency, malformed/truncated bodies, drops and 429s: still exact, limit kept."""
        world = World.generate(21, districts=2, events_per_district=3000)
        options = SimOptions(rate_limit=25, rate_window_s=1.0, faults=FLAKY)
        async with running_simulator(world, options) as sim:
            cfg = make_cfg(
                redis_url, sim.base_url, sim_districts(world), page_limit=100, max_backoff_s=0.05
            )
            async with running_poller(cfg):
                await wait_for(lambda: event_count(redis_client, 6000), timeout_s=60)
            stats = sim.stats
        assert await stream_ids(redis_client) == feed_ids(world)
        assert stats.responses_429_unforced == 0
        assert stats.responses_429_forced > 0
        assert {"500", "502", "503"} & set(stats.faults)
        assert {"malformed", "truncate", "drop"} <= set(stats.faults)

    async def test_poller_retries_until_clever_recovers(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A Clever that fails every request for a while is waited out, then polled to the end."""
        world = World.generate(22, districts=1, events_per_district=200)
        async with running_simulator(world, SimOptions(faults=Faults(fail_rate=1.0))) as sim:
            cfg = make_cfg(redis_url, sim.base_url, sim_districts(world), max_backoff_s=0.02)
            async with running_poller(cfg) as run:
                district = world.districts[0].id
                await wait_for(
                    lambda: _true(run.poller.by_id[district].status()["state"] == "backoff")
                )
                sim.set_faults(FaultsPatch(fail_rate=0.0))
                await wait_for(lambda: event_count(redis_client, 200))
        assert await stream_ids(redis_client) == feed_ids(world)


class TestPollerRedisRestart:
    """Redis killed and restarted mid-run (AOF on): the poller reconnects and stays exact."""

    async def test_poller_survives_redis_restart(
        self, redis_factory: Callable[..., RedisServer]
    ) -> None:
        """The stream ends with every event once after Redis is SIGKILLed and restarted."""
        server = redis_factory(aof=True)
        world = World.generate(23, districts=2, events_per_district=6000)
        check = aioredis.Redis.from_url(server.url)
        try:
            async with running_simulator(world, SimOptions(faults=Faults(latency_ms=2.0))) as sim:
                cfg = make_cfg(server.url, sim.base_url, sim_districts(world), page_limit=100)
                async with running_poller(cfg):
                    await wait_for(lambda: event_count(check, 1500))
                    await asyncio.to_thread(server.restart)
                    await wait_for(lambda: _reachable_count(check, 4000), timeout_s=60)
                    await asyncio.to_thread(server.restart)
                    await wait_for(lambda: _reachable_count(check, 12000), timeout_s=60)
            assert await stream_ids(check) == feed_ids(world)
        finally:
            await check.aclose()


async def _reachable_count(redis: aioredis.Redis, n: int) -> bool:
    try:
        return await event_count(redis, n)
    except (aioredis.ConnectionError, aioredis.TimeoutError):
        return False


async def _true(value: bool) -> bool:
    return value
