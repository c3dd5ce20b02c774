"""Partitions (``[redis] partitions`` > 1): key names, the hash, the refused change of count,
and the pipeline end to end over three partitions with two translator replicas."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from relay import deadletters
from relay.config import validate
from relay.consume import TopicReader
from relay.errors import PartitionsChangedError
from relay.health import Health
from relay.poller import Poller
from relay.redis.keys import Keys, partition_of, partition_prefix
from relay.redis.partitions import check_partitions
from relay.service import EXIT_FAILURE, Service
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.partitions import PartitionedTranslator
from tests.test_translator_e2e import pipeline_cfg
from tests.test_translator_helpers import (
    drained,
    eventually,
    expected_streams,
    legacy_streams,
    messages_of,
    teacher_ids_from_clever,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis

    from relay.config import Config

P = 3
DISTRICTS = 6
EVENTS_PER_DISTRICT = 300


class TestNames:
    """Key names with and without partitions."""

    def test_one_partition_keeps_every_name(self) -> None:
        """P = 1: the same names as before partitions existed, under the bare prefix."""
        keys = Keys("clever")
        assert (keys.events, keys.cursor("d1"), keys.read_model("d1").base) == (
            "clever:events",
            "clever:cursor:d1",
            "clever:v2:d1",
        )
        assert keys.partition(0) is keys
        assert keys.of("d1") is keys

    def test_partition_prefix_puts_the_index_in_the_hash_tag(self) -> None:
        """The partition's tag is the prefix's tag (or the whole prefix) plus ``.p<i>``."""
        assert [
            partition_prefix("clever", 2),
            partition_prefix("{clever}", 0),
            partition_prefix("app:{c}:x", 1),
        ] == ["{clever.p2}", "{clever.p0}", "app:{c.p1}:x"]

    def test_the_hash_is_crc32_of_the_id(self) -> None:
        """A district's partition is CRC-32 of its id modulo P (a contract)."""
        ids = ["d1", "d2", "59f0a6b2c0e5f7a1b2c3d4e5"]
        assert [partition_of(d, P) for d in ids] == [zlib.crc32(d.encode()) % P for d in ids]
        assert [partition_of(d, P) for d in ids] == [1, 2, 2]

    def test_per_district_keys_live_in_the_district_partition(self) -> None:
        """Cursor, lease, snapshots and read model of a district share its partition's tag."""
        keys = Keys("clever", P)
        assert [
            keys.cursor("d2"),
            keys.lease("d2"),
            keys.users("d2"),
            keys.read_model("d2").events,
            keys.partition(2).events,
            keys.replicas,
        ] == [
            "{clever.p2}:cursor:d2",
            "{clever.p2}:lease:d2",
            "{clever.p2}:users:d2",
            "{clever.p2}:v2:d2:events",
            "{clever.p2}:events",
            "clever:replicas",
        ]


class TestLegacyIds:
    """Legacy ids stay unique when two partitions' streams have equal entry ids."""

    def test_the_partition_is_in_the_sequence_bits(self) -> None:
        """Partition 0 keeps the plain id; partition 5 sets bits above 28 of the sequence."""
        from relay.translate.ids import legacy_ids

        assert legacy_ids("1700000000123-7", 2) == [
            "6553f1000" + "7b000000007" + "0000",
            "6553f1000" + "7b000000007" + "0001",
        ]
        assert legacy_ids("1700000000123-7", 1, 5) == ["6553f1000" + "7b050000007" + "0000"]


class TestChangedCount:
    """A partition count other than the data's is refused."""

    async def test_first_start_stores_and_a_change_is_refused(
        self, redis_client: aioredis.Redis
    ) -> None:
        """The first start stores P; the same P passes, another is refused with both counts."""
        await check_partitions(redis_client, Keys("t", P))
        await check_partitions(redis_client, Keys("t", P))
        with pytest.raises(PartitionsChangedError, match=r"partitions = 2, but .* partitions = 3"):
            await check_partitions(redis_client, Keys("t", 2))
        assert await redis_client.get("t:partitions") == b"3"

    async def test_unpartitioned_data_refuses_more_partitions(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Data from before the count was stored is P = 1: starting with P = 3 is refused."""
        await redis_client.xadd("t:events", {"type": "x"})
        with pytest.raises(PartitionsChangedError, match="partitions = 1"):
            await check_partitions(redis_client, Keys("t", P))

    async def test_service_exits_1_on_a_changed_count(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``clever-relay run`` with another count starts nothing and exits with status 1."""
        await redis_client.set("t:partitions", "2")
        cfg = validate(
            {
                "relay": {"components": ["translator"]},
                "redis": {"url": redis_url, "prefix": "t", "partitions": P},
                "log": {"level": "warning"},
            }
        )
        assert await asyncio.wait_for(Service(cfg).run(), 30) == EXIT_FAILURE
        assert await redis_client.exists("{t.p0}:translator:lease") == 0


@contextlib.asynccontextmanager
async def running(comp: Poller | PartitionedTranslator) -> AsyncIterator[asyncio.Event]:
    """Run a component in the background until the block exits (or ``stop`` is set)."""
    stop = asyncio.Event()
    task = asyncio.create_task(comp.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def all_drained(redis: aioredis.Redis, keys: Keys, total: int) -> bool:
    """True once every partition holds its share of ``total`` events and is drained."""
    parts = keys.all_partitions()
    if sum([int(await redis.xlen(k.events)) for k in parts]) < total:
        return False
    return all([await drained(redis, keys=k) for k in parts])


async def shares_settle(one: PartitionedTranslator, two: PartitionedTranslator) -> bool:
    """True once both replicas translate and together hold every partition exactly once."""
    a, b = one.active(), two.active()
    return bool(a) and bool(b) and sorted(a + b) == list(range(P))


class TestPipeline:
    """Simulator → poller → two translator replicas over three partitions."""

    async def test_partitions_end_to_end_exact_and_failover(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Each partition holds exactly its districts' events and their model legacy streams;
        two replicas share the partitions, and one takes all when the other stops."""
        world = World.generate(19, districts=DISTRICTS, events_per_district=EVENTS_PER_DISTRICT)
        total = DISTRICTS * EVENTS_PER_DISTRICT
        keys = Keys("t", P)
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            tree = pipeline_cfg(redis_url, sim, batch_size=200)
            tree["redis"] = {"url": redis_url, "prefix": "t", "partitions": P}
            cfg: Config = validate(tree)
            common = {"cfg": cfg, "redis": redis_client, "session": session, "keys": keys}
            poller = Poller(health=Health(), **common)  # type: ignore[arg-type]  # typed kwargs
            one = PartitionedTranslator(health=Health(), consumer_name="one", **common)  # type: ignore[arg-type]  # typed kwargs
            two = PartitionedTranslator(health=Health(), consumer_name="two", **common)  # type: ignore[arg-type]  # typed kwargs
            async with running(poller), running(two):
                async with running(one):
                    await eventually(lambda: shares_settle(one, two), timeout_s=60, what="shared")
                    await eventually(lambda: all_drained(redis_client, keys, total), timeout_s=120)
                await eventually(
                    lambda: _holds_all(two), timeout_s=60, what="two takes every partition"
                )
            await _assert_partitions_exact(redis_client, keys, world, sim, session)


async def _holds_all(translator: PartitionedTranslator) -> bool:
    return translator.active() == list(range(P))


async def _assert_partitions_exact(
    redis: aioredis.Redis,
    keys: Keys,
    world: World,
    sim: object,
    session: aiohttp.ClientSession,
) -> None:
    """Every partition's events are exactly its districts' (in Clever's order), and its legacy
    streams are exactly the model's translation of them."""
    used = 0
    for index, part in enumerate(keys.all_partitions()):
        messages = await messages_of(redis, part)
        mine = [d for d in world.districts if partition_of(d.id, P) == index]
        used += bool(mine)
        for district in mine:
            got = [m.id for _, m in messages if m.district == district.id]
            assert got == [e["id"] for e in district.events()]
        assert {m.district for _, m in messages} == {d.id for d in mine}
        teachers = await teacher_ids_from_clever(messages, sim, session)  # type: ignore[arg-type]  # a RunningSimulator
        assert await legacy_streams(redis, part) == expected_streams(
            messages, teacher_ids=teachers, partition=index
        )
    assert used > 1


class TestConsume:
    """``relay.consume`` reads one topic across the partitions as one."""

    async def test_topic_reader_pending_first_then_new_in_district_order(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Districts of three partitions come back each in its order, a crashed consumer's
        pending entries first, every entry once."""
        keys = Keys("t", P)
        districts = ["d1", "d2", "d3", "d4"]
        for n in range(4):
            for district in districts:
                stream = keys.of(district).legacy("students")
                await redis_client.xadd(stream, {"district": district, "data": f"{district}-{n}"})
        reader = TopicReader(
            redis_client, prefix="t", partitions=P, topic="students", group="g", consumer="c1"
        )
        await reader.ensure_groups()
        crashed = [e for e in await reader.read() if e.fields is not None]
        assert len(crashed) == 16
        for entry in crashed[:5]:
            await reader.ack(entry)
        again = TopicReader(
            redis_client, prefix="t", partitions=P, topic="students", group="g", consumer="c1"
        )
        await redis_client.xadd(
            keys.of("d1").legacy("students"), {"district": "d1", "data": "d1-4"}
        )
        seen: list[bytes] = []
        while batch := await again.read(block_ms=0):
            for entry in batch:
                assert entry.fields is not None
                seen.append(entry.fields[b"data"])
                await again.ack(entry)
        pending = [e.fields[b"data"] for e in crashed[5:] if e.fields is not None]
        assert seen == [*pending, b"d1-4"]
        assert again.streams == [
            "{t.p0}:legacy:students",
            "{t.p1}:legacy:students",
            "{t.p2}:legacy:students",
        ]
        for district in districts:
            got = [
                d
                for d in [e.fields[b"data"] for e in crashed[:5] if e.fields is not None] + seen
                if d.startswith(district.encode())
            ]
            expected = [f"{district}-{n}".encode() for n in range(5 if district == "d1" else 4)]
            assert got == expected


class TestDeadLetters:
    """The relay's dead letters across partitions."""

    async def test_list_replay_purge_name_the_partition(self, redis_client: aioredis.Redis) -> None:
        """Entry ids read ``p<i>/<id>``; a replay goes back to its own partition's events."""
        keys = Keys("t", P)
        data = '{"type": "users.created", "id": "e1"}'
        fields: dict[Any, Any] = {
            "stage": "translator",
            "reason": "r",
            "source": "e1",
            "data": data,
        }
        first: Any = await redis_client.xadd(
            keys.partition(0).deadletter, {**fields, "district": "x"}
        )
        second: Any = await redis_client.xadd(
            keys.partition(2).deadletter, {**fields, "district": "y"}
        )
        listed = await deadletters.list_all(redis_client, keys)
        assert [(d.entry, d.district) for d in listed] == [
            (f"p0/{first.decode()}", "x"),
            (f"p2/{second.decode()}", "y"),
        ]
        assert [
            d.entry for d in await deadletters.page(redis_client, keys, after=listed[0].entry)
        ] == [listed[1].entry]
        assert await deadletters.replay(redis_client, keys, [listed[1].entry, "p9/1-0"]) == 1
        replayed: Any = await redis_client.xrange(keys.partition(2).events)
        assert [(f[b"district"], f[b"id"]) for _, f in replayed] == [(b"y", b"e1")]
        assert await deadletters.count(redis_client, keys) == 1
        assert await deadletters.purge(redis_client, keys) == 1
        assert await deadletters.count(redis_client, keys) == 0

    async def test_webhook_dead_letters_name_the_partition(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``clever-relay webhooks`` lists every partition's dead letters and purges by id."""
        from relay.webhooks import admin

        cfg = validate(
            {
                "relay": {"components": ["webhooks"]},
                "redis": {"url": redis_url, "prefix": "t", "partitions": P},
                "webhooks": {
                    "endpoints": [
                        {
                            "name": "hook",
                            "url": "http://127.0.0.1:9/hook",
                            "topics": ["students.*"],
                            "secret": "whsec_c2VjcmV0LWtleS1vbmUtZm9yLXRoZS1leGFtcGxlcw==",
                        }
                    ]
                },
            }
        )
        keys = Keys("t", P)
        fields: dict[Any, Any] = {"id": "e1", "type": "students.created", "district": "d"}
        one: Any = await redis_client.xadd(keys.partition(1).webhook("hook").deadletter, fields)
        two: Any = await redis_client.xadd(keys.partition(2).webhook("hook").deadletter, fields)
        listed = await admin.list_dead_letters(cfg, "hook", redis=redis_client)
        assert [d.entry for d in listed] == [f"p1/{one.decode()}", f"p2/{two.decode()}"]
        assert await admin.purge(cfg, "hook", [listed[1].entry], redis=redis_client) == 1
        left = await admin.list_dead_letters(cfg, "hook", redis=redis_client)
        assert [d.entry for d in left] == [listed[0].entry]


class TestDiscovery:
    """Discovered districts are recorded in their own partitions."""

    async def test_seen_districts_land_in_their_partition_sets(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Each partition's discovered set holds its districts; ``known`` is their union."""
        import time

        from relay.poller.fleet.registry import Registry

        keys = Keys("t", P)
        registry = Registry(redis_client, keys, events_maxlen=1000)
        ids = ["d1", "d2", "d3", "d4"]
        phases = await registry.seen(
            ids, initial="onboarding", read_started=time.time(), retention_s=60.0
        )
        assert phases == dict.fromkeys(ids, "onboarding")
        assert await registry.known() == ids
        for index, part in enumerate(keys.all_partitions()):
            members: Any = await redis_client.smembers(part.fleet_known)
            assert sorted(m.decode() for m in members) == [
                d for d in ids if partition_of(d, P) == index
            ]
