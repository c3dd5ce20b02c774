"""The relay against a real 3-master Redis Cluster: poller and translator end to end, exact.

With a hash-tagged prefix (``{t}``) every key the relay writes lands in one slot, so every Lua
call (publish with its lease fence, lease scripts, the translator's scripts) runs on one node;
a key outside the tag would make Redis answer CROSSSLOT and the run fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import msgspec
import pytest

from relay.config import ALL_RECORD_TYPES as LEGACY_RECORD_TYPES
from relay.config import validate
from relay.health import Health
from relay.messages import CURSOR_LOST, EventMessage
from relay.poller import Poller
from relay.redis.client import create_redis, is_cluster
from relay.redis.keys import Keys
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.consumer import Translator
from tests.cluster import RedisClusterServers
from tests.test_translator_helpers import eventually, expected_streams, teacher_ids_from_clever

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.simulator import RunningSimulator

PREFIX = "{t}"
KEYS = Keys(PREFIX)
DISTRICTS = 3
EVENTS_PER_DISTRICT = 600


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    """A fresh 3-master cluster for this module."""
    servers = RedisClusterServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def cluster_cfg(url: str, sim: RunningSimulator) -> Config:
    """Poller + translator on the cluster, short leases, the simulator's districts."""
    return validate(
        {
            "relay": {"components": ["poller", "translator"], "lease_ttl_s": 1.0},
            "redis": {"url": url, "prefix": PREFIX, "cluster": True},
            "clever": {
                "base_url": sim.base_url,
                "page_limit": 200,
                "poll_interval_s": 0.1,
                "max_backoff_s": 0.2,
                "districts": [
                    {"id": d.id, "token": d.token, "start": "earliest"} for d in sim.world.districts
                ],
            },
            "legacy": {"block_ms": 50, "lease_ttl_s": 1.0, "batch_size": 100},
            "log": {"level": "warning"},
        }
    )


@contextlib.asynccontextmanager
async def running(*components: Poller | Translator) -> AsyncIterator[None]:
    """Run components in the background until the block exits, then stop them."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in components]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def entries(redis: aioredis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """A stream's (id, decoded fields) pairs, in order."""
    reply = cast("list[tuple[bytes, dict[bytes, bytes]]]", await redis.xrange(key))
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in reply]


async def messages(redis: aioredis.Redis) -> list[tuple[str, EventMessage]]:
    """The events stream's (stream id, message) pairs, control entries left out."""
    decoder = msgspec.json.Decoder(EventMessage)
    return [
        (sid, decoder.decode(f["data"]))
        for sid, f in await entries(redis, KEYS.events)
        if f["type"] != CURSOR_LOST
    ]


async def legacy(redis: aioredis.Redis) -> dict[str, list[dict[str, str]]]:
    """Every non-empty legacy stream's entries."""
    out: dict[str, list[dict[str, str]]] = {}
    for record_type in LEGACY_RECORD_TYPES:
        found = [f for _, f in await entries(redis, KEYS.legacy(record_type))]
        if found:
            out[record_type] = found
    return out


async def drained(redis: aioredis.Redis, total: int) -> bool:
    """True once all ``total`` events are published, delivered and acknowledged."""
    if int(await redis.xlen(KEYS.events)) < total:
        return False
    groups: Any = await redis.xinfo_groups(KEYS.events)
    last = cast("list[tuple[bytes, Any]]", await redis.xrevrange(KEYS.events, count=1))
    return any(g["pending"] == 0 and g["last-delivered-id"] == last[0][0] for g in groups if last)


class TestCluster:
    """Poller and translator on a Redis Cluster."""

    async def test_cluster_pipeline_is_exact_and_single_slot(
        self, cluster: RedisClusterServers
    ) -> None:
        """Two replicas' pollers and translators on a 3-master cluster: exact streams, one slot."""
        world = World.generate(8, districts=DISTRICTS, events_per_district=EVENTS_PER_DISTRICT)
        total = DISTRICTS * EVENTS_PER_DISTRICT
        async with (
            running_simulator(world, SimOptions(rate_limit=1_000_000)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = cluster_cfg(cluster.url, sim)
            redis = create_redis(cfg.redis)
            assert is_cluster(redis)
            try:
                await redis.flushall()

                def make(cls: Any, name: str) -> Any:
                    kw = {"instance": name} if cls is Poller else {"consumer_name": name}
                    return cls(
                        cfg=cfg, redis=redis, session=session, health=Health(), keys=KEYS, **kw
                    )

                async with running(
                    make(Poller, "a"),
                    make(Poller, "b"),
                    make(Translator, "a"),
                    make(Translator, "b"),
                ):
                    await eventually(lambda: drained(redis, total), timeout_s=20, what="drained")
                teachers = await teacher_ids_from_clever(await messages(redis), sim, session)
                streams = await legacy(redis)
                model = expected_streams(await messages(redis), teacher_ids=teachers)
                published = {
                    d.id: [m.id for _, m in await messages(redis) if m.district == d.id]
                    for d in world.districts
                }
                slots = {redis.keyslot(k) async for k in redis.scan_iter(match="*")}  # type: ignore[attr-defined]  # RedisCluster API
            finally:
                await redis.aclose()
        assert published == {d.id: list(d.feed.ids) for d in world.districts}
        assert streams == model
        assert sum(len(v) for v in streams.values()) > total
        assert slots == {redis.keyslot(KEYS.events)}  # type: ignore[attr-defined]  # RedisCluster API
