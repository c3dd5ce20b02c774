"""Crash test: ``clever-relay run`` SIGKILLed at random moments still publishes each event once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from relay.simulator import Faults, SimOptions, World, running_simulator
from tests.test_poller import PREFIX, event_count, feed_ids, stream_ids, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis

EVENTS = 30_000


def _write_config(path: Path, redis_url: str, base_url: str, world: World) -> None:
    districts = "".join(
        f'[[clever.districts]]\nid = "{d.id}"\ntoken = "{d.token}"\nstart = "earliest"\n\n'
        for d in world.districts
    )
    path.write_text(
        '[relay]\ncomponents = ["poller"]\nshutdown_grace_s = 5.0\n\n'
        f'[clever]\nbase_url = "{base_url}"\npage_limit = 200\npoll_interval_s = 0.1\n'
        "max_backoff_s = 0.2\n\n"
        f'{districts}[redis]\nurl = "{redis_url}"\nprefix = "{PREFIX}"\n\n'
        '[log]\nlevel = "warning"\n'
    )


def _start(config: Path) -> subprocess.Popen[bytes]:
    """Start the relay; its output goes to a log file beside the config (read on failure)."""
    with (config.parent / "relay.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


class TestPollerCrash:
    """A relay killed without warning resumes from the stored cursor."""

    async def test_poller_sigkill_loses_and_duplicates_nothing(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """Killed with SIGKILL at several random points of a 30,000-event run: exact stream."""
        world = World.generate(31, districts=2, events_per_district=EVENTS // 2)
        rng = random.Random(31)
        kill_points = sorted(rng.sample(range(1_000, EVENTS - 2_000), 3))
        options = SimOptions(rate_limit=1_000_000, faults=Faults(latency_ms=1.0))
        async with running_simulator(world, options) as sim:
            config = tmp_path / "relay.toml"
            _write_config(config, redis_url, sim.base_url, world)
            for point in kill_points:
                proc = _start(config)
                await wait_for(lambda p=point: event_count(redis_client, p), timeout_s=60)  # type: ignore[misc]  # default binds the loop value
                await asyncio.sleep(rng.random() * 0.05)
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
            proc = _start(config)
            try:
                await wait_for(lambda: event_count(redis_client, EVENTS), timeout_s=60)
                await wait_for(lambda: _cursors_at_end(redis_client, world), timeout_s=30)
            finally:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, timeout=20)
        assert proc.returncode == 0, (tmp_path / "relay.log").read_text()
        assert await stream_ids(redis_client) == feed_ids(world)


async def _cursors_at_end(redis: aioredis.Redis, world: World) -> bool:
    cursors = [await redis.get(f"{PREFIX}:cursor:{d.id}") for d in world.districts]
    return cursors == [d.feed.ids[-1].encode() for d in world.districts]
