"""Tests of the Redis safety checks (CONTRACT §11) against real redis-servers."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from relay.health import Health
from relay.metrics import REGISTRY
from relay.redis.checks import EVICTION, PERSISTENCE, WATCH_LOOP, check_redis, watch_redis

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from tests.redis_server import RedisServer

    Factory = Callable[..., RedisServer]
    Connect = Callable[[RedisServer], aioredis.Redis]

EVICTION_REASON = (
    "maxmemory-policy is allkeys-lru: Redis may evict streams and cursors under memory "
    "pressure; set it to noeviction"
)
PERSISTENCE_REASON = (
    "persistence is off (appendonly no, no save points): a Redis restart loses all data"
)
NO_CONFIG = ["--rename-command", "CONFIG", ""]
NO_INFO = ["--rename-command", "INFO", ""]


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open clients on factory servers; every one is closed after the test."""
    clients: list[aioredis.Redis] = []

    def make(server: RedisServer) -> aioredis.Redis:
        client = aioredis.Redis.from_url(server.url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


class TestCheckRedis:
    """One run of the checks records problems and warnings in Health."""

    async def test_check_redis_flags_evicting_policy(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """An allkeys-lru Redis is a readiness problem, logged once as an error."""
        redis = connect(redis_factory(aof=True, extra=["--maxmemory-policy", "allkeys-lru"]))
        health = Health()
        with capture_logs() as logs:
            await check_redis(redis, health)
            await check_redis(redis, health)
        assert health.problems == {EVICTION: EVICTION_REASON}
        assert health.warnings == {}
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert errors == [
            {
                "event": "redis_eviction_policy",
                "policy": "allkeys-lru",
                "log_level": "error",
                "component": "redis_checks",
            }
        ]

    async def test_check_redis_clean_on_noeviction_with_aof(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """A noeviction Redis with AOF on raises nothing."""
        redis = connect(redis_factory(aof=True))
        health = Health()
        await check_redis(redis, health)
        assert (health.problems, health.warnings) == ({}, {})

    async def test_check_redis_warns_when_persistence_off(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """No AOF and no save points is a warning (not a readiness problem), logged as such."""
        redis = connect(redis_factory())
        health = Health()
        with capture_logs() as logs:
            await check_redis(redis, health)
        assert health.problems == {}
        assert health.warnings == {PERSISTENCE: PERSISTENCE_REASON}
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "redis_persistence_off"
        ]

    async def test_check_redis_counts_rdb_snapshots_as_persistence(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """RDB save points without AOF are persistence enough: no warning."""
        redis = connect(redis_factory(extra=["--save", "900 1"]))
        health = Health()
        await check_redis(redis, health)
        assert (health.problems, health.warnings) == ({}, {})

    async def test_check_redis_clears_once_fixed(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """Fixing the policy and persistence live clears the problem and the warning."""
        redis = connect(redis_factory(extra=["--maxmemory-policy", "volatile-ttl"]))
        health = Health()
        gauges = ("clever_relay_redis_eviction_policy_ok", "clever_relay_redis_persistence_ok")
        await check_redis(redis, health)
        assert sorted(health.problems) == [EVICTION]
        assert sorted(health.warnings) == [PERSISTENCE]
        assert [REGISTRY.get_sample_value(g) for g in gauges] == [0.0, 0.0]
        await redis.config_set("maxmemory-policy", "noeviction")
        await redis.config_set("appendonly", "yes")
        with capture_logs() as logs:
            await check_redis(redis, health)
        assert (health.problems, health.warnings) == ({}, {})
        assert [REGISTRY.get_sample_value(g) for g in gauges] == [1.0, 1.0]
        assert [e["event"] for e in logs if e["log_level"] == "info"] == [
            "redis_eviction_policy_resolved",
            "redis_persistence_resolved",
        ]

    async def test_check_redis_falls_back_to_info_without_config(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """With CONFIG renamed away, INFO still reveals the policy; persistence stays unjudged."""
        redis = connect(redis_factory(extra=[*NO_CONFIG, "--maxmemory-policy", "allkeys-lru"]))
        health = Health()
        await check_redis(redis, health)
        assert health.problems == {EVICTION: EVICTION_REASON}
        assert health.warnings == {}

    async def test_check_redis_info_fallback_sees_aof(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """With CONFIG renamed away, INFO's aof_enabled proves persistence and clears a warning."""
        redis = connect(redis_factory(aof=True, extra=NO_CONFIG))
        health = Health()
        health.set_warning(PERSISTENCE, PERSISTENCE_REASON)
        await check_redis(redis, health)
        assert (health.problems, health.warnings) == ({}, {})

    async def test_check_redis_skips_when_config_and_info_disabled(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """A Redis that hides both CONFIG and INFO is not judged: skipped with debug logs only."""
        redis = connect(
            redis_factory(extra=[*NO_CONFIG, *NO_INFO, "--maxmemory-policy", "allkeys-lru"])
        )
        health = Health()
        with capture_logs() as logs:
            await check_redis(redis, health)
        assert (health.problems, health.warnings) == ({}, {})
        assert {e["log_level"] for e in logs} == {"debug"}
        assert [e["event"] for e in logs if e["event"].endswith("_skipped")] == [
            "redis_policy_check_skipped",
            "redis_persistence_check_skipped",
        ]


class TestWatchRedis:
    """The periodic task keeps Health current and outlives Redis outages."""

    async def test_watch_redis_follows_live_changes_until_stopped(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """The watcher raises the problem, clears it after a fix, ticks, and ends on stop."""
        redis = connect(redis_factory(aof=True, extra=["--maxmemory-policy", "allkeys-lru"]))
        health = Health()
        health.register(WATCH_LOOP, 60.0)
        stop = asyncio.Event()
        task = asyncio.create_task(watch_redis(redis, health, 0.02, stop))
        await wait_until(lambda: EVICTION in health.problems)
        await redis.config_set("maxmemory-policy", "noeviction")
        await wait_until(lambda: EVICTION not in health.problems)
        stop.set()
        async with asyncio.timeout(2):
            await task
        assert health.stuck() == []

    async def test_watch_redis_survives_redis_restart(
        self, redis_factory: Factory, connect: Connect
    ) -> None:
        """An outage is one line naming the URL (not one per check); its end is one line too."""
        server = redis_factory(aof=True, extra=["--maxmemory-policy", "allkeys-lru"])
        redis = connect(server)
        health = Health()
        stop = asyncio.Event()
        with capture_logs() as logs:
            task = asyncio.create_task(watch_redis(redis, health, 0.02, stop))
            await wait_until(lambda: EVICTION in health.problems)
            server.kill()
            health.set_problem(EVICTION, None)
            await wait_until(lambda: any(e["event"] == "redis_unreachable" for e in logs))
            server.start()
            await wait_until(lambda: EVICTION in health.problems)
            stop.set()
            async with asyncio.timeout(2):
                await task
        outage = [e for e in logs if e["event"] in ("redis_unreachable", "redis_reachable")]
        url = f"redis://127.0.0.1:{server.port}/0"
        assert [(e["event"], e["url"], e["log_level"]) for e in outage] == [
            ("redis_unreachable", url, "error"),
            ("redis_reachable", url, "info"),
        ]
        assert outage[0]["error"].split(":")[0] == "ConnectionError"
