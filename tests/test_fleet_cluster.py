"""Discovery on a Redis Cluster: the fleet scripts work there, every key in the prefix's slot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp

from relay.config import validate
from relay.health import Health
from relay.poller import Poller
from relay.redis.client import create_redis
from relay.simulator import SimOptions, World, running_simulator
from tests.fleet_support import fleet_cfg
from tests.test_cluster import KEYS, PREFIX, cluster, running
from tests.test_translator_helpers import eventually

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from tests.cluster import RedisClusterServers

__all__ = ["cluster"]  # the module-scoped cluster fixture, used below


async def _stream(redis: aioredis.Redis) -> dict[str, list[tuple[str, str]]]:
    raw: Any = await redis.xrange(KEYS.events)
    out: dict[str, list[tuple[str, str]]] = {}
    for _, f in raw:
        out.setdefault(f[b"district"].decode(), []).append((f[b"type"].decode(), f[b"id"].decode()))
    return out


class TestFleetOnCluster:
    async def test_two_replicas_discover_districts_on_a_cluster(
        self, cluster: RedisClusterServers
    ) -> None:
        """Two pollers discover 4 districts and poll each from its newest event; one slot."""
        world = World.generate(13, districts=4, events_per_district=20)
        async with (
            running_simulator(world, SimOptions()) as sim,
            aiohttp.ClientSession() as session,
        ):
            tree = fleet_cfg(cluster.url, sim.base_url, onboard="latest")
            tree["redis"] = {"url": cluster.url, "prefix": PREFIX, "cluster": True}
            cfg = validate(tree)
            redis = create_redis(cfg.redis)
            try:
                await redis.flushall()
                pollers = [
                    Poller(
                        cfg=cfg,
                        redis=redis,
                        session=session,
                        health=Health(),
                        keys=KEYS,
                        instance=name,
                    )
                    for name in ("a", "b")
                ]
                async with running(*pollers):
                    await eventually(lambda: _phases(redis, world), timeout_s=30, what="started")
                    for d in world.districts:
                        d.generate(3)
                    await eventually(lambda: _caught_up(redis, world), timeout_s=30, what="polled")
                stream = await _stream(redis)
                slots = {redis.keyslot(k) async for k in redis.scan_iter(match="*")}  # type: ignore[attr-defined]  # RedisCluster API
            finally:
                await redis.aclose()
        assert stream == {
            d.id: [(e["type"], e["id"]) for e in d.events()][-3:] for d in world.districts
        }
        assert slots == {redis.keyslot(KEYS.events)}  # type: ignore[attr-defined]  # RedisCluster API


async def _phases(redis: aioredis.Redis, world: World) -> bool:
    """True once every district is polling and has its start position stored."""
    for d in world.districts:
        if await redis.hget(KEYS.fleet(d.id), "phase") != b"polling":
            return False
        last = d.feed.last_id
        if last is None or await redis.get(KEYS.cursor(d.id)) != last.encode():
            return False
    return True


async def _caught_up(redis: aioredis.Redis, world: World) -> bool:
    stream = await _stream(redis)
    return all(stream.get(d.id, [("", "")])[-1][1] == d.feed.last_id for d in world.districts)
