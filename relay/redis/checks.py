"""Checks that Redis will not silently lose the relay's data (docs/operations.md).

Two settings matter. An evicting ``maxmemory-policy`` lets Redis drop a stream or a cursor
under memory pressure, which breaks the no-loss promise without any error: that is a readiness
blocker (``/readyz`` 503 with the reason) and an error log. Persistence off (no AOF and no RDB
snapshots) loses everything on a Redis restart: a warning shown in ``/status``.

Settings are read with ``CONFIG GET``; managed Redis services often rename or forbid ``CONFIG``,
so ``INFO`` is the fallback (it tells the policy and whether AOF is on, but not the RDB save
schedule, so persistence is only judged when ``CONFIG`` answers). When neither answers, the
check is skipped with a debug log: not knowing is not a reason to refuse work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError, ResponseError

from relay.logs import get_logger, scrub
from relay.metrics import REDIS_EVICTION_POLICY_OK, REDIS_PERSISTENCE_OK
from relay.throttle import Throttle

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from prometheus_client import Gauge

    from relay.health import Health

EVICTION = "redis_eviction"
"""Source name of the readiness problem raised by an evicting maxmemory-policy."""
PERSISTENCE = "redis_persistence"
"""Source name of the /status warning raised when Redis persists nothing."""
WATCH_LOOP = "redis_checks"
"""Heartbeat name :func:`watch_redis` ticks, if the service registered it with Health."""
CHECK_TIMEOUT_S = 5.0
OUTAGE_RECHECK_S = 5.0
"""How often an unreachable Redis is tried again (it is logged at most every 30 s)."""

log = get_logger("redis_checks")


def _text(value: Any) -> str:
    """Redis replies are bytes or str depending on ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def _config_get(redis: aioredis.Redis, name: str) -> str | None:
    """One CONFIG GET value, or ``None`` when CONFIG is renamed or forbidden."""
    try:
        reply = await redis.config_get(name)
    except ResponseError as exc:
        log.debug("redis_config_unavailable", parameter=name, error=str(exc))
        return None
    for key, value in reply.items():
        if _text(key) == name:
            return _text(value)
    return None


async def _info(redis: aioredis.Redis, section: str) -> dict[str, Any] | None:
    """One INFO section, or ``None`` when INFO is renamed or forbidden."""
    try:
        info: dict[str, Any] = await redis.info(section)
    except ResponseError as exc:
        log.debug("redis_info_unavailable", section=section, error=str(exc))
        return None
    return info


async def read_policy(redis: aioredis.Redis) -> str | None:
    """The ``maxmemory-policy`` in force, or ``None`` when Redis will not say."""
    policy = await _config_get(redis, "maxmemory-policy")
    if policy is not None:
        return policy
    info = await _info(redis, "memory")
    if info is None or "maxmemory_policy" not in info:
        return None
    return _text(info["maxmemory_policy"])


async def read_persistence(redis: aioredis.Redis) -> bool | None:
    """Whether Redis persists anything (AOF or RDB snapshots); ``None`` when unknown."""
    appendonly = await _config_get(redis, "appendonly")
    save = await _config_get(redis, "save")
    if appendonly is not None and save is not None:
        return appendonly == "yes" or save.strip() != ""
    info = await _info(redis, "persistence")
    if info is not None and str(info.get("aof_enabled")) == "1":
        return True
    return None  # AOF off per INFO, but the RDB schedule is only visible through CONFIG


def _export(gauge: Gauge, ok: bool | None) -> None:
    """Mirror a check's verdict to its gauge for alerting; left as it was when unknown."""
    if ok is not None:
        gauge.set(1 if ok else 0)


async def check_redis(redis: aioredis.Redis, health: Health) -> None:
    """Run both checks once and record the outcome in ``health``.

    A problem or warning is logged when it appears or changes and cleared (with an info log)
    once Redis is fixed, so an operator's ``CONFIG SET maxmemory-policy noeviction`` restores
    readiness without a restart.

    Raises:
        RedisError: Redis did not answer (connection errors are the caller's to handle).
    """
    policy = await read_policy(redis)
    _export(REDIS_EVICTION_POLICY_OK, None if policy is None else policy == "noeviction")
    if policy is None:
        log.debug("redis_policy_check_skipped")
    elif policy != "noeviction":
        reason = (
            f"maxmemory-policy is {policy}: Redis may evict streams and cursors under memory "
            "pressure; set it to noeviction"
        )
        if health.problems.get(EVICTION) != reason:
            log.error("redis_eviction_policy", policy=policy)
        health.set_problem(EVICTION, reason)
    elif EVICTION in health.problems:
        log.info("redis_eviction_policy_resolved", policy=policy)
        health.set_problem(EVICTION, None)

    persistent = await read_persistence(redis)
    _export(REDIS_PERSISTENCE_OK, persistent)
    if persistent is None:
        log.debug("redis_persistence_check_skipped")
    elif not persistent:
        reason = (
            "persistence is off (appendonly no, no save points): a Redis restart loses all data"
        )
        if health.warnings.get(PERSISTENCE) != reason:
            log.warning("redis_persistence_off")
        health.set_warning(PERSISTENCE, reason)
    elif PERSISTENCE in health.warnings:
        log.info("redis_persistence_resolved")
        health.set_warning(PERSISTENCE, None)


async def watch_redis(
    redis: aioredis.Redis,
    health: Health,
    interval_s: float,
    stop: asyncio.Event,
    *,
    url: str | None = None,
) -> None:
    """Run :func:`check_redis` every ``interval_s`` until ``stop`` is set.

    A Redis that does not answer is the one place an outage is named: one ``redis_unreachable``
    line with the URL (password redacted), repeated at most every 30 s while it lasts, and one
    ``redis_reachable`` when it is back; components keep their own failures quiet meanwhile
    (``relay/throttle.py``). Readiness reports the outage by pinging Redis itself, and this task
    must outlive a Redis restart. While Redis is away it checks every few seconds, so recovery
    is noticed soon even with a long ``interval_s``.
    """
    outage = _Outage(url or _client_url(redis))
    while not stop.is_set():
        failure: Exception | None = None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check_redis(redis, health)
        except (RedisError, OSError, TimeoutError) as exc:
            failure = exc
        outage.report(failure)
        health.tick(WATCH_LOOP)
        wait_s = interval_s if outage.since is None else min(interval_s, OUTAGE_RECHECK_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await stop.wait()


class _Outage:
    """Whether Redis is away since when, and the rate-limited lines that say so."""

    def __init__(self, url: str) -> None:
        self.url = scrub(url)
        self.since: float | None = None
        self.throttle = Throttle()

    def report(self, failure: Exception | None) -> None:
        """Log the outage (at most every 30 s) or its end (once)."""
        if failure is None:
            if self.since is not None:
                log.info("redis_reachable", url=self.url)
            self.since = None
            self.throttle.reset()
            return
        self.since = self.since if self.since is not None else time.monotonic()
        if self.throttle.allow() is not None:
            log.error(
                "redis_unreachable",
                url=self.url,
                error=f"{type(failure).__name__}: {scrub(str(failure))}",
                down_s=round(time.monotonic() - self.since, 1),
            )


def _client_url(redis: aioredis.Redis) -> str:
    """``host:port`` of a client's connection pool, when no URL was given."""
    pool = getattr(redis, "connection_pool", None)
    kwargs: dict[str, Any] = pool.connection_kwargs if pool is not None else {}
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
