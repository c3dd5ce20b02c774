"""The webhooks component against real aiohttp receivers on loopback and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import aiohttp
import redis.asyncio as aioredis

from relay.health import Health
from relay.metrics import REGISTRY
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.translate.ids import legacy_id
from relay.webhooks import admin
from relay.webhooks.delivery import WebhookDelivery
from relay.webhooks.sender import USER_AGENT
from tests.webhook_support import (
    SECRET_A,
    SECRET_B,
    Feed,
    Receiver,
    endpoint,
    eventually,
    groups_ready,
    make_config,
    running,
    verifies,
)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _by_district(ids: list[str], district_of: dict[str, str], district: str) -> list[str]:
    return [i for i in ids if district_of[i] == district]


class TestWebhookDelivery:
    async def test_delivery_posts_signed_json_with_standard_headers(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """The body is the entry's data; headers follow Standard Webhooks; both secrets verify."""
        receiver = Receiver()
        await receiver.start()
        cfg = make_config(
            redis_url, [endpoint("signed", receiver.url, secret=f"{SECRET_A} {SECRET_B}")]
        )
        feed = Feed(redis_client)
        async with running(cfg):
            event_id = await feed.legacy("students.created", "d1")
            await eventually(lambda: len(receiver.received) == 1)
        await receiver.stop()
        got = receiver.received[0]
        assert got.id == event_id
        assert got.body == b'{"id":"%s","type":"students.created"}' % event_id.encode()
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["User-Agent"] == USER_AGENT
        assert got.headers["webhook-timestamp"].isdigit()
        assert len(got.headers["webhook-signature"].split()) == 2
        assert verifies(SECRET_A, got.headers, got.body)
        assert verifies(SECRET_B, got.headers, got.body)

    async def test_delivery_survives_refused_500_and_timeout_exactly_once_in_order(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Connection refused, 500 and a timeout are retried; each event is 2xx'd once, in order."""
        stall = asyncio.Event()

        async def flaky(n: int, _id: str) -> int:
            if n == 1:
                return 500
            if n == 2:
                await stall.wait()
                return 503
            return 200

        receiver = Receiver(behaviour=flaky)  # not listening yet: connection refused
        cfg = make_config(redis_url, [endpoint("flaky", receiver.url, timeout_s=0.3)])
        feed = Feed(redis_client)
        district_of: dict[str, str] = {}
        async with running(cfg):
            for i in range(8):
                district = "a" if i % 3 else "b"
                district_of[await feed.legacy("teachers.updated", district)] = district
            connect = "clever_relay_webhook_failed_attempts_total"
            await eventually(lambda: _sample(connect, endpoint="flaky", status_class="connect") > 0)
            await receiver.start()
            await eventually(lambda: set(receiver.delivered()) == set(district_of))
            stall.set()
        await receiver.stop()
        delivered = receiver.delivered()
        assert Counter(delivered) == Counter(dict.fromkeys(district_of, 1))
        for district in ("a", "b"):
            expected = [i for i in sorted(district_of) if district_of[i] == district]
            assert _by_district(delivered, district_of, district) == expected
        assert _sample(connect, endpoint="flaky", status_class="5xx") == 1
        assert _sample(connect, endpoint="flaky", status_class="timeout") == 1

    async def test_delivery_failing_event_holds_back_only_its_district(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """While district a's first event fails, a's later events wait and b's flow."""
        broken = {"on": True}
        first: list[str] = []

        async def blocks_first(_n: int, msg_id: str) -> int:
            return 500 if broken["on"] and msg_id == first[0] else 200

        receiver = Receiver(behaviour=blocks_first)
        await receiver.start()
        cfg = make_config(redis_url, [endpoint("hold", receiver.url)])
        feed = Feed(redis_client)
        async with running(cfg):
            first.append(await feed.legacy("students.created", "a"))
            a_rest = [await feed.legacy("students.updated", "a") for _ in range(3)]
            b_all = [await feed.legacy("students.updated", "b") for _ in range(3)]
            await eventually(lambda: receiver.delivered() == b_all)
            await eventually(lambda: [r.id for r in receiver.received].count(first[0]) >= 3)
            assert receiver.delivered() == b_all
            broken["on"] = False
            await eventually(lambda: len(receiver.delivered()) == 7)
        await receiver.stop()
        assert receiver.delivered() == [*b_all, first[0], *a_rest]

    async def test_delivery_dead_letters_after_the_schedule_and_replay_delivers(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A receiver down past the schedule: events are dead-lettered, listed, then replayed."""
        up = {"on": False}

        async def down(_n: int, _id: str) -> int:
            return 200 if up["on"] else 500

        receiver = Receiver(behaviour=down)
        await receiver.start()
        cfg = make_config(
            redis_url, [endpoint("down", receiver.url, retry_schedule_s=[0.02, 0.02])]
        )
        feed = Feed(redis_client)
        dead_key = "t:webhooks:deadletter:down"
        async with running(cfg) as component:
            ids = [await feed.legacy("students.deleted", "d") for _ in range(3)]
            await eventually(lambda: _xlen_is(redis_client, dead_key, 3))
            listed = await admin.list_dead_letters(cfg, "down")
            assert [(d.id, d.attempts, d.reason, d.district) for d in listed] == [
                (i, 3, "http 500", "d") for i in ids
            ]
            assert len(receiver.received) == 9
            await component.workers[0].stats.refresh()
            assert component.status()["endpoints"]["down"]["dead_letters"] == 3
            up["on"] = True
            assert await admin.replay(cfg, "down") == 3
            await eventually(lambda: receiver.delivered() == ids)
        await receiver.stop()
        assert await redis_client.xlen(dead_key) == 0
        assert _sample("clever_relay_webhook_dead_letters_total", endpoint="down") == 3

    async def test_purge_drops_dead_letters(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """purge deletes the dead letters and says how many there were."""
        cfg = make_config(redis_url, [endpoint("gone", "http://127.0.0.1:9/")])
        await redis_client.xadd("t:webhooks:deadletter:gone", {"id": "x"})
        await redis_client.xadd("t:webhooks:deadletter:gone", {"id": "y"})
        assert await admin.purge(cfg, "gone") == 2
        assert await admin.list_dead_letters(cfg, "gone") == []

    async def test_delivery_slow_endpoint_does_not_slow_another(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Every event reaches the fast endpoint while the slow one has not answered once."""
        release = asyncio.Event()

        async def stuck(_n: int, _id: str) -> int:
            await release.wait()
            return 200

        slow, fast = Receiver(behaviour=stuck), Receiver()
        await slow.start()
        await fast.start()
        cfg = make_config(
            redis_url,
            [endpoint("slow", slow.url, timeout_s=30.0), endpoint("fast", fast.url)],
        )
        feed = Feed(redis_client)
        async with running(cfg):
            ids = [await feed.legacy("students.updated", f"d{i % 5}") for i in range(20)]
            await eventually(lambda: sorted(fast.delivered()) == ids)
            assert slow.received == []
            release.set()
            await eventually(lambda: sorted(slow.delivered()) == ids)
        await slow.stop()
        await fast.stop()

    async def test_delivery_cancelled_drain_cancels_attempts_in_flight(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A drain cut short by cancellation leaves no attempt running and no failure counted."""
        release = asyncio.Event()

        async def stuck(_n: int, _id: str) -> int:
            await release.wait()
            return 200

        receiver = Receiver(behaviour=stuck)
        await receiver.start()
        cfg = make_config(redis_url, [endpoint("cut", receiver.url, timeout_s=30.0)])
        redis = create_redis(cfg.redis)
        session = aiohttp.ClientSession()
        component = WebhookDelivery(
            cfg=cfg,
            redis=redis,
            session=session,
            health=Health(),
            keys=Keys(cfg.redis.prefix),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(component.run(stop))
        worker = component.workers[0]
        await eventually(lambda: groups_ready(redis, list(worker.sources), worker.keys.group))
        await Feed(redis_client).legacy("students.created", "d1")
        await eventually(lambda: receiver.arrivals == 1)
        attempt = worker.inflight["d1"]
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await eventually(attempt.done)
        assert attempt.cancelled()
        assert await redis_client.llen("t:webhooks:queue:cut:d1") == 1
        assert await redis_client.hget("t:webhooks:attempts:cut", "d1") is None
        release.set()
        await receiver.stop()
        await session.close()
        await redis.aclose()

    async def test_delivery_dead_letters_an_undecodable_queue_head(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A queue item that does not decode is dead-lettered and its district moves on."""
        receiver = Receiver()
        await receiver.start()
        cfg = make_config(redis_url, [endpoint("bad", receiver.url)])
        async with running(cfg):
            await redis_client.rpush("t:webhooks:queue:bad:d1", b"\xc1garbage")
            await redis_client.zadd("t:webhooks:due:bad", {"d1": 0})
            event_id = await Feed(redis_client).legacy("students.created", "d1")
            await eventually(lambda: receiver.delivered() == [event_id])
        await receiver.stop()
        [dead] = await admin.list_dead_letters(cfg, "bad")
        assert (dead.district, dead.data, dead.reason) == (
            "d1",
            b"\xc1garbage",
            "undecodable queue item",
        )

    async def test_delivery_410_disables_until_replay_reenables(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A 410 Gone stops delivery (status says so); replay re-enables and it resumes."""
        gone = {"on": True}

        async def maybe_gone(_n: int, _id: str) -> int:
            return 410 if gone["on"] else 200

        receiver = Receiver(behaviour=maybe_gone)
        await receiver.start()
        cfg = make_config(redis_url, [endpoint("g410", receiver.url)])
        feed = Feed(redis_client)
        async with running(cfg) as component:
            ids = [await feed.legacy("teachers.created", "d") for _ in range(2)]
            await eventually(lambda: component.status()["endpoints"]["g410"]["state"] == "disabled")
            assert component.status()["endpoints"]["g410"]["disabled_reason"] == (
                f"http 410 for event {ids[0]}"
            )
            assert _sample("clever_relay_webhook_endpoint_enabled", endpoint="g410") == 0
            assert len(receiver.received) == 1
            gone["on"] = False
            assert await admin.replay(cfg, "g410") == 0
            await eventually(lambda: receiver.delivered() == ids)
        await receiver.stop()

    async def test_delivery_orders_v3_and_legacy_streams_and_filters(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Across streams a district's events arrive in emission order; filters drop the rest."""
        receiver = Receiver()
        await receiver.start()
        topics = ["students.*", "teachers.*", "users.*"]
        cfg = make_config(
            redis_url, [endpoint("mixed", receiver.url, topics=topics, districts=["d"])]
        )
        e1, e2 = "1700000000000-0", "1700000000000-1"
        entries = [
            ("t:events", e1, "users.created", "a" * 24),
            ("t:events", e2, "users.updated", "b" * 24),
            ("t:events", "1700000000001-0", "users.updated", "c" * 24),
            # The translator's output, teachers first, to prove the merge reorders streams.
            ("t:legacy:teachers", "*", "teachers.created", legacy_id(e1, 1)),
            ("t:legacy:teachers", "*", "teachers.updated", legacy_id(e2, 0)),
            ("t:legacy:students", "*", "students.created", legacy_id(e1, 0)),
            ("t:legacy:contacts", "*", "contacts.created", legacy_id(e2, 1)),
        ]
        async with running(cfg):
            async with redis_client.pipeline(transaction=True) as pipe:
                for stream, entry, event_type, event_id in entries:
                    district = "other" if event_id == "c" * 24 else "d"
                    fields = {
                        "id": event_id,
                        "type": event_type,
                        "district": district,
                        "data": "{}",
                    }
                    _ = pipe.xadd(stream, fields, id=entry)  # type: ignore[arg-type]  # str fields
                await pipe.execute()
            expected = ["a" * 24, legacy_id(e1, 0), legacy_id(e1, 1), "b" * 24, legacy_id(e2, 0)]
            await eventually(lambda: receiver.delivered() == expected)
            await asyncio.sleep(0.2)  # nothing else may arrive: a negative, so a short wait
        await receiver.stop()
        assert receiver.delivered() == expected

    async def test_status_reports_backlog_and_oldest_age(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """While a district is stuck, status and gauges show its backlog and retrying head."""
        receiver = Receiver(behaviour=_always_500)
        await receiver.start()
        cfg = make_config(redis_url, [endpoint("stuck", receiver.url, retry_schedule_s=[60])])
        feed = Feed(redis_client)
        async with running(cfg, stats_interval_s=0.05) as component:
            for _ in range(3):
                await feed.legacy("students.updated", "d")
            await eventually(lambda: component.status()["endpoints"]["stuck"]["backlog"] == 3)
            await eventually(
                lambda: component.status()["endpoints"]["stuck"]["retrying_districts"] == 1
            )
            view = component.status()["endpoints"]["stuck"]
        await receiver.stop()
        assert view["url"] == receiver.url
        assert view["state"] == "enabled"
        assert view["dead_letters"] == 0
        assert view["last_failure"]["reason"] == "http 500"
        assert view["oldest_undelivered_age_s"] > 0
        assert _sample("clever_relay_webhook_backlog", endpoint="stuck") == 3
        assert _sample("clever_relay_webhook_retry_backlog", endpoint="stuck") == 1


async def _always_500(_n: int, _id: str) -> int:
    return 500


async def _xlen_is(redis: aioredis.Redis, key: str, n: int) -> bool:
    return bool(await redis.xlen(key) == n)
