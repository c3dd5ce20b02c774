"""The service lifecycle: graceful drain on SIGTERM and exit codes (CONTRACT §2, §7)."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from relay.config import load_config
from relay.service import Service
from relay.simulator import Faults, SimOptions, World, running_simulator
from tests.redis_server import free_port
from tests.test_poller import PREFIX, event_count, feed_ids, stream_ids, wait_for
from tests.test_poller_crash import _start

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis


class InFlight:
    """A component whose work in flight finishes only when the test says so."""

    name = "inflight"

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for stop, then for the test to release the work in flight."""
        await stop.wait()
        self.stopping.set()
        await self.release.wait()
        self.finished = True

    def status(self) -> dict[str, Any]:
        """Nothing to report."""
        return {"finished": self.finished}


class Crasher:
    """A component that dies on its own."""

    name = "crasher"

    async def run(self, stop: asyncio.Event) -> None:
        """Fail at once."""
        raise RuntimeError("boom")

    def status(self) -> dict[str, Any]:
        """Nothing to report."""
        return {}


def config(redis_url: str, port: int, **relay: Any) -> Any:
    return load_config(
        None,
        defaults={
            "relay": {"components": ["http"], "shutdown_grace_s": 5.0, **relay},
            "redis": {"url": redis_url, "prefix": PREFIX},
            "http": {"host": "127.0.0.1", "port": port},
        },
        environ={},
    )


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, msgspec.json.decode(await resp.read())


class TestServiceDrain:
    async def test_service_drain_turns_readiness_off_before_work_in_flight_ends(
        self, redis_url: str
    ) -> None:
        """Stop requested: /readyz answers 503 draining while work in flight finishes, exit 0."""
        port = free_port()
        component = InFlight()
        service = Service(config(redis_url, port), components=[component])
        runner = asyncio.create_task(service.run())
        base = f"http://127.0.0.1:{port}"
        await wait_for(lambda: _answers(f"{base}/readyz", 200), timeout_s=10)
        service.request_stop()
        await component.stopping.wait()
        assert await get(f"{base}/readyz") == (503, {"ready": False, "reasons": ["draining"]})
        component.release.set()
        assert await runner == 0
        assert component.finished is True

    async def test_service_cancels_work_past_the_grace_period(self, redis_url: str) -> None:
        """Work in flight that outlives shutdown_grace_s is cancelled; the exit code stays 0."""
        component = InFlight()
        service = Service(
            config(redis_url, free_port(), shutdown_grace_s=0.2), components=[component]
        )
        runner = asyncio.create_task(service.run())
        await asyncio.sleep(0)
        service.request_stop()
        assert await asyncio.wait_for(runner, timeout=10) == 0
        assert component.finished is False

    async def test_service_component_crash_exits_1(self, redis_url: str) -> None:
        """A component that dies on its own stops the service with exit code 1."""
        cfg = config(redis_url, free_port(), shutdown_grace_s=0.2)
        service = Service(cfg, components=[Crasher(), InFlight()])
        assert await asyncio.wait_for(service.run(), timeout=10) == 1


async def _answers(url: str, status: int) -> bool:
    try:
        return (await get(url))[0] == status
    except aiohttp.ClientError:
        return False


def _write_config(path: Path, redis_url: str, base_url: str, world: World, port: int) -> None:
    districts = "".join(
        f'[[clever.districts]]\nid = "{d.id}"\ntoken = "{d.token}"\nstart = "earliest"\n\n'
        for d in world.districts
    )
    path.write_text(
        '[relay]\ncomponents = ["poller", "translator", "http"]\nshutdown_grace_s = 5.0\n\n'
        f'[clever]\nbase_url = "{base_url}"\npage_limit = 200\npoll_interval_s = 0.1\n\n'
        f'{districts}[redis]\nurl = "{redis_url}"\nprefix = "{PREFIX}"\n\n'
        f'[legacy]\nblock_ms = 100\n\n[http]\nhost = "127.0.0.1"\nport = {port}\n\n'
        '[log]\nlevel = "warning"\n'
    )


class TestServiceSigterm:
    async def test_sigterm_mid_stream_exits_0_and_restart_is_exact(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """SIGTERM mid-stream: exit 0; after a restart every event is on the stream once."""
        world = World.generate(7, districts=2, events_per_district=6_000)
        options = SimOptions(rate_limit=1_000_000, faults=Faults(latency_ms=2.0))
        config_path = tmp_path / "relay.toml"
        async with running_simulator(world, options) as sim:
            _write_config(config_path, redis_url, sim.base_url, world, free_port())
            proc = _start(config_path)
            await wait_for(lambda: event_count(redis_client, 3_000), timeout_s=60)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, timeout=30)
            assert code == 0, (tmp_path / "relay.log").read_text()[-3000:]
            assert await redis_client.xlen(f"{PREFIX}:events") < 12_000
            proc = _start(config_path)
            try:
                await wait_for(lambda: event_count(redis_client, 12_000), timeout_s=60)
            finally:
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(proc.wait, timeout=30)
        assert code == 0, (tmp_path / "relay.log").read_text()[-3000:]
        assert await stream_ids(redis_client) == feed_ids(world)
