"""`clever-relay sync` and `clever-relay run` with the v2api component, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import msgspec

from relay.simulator import SimOptions, World, running_simulator
from tests.redis_server import free_port
from tests.test_poller import wait_for

if TYPE_CHECKING:
    import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
KEY = "v2-key-for-the-cli-test-0123456789abcdef"


def write_config(path: Path, *, redis_url: str, base_url: str, world: World, port: int) -> None:
    district = world.districts[0]
    path.write_text(
        '[relay]\ncomponents = ["v2api"]\n'
        f'[clever]\nbase_url = "{base_url}"\n'
        f'[[clever.districts]]\nid = "{district.id}"\ntoken = "{district.token}"\n'
        f'[redis]\nurl = "{redis_url}"\nprefix = "cli"\n'
        f'[http]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[[v2api.clients]]\nname = "legacy"\ndistrict = "{district.id}"\ntoken = "{KEY}"\n'
        '[log]\nlevel = "warning"\n'
    )


def relay(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "relay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def students(port: int, key: str) -> tuple[int, int]:
    """(status, number of students on the first page) of GET /v2.1/students."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/v2.1/students?limit=10000", headers=headers) as resp,
    ):
        body = msgspec.json.decode(await resp.read())
        return resp.status, len(body.get("data", []))


class TestSyncAndServe:
    async def test_sync_then_run_serves_the_synced_students(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """sync exits 0 and stores the cursor; run serves every synced student; a bad key is 401."""
        world = World.generate(5, districts=1, events_per_district=300)
        users = world.districts[0].state["users"].objects.values()
        expected = sum(1 for user in users if user["roles"].get("student") is not None)
        port = free_port()
        async with running_simulator(world, SimOptions(rate_limit=1_000_000)) as sim:
            config = tmp_path / "relay.toml"
            write_config(config, redis_url=redis_url, base_url=sim.base_url, world=world, port=port)
            sync = relay("sync", "--config", str(config))
            _, err = await asyncio.to_thread(sync.communicate, timeout=60)
            assert sync.returncode == 0, err.decode()[-2000:]
            cursor = await redis_client.get(f"cli:cursor:{world.districts[0].id}")
            assert cursor == world.districts[0].feed.ids[-1].encode()
            server = relay("run", "--config", str(config))
            try:
                await wait_for(lambda: _answers(port), timeout_s=30)
                assert await students(port, KEY) == (200, expected)
                assert (await students(port, "wrong"))[0] == 401
            finally:
                server.send_signal(signal.SIGTERM)
                await asyncio.to_thread(server.communicate, timeout=30)
        assert server.returncode == 0

    def test_sync_unknown_district_exits_2(self, redis_url: str, tmp_path: Path) -> None:
        """Naming a district the config does not have is a one-line usage error."""
        world = World.generate(5, districts=1, events_per_district=10)
        config = tmp_path / "relay.toml"
        write_config(
            config, redis_url=redis_url, base_url="http://127.0.0.1:9", world=world, port=9
        )
        proc = relay("sync", "--config", str(config), "--district", "nope")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        assert len(err.decode().splitlines()) == 1


async def _answers(port: int) -> bool:
    try:
        return (await students(port, KEY))[0] == 200
    except aiohttp.ClientError:
        return False
