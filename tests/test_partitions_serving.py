"""With three partitions, the sync, the v2 API, webhooks, /status and the dead-letter commands
serve every district from its own partition, as with one."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from relay import deadletters
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.poller import Poller
from relay.readmodel.sync import run_sync
from relay.redis.keys import Keys, partition_of
from relay.simulator import SimOptions, World, running_simulator
from relay.translate.rules import LEGACY_RECORD_TYPES
from relay.translator.partitions import PartitionedTranslator
from relay.v2api.server import add_routes
from relay.webhooks.partitions import PartitionedWebhooks
from tests.test_translator_helpers import drained, eventually
from tests.test_v2api import PREFIX, make_cfg, v2_key
from tests.test_v2api_e2e import load_example
from tests.webhook_support import Receiver, endpoint, groups_ready

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config

P = 3
WEBHOOK_TYPES = ("students", "teachers")


async def legacy_of(redis: aioredis.Redis, keys: Keys, district: str) -> list[dict[str, Any]]:
    """Every legacy event of ``district`` in its partition's streams, in legacy id order."""
    found: list[tuple[str, bytes]] = []
    for rt in LEGACY_RECORD_TYPES:
        entries: Any = await redis.xrange(keys.of(district).legacy(rt))
        for _, fields in entries:
            if fields[b"district"].decode() == district:
                found.append((fields[b"id"].decode(), fields[b"data"]))
    return [msgspec.json.decode(data) for _, data in sorted(found)]


def partitioned(cfg: Config, receiver: Receiver) -> Config:
    """``cfg`` with three partitions and one webhook endpoint for students and teachers."""
    tree = msgspec.to_builtins(cfg)
    tree["redis"]["partitions"] = P
    tree["webhooks"] = {"endpoints": [endpoint("hook", receiver.url)]}
    return msgspec.convert(tree, type(cfg))


class TestServingAcrossPartitions:
    """Districts in several partitions, served as one deployment."""

    async def test_v2_api_webhooks_status_and_deadletters_across_partitions(
        self, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
    ) -> None:
        """Every district's v2 events and webhooks equal its partition's legacy events."""
        world = World.generate(23, districts=4, events_per_district=150)
        receiver = Receiver()
        await receiver.start()
        keys = Keys(PREFIX, P)
        try:
            async with (
                running_simulator(world, SimOptions(rate_limit=0)) as sim,
                aiohttp.ClientSession() as session,
            ):
                cfg = partitioned(make_cfg(redis_url, sim), receiver)
                ids = [d.id for d in sim.world.districts]
                assert len({partition_of(d, P) for d in ids}) > 1
                assert await run_sync(cfg, None, progress=False) == 0
                for district in ids:  # the sync set each cursor at the feed's end
                    sim.world.district(district).generate(100)
                total = 100 * len(ids)
                await _run_pipeline(cfg, redis_client, session, keys, receiver, total)
                health = Health()
                status = StatusSource(cfg=cfg, redis=redis_client, health=health)
                app = build_app(cfg=cfg, redis=redis_client, health=health, status=status)
                add_routes(app, cfg=cfg, redis=redis_client, keys=keys)
                client = await aiohttp_client(app)
                base = str(client.make_url("")).rstrip("/")
                example = load_example()
                for district in ids:
                    legacy = await legacy_of(redis_client, keys, district)
                    polled = await asyncio.to_thread(_poll_all, example, base, district)
                    assert polled == legacy
                    hooked = [e["id"] for e in legacy if e["type"].split(".")[0] in WEBHOOK_TYPES]
                    mine = set(hooked)
                    assert [i for i in receiver.delivered() if i in mine] == hooked
                report = await status.report()
                assert sum(report.streams.values()) > 0
                assert report.translator is not None
                assert (report.translator.exists, report.translator.pending) == (True, 0)
                assert await deadletters.count(redis_client, keys) == 0
        finally:
            await receiver.stop()


def _poll_all(example: Any, base: str, district: str) -> list[dict[str, Any]]:
    """Every v2 event of ``district`` through the unmodified v2 polling example."""
    return list(example.events_after(base, v2_key(district), None, limit=50))


async def _run_pipeline(
    cfg: Config,
    redis: aioredis.Redis,
    session: aiohttp.ClientSession,
    keys: Keys,
    receiver: Receiver,
    events: int,
) -> None:
    """Webhooks first (their groups start at the streams' ends), then poller and translator,
    until every partition is translated and every webhook delivered."""
    common: dict[str, Any] = {"cfg": cfg, "redis": redis, "session": session, "keys": keys}
    stop = asyncio.Event()
    hooks = PartitionedWebhooks(health=Health(), **common)
    tasks = [asyncio.create_task(hooks.run(stop))]
    try:
        sources = [k.legacy(rt) for k in keys.all_partitions() for rt in WEBHOOK_TYPES]
        await eventually(
            lambda: groups_ready(redis, sources, "webhooks:hook"),
            timeout_s=60,
            what="webhook groups",
        )
        tasks.append(asyncio.create_task(Poller(health=Health(), **common).run(stop)))
        tasks.append(
            asyncio.create_task(PartitionedTranslator(health=Health(), **common).run(stop))
        )

        async def done() -> bool:
            parts = keys.all_partitions()
            total = sum([int(await redis.xlen(k.events)) for k in parts])
            if total < events or not all([await drained(redis, keys=k) for k in parts]):
                return False
            hooked = [await redis.xlen(k.legacy(rt)) for k in parts for rt in WEBHOOK_TYPES]
            return len(receiver.delivered()) >= sum(hooked)

        await eventually(done, timeout_s=90, what="translated and delivered")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
