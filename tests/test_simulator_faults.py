"""Fault injection, control endpoints and live activity of the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp
import msgspec
import pytest

from relay.simulator import Faults, FaultsPatch, SimOptions, World, running_simulator
from tests.sim import DISTRICT, object_id, scenario, user_created

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

AUTH = {"Authorization": f"Bearer sim_{DISTRICT}"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


class TestFaults:
    async def test_faults_script_5xx_malformed_then_ok(
        self, session: aiohttp.ClientSession
    ) -> None:
        """Scripted faults apply to the next requests in order: 503, malformed JSON, then normal."""
        async with running_simulator(scenario([user_created()]), SimOptions()) as sim:
            sim.set_faults(FaultsPatch(script=["503", "malformed", "ok"]))
            results = []
            for _ in range(3):
                async with session.get(sim.base_url + "/v3.0/events", headers=AUTH) as resp:
                    results.append((resp.status, await resp.read()))
        assert results[0] == (503, b'{"message":"simulated Clever failure"}')
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(results[1][1])
        assert results[1][0] == 200
        assert (results[2][0], len(msgspec.json.decode(results[2][1])["data"])) == (200, 1)

    async def test_faults_drop_and_truncate_break_the_connection(
        self, session: aiohttp.ClientSession
    ) -> None:
        """A dropped request gets no response; a truncated one fails reading the payload.

        aiohttp retries an idempotent request once when the server disconnects, hence two drops.
        """
        async with running_simulator(scenario([user_created()]), SimOptions()) as sim:
            sim.set_faults(FaultsPatch(script=["drop", "drop", "truncate"]))
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.get(sim.base_url + "/v3.0/events", headers=AUTH) as resp:
                    await resp.read()
            with pytest.raises(aiohttp.ClientPayloadError):
                async with session.get(sim.base_url + "/v3.0/events", headers=AUTH) as resp:
                    await resp.read()
            assert sim.stats.faults == {"drop": 2, "truncate": 1}

    async def test_faults_rates_are_deterministic_given_the_seed(
        self, session: aiohttp.ClientSession
    ) -> None:
        """The same seed and fail_rate give the same sequence of statuses."""
        runs = []
        for _ in range(2):
            options = SimOptions(seed=7, faults=Faults(fail_rate=0.5))
            async with running_simulator(scenario([user_created()]), options) as sim:
                statuses = []
                for _ in range(20):
                    async with session.get(sim.base_url + "/v3.0/events", headers=AUTH) as resp:
                        statuses.append(resp.status)
                runs.append(statuses)
        assert runs[0] == runs[1]
        assert set(runs[0]) - {200} <= {500, 502, 503}
        assert 3 < runs[0].count(200) < 17

    async def test_faults_latency_delays_answers(self, session: aiohttp.ClientSession) -> None:
        """latency_ms set live through the control endpoint delays API answers."""
        async with running_simulator(scenario([user_created()]), SimOptions()) as sim:
            async with session.post(
                sim.base_url + "/_sim/faults", json={"latency_ms": 150}
            ) as resp:
                assert (await resp.json())["latency_ms"] == 150
            started = time.monotonic()
            async with session.get(sim.base_url + "/v3.0/events", headers=AUTH) as resp:
                assert resp.status == 200
            assert time.monotonic() - started >= 0.15

    async def test_faults_control_rejects_unknown_fields(
        self, session: aiohttp.ClientSession
    ) -> None:
        """A typo in a fault name is a 400, not silently ignored."""
        async with running_simulator(scenario([user_created()]), SimOptions()) as sim:
            url = sim.base_url + "/_sim/faults"
            async with session.post(url, json={"fail_rat": 1}) as resp:
                assert resp.status == 400


class TestControl:
    async def test_control_appends_exact_and_generated_events(
        self, session: aiohttp.ClientSession
    ) -> None:
        """POST /_sim/events appends exact events and generated ones; the feed serves them."""
        world = World.generate(8, districts=1, events_per_district=30)
        district = world.districts[0]
        async with running_simulator(world, SimOptions()) as sim:
            exact = user_created()
            body = {"district": district.id, "events": [exact], "generate": 3}
            async with session.post(sim.base_url + "/_sim/events", json=body) as resp:
                added = await resp.json()
            headers = {"Authorization": f"Bearer {district.token}"}
            url = f"{sim.base_url}/v3.0/events?starting_after={district.feed.ids[29]}"
            async with session.get(url, headers=headers) as resp:
                page = await resp.json()
            async with session.get(sim.base_url + "/_sim/districts") as resp:
                listed = await resp.json()
        assert [i["data"]["id"] for i in page["data"]] == added["ids"]
        assert len(added["ids"]) == 4
        assert page["data"][0]["data"]["data"] == exact["data"]
        assert listed == [
            {
                "id": district.id,
                "token": district.token,
                "name": district.name,
                "events": 34,
                "last_event": added["ids"][-1],
                "authorized": True,
            }
        ]

    async def test_control_refuses_out_of_order_event(self, session: aiohttp.ClientSession) -> None:
        """An exact event whose id does not sort last is refused with 400."""
        world = scenario([user_created(event_id=object_id(5))])
        async with running_simulator(world, SimOptions()) as sim:
            body = {"district": DISTRICT, "events": [user_created(event_id=object_id(4))]}
            async with session.post(sim.base_url + "/_sim/events", json=body) as resp:
                assert resp.status == 400

    async def test_control_live_rate_appends_events(self) -> None:
        """With live_rate set the feed grows while serving, with events created now."""
        world = World.generate(9, districts=1, events_per_district=10)
        async with running_simulator(world, SimOptions(live_rate=50)):
            deadline = time.monotonic() + 10
            while len(world.districts[0].feed) < 15:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        newest = world.districts[0].events()[-1]
        assert newest["created"][:16] == time.strftime("%Y-%m-%dT%H:%M", time.gmtime())
