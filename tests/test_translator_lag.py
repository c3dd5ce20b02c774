"""The translator group's lag is right after Redis restarts from its AOF."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from relay.config import validate
from relay.health import Health
from relay.metrics import REGISTRY
from relay.ops.status import StatusSource
from relay.redis.keys import Keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.redis_server import RedisServer

GROUP = "legacy-translator"


async def _read_all(redis: aioredis.Redis, stream: str) -> int:
    """Take and acknowledge every new entry as the translator does (MULTI + XREADGROUP)."""
    taken = 0
    while True:
        async with redis.pipeline(transaction=True) as pipe:
            _ = pipe.xreadgroup(GROUP, "c1", {stream: ">"}, count=100)
            (reply,) = await pipe.execute()
        if not reply:
            return taken
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        await redis.xack(stream, GROUP, *ids)
        taken += len(ids)


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("clever_relay_translator_group_lag")


async def test_group_lag_after_aof_restart(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """After a SIGKILL and a restart from the AOF, /status and the gauge count exactly the
    entries the group has not read (30, then 0), though Redis itself cannot say."""
    server = redis_factory(aof=True)
    cfg = validate(
        {"relay": {"components": ["http"]}, "redis": {"url": server.url, "prefix": "lag"}}
    )
    stream = Keys("lag").events
    redis = aioredis.Redis.from_url(server.url)
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for n in range(50):
        await redis.xadd(stream, {"n": n})
    assert await _read_all(redis, stream) == 50
    await redis.aclose()
    server.restart()
    server.wait_ready()
    redis = aioredis.Redis.from_url(server.url)
    try:
        for n in range(30):
            await redis.xadd(stream, {"n": 50 + n})
        source = StatusSource(cfg=cfg, redis=redis, health=Health())
        behind = await source.report()
        behind_gauge = _gauge()
        assert await _read_all(redis, stream) == 30
        caught_up = await source.report()
    finally:
        await redis.aclose()
    assert behind.translator is not None
    assert caught_up.translator is not None
    assert (behind.translator.lag, behind_gauge) == (30, 30.0)
    assert (caught_up.translator.lag, _gauge()) == (0, 0.0)
