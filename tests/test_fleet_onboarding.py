"""A district that joins mid-run: onboarded through the Data API, then translated correctly."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

import aiohttp

from relay.config import validate
from relay.health import Health
from relay.poller import Poller
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.consumer import Translator
from tests.fleet_support import KEYS, control_entries, fleet_cfg, sim_call
from tests.test_poller import wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis


@contextlib.asynccontextmanager
async def _running(*components: Poller | Translator) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in components]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


def _student(users: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return next(u for u in users.values() if set(u["roles"]) == {"student"})


async def _legacy(redis: aioredis.Redis, record_type: str, district: str) -> list[dict[str, Any]]:
    raw: Any = await redis.xrange(KEYS.legacy(record_type))
    return [
        {"type": f[b"type"].decode(), "data": json.loads(f[b"data"])}
        for _, f in raw
        if f[b"district"].decode() == district
    ]


class TestDistrictJoinsMidRun:
    async def test_added_district_is_onboarded_and_its_role_change_translates(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """A joining district's first role change (student gains teacher) translates exactly."""
        world = World.generate(7, districts=1, events_per_district=20)
        async with (
            running_simulator(world, SimOptions()) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = validate(fleet_cfg(redis_url, sim.base_url, components=("poller", "translator")))
            common: Any = {"cfg": cfg, "redis": redis_client, "session": session, "keys": KEYS}
            poller = Poller(health=Health(), **common)
            translator = Translator(health=Health(), consumer_name="t1", **common)
            async with _running(poller, translator):
                await wait_for(lambda: _onboarded(redis_client, 1))
                added = await sim_call("POST", f"{sim.base_url}/_sim/districts", {"events": 40})
                await wait_for(lambda: _onboarded(redis_client, 2))
                district = world.district(added["id"])
                before = _student(district.state["users"].objects)
                after = copy.deepcopy(before)
                after["roles"]["teacher"] = {"legacy_id": "5a0000000000000000000abc", "schools": []}
                event = {
                    "type": "users.updated",
                    "data": {"object": after, "previous_attributes": {"roles": before["roles"]}},
                }
                await sim_call(
                    "POST",
                    f"{sim.base_url}/_sim/events",
                    {"district": added["id"], "events": [event]},
                )
                await wait_for(lambda: _translated(redis_client, 3))
                await asyncio.sleep(0)
            teachers = await _legacy(redis_client, "teachers", added["id"])
            students = await _legacy(redis_client, "students", added["id"])
        onboarded = await control_entries(redis_client, "relay.district_onboarded")
        assert [m["district"] for m in onboarded] == [world.districts[0].id, added["id"]]
        assert onboarded[1]["cursor"] == added["last_event"]
        assert (
            onboarded[1]["counts"]["students"]
            == sum(1 for u in district.state["users"].objects.values() if "student" in u["roles"])
            - 0
        )
        assert [t["type"] for t in teachers] == ["teachers.created"]
        assert teachers[0]["data"]["data"]["object"]["id"] == "5a0000000000000000000abc"
        assert students == []


async def _onboarded(redis: aioredis.Redis, n: int) -> bool:
    return len(await control_entries(redis, "relay.district_onboarded")) >= n


async def _translated(redis: aioredis.Redis, entries: int) -> bool:
    """True once the translator group has acknowledged ``entries`` entries and holds none."""
    groups: Any = await redis.xinfo_groups(KEYS.events)
    return bool(groups) and groups[0]["entries-read"] >= entries and groups[0]["pending"] == 0


class TestOnboardingApiVersion:
    async def test_onboarding_sync_reads_the_configured_api_version(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """With ``api_version = "v3.1"`` the onboarding snapshots are v3.1 users (lms_status)."""
        world = World.generate(8, districts=1, events_per_district=20)
        async with (
            running_simulator(world, SimOptions()) as sim,
            aiohttp.ClientSession() as session,
        ):
            tree = fleet_cfg(redis_url, sim.base_url)
            tree["clever"]["api_version"] = "v3.1"
            cfg = validate(tree)
            poller = Poller(
                health=Health(), cfg=cfg, redis=redis_client, session=session, keys=KEYS
            )
            async with _running(poller):
                await wait_for(lambda: _onboarded(redis_client, 1))
        stored: Any = await redis_client.hvals(KEYS.users(world.districts[0].id))
        snapshots = [s for s in stored if s.startswith(b"{")]  # the others are snapshot times
        assert [b'"lms_status"' in s for s in snapshots] == [True] * len(snapshots) != []
