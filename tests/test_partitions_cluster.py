"""Six partitions on a real 3-master Redis Cluster (a replica per master): the partitions'
slots spread over the masters, the pipeline is exact, and it survives a master failover."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from relay.config import validate
from relay.health import Health
from relay.poller import Poller
from relay.redis.client import create_redis, is_cluster
from relay.redis.keys import Keys, partition_of
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.partitions import PartitionedTranslator
from tests.cluster import RedisClusterServers, _command
from tests.test_translator_helpers import (
    drained,
    eventually,
    expected_streams,
    legacy_streams,
    messages_of,
    teacher_ids_from_clever,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.simulator import RunningSimulator

P = 6
DISTRICTS = 6
EVENTS_PER_DISTRICT = 300


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    """A fresh 3-master cluster with one replica per master."""
    servers = RedisClusterServers(replicas=1)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def cfg_for(url: str, sim: RunningSimulator) -> Config:
    """Poller and translator on the cluster with six partitions and short leases."""
    return validate(
        {
            "relay": {"components": ["poller", "translator"], "lease_ttl_s": 1.0},
            "redis": {"url": url, "prefix": "{t}", "cluster": True, "partitions": P},
            "clever": {
                "base_url": sim.base_url,
                "page_limit": 100,
                "poll_interval_s": 0.1,
                "max_backoff_s": 0.2,
                "districts": [
                    {"id": d.id, "token": d.token, "start": "earliest"} for d in sim.world.districts
                ],
            },
            "legacy": {"block_ms": 50, "lease_ttl_s": 1.0, "batch_size": 100},
            "log": {"level": "error"},
        }
    )


def slot_owners(port: int) -> dict[int, int]:
    """Slot → port of the master serving it (from ``CLUSTER NODES``)."""
    owners: dict[int, int] = {}
    for line in _command(port, "CLUSTER NODES").splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2]:
            continue
        master = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for span in fields[8:]:
            if span.startswith("["):
                continue
            low, _, high = span.partition("-")
            for slot in range(int(low), int(high or low) + 1):
                owners[slot] = master
    return owners


async def all_drained(redis: aioredis.Redis, keys: Keys, total: int) -> bool:
    """Every event published, delivered and acknowledged in every partition."""
    parts = keys.all_partitions()
    if sum([int(await redis.xlen(k.events)) for k in parts]) < total:
        return False
    return all([await drained(redis, keys=k) for k in parts])


class TestPartitionsOnCluster:
    """Partitions spread one relay over the cluster's masters."""

    async def test_partitions_spread_exact_and_survive_failover(
        self, cluster: RedisClusterServers
    ) -> None:
        """The partitions' slots are on several masters; events and legacy streams are exact
        per partition across a CLUSTER FAILOVER of a master serving some of them."""
        world = World.generate(31, districts=DISTRICTS, events_per_district=EVENTS_PER_DISTRICT)
        total = DISTRICTS * EVENTS_PER_DISTRICT
        keys = Keys("{t}", P)
        async with (
            running_simulator(world, SimOptions(rate_limit=1_000_000)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = cfg_for(cluster.url, sim)
            redis = create_redis(cfg.redis)
            assert is_cluster(redis)
            cluster_client: Any = redis
            try:
                await redis.flushall()
                slots = [cluster_client.keyslot(k.events) for k in keys.all_partitions()]
                owners = slot_owners(cluster.nodes[0].port)
                assert len({owners[s] for s in slots}) > 1
                busy = partition_of(world.districts[0].id, P)
                stop = asyncio.Event()
                common: dict[str, Any] = {"cfg": cfg, "redis": redis, "session": session}
                tasks = [
                    asyncio.create_task(component.run(stop))
                    for name in ("a", "b")
                    for component in (
                        Poller(health=Health(), keys=keys, instance=name, **common),
                        PartitionedTranslator(
                            health=Health(), keys=keys, consumer_name=name, **common
                        ),
                    )
                ]
                try:

                    async def started() -> bool:
                        return int(await redis.xlen(keys.partition(busy).events)) > 0

                    await eventually(started, timeout_s=30, what="first events")
                    await asyncio.to_thread(cluster.failover, owners[slots[busy]])
                    await eventually(
                        lambda: all_drained(redis, keys, total), timeout_s=60, what="drained"
                    )
                finally:
                    stop.set()
                    await asyncio.wait_for(asyncio.gather(*tasks), 30)
                await _assert_exact(redis, keys, world, sim, session)
                after = slot_owners(cluster.nodes[0].port)
                assert after[slots[busy]] != owners[slots[busy]]
            finally:
                await redis.aclose()


async def _assert_exact(
    redis: aioredis.Redis,
    keys: Keys,
    world: World,
    sim: RunningSimulator,
    session: aiohttp.ClientSession,
) -> None:
    """Each partition holds exactly its districts' events, in Clever's order, and the model's
    legacy streams for them."""
    for index, part in enumerate(keys.all_partitions()):
        messages = await messages_of(redis, part)
        mine = [d for d in world.districts if partition_of(d.id, P) == index]
        published = {d.id: [m.id for _, m in messages if m.district == d.id] for d in mine}
        assert published == {d.id: list(d.feed.ids) for d in mine}
        assert len(messages) == sum(len(d.feed.ids) for d in mine)
        teachers = await teacher_ids_from_clever(messages, sim, session)
        assert await legacy_streams(redis, part) == expected_streams(
            messages, teacher_ids=teachers, partition=index
        )
