"""The pipeline and webhook pages' data: streams, their rates, the translator, Redis, endpoints.

Rates come from each stream's ``entries-added`` counter (XINFO STREAM, Redis 7; XLEN before),
sampled on each page view and kept for a few minutes in this process: the first view shows no
rate, the next ones the rate over the samples kept. Everything else is read fresh.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ResponseError

from relay.redis.checks import read_persistence, read_policy
from relay.redis.keys import EndpointKeys, Keys
from relay.webhooks.stats import public_url

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis.asyncio as aioredis

    from relay.config import Config

RATE_WINDOW_S = 300.0


class StreamRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stream: its name, length and write rate (entries per second, when known)."""

    key: str
    length: int
    rate: float | None


class GroupRow(msgspec.Struct, frozen=True, kw_only=True):
    """The translator's consumer group on the events stream."""

    name: str
    exists: bool
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str | None


class RedisHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator checks first about Redis."""

    version: str
    policy: str | None
    persistence: bool | None
    used_memory: str
    maxmemory: str
    memory_fraction: float | None


class EndpointRow(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook endpoint as Redis tells it (any replica's view is the same)."""

    name: str
    url: str
    """Without user info or query string (either may carry a credential)."""
    disabled: str | None
    disabled_at: float | None
    backlog: int
    retrying: int
    dead_letters: int
    last_error: str | None
    last_error_at: float | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RateMeter:
    """Samples of each stream's added-entries counter, to turn two views into a rate."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, window_s: float = RATE_WINDOW_S
    ) -> None:
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._clock = clock
        self._window_s = window_s

    def observe(self, key: str, added: int) -> float | None:
        """Record ``added`` now; the rate since the oldest sample kept, or ``None``."""
        now = self._clock()
        samples = self._samples.setdefault(key, deque())
        while samples and now - samples[0][0] > self._window_s:
            samples.popleft()
        samples.append((now, added))
        first_at, first = samples[0]
        if now - first_at <= 0:
            return None
        return round(max(0, added - first) / (now - first_at), 2)


async def _added(redis: aioredis.Redis, key: str) -> tuple[int, int]:
    """(length, entries ever added) of a stream; both 0 when it does not exist."""
    try:
        info: dict[Any, Any] = await redis.xinfo_stream(key)
    except ResponseError:  # no such key
        return 0, 0
    fields = {_text(k): v for k, v in info.items()}
    length = int(fields.get("length", 0))
    return length, int(fields.get("entries-added", length))


async def streams(redis: aioredis.Redis, cfg: Config, meter: RateMeter) -> list[StreamRow]:
    """The events, dead-letter and legacy streams with their lengths and rates."""
    names = [
        name
        for keys in Keys(cfg.redis.prefix, cfg.redis.partitions).all_partitions()
        for name in (
            keys.events,
            keys.deadletter,
            *(keys.legacy(t) for t in cfg.legacy.record_types),
        )
    ]
    rows = []
    for key in names:
        length, added = await _added(redis, key)
        rows.append(StreamRow(key=key, length=length, rate=meter.observe(key, added)))
    return rows


async def translator_group(redis: aioredis.Redis, cfg: Config) -> GroupRow:
    """The translator's group; with partitions, every partition's summed."""
    parts = Keys(cfg.redis.prefix, cfg.redis.partitions).all_partitions()
    rows = [await _group(redis, cfg, keys.events) for keys in parts]
    if len(rows) == 1:
        return rows[0]
    return GroupRow(
        name=rows[0].name,
        exists=all(r.exists for r in rows),
        consumers=sum(r.consumers for r in rows),
        pending=sum(r.pending for r in rows),
        lag=sum(r.lag or 0 for r in rows),
        last_delivered_id=None,
    )


async def _group(redis: aioredis.Redis, cfg: Config, events: str) -> GroupRow:
    """The translator's group from XINFO GROUPS (absent stream or group: nothing read yet)."""
    name = cfg.legacy.group
    try:
        groups: list[dict[Any, Any]] = await redis.xinfo_groups(events)
    except ResponseError:
        groups = []
    for group in groups:
        if _text(group["name"]) == name:
            lag = group.get("lag")
            return GroupRow(
                name=name,
                exists=True,
                consumers=int(group["consumers"]),
                pending=int(group["pending"]),
                lag=None if lag is None else int(lag),
                last_delivered_id=_text(group["last-delivered-id"]),
            )
    length = int(await redis.xlen(events))
    return GroupRow(
        name=name, exists=False, consumers=0, pending=0, lag=length, last_delivered_id=None
    )


async def redis_health(redis: aioredis.Redis) -> RedisHealth:
    """Eviction policy, persistence and memory (the same checks readiness uses)."""
    memory: dict[str, Any] = await redis.info("memory")
    server: dict[str, Any] = await redis.info("server")
    used, limit = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
    return RedisHealth(
        version=_text(server.get("redis_version", "?")),
        policy=await read_policy(redis),
        persistence=await read_persistence(redis),
        used_memory=_text(memory.get("used_memory_human", used)),
        maxmemory=_text(memory.get("maxmemory_human", limit)) if limit else "no limit",
        memory_fraction=round(used / limit, 3) if limit else None,
    )


async def endpoints(redis: aioredis.Redis, cfg: Config) -> list[EndpointRow]:
    """Every configured webhook endpoint: state, backlog, dead letters, last error."""
    return [
        await _endpoint(redis, cfg, endpoint.name, endpoint.url)
        for endpoint in cfg.webhooks.endpoints
    ]


async def _endpoint(redis: aioredis.Redis, cfg: Config, name: str, url: str) -> EndpointRow:
    """One endpoint's row; with partitions, its state in every partition summed."""
    parts = Keys(cfg.redis.prefix, cfg.redis.partitions).all_partitions()
    rows = [await _endpoint_in(redis, keys.webhook(name), url) for keys in parts]
    if len(rows) == 1:
        return rows[0]
    failed = max(rows, key=lambda r: r.last_error_at or 0.0)
    disabled = next((r for r in rows if r.disabled), rows[0])
    return EndpointRow(
        name=name,
        url=rows[0].url,
        disabled=disabled.disabled,
        disabled_at=disabled.disabled_at,
        backlog=sum(r.backlog for r in rows),
        retrying=sum(r.retrying for r in rows),
        dead_letters=sum(r.dead_letters for r in rows),
        last_error=failed.last_error,
        last_error_at=failed.last_error_at,
    )


async def _endpoint_in(redis: aioredis.Redis, keys: EndpointKeys, url: str) -> EndpointRow:
    name = keys.name
    due: list[Any] = await redis.zrange(keys.due, 0, -1)
    pipe = redis.pipeline(transaction=False)
    # Pipeline methods queue and return the pipeline; the replies come from execute().
    for district in due:
        _ = pipe.llen(keys.queue(_text(district)))
    _ = pipe.hgetall(keys.state)
    _ = pipe.hlen(keys.attempts)
    _ = pipe.xlen(keys.deadletter)
    _ = pipe.xrevrange(keys.deadletter, count=1)
    replies = await pipe.execute()
    state = {_text(k): _text(v) for k, v in replies[-4].items()}
    last = replies[-1][0][1] if replies[-1] else {}
    last_fields = {_text(k): _text(v) for k, v in last.items()}
    return EndpointRow(
        name=name,
        url=public_url(url),
        disabled=state.get("disabled") or None,
        disabled_at=float(state["disabled_at"]) if state.get("disabled_at") else None,
        backlog=sum(int(n) for n in replies[:-4]),
        retrying=int(replies[-3]),
        dead_letters=int(replies[-2]),
        last_error=last_fields.get("reason") or None,
        last_error_at=float(last_fields["failed_at"]) if last_fields.get("failed_at") else None,
    )
