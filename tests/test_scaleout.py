"""Scale-out with real processes: 3 relays share 12 districts through leases; SIGKILL and SIGSTOP.

Each relay is ``python -m relay run`` with its own instance name and JSON logs. Who polled what,
when, is read back from those logs (``lease_acquired`` … ``district_stopped`` per district) and
from a sampler of the lease keys, so "one poller per district at a time" is checked on what the
processes did, not on what the code intends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from relay.poller.district_leases import lease_holder
from relay.redis.keys import Keys
from relay.simulator import Faults, SimOptions, World, running_simulator
from tests.test_poller import PREFIX, feed_ids, stream_ids, wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    import redis.asyncio as aioredis

KEYS = Keys(PREFIX)
TTL_S = 1.0
POLL_INTERVAL_S = 0.1


def write_config(path: Path, redis_url: str, base_url: str, world: World, page_limit: int) -> None:
    """A poller-only relay config with short leases for the simulator's districts."""
    districts = "".join(
        f'[[clever.districts]]\nid = "{d.id}"\ntoken = "{d.token}"\nstart = "earliest"\n\n'
        for d in world.districts
    )
    path.write_text(
        f'[relay]\ncomponents = ["poller"]\nshutdown_grace_s = 5.0\nlease_ttl_s = {TTL_S}\n\n'
        f'[clever]\nbase_url = "{base_url}"\npage_limit = {page_limit}\n'
        f"poll_interval_s = {POLL_INTERVAL_S}\nmax_backoff_s = 0.2\n\n"
        f'{districts}[redis]\nurl = "{redis_url}"\nprefix = "{PREFIX}"\n\n'
        '[log]\nlevel = "info"\nformat = "json"\n'
    )


@dataclass
class Relay:
    """One relay process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    killed_at: float | None = None
    """Unix time of a SIGKILL, which ends every poll interval of this process."""

    def events(self) -> Iterator[dict[str, object]]:
        """The process's JSON log lines."""
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                yield json.loads(line)


def start_relay(config: Path, name: str) -> Relay:
    """Start ``python -m relay run`` named ``name``; its log goes beside the config."""
    log = config.parent / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "RELAY__RELAY__INSTANCE": name},
        )
    return Relay(name, proc, log)


@contextlib.asynccontextmanager
async def relays(config: Path, names: list[str]) -> AsyncIterator[dict[str, Relay]]:
    """Run named relays; SIGTERM the live ones at the end and require a clean exit."""
    running = {name: start_relay(config, name) for name in names}
    try:
        yield running
    finally:
        for relay in running.values():
            if relay.proc.poll() is None:
                relay.proc.send_signal(signal.SIGCONT)
                relay.proc.send_signal(signal.SIGTERM)
        for relay in running.values():
            await asyncio.to_thread(relay.proc.wait, 20)
    for relay in running.values():
        if relay.killed_at is None:
            assert relay.proc.returncode == 0, relay.log.read_text()[-3000:]


def _ts(entry: dict[str, object]) -> float:
    return datetime.fromisoformat(str(entry["timestamp"])).timestamp()


def poll_intervals(relay: Relay) -> dict[str, list[tuple[float, float]]]:
    """Per district, the (start, end) times this process ran its poll loop."""
    opened: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for entry in relay.events():
        district = str(entry.get("district"))
        if entry.get("event") == "lease_acquired":
            opened[district] = _ts(entry)
        elif entry.get("event") == "district_stopped" and district in opened:
            out.setdefault(district, []).append((opened.pop(district), _ts(entry)))
    end = relay.killed_at if relay.killed_at is not None else float("inf")
    for district, start in opened.items():
        out.setdefault(district, []).append((start, end))
    return out


def overlaps(all_relays: list[Relay]) -> list[str]:
    """Districts that two processes polled at the same time (should be none)."""
    by_district: dict[str, list[tuple[float, float]]] = {}
    for relay in all_relays:
        for district, spans in poll_intervals(relay).items():
            by_district.setdefault(district, []).extend(spans)
    bad = []
    for district, spans in by_district.items():
        spans.sort()
        if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)):
            bad.append(district)
    return bad


@dataclass
class LeaseSampler:
    """Samples who holds each district's lease, to time hand-overs."""

    redis: aioredis.Redis
    districts: list[str]
    holders: dict[str, str | None] = field(default_factory=dict)

    async def sample(self) -> dict[str, str | None]:
        """Read every lease now."""
        values = await self.redis.mget([KEYS.lease(d) for d in self.districts])
        self.holders = {d: lease_holder(v) for d, v in zip(self.districts, values, strict=True)}
        return self.holders

    def held_by(self, name: str) -> list[str]:
        """Districts ``name`` held at the last sample."""
        return sorted(d for d, who in self.holders.items() if who == name)


async def _all_held(sampler: LeaseSampler, names: set[str], per: int | None = None) -> bool:
    holders = await sampler.sample()
    if set(holders.values()) != names:
        return False
    return per is None or all(len(sampler.held_by(n)) == per for n in names)


async def _events_at_least(redis: aioredis.Redis, n: int) -> bool:
    return int(await redis.xlen(KEYS.events)) >= n


async def _cursors_at_end(redis: aioredis.Redis, world: World) -> bool:
    cursors = await redis.mget([KEYS.cursor(d.id) for d in world.districts])
    return cursors == [d.feed.ids[-1].encode() for d in world.districts]


WAKE_EVENTS = {"lease_lost", "district_lease_lost", "poll_resync"}
"""How a woken ex-owner may learn it lost its districts: its renewal or the publish fence
refuses (``poll_resync`` would mean the cursor compare-and-set caught it instead: no fence)."""


def _lease_refusals(all_relays: list[Relay]) -> int:
    return sum(1 for r in all_relays for e in r.events() if e.get("event") == "district_lease_lost")


class TestScaleOut:
    """Three relay processes share the districts; failures move them safely."""

    async def test_scaleout_sigkill_moves_districts_and_stream_is_exact(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """12 districts, 60,000 events, 3 processes, one SIGKILLed: exact stream, fast move."""
        world = World.generate(41, districts=12, events_per_district=5_000)
        total = 60_000
        ids = [d.id for d in world.districts]
        sampler = LeaseSampler(redis_client, ids)
        options = SimOptions(rate_limit=1_000_000, faults=Faults(latency_ms=50.0))
        async with running_simulator(world, options) as sim:
            config = tmp_path / "relay.toml"
            write_config(config, redis_url, sim.base_url, world, page_limit=100)
            async with relays(config, ["r0", "r1", "r2"]) as procs:
                names = {"r0", "r1", "r2"}
                await wait_for(lambda: _all_held(sampler, names, per=4), timeout_s=20)
                await wait_for(lambda: _events_at_least(redis_client, total // 4), timeout_s=30)
                victim = procs["r1"]
                lost = sampler.held_by("r1")
                victim.proc.send_signal(signal.SIGKILL)
                victim.killed_at = time.time()
                killed = time.monotonic()
                await asyncio.to_thread(victim.proc.wait)
                await wait_for(lambda: _all_held(sampler, {"r0", "r2"}, per=6), timeout_s=10)
                moved_s = time.monotonic() - killed
                at_kill = int(await redis_client.xlen(KEYS.events))
                await wait_for(lambda: _events_at_least(redis_client, total), timeout_s=60)
                await wait_for(lambda: _cursors_at_end(redis_client, world), timeout_s=10)
        all_relays = list(procs.values())
        print(f"districts moved {moved_s:.2f}s after SIGKILL; {at_kill} events by then")
        assert len(lost) == 4
        assert moved_s < TTL_S + TTL_S / 3 + POLL_INTERVAL_S + 1.0
        assert at_kill < total
        assert await stream_ids(redis_client) == feed_ids(world)
        assert overlaps(all_relays) == []
        assert _lease_refusals(all_relays) == 0

    async def test_scaleout_paused_ex_owner_cannot_publish(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """SIGSTOP past the TTL, SIGCONT after a takeover: the woken relay writes nothing stale."""
        world = World.generate(42, districts=4, events_per_district=3_000)
        total = 12_000
        ids = [d.id for d in world.districts]
        sampler = LeaseSampler(redis_client, ids)
        options = SimOptions(rate_limit=1_000_000, faults=Faults(latency_ms=20.0))
        async with running_simulator(world, options) as sim:
            config = tmp_path / "relay.toml"
            write_config(config, redis_url, sim.base_url, world, page_limit=100)
            async with relays(config, ["p0", "p1"]) as procs:
                await wait_for(lambda: _all_held(sampler, {"p0", "p1"}, per=2), timeout_s=20)
                await wait_for(lambda: _events_at_least(redis_client, 1_000), timeout_s=30)
                paused = procs["p1"]
                stolen = sampler.held_by("p1")
                paused.proc.send_signal(signal.SIGSTOP)
                await wait_for(lambda: _all_held(sampler, {"p0"}), timeout_s=10)
                await asyncio.sleep(TTL_S)  # p0 publishes on p1's districts meanwhile
                paused.proc.send_signal(signal.SIGCONT)
                await wait_for(lambda: _events_at_least(redis_client, total), timeout_s=60)
                await wait_for(lambda: _cursors_at_end(redis_client, world), timeout_s=10)
                await wait_for(lambda: _all_held(sampler, {"p0", "p1"}, per=2), timeout_s=10)
        woke = [e for e in paused.events() if e.get("event") in WAKE_EVENTS]
        print("after SIGCONT:", [(e["event"], e.get("district"), e.get("error")) for e in woke])
        assert await stream_ids(redis_client) == feed_ids(world)
        assert not [e for e in woke if e["event"] == "poll_resync"]
        assert {str(e["district"]) for e in woke if e["event"] != "poll_resync"} == set(stolen)
