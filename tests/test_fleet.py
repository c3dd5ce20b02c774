"""The district fleet in one process: discovery, onboarding, rotation and removal, exactly."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from relay.config import validate
from relay.poller.fleet import discovery
from relay.readmodel.sync import ORDER
from relay.simulator import SimOptions, World, running_simulator
from tests.fleet_support import (
    KEYS,
    control_entries,
    entries_by_district,
    event_ids,
    fleet_cfg,
    phases,
    sim_call,
)
from tests.test_poller import running_poller, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis

    from relay.poller import Poller
    from relay.simulator.world import District


async def _onboarded(redis: aioredis.Redis, n: int) -> bool:
    return len(await control_entries(redis, "relay.district_onboarded")) >= n


class TestDiscovery:
    async def test_twenty_districts_discovered_onboarded_and_polled_exactly(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """20 listed districts (two token pages) are onboarded once, then poll every new event."""
        world = World.generate(3, districts=20, events_per_district=20)
        async with running_simulator(world, SimOptions(tokens_page_size=8)) as sim:
            cfg = validate(fleet_cfg(redis_url, sim.base_url, max_onboarding=3))
            async with running_poller(cfg):
                await wait_for(lambda: _onboarded(redis_client, 20), timeout_s=60)
                before = {d.id: d.feed.last_id for d in world.districts}
                new = {d.id: d.generate(5) for d in world.districts}
                await wait_for(lambda: _event_count(redis_client, 100), timeout_s=60)
                await asyncio.sleep(0)
            entries = await entries_by_district(redis_client)
        onboarded = await control_entries(redis_client, "relay.district_onboarded")
        assert entries == {d.id: _expected(d, before[d.id]) for d in world.districts}
        assert {d: event_ids(e) for d, e in entries.items()} == new
        assert sorted(m["district"] for m in onboarded) == sorted(before)
        assert {m["district"]: m["cursor"] for m in onboarded} == before
        assert all(m["counts"]["students"] > 0 for m in onboarded)
        assert set((await phases(redis_client, list(before))).values()) == {"polling"}


def _expected(district: District, e0: str | None) -> list[tuple[str, str]]:
    """The onboarded entry, then every event after E0 in Clever's order."""
    after = [(e["type"], e["id"]) for e in district.events() if e0 is None or e["id"] > e0]
    return [("relay.district_onboarded", e0 or ""), *after]


async def _event_count(redis: aioredis.Redis, n: int) -> bool:
    entries = await entries_by_district(redis)
    return sum(len(event_ids(e)) for e in entries.values()) >= n


def _after(district: District, cursor: str | None) -> list[tuple[str, str]]:
    return [(e["type"], e["id"]) for e in district.events() if cursor is None or e["id"] > cursor]


def _last(entries: dict[str, list[tuple[str, str]]], district: District) -> bool:
    ids = event_ids(entries.get(district.id, []))
    return bool(ids) and ids[-1] == district.feed.last_id


class TestRotationAndRemoval:
    async def test_token_rotated_mid_run_keeps_the_stream_exact(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """A rotated token (old one 401) is re-read at once and polling goes on, nothing lost."""
        world = World.generate(4, districts=2, events_per_district=10)
        district = world.districts[0]
        async with running_simulator(world, SimOptions()) as sim:
            tree = fleet_cfg(redis_url, sim.base_url, interval_s=300.0, reread_min_s=0.5)
            async with running_poller(validate(tree)) as running:
                await wait_for(lambda: _onboarded(redis_client, 2))
                e0 = {d.id: d.feed.last_id for d in world.districts}
                district.generate(5)
                await wait_for(lambda: _caught_up(redis_client, district))
                rotated = await sim_call(
                    "POST", f"{sim.base_url}/_sim/districts/{district.id}/rotate"
                )
                district.generate(5)
                await wait_for(lambda: _caught_up(redis_client, district))
                token_now = running.poller.by_id[district.id].token
            entries = await entries_by_district(redis_client)
        assert token_now == rotated["token"]
        assert entries[district.id] == _expected(district, e0[district.id])
        assert len(event_ids(entries[district.id])) == 10

    async def test_removed_then_back_within_retention_resumes_from_its_cursor(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """Removal stops polling with one removed entry; back again, it resumes without loss."""
        world = World.generate(5, districts=2, events_per_district=10)
        district, other = world.districts
        async with running_simulator(world, SimOptions()) as sim:
            async with running_poller(validate(fleet_cfg(redis_url, sim.base_url))) as running:
                await wait_for(lambda: _onboarded(redis_client, 2))
                e0 = district.feed.last_id
                district.generate(3)
                await wait_for(lambda: _caught_up(redis_client, district))
                await sim_call("DELETE", f"{sim.base_url}/_sim/districts/{district.id}")
                await wait_for(lambda: _removed(redis_client, 1))
                polled_while_removed = district.id in running.poller.by_id
                district.generate(4)
                other.generate(2)
                await wait_for(lambda: _caught_up(redis_client, other))
                missing = event_ids((await entries_by_district(redis_client))[district.id])
                await sim_call("POST", f"{sim.base_url}/_sim/districts", {"id": district.id})
                await wait_for(lambda: _caught_up(redis_client, district))
                district.generate(2)
                await wait_for(lambda: _caught_up(redis_client, district))
            entries = await entries_by_district(redis_client)
        removed = await control_entries(redis_client, "relay.district_removed")
        assert polled_while_removed is False
        assert len(missing) == 3
        assert [(m["district"], m["cursor"]) for m in removed] == [(district.id, missing[-1])]
        assert event_ids(entries[district.id]) == [i for _, i in _after(district, e0)]
        assert [k for k, _ in entries[district.id] if k.startswith("relay.")] == [
            "relay.district_onboarded",
            "relay.district_removed",
        ]
        assert await phases(redis_client, [district.id]) == {district.id: "polling"}

    async def test_refused_district_is_unauthorized_and_the_others_poll(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """A static district whose token is refused shows unauthorized; discovered ones poll."""
        world = World.generate(6, districts=3, events_per_district=10)
        bad = world.districts[0]
        static = [{"id": bad.id, "token": "wrong", "start": "earliest"}]
        async with running_simulator(world, SimOptions()) as sim:
            tree = fleet_cfg(redis_url, sim.base_url, static=static)
            async with running_poller(validate(tree)) as running:
                await wait_for(lambda: _onboarded(redis_client, 2))
                for d in world.districts:
                    d.generate(3)
                await wait_for(lambda: _caught_up(redis_client, world.districts[2]))
                await wait_for(lambda: _caught_up(redis_client, world.districts[1]))
                status = _statuses(running.poller)
        assert {d: (s["source"], s["phase"]) for d, s in status.items()} == {
            bad.id: ("static", "unauthorized"),
            world.districts[1].id: ("discovered", "polling"),
            world.districts[2].id: ("discovered", "polling"),
        }
        assert bad.id not in await entries_by_district(redis_client)


class TestReturnAfterRetention:
    async def test_back_after_retention_is_onboarded_again(
        self, redis_url: str, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Back after the retention window: old cursor and stale sync dropped, synced again from a
        new E0, polled after it."""
        monkeypatch.setattr(discovery, "RESUME_WITHIN_S", 0.0)
        world = World.generate(10, districts=2, events_per_district=10)
        district = world.districts[0]
        async with running_simulator(world, SimOptions()) as sim:
            async with running_poller(validate(fleet_cfg(redis_url, sim.base_url))):
                await wait_for(lambda: _onboarded(redis_client, 2))
                first_e0 = district.feed.last_id
                district.generate(3)
                await wait_for(lambda: _caught_up(redis_client, district))
                left_at = district.feed.last_id
                await sim_call("DELETE", f"{sim.base_url}/_sim/districts/{district.id}")
                await wait_for(lambda: _removed(redis_client, 1))
                # A stale sync left behind (as if it had stopped mid-run) must not be resumed.
                sync_key = KEYS.read_model(district.id).sync
                await redis_client.hset(sync_key, "event", str(first_e0))
                for rt in ORDER:
                    await redis_client.hset(sync_key, f"done:{rt}", "1")
                district.generate(4)
                second_e0 = district.feed.last_id
                await sim_call("POST", f"{sim.base_url}/_sim/districts", {"id": district.id})
                await wait_for(lambda: _onboarded(redis_client, 3))
                district.generate(2)
                await wait_for(lambda: _caught_up(redis_client, district))
            entries = await entries_by_district(redis_client)
        assert first_e0 is not None
        assert left_at is not None
        events = _after(district, first_e0)
        assert entries[district.id] == [
            ("relay.district_onboarded", first_e0),
            *events[:3],
            ("relay.district_removed", left_at),
            ("relay.district_onboarded", second_e0),
            *events[7:],
        ]


class TestAppCredentials:
    async def test_a_fixed_secret_file_is_picked_up_without_a_restart(
        self, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
    ) -> None:
        """A refused client secret leaves discovery unauthorized until the file is corrected."""
        secret = tmp_path / "secret"
        secret.write_text("wrong\n")
        world = World.generate(11, districts=1, events_per_district=10)
        async with running_simulator(world, SimOptions()) as sim:
            tree = fleet_cfg(redis_url, sim.base_url, interval_s=0.2)
            del tree["clever"]["discovery"]["client_secret"]
            tree["clever"]["discovery"]["client_secret_file"] = str(secret)
            async with running_poller(validate(tree)) as running:
                fleet = running.poller.fleet
                assert fleet is not None
                await wait_for(lambda: _is(fleet.state == "unauthorized"))
                secret.write_text("sim_client_secret\n")
                await wait_for(lambda: _onboarded(redis_client, 1))
        assert await phases(redis_client, [world.districts[0].id]) == {
            world.districts[0].id: "polling"
        }


async def _is(value: bool) -> bool:
    return value


def _statuses(poller: Poller) -> dict[str, dict[str, object]]:
    """Every district's own status record (the poller's ``status()`` is a fleet summary)."""
    return {d: p.status() for d, p in poller.by_id.items()}


class TestUnauthorizedDiscovered:
    async def test_listed_token_refused_is_unauthorized_until_rotated(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """A discovered district whose listed token is refused waits as unauthorized while the
        other polls; a rotation brings it back with no event lost or repeated."""
        world = World.generate(9, districts=2, events_per_district=10)
        bad, good = world.districts
        async with running_simulator(world, SimOptions()) as sim:
            tree = fleet_cfg(redis_url, sim.base_url, reread_min_s=0.5)
            async with running_poller(validate(tree)) as running:
                await wait_for(lambda: _onboarded(redis_client, 2))
                e0 = bad.feed.last_id
                await sim_call("POST", f"{sim.base_url}/_sim/districts/{bad.id}/revoke")
                bad.generate(3)
                good.generate(3)
                await wait_for(lambda: _caught_up(redis_client, good))
                await wait_for(lambda: _phase_is(_statuses(running.poller), bad.id, "unauthorized"))
                while_refused = event_ids((await entries_by_district(redis_client))[bad.id])
                good.generate(2)
                await wait_for(lambda: _caught_up(redis_client, good))
                await sim_call("POST", f"{sim.base_url}/_sim/districts/{bad.id}/rotate")
                await wait_for(lambda: _caught_up(redis_client, bad))
                phase_after = running.poller.by_id[bad.id].status()["phase"]
            entries = await entries_by_district(redis_client)
        assert while_refused == []
        assert entries[bad.id] == _expected(bad, e0)
        assert len(event_ids(entries[bad.id])) == 3
        assert phase_after == "polling"


async def _phase_is(status: dict[str, dict[str, object]], district: str, phase: str) -> bool:
    return status[district]["phase"] == phase


async def _caught_up(redis: aioredis.Redis, district: District) -> bool:
    return _last(await entries_by_district(redis), district)


async def _removed(redis: aioredis.Redis, n: int) -> bool:
    return len(await control_entries(redis, "relay.district_removed")) >= n
