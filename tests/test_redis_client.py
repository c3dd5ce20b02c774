"""The shared Redis client at fleet scale: more commands in flight than connections."""

from __future__ import annotations

import asyncio

from relay.config import validate
from relay.redis.client import create_redis


class TestRedisClient:
    """The pool makes extra commands wait for a connection instead of failing."""

    async def test_more_blocking_commands_than_connections_all_complete(
        self, redis_url: str
    ) -> None:
        """Half again as many connection-holding commands as the pool has all succeed."""
        cfg = validate({"relay": {"components": ["translator"]}, "redis": {"url": redis_url}})
        client = create_redis(cfg.redis)
        try:
            n = cfg.redis.pipeline_max_connections * 3 // 2
            replies = await asyncio.gather(
                *(client.blpop([f"t:empty:{i}"], timeout=0.2) for i in range(n))
            )
        finally:
            await client.aclose()
        assert replies == [None] * n
