"""One district's Data API failing holds only that district; the others keep flowing.

The simulator serves the Data API (teacher look-ups) and answers 5xx to one district only; events
go on the events stream as the poller writes them. While the faults last, the other districts'
legacy streams are complete and exact and the held district has written nothing; once the faults
end, the held district catches up and every legacy stream is exactly the reference model's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from relay.config import validate
from relay.health import Health
from relay.simulator import SimOptions, World, running_simulator
from relay.simulator.faults import FaultsPatch
from relay.translate.ids import legacy_id, legacy_prefix
from relay.translator.consumer import Translator
from tests.test_translator_e2e import pipeline_cfg
from tests.test_translator_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    KEYS,
    drained,
    event,
    eventually,
    expected_streams,
    legacy_streams,
    messages_of,
    object_id,
    publish,
    publish_raw,
    student,
    teacher_ids_from_clever,
    test_cfg,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.simulator import RunningSimulator

EVENTS_PER_DISTRICT = 240


def feeds(world: World) -> dict[str, list[bytes]]:
    """Each district's raw events; the first district's start at its first section (so its
    teachers are unknown to the translator and must be looked up)."""
    out: dict[str, list[bytes]] = {}
    for n, district in enumerate(world.districts):
        events = [msgspec.json.encode(e) for e in district.events()]
        if n == 0:
            first = next(i for i, e in enumerate(events) if b'"sections.' in e[:120])
            events = events[first:]
        out[district.id] = events
    return out


async def publish_interleaved(redis: aioredis.Redis, parts: dict[str, list[bytes]]) -> None:
    """Put the districts' events on the events stream round-robin, as concurrent pollers do."""
    rows = itertools.zip_longest(*[[(d, e) for e in evs] for d, evs in parts.items()])
    for row in rows:
        await publish_raw(redis, [item for item in row if item is not None])


def only(streams: dict[str, list[dict[str, str]]], districts: set[str]) -> dict[str, Any]:
    """The legacy streams restricted to ``districts`` (empty streams left out)."""
    kept = {k: [e for e in v if e["district"] in districts] for k, v in streams.items()}
    return {k: v for k, v in kept.items() if v}


def released(model: dict[str, list[dict[str, str]]], position: str) -> dict[str, Any]:
    """The model's events of a district released all at once at ``position``: in emission
    order, with legacy ids based on the position from index 0x8000 on (in ids and data)."""
    prefix = legacy_prefix(position)
    order = sorted(e["id"] for evs in model.values() for e in evs)
    new_id = {old: f"{prefix}{0x8000 + n:04x}" for n, old in enumerate(order)}
    return {
        rt: [
            {**e, "id": new_id[e["id"]], "data": e["data"].replace(e["id"], new_id[e["id"]])}
            for e in evs
        ]
        for rt, evs in model.items()
    }


@contextlib.asynccontextmanager
async def translating(translator: Translator) -> AsyncIterator[None]:
    """Run the translator in the background until the block exits."""
    stop = asyncio.Event()
    task = asyncio.create_task(translator.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def others_caught_up(
    redis: aioredis.Redis, sim: RunningSimulator, session: aiohttp.ClientSession, held: str
) -> bool:
    """True once every district but ``held`` has exactly the model's legacy events."""
    others = {d.id for d in sim.world.districts} - {held}
    messages = [(sid, m) for sid, m in await messages_of(redis) if m.district in others]
    model = expected_streams(
        messages, teacher_ids=await teacher_ids_from_clever(messages, sim, session)
    )
    return only(await legacy_streams(redis), others) == model


def make_translator(
    cfg: Config, redis: aioredis.Redis, session: aiohttp.ClientSession, name: str
) -> Translator:
    """A translator that retries held districts quickly (back-off 0.05 s, capped at 0.3 s)."""
    translator = Translator(
        cfg=cfg,
        redis=redis,
        session=session,
        health=Health(),
        keys=KEYS,
        consumer_name=name,
        retry_base_s=0.05,
    )
    translator.holds.cap_s = 0.3
    return translator


async def hold_while_others_flow(
    redis: aioredis.Redis,
    sim: RunningSimulator,
    session: aiohttp.ClientSession,
    parts: dict[str, list[bytes]],
    held: str,
) -> None:
    """Publish in two halves; after each, the others are complete and ``held`` is all set aside."""
    halves = [{d: evs[: len(evs) // 2] for d, evs in parts.items()}]
    halves.append({d: evs[len(evs) // 2 :] for d, evs in parts.items()})
    for n, half in enumerate(halves):
        await publish_interleaved(redis, half)
        await eventually(
            lambda: others_caught_up(redis, sim, session, held),
            timeout_s=60,
            what="other districts translated",
        )
        assert only(await legacy_streams(redis), {held}) == {}
        assert await redis.hlen(KEYS.translator_held) == sum(len(h[held]) for h in halves[: n + 1])


async def assert_exact(
    redis: aioredis.Redis, sim: RunningSimulator, session: aiohttp.ClientSession, held: str
) -> None:
    """Every district's legacy events are the model's, the held one's released at the end."""
    messages = await messages_of(redis)
    teachers = await teacher_ids_from_clever(messages, sim, session)
    streams = await legacy_streams(redis)
    others = {d.id for d in sim.world.districts} - {held}
    mine = [(sid, m) for sid, m in messages if m.district == held]
    assert only(streams, {held}) == released(
        expected_streams(mine, teacher_ids=teachers), messages[-1][0]
    )
    assert only(streams, others) == expected_streams(
        [(sid, m) for sid, m in messages if m.district in others], teacher_ids=teachers
    )
    for entries in streams.values():  # legacy ids still ascend within every stream
        assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)


async def held_count(redis: aioredis.Redis, n: int) -> bool:
    """True once exactly ``n`` entries are held back."""
    return int(await redis.hlen(KEYS.translator_held)) == n


async def keep_publishing(redis: aioredis.Redis, district: str, stop: asyncio.Event) -> None:
    """Publish students of ``district`` in bursts of 200 (faster than batches of 10 are written)
    until ``stop`` is set (not cancelled: a cancelled pipeline leaves its connection hanging)."""
    for burst in itertools.count():
        if stop.is_set():
            return
        ids = range(burst * 200, (burst + 1) * 200)
        await publish(
            redis, district, [event("users.created", student(object_id(n), district)) for n in ids]
        )
        await asyncio.sleep(0)


class TestDistrictIsolation:
    """A failing district is held alone."""

    async def test_failing_district_is_held_alone_and_catches_up_exactly(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """5xx for one district: the others go out in full, it writes nothing, then catches up."""
        world = World.generate(21, districts=3, events_per_district=EVENTS_PER_DISTRICT)
        held = world.districts[0].id
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = validate(pipeline_cfg(redis_url, sim, batch_size=50, max_deliveries=1_000_000))
            sim.set_faults(FaultsPatch(fail_rate=1.0, districts=[held]))
            async with translating(make_translator(cfg, redis_client, session, "t1")):
                await hold_while_others_flow(redis_client, sim, session, feeds(world), held)
                sim.set_faults(FaultsPatch(fail_rate=0.0, districts=[]))
                await eventually(lambda: drained(redis_client), timeout_s=60, what="drained")
            await assert_exact(redis_client, sim, session, held)

    async def test_held_entries_survive_a_takeover_and_a_rewound_group(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Held entries outlive their translator; re-delivering everything writes nothing twice."""
        world = World.generate(22, districts=3, events_per_district=EVENTS_PER_DISTRICT)
        held = world.districts[0].id
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = validate(pipeline_cfg(redis_url, sim, batch_size=50, max_deliveries=1_000_000))
            sim.set_faults(FaultsPatch(fail_rate=1.0, districts=[held]))
            async with translating(make_translator(cfg, redis_client, session, "t1")):
                await hold_while_others_flow(redis_client, sim, session, feeds(world), held)
            await redis_client.xgroup_setid(KEYS.events, cfg.legacy.group, "0")
            sim.set_faults(FaultsPatch(fail_rate=0.0, districts=[]))
            async with translating(make_translator(cfg, redis_client, session, "t2")):
                await eventually(lambda: drained(redis_client), timeout_s=60, what="drained")
            await assert_exact(redis_client, sim, session, held)

    async def test_held_district_out_of_release_ids_waits_for_the_position_to_move(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """With no release ids left at the position, other entries still flow, then it releases."""
        cfg = test_cfg(redis_url)
        first = await publish(
            redis_client,
            DISTRICT_A,
            [event("users.created", student(object_id(n), DISTRICT_A)) for n in (1, 2)],
        )
        await publish(
            redis_client, DISTRICT_B, [event("users.created", student(object_id(3), DISTRICT_B))]
        )
        async with aiohttp.ClientSession() as session:
            async with translating(make_translator(cfg, redis_client, session, "t1")):
                await eventually(lambda: drained(redis_client), what="drained")
            # Set A's two entries aside as held and spend the ids left at the position.
            position = (await messages_of(redis_client))[-1][0]
            await redis_client.hset(KEYS.translator_held, mapping=dict.fromkeys(first, DISTRICT_A))
            await redis_client.set(KEYS.translator_emitted, f"{legacy_prefix(position)}ffd0")
            [later] = await publish(
                redis_client,
                DISTRICT_B,
                [event("users.created", student(object_id(4), DISTRICT_B))],
            )
            async with translating(make_translator(cfg, redis_client, session, "t2")):
                await eventually(lambda: drained(redis_client), what="drained")
        tail = (await legacy_streams(redis_client))["students"][-3:]
        assert [(e["district"], e["id"]) for e in tail] == [
            (DISTRICT_B, legacy_id(later, 0)),
            (DISTRICT_A, f"{legacy_prefix(later)}8000"),
            (DISTRICT_A, f"{legacy_prefix(later)}8001"),
        ]

    async def test_due_held_district_is_retried_while_other_entries_keep_coming(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A steady flow of another district's entries does not delay held retries to the sweep."""
        world = World.generate(23, districts=2, events_per_district=40)
        held, other = world.districts[0].id, world.districts[1].id
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg = validate(
                pipeline_cfg(
                    redis_url, sim, batch_size=10, max_deliveries=1_000_000, claim_idle_ms=600_000
                )
            )
            sim.set_faults(FaultsPatch(fail_rate=1.0, districts=[held]))
            async with translating(make_translator(cfg, redis_client, session, "t1")):
                await publish_raw(redis_client, [(held, e) for e in feeds(world)[held][:3]])
                await eventually(
                    lambda: held_count(redis_client, 3), timeout_s=60, what="district held"
                )
                sim.set_faults(FaultsPatch(fail_rate=0.0, districts=[]))
                stop = asyncio.Event()
                flowing = asyncio.create_task(keep_publishing(redis_client, other, stop))
                try:
                    await eventually(
                        lambda: held_count(redis_client, 0), timeout_s=60, what="released"
                    )
                finally:
                    stop.set()
                    await flowing
