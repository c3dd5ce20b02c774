"""End-to-end tests of the poller against the simulator and a real Redis (in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import pytest

from relay.config import validate
from relay.health import Health
from relay.poller import Poller
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.simulator import Faults, SimOptions, World, running_simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import redis.asyncio as aioredis

    from relay.config import Config

PREFIX = "t"
UNKNOWN_ID = "5f0000000000000000000000"


async def wait_for(condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


def make_cfg(
    redis_url: str, base_url: str, districts: list[dict[str, str]], **clever: Any
) -> Config:
    """A poller-only config for the simulator at ``base_url``."""
    section = {
        "base_url": base_url,
        "page_limit": 500,
        "poll_interval_s": 0.1,
        "max_backoff_s": 0.2,
    }
    section.update(clever)
    return validate(
        {
            "relay": {"components": ["poller"]},
            "redis": {"url": redis_url, "prefix": PREFIX},
            "clever": {**section, "districts": districts},
        }
    )


def sim_districts(world: World, start: str = "earliest") -> list[dict[str, str]]:
    """Config entries for every district of ``world``."""
    return [{"id": d.id, "token": d.token, "start": start} for d in world.districts]


async def stream_entries(
    redis: aioredis.Redis, key: str = f"{PREFIX}:events"
) -> list[dict[bytes, bytes]]:
    """Every entry's fields of a stream, in stream order."""
    entries: Any = await redis.xrange(key)
    return [fields for _, fields in entries]


async def stream_ids(redis: aioredis.Redis) -> dict[str, list[str]]:
    """Event ids on the events stream, per district, in stream order."""
    out: dict[str, list[str]] = {}
    for fields in await stream_entries(redis):
        out.setdefault(fields[b"district"].decode(), []).append(fields[b"id"].decode())
    return out


def feed_ids(world: World) -> dict[str, list[str]]:
    """Every event id the simulator holds, per district, in Clever order."""
    return {d.id: list(d.feed.ids) for d in world.districts}


@dataclass
class RunningPoller:
    """A poller running in this event loop, with what tests inspect."""

    poller: Poller
    health: Health
    stop: asyncio.Event
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_poller(cfg: Config) -> AsyncIterator[RunningPoller]:
    """Run a :class:`Poller` until the block ends, then stop it and wait for it to return."""
    redis = create_redis(cfg.redis)
    health = Health()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        poller = Poller(cfg=cfg, redis=redis, session=session, health=health, keys=Keys(PREFIX))
        task = asyncio.create_task(poller.run(stop))
        try:
            yield RunningPoller(poller, health, stop, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
            await redis.aclose()


async def event_count(redis: aioredis.Redis, n: int) -> bool:
    """True once the events stream holds at least ``n`` entries."""
    return int(await redis.xlen(f"{PREFIX}:events")) >= n


class TestPollerThroughput:
    """The main promise: every event once, in order, cursor at the end."""

    async def test_poller_publishes_every_event_once(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """3 districts x 20,000 events: the stream holds each once, in order per district."""
        world = World.generate(7, districts=3, events_per_district=20_000)
        async with running_simulator(world, SimOptions(rate_limit=1_000_000)) as sim:
            cfg = make_cfg(redis_url, sim.base_url, sim_districts(world))
            started = time.perf_counter()
            async with running_poller(cfg):
                await wait_for(lambda: event_count(redis_client, 60_000), timeout_s=60)
                elapsed = time.perf_counter() - started
        print(f"\npoller: 60000 events in {elapsed:.2f}s = {60_000 / elapsed:.0f} events/s")
        assert await stream_ids(redis_client) == feed_ids(world)
        for district in world.districts:
            assert (
                await redis_client.get(f"{PREFIX}:cursor:{district.id}")
                == district.feed.ids[-1].encode()
            )

    async def test_poller_entry_fields(self, redis_client: aioredis.Redis, redis_url: str) -> None:
        """Each entry carries id, type, district and the normalized message as data."""
        world = World.generate(3, districts=1, events_per_district=50)
        district = world.districts[0]
        async with (
            running_simulator(world, SimOptions()) as sim,
            running_poller(make_cfg(redis_url, sim.base_url, sim_districts(world))),
        ):
            await wait_for(lambda: event_count(redis_client, 50))
        entries = await stream_entries(redis_client)
        first = district.events()[0]
        data = msgspec.json.decode(entries[0][b"data"])
        assert entries[0][b"id"] == first["id"].encode()
        assert entries[0][b"type"] == first["type"].encode()
        assert entries[0][b"district"] == district.id.encode()
        assert data["object"] == first["data"]["object"]
        assert data["district"] == district.id
        assert data["record_type"] == first["type"].split(".")[0]


class TestPollerStart:
    """Where polling starts when no cursor is stored."""

    async def test_poller_start_latest_skips_history(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``latest`` stores the newest id at start and publishes only later events."""
        world = World.generate(3, districts=1, events_per_district=100)
        district = world.districts[0]
        cursor_key = f"{PREFIX}:cursor:{district.id}"
        async with (
            running_simulator(world, SimOptions()) as sim,
            running_poller(make_cfg(redis_url, sim.base_url, sim_districts(world, "latest"))),
        ):
            await wait_for(
                lambda: _equals(redis_client.get(cursor_key), district.feed.ids[-1].encode())
            )
            new = district.generate(5)
            await wait_for(lambda: event_count(redis_client, 5))
            await wait_for(lambda: _equals(redis_client.get(cursor_key), new[-1].encode()))
        assert await stream_ids(redis_client) == {district.id: new}

    async def test_poller_start_latest_empty_feed(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``latest`` on an empty feed starts from the first event that appears."""
        world = World.from_bytes(b'{"districts": [{"id": "d1", "events": []}]}')
        district = world.districts[0]
        async with (
            running_simulator(world, SimOptions()) as sim,
            running_poller(
                make_cfg(redis_url, sim.base_url, sim_districts(world, "latest"))
            ) as run,
        ):
            await wait_for(lambda: _is(run.poller.by_id["d1"].status()["state"] == "caught_up"))
            new = district.generate(3)
            await wait_for(lambda: event_count(redis_client, 3))
        assert await stream_ids(redis_client) == {"d1": new}

    async def test_poller_start_earliest(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``earliest`` publishes the whole retained feed."""
        world = World.generate(4, districts=1, events_per_district=120)
        async with (
            running_simulator(world, SimOptions()) as sim,
            running_poller(make_cfg(redis_url, sim.base_url, sim_districts(world, "earliest"))),
        ):
            await wait_for(lambda: event_count(redis_client, 120))
        assert await stream_ids(redis_client) == feed_ids(world)

    async def test_poller_start_explicit_id(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """An explicit event id starts right after that event."""
        world = World.generate(5, districts=1, events_per_district=120)
        ids = world.districts[0].feed.ids
        async with running_simulator(world, SimOptions()) as sim:
            districts = sim_districts(world, ids[49])
            async with running_poller(make_cfg(redis_url, sim.base_url, districts)):
                await wait_for(lambda: event_count(redis_client, 70))
        assert await stream_ids(redis_client) == {world.districts[0].id: list(ids[50:])}

    async def test_poller_stored_cursor_wins(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A stored cursor is resumed whatever ``start`` says."""
        world = World.generate(5, districts=1, events_per_district=60)
        district = world.districts[0]
        await redis_client.set(f"{PREFIX}:cursor:{district.id}", district.feed.ids[9])
        async with (
            running_simulator(world, SimOptions()) as sim,
            running_poller(make_cfg(redis_url, sim.base_url, sim_districts(world, "latest"))),
        ):
            await wait_for(lambda: event_count(redis_client, 50))
        assert await stream_ids(redis_client) == {district.id: list(district.feed.ids[10:])}


async def _equals(value: Awaitable[Any], expected: object) -> bool:
    return bool(await value == expected)


async def _is(value: bool) -> bool:
    return value


def _cursor_lost_entries(entries: list[dict[bytes, bytes]]) -> list[dict[str, Any]]:
    return [msgspec.json.decode(f[b"data"]) for f in entries if f[b"type"] == b"relay.cursor_lost"]


class TestPollerCursorLost:
    """Clever no longer knows the cursor: report it, then stop or jump to the newest event."""

    async def test_poller_cursor_lost_fail_stops_district(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``fail`` appends one control entry, keeps the cursor and stops only that district."""
        world = World.generate(8, districts=2, events_per_district=30)
        lost, healthy = world.districts
        await redis_client.set(f"{PREFIX}:cursor:{lost.id}", UNKNOWN_ID)
        async with running_simulator(world, SimOptions()) as sim:
            cfg = make_cfg(redis_url, sim.base_url, sim_districts(world))
            async with running_poller(cfg) as run:
                await wait_for(
                    lambda: _is(run.poller.by_id[lost.id].status()["state"] == "cursor_lost")
                )
                await wait_for(lambda: event_count(redis_client, 31))
                assert run.health.stuck() == []
                assert f"poller:{lost.id}" not in run.health.loops
            # A restart does not report the same lost cursor again.
            async with running_poller(cfg) as run:
                await wait_for(
                    lambda: _is(run.poller.by_id[lost.id].status()["state"] == "cursor_lost")
                )
        entries = await stream_entries(redis_client)
        controls = _cursor_lost_entries(entries)
        assert len(controls) == 1
        assert controls[0]["cursor"] == UNKNOWN_ID
        assert controls[0]["resumed_from"] is None
        assert controls[0]["reason"] == f"Clever answered 404 to starting_after={UNKNOWN_ID}"
        assert [
            f[b"id"].decode() for f in entries if f[b"district"] == healthy.id.encode()
        ] == list(healthy.feed.ids)
        assert await redis_client.get(f"{PREFIX}:cursor:{lost.id}") == UNKNOWN_ID.encode()
        state = await redis_client.hgetall(f"{PREFIX}:pollstate:{lost.id}")
        assert (state[b"healthy"], state[b"last_error"]) == (b"0", b"cursor_lost")

    async def test_poller_cursor_lost_latest_resumes(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """``latest`` appends a control entry naming the newest id and polls on from there."""
        world = World.generate(9, districts=1, events_per_district=30)
        district = world.districts[0]
        await redis_client.set(f"{PREFIX}:cursor:{district.id}", UNKNOWN_ID)
        async with running_simulator(world, SimOptions()) as sim:
            cfg = make_cfg(redis_url, sim.base_url, sim_districts(world), on_cursor_lost="latest")
            async with running_poller(cfg):
                await wait_for(lambda: event_count(redis_client, 1))
                new = district.generate(4)
                await wait_for(lambda: event_count(redis_client, 5))
        entries = await stream_entries(redis_client)
        assert next(f[b"type"] for f in entries) == b"relay.cursor_lost"
        control = _cursor_lost_entries(entries)[0]
        assert (control["cursor"], control["resumed_from"]) == (UNKNOWN_ID, district.feed.ids[29])
        assert [f[b"id"].decode() for f in entries[1:]] == new

    async def test_poller_cursor_lost_on_empty_page_past_retention(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """An expired cursor answered with an empty page is lost when Clever has newer events."""
        world = World.generate(10, districts=1, events_per_district=20)
        district = world.districts[0]
        await redis_client.set(f"{PREFIX}:cursor:{district.id}", UNKNOWN_ID)
        async with (
            running_simulator(world, SimOptions(cursor_lost="empty")) as sim,
            running_poller(make_cfg(redis_url, sim.base_url, sim_districts(world))) as run,
        ):
            await wait_for(
                lambda: _is(run.poller.by_id[district.id].status()["state"] == "cursor_lost")
            )
        control = _cursor_lost_entries(await stream_entries(redis_client))
        assert control[0]["reason"] == (
            f"cursor {UNKNOWN_ID} is past retention and Clever returns nothing after it"
        )


class TestPollerFailures:
    """Invalid events, refused tokens, oversized pages, shutdown."""

    async def test_poller_dead_letters_invalid_event(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """An invalid event goes to the dead-letter stream and the cursor moves past it."""
        good = {"type": "schools.created", "data": {"object": {"id": "s1", "name": "A"}}}
        bad = {"type": "schools.created", "created": 12345, "data": {"object": {"id": "s2"}}}
        scenario = {"districts": [{"id": "d1", "events": [good, bad, good]}]}
        world = World.from_bytes(msgspec.json.encode(scenario))
        ids = list(world.districts[0].feed.ids)
        async with (
            running_simulator(world, SimOptions()) as sim,
            running_poller(make_cfg(redis_url, sim.base_url, sim_districts(world))),
        ):
            await wait_for(
                lambda: _equals(redis_client.get(f"{PREFIX}:cursor:d1"), ids[2].encode())
            )
        assert await stream_ids(redis_client) == {"d1": [ids[0], ids[2]]}
        dead = await stream_entries(redis_client, f"{PREFIX}:deadletter")
        assert dead == [
            {
                b"stage": b"poller",
                b"reason": dead[0][b"reason"],
                b"district": b"d1",
                b"raw": world.districts[0].feed.bodies[1],
                b"id": ids[1].encode(),
            }
        ]
        assert dead[0][b"reason"] == b"invalid event: Expected `str`, got `int` - at `$.created`"

    async def test_poller_unauthorized_district_is_isolated(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A refused token marks its district unhealthy while the others publish everything."""
        world = World.generate(11, districts=2, events_per_district=40)
        good, _ = world.districts
        districts = sim_districts(world)
        districts[1]["token"] = "wrong-token"
        async with running_simulator(world, SimOptions()) as sim:
            cfg = make_cfg(redis_url, sim.base_url, districts, auth_retry_s=0.05)
            async with running_poller(cfg) as run:
                await wait_for(lambda: event_count(redis_client, 40))
                await wait_for(lambda: _is(sim.stats.responses_401 >= 2))
                status = run.poller.by_id[world.districts[1].id].status()
                assert (status["state"], status["last_error"]) == ("unauthorized", "auth")
        assert await stream_ids(redis_client) == {good.id: list(good.feed.ids)}
        state = await redis_client.hgetall(f"{PREFIX}:pollstate:{world.districts[1].id}")
        assert (state[b"healthy"], state[b"last_error"]) == (b"0", b"auth")

    async def test_poller_halves_page_on_413(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A 413 halves the page size and polling carries on."""
        world = World.generate(12, districts=1, events_per_district=30)
        async with running_simulator(world, SimOptions()) as sim:
            cfg = make_cfg(redis_url, sim.base_url, sim_districts(world))
            too_big = msgspec.structs.replace(cfg.clever, page_limit=40_000)
            async with running_poller(msgspec.structs.replace(cfg, clever=too_big)) as run:
                await wait_for(lambda: event_count(redis_client, 30))
                assert run.poller.by_id[world.districts[0].id].status()["page_limit"] == 10_000
        assert await stream_ids(redis_client) == feed_ids(world)

    async def test_poller_stops_promptly(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """On stop the poller returns quickly and the stream matches the stored cursor."""
        world = World.generate(13, districts=2, events_per_district=5000)
        async with running_simulator(world, SimOptions(faults=Faults(latency_ms=20))) as sim:
            cfg = make_cfg(redis_url, sim.base_url, sim_districts(world), page_limit=100)
            async with running_poller(cfg) as run:
                await wait_for(lambda: event_count(redis_client, 300))
                run.stop.set()
                await asyncio.wait_for(asyncio.shield(run.task), timeout=1.0)
        published = await stream_ids(redis_client)
        for district in world.districts:
            cursor = await redis_client.get(f"{PREFIX}:cursor:{district.id}")
            assert isinstance(cursor, bytes)
            ids = list(district.feed.ids)
            assert published[district.id] == ids[: ids.index(cursor.decode()) + 1]
