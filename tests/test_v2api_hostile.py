"""The v2 API under hostile or heavy use: odd ranges, bounded reads, a full house, JSON errors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from relay.config import validate
from relay.errors import ConfigError
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.readmodel.writer import ReadModelWriter, event_op
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.translate.rules import LegacyOut, encode_legacy_event
from relay.v2api.context import V2_KEY, Limiter
from relay.v2api.server import add_routes
from tests.test_poller import wait_for
from tests.test_v2api_events import CREATED, DISTRICT, EVENTS, KEY, PREFIX, SCHOOL_A, lid

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from aiohttp.test_utils import TestClient

ZERO = "000000000000000000000000"


async def make_client(
    redis: aioredis.Redis, aiohttp_client: Any, *, max_concurrent: int = 40
) -> TestClient[Any, Any]:
    """The ops app with the v2 routes and one key for ``DISTRICT``."""
    cfg = validate(
        {
            "relay": {"components": ["http", "v2api"]},
            "redis": {"prefix": PREFIX},
            "clever": {"districts": [{"id": DISTRICT, "token": "clever-token"}]},
            "v2api": {
                "clients": [{"name": "c", "district": DISTRICT, "token": KEY}],
                "max_concurrent_requests": max_concurrent,
            },
        }
    )
    health = Health()
    status = StatusSource(cfg=cfg, redis=redis, health=health)
    app = build_app(cfg=cfg, redis=redis, health=health, status=status)
    add_routes(app, cfg=cfg, redis=redis, keys=Keys(PREFIX))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def get(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    """GET with the district's key: status and JSON body."""
    async with client.get(path, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        return resp.status, await resp.json()


async def write(redis: aioredis.Redis, events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Write legacy events as the translator does, in one Lua call."""
    ops = []
    for n, (rt, etype, obj) in enumerate(events, start=1):
        legacy = LegacyOut(rt, etype, msgspec.Raw(msgspec.json.encode(obj)))
        data = encode_legacy_event(legacy, lid(n), CREATED)
        ops.append(event_op(legacy, prefix=PREFIX, district=DISTRICT, legacy_id=lid(n), data=data))
    await ReadModelWriter(redis).apply(ops)


class TestRanges:
    """An empty or inverted cursor range is the client's mistake: 400, never 500."""

    @pytest.mark.parametrize(
        "query",
        [
            f"ending_before={ZERO}",
            f"ending_before={ZERO}&record_type=students",
            f"ending_before={ZERO}&school={SCHOOL_A}",
            f"ending_before={ZERO}&school={SCHOOL_A}&record_type=students",
        ],
    )
    @pytest.mark.parametrize("version", ["v2.0", "v2.1"])
    async def test_ending_before_the_first_possible_id_is_400(
        self, redis_client: aioredis.Redis, aiohttp_client: Any, version: str, query: str
    ) -> None:
        """``ending_before=000…0`` names a range nothing can be in: 400 with Clever's body."""
        client = await make_client(redis_client, aiohttp_client)
        await write(redis_client, EVENTS)
        assert await get(client, f"/{version}/events?{query}") == (
            400,
            {"message": "ending_before: no event id comes before it"},
        )

    @pytest.mark.parametrize("query", ["", "&record_type=students", f"&school={SCHOOL_A}"])
    async def test_inverted_range_is_400(
        self, redis_client: aioredis.Redis, aiohttp_client: Any, query: str
    ) -> None:
        """``starting_after`` at or past ``ending_before`` is refused, whatever the filters."""
        client = await make_client(redis_client, aiohttp_client)
        await write(redis_client, EVENTS)
        refused = (400, {"message": "starting_after must come before ending_before"})
        for after, before in ((lid(3), lid(2)), (lid(3), lid(3))):
            path = f"/v2.1/events?starting_after={after}&ending_before={before}{query}"
            assert await get(client, path) == refused


def _stream_reads(stats: dict[str, Any]) -> dict[str, int]:
    """Calls of the stream-range commands in an ``INFO commandstats`` reply."""
    return {
        name: int(stats[f"cmdstat_{name}"]["calls"])
        for name in ("xrange", "xrevrange")
        if f"cmdstat_{name}" in stats
    }


class TestBoundedReads:
    """A filtered page reads one page per index stream, never a school's whole index."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("", {"xrange": 1}),
            ("record_type=teachers", {"xrange": 3}),
            ("record_type=teachers&record_type=terms", {"xrange": 4}),
            (f"school={SCHOOL_A}", {"xrange": 3}),
            (f"school={SCHOOL_A}&record_type=teachers", {"xrange": 3}),
            (f"school={SCHOOL_A}&record_type=teachers&record_type=terms", {"xrange": 4}),
            (
                f"school={SCHOOL_A}&record_type=teachers&ending_before=last",
                {"xrange": 2, "xrevrange": 1},
            ),
        ],
    )
    async def test_filtered_page_costs_a_fixed_number_of_reads(
        self,
        redis_client: aioredis.Redis,
        aiohttp_client: Any,
        query: str,
        expected: dict[str, int],
    ) -> None:
        """With 2,500 students before the school's one teacher event, ``limit=1`` still costs
        one range read per index (the floor, the index, the event), counted by Redis itself."""
        client = await make_client(redis_client, aiohttp_client)
        students = [
            ("students", "students.created", {"id": f"s{n}", "school": SCHOOL_A})
            for n in range(2500)
        ]
        teacher = ("teachers", "teachers.created", {"id": "t1", "schools": [SCHOOL_A]})
        await write(redis_client, [*students, teacher])
        await get(client, "/v2.1/events?limit=1")  # loads the page scripts
        await redis_client.config_resetstat()
        status, body = await get(client, f"/v2.1/events?limit=1&{query}")
        stats = await redis_client.info("commandstats")
        assert status == 200
        assert len(body["data"]) == 1
        assert _stream_reads(stats) == expected


class TestJsonErrors:
    """aiohttp's own 404/405 answers come back as JSON in the API's shapes."""

    async def test_unknown_paths_and_methods_answer_json(
        self, redis_client: aioredis.Redis, aiohttp_client: Any
    ) -> None:
        """``{"message"}`` under /v2.*, ``{"error"}`` on the ops paths, with ``Allow`` on 405."""
        client = await make_client(redis_client, aiohttp_client)
        seen = []
        for method, path in (
            ("GET", "/v2.1/nothing"),
            ("GET", "/v2.0/events/a/b/c"),
            ("PUT", "/v2.1/events"),
            ("GET", "/nothing"),
            ("POST", "/readyz"),
        ):
            async with client.request(method, path) as resp:
                seen.append(
                    (resp.status, resp.content_type, await resp.json(), resp.headers.get("Allow"))
                )
        assert seen == [
            (404, "application/json", {"message": "not found"}, None),
            (404, "application/json", {"message": "not found"}, None),
            (405, "application/json", {"message": "method not allowed"}, "GET,HEAD"),
            (404, "application/json", {"error": "not found"}, None),
            (405, "application/json", {"error": "method not allowed"}, "GET,HEAD"),
        ]


class TestBulkheads:
    """The API's Redis budget: requests beyond the bound are refused, pools wait."""

    async def test_requests_beyond_the_bound_get_503_without_touching_redis(
        self, redis_client: aioredis.Redis, aiohttp_client: Any
    ) -> None:
        """With one request stuck in Redis (writes paused), the next is answered 503 with
        ``Retry-After`` at once; after the pause both kinds succeed again."""
        client = await make_client(redis_client, aiohttp_client, max_concurrent=1)
        await write(redis_client, EVENTS)
        limiter: Limiter = client.app[V2_KEY].limiter
        # Page scripts are not read-only, so a WRITE pause holds them (and only them).
        await redis_client.client_pause(120_000, all=False)
        try:
            stuck = asyncio.create_task(get(client, "/v2.1/events?limit=2"))

            async def entered() -> bool:
                return limiter.in_flight == 1

            await wait_for(entered, timeout_s=60)
            async with client.get(
                "/v2.1/events", headers={"Authorization": f"Bearer {KEY}"}
            ) as resp:
                refused = (resp.status, resp.headers.get("Retry-After"), await resp.json())
            assert not stuck.done()
        finally:
            await redis_client.client_unpause()
        assert refused == (503, "1", {"message": "too many requests in flight, retry later"})
        assert (await stuck)[0] == 200
        assert (await get(client, "/v2.1/events?limit=1"))[0] == 200
        assert (limiter.in_flight, limiter.refused) == (0, 1)

    async def test_an_exhausted_pool_waits_instead_of_failing(self, redis_url: str) -> None:
        """Six blocking reads on a pool of two all finish once data arrives: the pool makes
        commands wait for a connection rather than raise."""
        cfg = validate({"relay": {"components": ["http"]}, "redis": {"url": redis_url}})
        small = create_redis(cfg.redis, max_connections=2)
        other = create_redis(cfg.redis)
        try:

            async def pop() -> Any:
                return await small.blpop(["pool:q"], timeout=60)

            waiting = [asyncio.create_task(pop()) for _ in range(6)]
            await other.rpush("pool:q", *[str(n) for n in range(6)])
            got = await asyncio.wait_for(asyncio.gather(*waiting), timeout=60)
        finally:
            await small.aclose()
            await other.aclose()
        assert sorted(value for _, value in got) == [str(n).encode() for n in range(6)]

    def test_the_request_bound_must_leave_api_connections_spare(self) -> None:
        """check-config refuses a v2 request bound that could use every API connection."""
        with pytest.raises(ConfigError) as info:
            validate(
                {
                    "relay": {"components": ["http"]},
                    "redis": {"api_max_connections": 20},
                    "v2api": {"max_concurrent_requests": 20},
                }
            )
        assert info.value.problems == [
            "v2api.max_concurrent_requests: must be below redis.api_max_connections (20)"
        ]
