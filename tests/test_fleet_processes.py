"""The fleet with real relay processes: SIGKILL during onboarding, three replicas sharing 60."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING

from relay.poller.district_leases import lease_holder
from relay.simulator import Faults, SimOptions, World, running_simulator
from tests.fleet_support import KEYS, control_entries, entries_by_district
from tests.test_poller import PREFIX, wait_for
from tests.test_scaleout import relays, start_relay

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis

    from relay.simulator.world import District


def write_fleet_config(path: Path, redis_url: str, base_url: str, *, max_onboarding: int) -> None:
    """A poller-only relay config that discovers every district of the simulator."""
    path.write_text(
        '[relay]\ncomponents = ["poller"]\nshutdown_grace_s = 5.0\nlease_ttl_s = 1.0\n\n'
        f'[clever]\nbase_url = "{base_url}"\npage_limit = 500\npoll_interval_s = 0.1\n'
        "max_backoff_s = 0.2\nrequest_timeout_s = 10.0\n\n"
        '[clever.discovery]\nclient_id = "sim_client_id"\nclient_secret = "sim_client_secret"\n'
        f'oauth_base_url = "{base_url}"\ninterval_s = 0.5\nmax_onboarding = {max_onboarding}\n\n'
        f'[redis]\nurl = "{redis_url}"\nprefix = "{PREFIX}"\n\n'
        '[log]\nlevel = "info"\nformat = "json"\n'
    )


async def _onboarded(redis: aioredis.Redis, n: int) -> bool:
    return len(await control_entries(redis, "relay.district_onboarded")) >= n


async def _all_caught_up(redis: aioredis.Redis, world: World) -> bool:
    entries = await entries_by_district(redis)
    return all(entries.get(d.id, [("", "")])[-1][1] == d.feed.last_id for d in world.districts)


async def _exact(redis: aioredis.Redis, world: World) -> dict[str, list[tuple[str, str]]]:
    """Per district, what the stream must hold: its one onboarded entry, then each later event."""
    e0 = {
        m["district"]: m["cursor"] for m in await control_entries(redis, "relay.district_onboarded")
    }
    return {d.id: _expected(d, e0.get(d.id)) for d in world.districts}


def _expected(district: District, e0: str | None) -> list[tuple[str, str]]:
    after = [(e["type"], e["id"]) for e in district.events() if e0 is None or e["id"] > e0]
    return [("relay.district_onboarded", e0 or ""), *after]


class TestFleetProcesses:
    async def test_sigkill_during_onboarding_then_restart_is_exact(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """Killed mid-onboarding and restarted: each district onboarded once, no event lost."""
        world = World.generate(51, districts=4, events_per_district=60)
        options = SimOptions(faults=Faults(latency_ms=150.0))
        async with running_simulator(world, options) as sim:
            config = tmp_path / "relay.toml"
            write_fleet_config(config, redis_url, sim.base_url, max_onboarding=1)
            first = start_relay(config, "r0")
            try:
                await wait_for(lambda: _onboarded(redis_client, 1), timeout_s=60)
                first.proc.send_signal(signal.SIGKILL)
                first.killed_at = time.time()
                await asyncio.to_thread(first.proc.wait, 20)
            finally:
                if first.proc.poll() is None:
                    first.proc.kill()
            killed_at = len(await control_entries(redis_client, "relay.district_onboarded"))
            for district in world.districts:
                district.generate(5)
            async with relays(config, ["r0"]):
                await wait_for(lambda: _onboarded(redis_client, 4), timeout_s=90)
                for district in world.districts:
                    district.generate(5)
                await wait_for(lambda: _all_caught_up(redis_client, world), timeout_s=60)
            entries = await entries_by_district(redis_client)
        assert killed_at < 4
        assert entries == await _exact(redis_client, world)

    async def test_three_replicas_share_sixty_discovered_districts_one_killed(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """60 discovered districts on 3 processes, one SIGKILLed mid-run: the stream is exact."""
        world = World.generate(52, districts=60, events_per_district=8)
        async with running_simulator(world, SimOptions(tokens_page_size=25)) as sim:
            config = tmp_path / "relay.toml"
            write_fleet_config(config, redis_url, sim.base_url, max_onboarding=4)
            async with relays(config, ["r0", "r1", "r2"]) as procs:
                await wait_for(lambda: _onboarded(redis_client, 20), timeout_s=120)
                victim = procs["r1"]
                leases = await redis_client.mget([KEYS.lease(d.id) for d in world.districts])
                held = sum(1 for value in leases if lease_holder(value) == "r1")
                victim.proc.send_signal(signal.SIGKILL)
                victim.killed_at = time.time()
                await asyncio.to_thread(victim.proc.wait, 20)
                for district in world.districts:
                    district.generate(2)
                await wait_for(lambda: _onboarded(redis_client, 60), timeout_s=120)
                for district in world.districts:
                    district.generate(2)
                await wait_for(lambda: _all_caught_up(redis_client, world), timeout_s=60)
            entries = await entries_by_district(redis_client)
        assert entries == await _exact(redis_client, world)
        assert held > 0
