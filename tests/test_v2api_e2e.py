"""End to end: simulator → sync → poller → translator → read model → v2 API over real HTTP.

After the sync, live events flow through the real poller and translator; the translator's batch
script updates the read model in the same Lua call as the legacy streams. A ``users.updated``
that adds a staff role must show up as a new school admin at once, and the unmodified v2
polling loop of ``examples/v2_poller.py`` must receive exactly the district's legacy events.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import pytest

from relay.health import Health
from relay.poller import Poller
from relay.readmodel.sync import run_sync
from relay.redis.keys import Keys
from relay.simulator import SimOptions, World, running_simulator
from relay.translate.rules import LEGACY_RECORD_TYPES
from relay.translator.consumer import Translator
from tests.swagger import errors
from tests.test_translator_helpers import eventually
from tests.test_v2api import PREFIX, Served, make_cfg, v2_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import ModuleType

    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.simulator import RunningSimulator

STAFF_LEGACY_ID = "5f0000000000000000000abc"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "v2_poller.py"


def load_example() -> ModuleType:
    """Import ``examples/v2_poller.py`` as it ships."""
    spec = importlib.util.spec_from_file_location("v2_poller", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def pipeline(
    cfg: Config, redis: aioredis.Redis, session: aiohttp.ClientSession
) -> AsyncIterator[None]:
    """Run the real poller and translator until the block exits."""
    stop = asyncio.Event()
    common: dict[str, Any] = {
        "cfg": cfg,
        "redis": redis,
        "session": session,
        "health": Health(),
        "keys": Keys(PREFIX),
    }
    tasks = [
        asyncio.create_task(Poller(**common).run(stop)),
        asyncio.create_task(Translator(**common).run(stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


def staff_gained(sim: RunningSimulator, district: str) -> dict[str, Any]:
    """A ``users.updated`` giving a teacher (without staff role) a staff role."""
    users = sim.world.district(district).state["users"]
    user = next(
        u
        for u in users.objects.values()
        if "teacher" in (u.get("roles") or {}) and "staff" not in u["roles"]
    )
    updated = copy.deepcopy(user)
    schools = updated["roles"]["teacher"].get("schools", [])
    updated["roles"]["staff"] = {
        "legacy_id": STAFF_LEGACY_ID,
        "schools": schools,
        "staff_id": "st-1",
        "credentials": {"district_username": "staff1"},
        "department": "Math",
        "title": "Lead",
    }
    return {
        "type": "users.updated",
        "data": {"object": updated, "previous_attributes": {"roles": {"staff": None}}},
    }


async def district_legacy_events(redis: aioredis.Redis, district: str) -> list[dict[str, Any]]:
    """Every legacy event of ``district`` across the legacy streams, in legacy id order."""
    found: list[tuple[str, bytes]] = []
    for rt in LEGACY_RECORD_TYPES:
        entries: Any = await redis.xrange(f"{PREFIX}:legacy:{rt}")
        for _, fields in entries:
            if fields[b"district"].decode() == district:
                found.append((fields[b"id"].decode(), fields[b"data"]))
    return [msgspec.json.decode(data) for _, data in sorted(found)]


class TestV2ApiEndToEnd:
    """Sync, then live events through the real pipeline, read back over the v2 API."""

    @pytest.mark.spec
    async def test_live_events_reach_read_model_and_v2_pollers(
        self, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
    ) -> None:
        """A gained staff role appears as a school admin and event; the example loop gets all."""
        world = World.generate(9, districts=1, events_per_district=200)
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = make_cfg(redis_url, sim)
            assert await run_sync(cfg, None, progress=False) == 0
            served = await _serve(cfg, sim, redis_client, aiohttp_client)
            district = served.district
            sim.world.district(district).generate(150)
            sim.world.district(district).add_event(staff_gained(sim, district))
            async with pipeline(cfg, redis_client, session):

                async def arrived() -> bool:
                    status, _ = await served.get(f"/v2.1/school_admins/{STAFF_LEGACY_ID}")
                    return status == 200

                await eventually(arrived, timeout_s=30, what="the new school admin")
            status, body = await served.get(f"/v2.1/school_admins/{STAFF_LEGACY_ID}")
            assert status == 200
            assert errors("v2.1.yml", "SchoolAdmin", body["data"], strict=True) == []
            admins = await served.walk("/v2.1/events?record_type=schooladmins")
            assert [(e["type"], e["data"]["object"]["id"]) for e in admins][-1] == (
                "schooladmins.created",
                STAFF_LEGACY_ID,
            )
            legacy = await district_legacy_events(redis_client, district)
            assert len(legacy) > 100
            example = load_example()
            base = str(served.client.make_url("")).rstrip("/")
            polled = await asyncio.to_thread(
                lambda: list(example.events_after(base, v2_key(district), None, limit=37))
            )
            assert polled == legacy
            newest = await asyncio.to_thread(example.newest_event_id, base, v2_key(district))
            assert newest == legacy[-1]["id"]


async def _serve(
    cfg: Config, sim: RunningSimulator, redis: aioredis.Redis, aiohttp_client: Any
) -> Served:
    from relay.ops.server import build_app
    from relay.ops.status import StatusSource
    from relay.v2api.server import add_routes

    health = Health()
    app = build_app(
        cfg=cfg,
        redis=redis,
        health=health,
        status=StatusSource(cfg=cfg, redis=redis, health=health),
    )
    add_routes(app, cfg=cfg, redis=redis, keys=Keys(PREFIX))
    return Served(await aiohttp_client(app), sim, cfg)
