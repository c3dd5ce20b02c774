"""District leases against a real Redis: fencing tokens, renewal, fair share, release, reclaim."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import msgspec
import pytest
import redis.asyncio

from relay.config import validate
from relay.errors import LeaseLostError
from relay.health import Health
from relay.ops.status import StatusSource
from relay.poller.district_leases import LeaseRunner, LeaseTable, fair_share, lease_holder
from relay.poller.publish import Batch, Publisher
from relay.redis.keys import Keys
from tests.test_poller import wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import redis.asyncio as aioredis

    from tests.redis_server import RedisServer

KEYS = Keys("t")
DISTRICTS = [f"d{i:02}" for i in range(12)]
TTL_S = 0.6


def table(redis: aioredis.Redis, instance: str, districts: list[str] | None = None) -> LeaseTable:
    """A lease table for ``instance`` over the test districts."""
    return LeaseTable(
        redis=redis,
        keys=KEYS,
        instance=instance,
        districts=DISTRICTS if districts is None else districts,
        ttl_s=TTL_S,
    )


class Work:
    """A stand-in district loop that records whether it runs (the runner's view of a poller)."""

    def __init__(self, district: str, running: dict[str, set[str]], instance: str) -> None:
        self.id = district
        self.running = running
        self.instance = instance
        self.lease_lost = False

    async def run(self, stop: asyncio.Event, *, lease: str | None = None) -> None:
        """Mark the district as run by this instance until stopped."""
        self.running.setdefault(self.id, set()).add(self.instance)
        try:
            await stop.wait()
        finally:
            self.running[self.id].discard(self.instance)


@contextlib.asynccontextmanager
async def runners(
    redis: aioredis.Redis, names: list[str], running: dict[str, set[str]]
) -> AsyncIterator[dict[str, tuple[LeaseRunner, asyncio.Event, asyncio.Task[None]]]]:
    """Start one lease runner per name (each with its own stop event)."""
    out = {}
    for name in names:
        work = {d: Work(d, running, name) for d in DISTRICTS}
        runner = LeaseRunner(table=table(redis, name), work=work, health=Health())
        stop = asyncio.Event()
        out[name] = (runner, stop, asyncio.create_task(runner.run(stop)))
    try:
        yield out
    finally:
        for _, stop, _ in out.values():
            stop.set()
        await asyncio.gather(*(task for _, _, task in out.values() if not task.done()))


def shares(group: dict[str, tuple[LeaseRunner, asyncio.Event, asyncio.Task[None]]]) -> list[int]:
    """How many districts each running runner holds, sorted."""
    return sorted(len(r.holding()) for r, stop, _ in group.values() if not stop.is_set())


async def _true(value: bool) -> bool:
    return value


class TestLeaseTable:
    """The Redis scripts of the lease table."""

    async def test_lease_table_token_increases_on_every_change_of_owner(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A takeover after expiry gets a higher token, and the old value no longer renews."""
        first, second = table(redis_client, "a", ["d1"]), table(redis_client, "b", ["d1"])
        assert await first.acquire(1) == ["d1"]
        assert await second.acquire(1) == []
        await redis_client.delete(KEYS.lease("d1"))  # the lease lapsed
        assert await second.acquire(1) == ["d1"]
        assert [v.split("|")[0] for v in (second.held["d1"],)] == ["2"]
        assert await first.renew() == ["d1"]
        assert first.held == {}
        assert lease_holder(await redis_client.get(KEYS.lease("d1"))) == "b"

    async def test_lease_table_expires_without_renewal(self, redis_client: aioredis.Redis) -> None:
        """A lease that is not renewed is gone after its TTL, so another replica can take it."""
        first, second = table(redis_client, "a", ["d1"]), table(redis_client, "b", ["d1"])
        await first.acquire(1)
        await asyncio.sleep(TTL_S + 0.1)
        assert await second.acquire(1) == ["d1"]

    async def test_lease_table_reclaims_own_instance_leases_at_start(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A restarted process with the same instance name takes its leases back at once."""
        await table(redis_client, "a", ["d1", "d2"]).acquire(2)
        other = table(redis_client, "b", ["d1", "d2"])
        restarted = table(redis_client, "a", ["d1", "d2"])
        assert await other.acquire(2, reclaim=True) == []
        assert sorted(await restarted.acquire(2, reclaim=True)) == ["d1", "d2"]

    async def test_lease_table_heartbeat_counts_live_replicas(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Replicas count while they heartbeat; a stale or departed one stops counting."""
        a, b = table(redis_client, "a"), table(redis_client, "b")
        assert await a.heartbeat() == 1
        assert await b.heartbeat() == 2
        assert (a.target, b.target) == (12, 6)
        assert await b.heartbeat(alive=False) == 1
        await b.heartbeat()
        await asyncio.sleep(TTL_S + 0.1)
        assert await a.heartbeat() == 1

    def test_fair_share_covers_every_district(self) -> None:
        """The share is the ceiling, so the replicas' shares always add up to all districts."""
        assert [fair_share(12, r) for r in (1, 2, 3, 5, 13)] == [12, 6, 4, 3, 1]


class TestPublishFencing:
    """The publish script refuses a poller whose lease was taken over."""

    async def test_publish_with_a_superseded_lease_writes_nothing(
        self, redis_client: aioredis.Redis
    ) -> None:
        """After a takeover, the ex-owner's publish raises LeaseLostError and nothing changes."""
        pub = Publisher(redis=redis_client, keys=KEYS, events_maxlen=1000, deadletter_maxlen=1000)
        old, new = table(redis_client, "a", ["d1"]), table(redis_client, "b", ["d1"])
        await old.acquire(1)
        batch = Batch(expected=None, new_cursor="a" * 24, entries=["a" * 24, "x.created", "{}"])
        assert await pub.publish("d1", batch, lease=old.held["d1"]) is True
        await redis_client.delete(KEYS.lease("d1"))
        await new.acquire(1)
        late = Batch(expected="a" * 24, new_cursor="b" * 24, entries=["b" * 24, "x.created", "{}"])
        with pytest.raises(LeaseLostError) as caught:
            await pub.publish("d1", late, lease=old.held["d1"])
        assert caught.value.holder == new.held["d1"]
        assert await redis_client.xlen(KEYS.events) == 1
        assert await redis_client.get(KEYS.cursor("d1")) == b"a" * 24
        assert await pub.publish("d1", late, lease=new.held["d1"]) is True


def all_running(running: dict[str, set[str]]) -> bool:
    """Every district's work runs somewhere."""
    return sorted(d for d, who in running.items() if who) == DISTRICTS


class TestLeaseRunner:
    """Several runners share the districts fairly and hand them over."""

    async def test_lease_runner_shares_fairly_and_hands_over_on_stop(
        self, redis_client: aioredis.Redis
    ) -> None:
        """3 runners settle at 4/4/4, one per district; a stopped one's share moves at once."""
        running: dict[str, set[str]] = {}

        def exclusive() -> bool:
            return all(len(running.get(d, ())) <= 1 for d in DISTRICTS)

        async with runners(redis_client, ["a", "b", "c"], running) as group:
            await wait_for(lambda: _true(shares(group) == [4, 4, 4]), timeout_s=10)
            # Districts of one acquisition start at START_RATE per second, not all at once.
            await wait_for(lambda: _true(all_running(running)), timeout_s=10)
            assert exclusive()
            runner_c, stop, task = group["c"]
            held_by_c = sorted(runner_c.holding())
            stop.set()
            await task
            # Released on stop, not left to expire: the moment c has stopped, none of its
            # leases is c's any more (a load-independent check of "moves at once").
            values = [await redis_client.get(KEYS.lease(d)) for d in held_by_c]
            assert [lease_holder(v) == "c" for v in values] == [False] * 4
            await wait_for(lambda: _true(shares(group) == [6, 6]), timeout_s=10)
            await wait_for(lambda: _true(all_running(running)), timeout_s=10)
            assert exclusive()
        assert await redis_client.keys(f"{KEYS.prefix}:lease:d??") == []
        assert await redis_client.zcard(KEYS.replicas) == 0

    async def test_lease_runner_newcomer_gets_a_fair_share(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A replica that joins late takes over half the districts without thrashing."""
        running: dict[str, set[str]] = {}
        async with runners(redis_client, ["a"], running) as group:
            await wait_for(lambda: _true(shares(group) == [12]), timeout_s=5)
            async with runners(redis_client, ["b"], running) as late:
                both = {**group, **late}
                await wait_for(lambda: _true(shares(both) == [6, 6]), timeout_s=10)
                tokens = [await redis_client.get(KEYS.lease_fence(d)) for d in DISTRICTS]
                await asyncio.sleep(3 * TTL_S)
                assert shares(both) == [6, 6]
                after = [await redis_client.get(KEYS.lease_fence(d)) for d in DISTRICTS]
                assert after == tokens


class TestStatusLeases:
    """``/status`` shows which replica holds which district."""

    async def test_status_report_lists_lease_holders(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Held districts map to their replica's instance name; free ones are absent."""
        cfg = validate(
            {
                "relay": {"instance": "here"},
                "clever": {"districts": [{"id": d, "token": "x"} for d in ("d1", "d2", "d3")]},
                "redis": {"url": redis_url, "prefix": "t"},
            }
        )
        await table(redis_client, "pod-a", ["d1"]).acquire(1)
        await table(redis_client, "pod-b", ["d3"]).acquire(1)
        source = StatusSource(cfg=cfg, redis=redis_client, health=Health())
        report = await source.report()
        assert report.leases == {"d1": "pod-a", "d3": "pod-b"}
        assert msgspec.to_builtins(report)["leases"] == {"d1": "pod-a", "d3": "pod-b"}


class TestLeaseRunnerRedisAway:
    """A replica that cannot reach Redis for a whole TTL stops believing it owns anything."""

    async def test_lease_runner_stops_every_district_when_redis_is_away_for_a_ttl(
        self, redis_factory: Callable[..., RedisServer]
    ) -> None:
        """With Redis down longer than the TTL, the runner halts all its district loops."""
        server = redis_factory()
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=0.2)
        running: dict[str, set[str]] = {}
        work = {d: Work(d, running, "a") for d in DISTRICTS}
        runner = LeaseRunner(table=table(client, "a"), work=work, health=Health())
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            await wait_for(lambda: _true(len(runner.holding()) == len(DISTRICTS)), timeout_s=5)
            server.kill()
            await wait_for(lambda: _true(not any(running.values())), timeout_s=4 * TTL_S + 2)
            assert runner.holding() == []
        finally:
            stop.set()
            await task
            await client.aclose()
