"""Webhook delivery with several replicas: one delivers, the others stand by."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import redis.asyncio as aioredis

from relay.config import validate
from relay.health import Health
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.webhooks.delivery import WebhookDelivery
from tests.webhook_support import Feed, Receiver, endpoint, eventually, running


class TestWebhookReplicas:
    async def test_two_replicas_deliver_each_event_once_and_standby_takes_over(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A second replica stands by, sends nothing twice, and takes over when the first stops."""
        receiver = Receiver()
        await receiver.start()
        cfg = validate(
            {
                "relay": {"components": ["webhooks"], "lease_ttl_s": 0.6},
                "redis": {"url": redis_url, "prefix": "t"},
                "legacy": {"block_ms": 50},
                "webhooks": {"endpoints": [endpoint("pair", receiver.url)]},
            }
        )
        feed = Feed(redis_client)
        standby_redis = create_redis(cfg.redis)
        session = aiohttp.ClientSession()
        standby = WebhookDelivery(
            cfg=cfg, redis=standby_redis, session=session, health=Health(), keys=Keys("t")
        )
        stop = asyncio.Event()
        try:
            async with running(cfg) as active:
                task = asyncio.create_task(standby.run(stop))
                first = [await feed.legacy("students.created", "d1") for _ in range(10)]
                await eventually(lambda: len(receiver.received) == 10)
                assert (active.status()["role"], standby.status()["role"]) == ("active", "standby")
            second = [await feed.legacy("students.updated", "d1") for _ in range(10)]
            await eventually(lambda: len(receiver.received) == 20)
            assert standby.status()["role"] == "active"
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await session.close()
            await standby_redis.aclose()
            await receiver.stop()
        ids = [r.id for r in receiver.received]
        assert ids == first + second
        assert Counter(ids).most_common(1)[0][1] == 1
