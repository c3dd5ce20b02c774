"""``clever-relay sync`` seeds the translator's user snapshots, never over a newer one.

After a sync the relay knows every user, so a user's first ``users.updated`` diffs against the
synced user even when Clever's ``previous_attributes`` say nothing usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

import aiohttp

from relay.health import Health
from relay.readmodel.snapshots import seed_snapshots
from relay.readmodel.sync import run_sync
from relay.redis.keys import Keys
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.consumer import Translator
from tests.test_translator_helpers import drained, event, eventually, legacy_streams, publish
from tests.test_v2api import PREFIX, make_cfg

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis

    from relay.config import Config

STAFF_LEGACY_ID = "5f0000000000000000000abd"


@contextlib.asynccontextmanager
async def translating(cfg: Config, redis: aioredis.Redis) -> AsyncIterator[None]:
    """Run the real translator until the block exits."""
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        translator = Translator(
            cfg=cfg, redis=redis, session=session, health=Health(), keys=Keys(PREFIX)
        )
        task = asyncio.create_task(translator.run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


def a_teacher(users: dict[str, Any]) -> dict[str, Any]:
    """A simulated teacher without a staff role."""
    return next(
        copy.deepcopy(u)
        for u in users.values()
        if "teacher" in (u.get("roles") or {}) and "staff" not in u["roles"]
    )


class TestSyncSeedsSnapshots:
    """The sync's snapshots and the translator's, side by side."""

    async def test_first_update_after_sync_diffs_against_the_synced_user(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A teacher gains staff, Clever sends no previous_attributes: schooladmins.created."""
        world = World.generate(11, districts=1, events_per_district=20)
        async with running_simulator(world, SimOptions(rate_limit=0)) as sim:
            cfg = make_cfg(redis_url, sim)
            assert await run_sync(cfg, None, progress=False) == 0
            district = sim.world.districts[0].id
            user = a_teacher(sim.world.district(district).state["users"].objects)
        user["roles"]["staff"] = {"legacy_id": STAFF_LEGACY_ID, "schools": [], "title": "Lead"}
        await publish(redis_client, district, [event("users.updated", user)])
        async with translating(cfg, redis_client):
            await eventually(lambda: drained(redis_client), what="drained")
        streams = await legacy_streams(redis_client)
        assert {
            name: [(e["type"], json.loads(e["data"])["data"]["object"]["id"]) for e in entries]
            for name, entries in streams.items()
        } == {"schooladmins": [("schooladmins.created", STAFF_LEGACY_ID)]}
        users_key = Keys(PREFIX).users(district)
        assert await redis_client.hget(users_key, f"{user['id']}:at") == b"1714557600000"


class TestSeedRule:
    """A snapshot is written only over an older (or unknown-time) one."""

    async def test_seed_snapshots_keeps_newer_and_replaces_older(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Newer stored time wins; older, equal-or-missing time is handled as documented."""
        key = "t:users:d1"
        await redis_client.hset(
            key,
            items=[
                "u1",
                "translator-new",
                "u1:at",
                "2000",
                "u2",
                "translator-old",
                "u2:at",
                "1000",
            ],
        )
        await redis_client.hset(key, "u3", "no-time")
        await seed_snapshots(
            redis_client,
            key,
            [
                ("u1", b"sync", 1500),
                ("u2", b"sync", 1500),
                ("u3", b"sync", 1500),
                ("u4", b"sync", 0),
            ],
        )
        stored = await redis_client.hgetall(key)
        assert stored == {
            b"u1": b"translator-new",
            b"u1:at": b"2000",
            b"u2": b"sync",
            b"u2:at": b"1500",
            b"u3": b"sync",
            b"u3:at": b"1500",
            b"u4": b"sync",
            b"u4:at": b"0",
        }
