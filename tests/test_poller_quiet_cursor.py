"""An old cursor on a quiet district is lost only if Clever really returns nothing after it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from relay.config import validate
from relay.health import Health
from relay.poller.cursor_lost import check_quiet_cursor
from relay.poller.district import DistrictPoller
from relay.poller.publish import Publisher
from relay.redis.keys import Keys
from relay.simulator import SimOptions, running_simulator
from tests.sim import DISTRICT, object_id, scenario, user_created

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class TestQuietCursor:
    async def test_event_arriving_between_requests_is_not_a_lost_cursor(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Old cursor, newer event already in the feed: the re-check finds it, nothing is lost."""
        old = object_id(1)  # an ObjectId time months before now: past the 29-day mark
        world = scenario(
            [user_created(event_id=old), user_created(event_id=object_id(2))], district=DISTRICT
        )
        async with (
            running_simulator(world, SimOptions(rate_limit=1_000_000)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = validate(
                {
                    "clever": {
                        "base_url": sim.base_url,
                        "districts": [{"id": DISTRICT, "token": world.districts[0].token}],
                    },
                    "redis": {"url": redis_url, "prefix": "t"},
                }
            )
            keys = Keys("t")
            poller = DistrictPoller(
                district=cfg.clever.districts[0],
                cfg=cfg,
                publisher=Publisher(
                    redis=redis_client, keys=keys, events_maxlen=10_000, deadletter_maxlen=10_000
                ),
                redis=redis_client,
                session=session,
                health=Health(),
                keys=keys,
            )
            poller.cursor = old
            await check_quiet_cursor(poller)  # raised CursorLostError before the re-check
        assert poller.cursor == old

    async def test_old_quiet_cursor_costs_one_retention_check_per_interval(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Ten empty pages on an old cursor ask for the newest event once, again only when due."""
        old = object_id(1)
        world = scenario([user_created(event_id=old)], district=DISTRICT)
        async with (
            running_simulator(world, SimOptions(rate_limit=1_000_000)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = validate(
                {
                    "clever": {
                        "base_url": sim.base_url,
                        "retention_check_interval_s": 300.0,
                        "districts": [{"id": DISTRICT, "token": world.districts[0].token}],
                    },
                    "redis": {"url": redis_url, "prefix": "t"},
                }
            )
            keys = Keys("t")
            poller = DistrictPoller(
                district=cfg.clever.districts[0],
                cfg=cfg,
                publisher=Publisher(
                    redis=redis_client, keys=keys, events_maxlen=10_000, deadletter_maxlen=10_000
                ),
                redis=redis_client,
                session=session,
                health=Health(),
                keys=keys,
            )
            poller.cursor = old
            stats = sim.sim.stats
            for _ in range(10):
                await check_quiet_cursor(poller)
            checked_once = stats.token(DISTRICT).requests
            poller.retention_check_at = 0.0  # the interval has passed
            await check_quiet_cursor(poller)
            checked_twice = stats.token(DISTRICT).requests
        assert (checked_once, checked_twice) == (1, 2)
