"""Tests of the /status report and the scrape-time gauges, read from a real Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
import redis.asyncio as aioredis

from relay import __version__
from relay.config import Config, validate
from relay.health import Health
from relay.metrics import REGISTRY
from relay.ops.status import StatusSource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from tests.redis_server import RedisServer

NOW = 1_700_000_100.0
TOKEN = "secret-token-value"
CURSOR = "65f1a2b3c4d5e6f7a8b9c0d1"


def make_config(redis_url: str, *, prefix: str = "st") -> Config:
    """A config with two districts (one with an inline token) and two legacy types."""
    return validate(
        {
            "relay": {"instance": "relay-test"},
            "clever": {
                "districts": [
                    {"id": "d1", "token": TOKEN},
                    {"id": "d2", "token_env": "CLEVER_TOKEN_D2"},
                ]
            },
            "redis": {"url": redis_url, "prefix": prefix},
            "legacy": {"record_types": ["students", "teachers"]},
        }
    )


def iso(unix_s: float) -> str:
    """Clever's timestamp format for a Unix time."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def seed(redis: aioredis.Redis, prefix: str = "st") -> str:
    """Write a known relay state; returns the id of the last entry the translator read."""
    await redis.set(f"{prefix}:cursor:d1", CURSOR)
    await redis.hset(
        f"{prefix}:pollstate:d1",
        mapping={
            "last_success": "1700000090.5",
            "last_error": "timeout: Clever did not answer in 30 s",
            "last_error_at": "1700000080.25",
            "healthy": "1",
            "newest_created": iso(NOW - 120),
        },
    )
    ids = [await redis.xadd(f"{prefix}:events", {"n": str(i)}) for i in range(5)]
    await redis.xgroup_create(f"{prefix}:events", "legacy-translator", id="0")
    await redis.xreadgroup("legacy-translator", "c1", {f"{prefix}:events": ">"}, count=2)
    await redis.xadd(f"{prefix}:deadletter", {"reason": "x"})
    last = ids[1]
    return last.decode() if isinstance(last, bytes) else last


def gauge(name: str, **labels: str) -> float | None:
    """The current value of one sample of the relay's registry."""
    value: float | None = REGISTRY.get_sample_value(name, labels)
    return value


@pytest.fixture
async def down_redis(
    redis_factory: Callable[..., RedisServer],
) -> AsyncIterator[aioredis.Redis]:
    """A client whose server has been killed."""
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url)
    server.kill()
    yield client
    await client.aclose()


class TestStatusSource:
    """The report reads districts, streams and the translator group fresh from Redis."""

    async def test_status_source_reports_whole_document(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A known Redis state produces exactly the expected report."""
        last_read = await seed(redis_client)
        health = Health()
        health.set_warning("redis_persistence", "off")
        source = StatusSource(
            cfg=make_config(redis_url), redis=redis_client, health=health, clock=lambda: NOW
        )
        report = msgspec.to_builtins(await source.report())
        assert report == {
            "instance": "relay-test",
            "version": __version__,
            "components": ["poller", "translator", "http"],
            "component_status": {},
            "time": NOW,
            "ready": True,
            "draining": False,
            "reasons": [],
            "stuck": [],
            "loops": {},
            "redis": {
                "reachable": True,
                "error": None,
                "problems": {},
                "warnings": {"redis_persistence": "off"},
            },
            "districts": [
                {
                    "id": "d1",
                    "cursor": CURSOR,
                    "healthy": True,
                    "last_success": 1700000090.5,
                    "last_error": "timeout: Clever did not answer in 30 s",
                    "last_error_at": 1700000080.25,
                    "newest_created": iso(NOW - 120),
                    "lag_s": 120.0,
                    "source": "static",
                    "phase": "polling",
                    "onboarding": None,
                },
                {
                    "id": "d2",
                    "cursor": None,
                    "healthy": None,
                    "last_success": None,
                    "last_error": None,
                    "last_error_at": None,
                    "newest_created": None,
                    "lag_s": None,
                    "source": "static",
                    "phase": "polling",
                    "onboarding": None,
                },
            ],
            "streams": {
                "st:events": 5,
                "st:deadletter": 1,
                "st:legacy:students": 0,
                "st:legacy:teachers": 0,
            },
            "translator": {
                "name": "legacy-translator",
                "exists": True,
                "consumers": 1,
                "pending": 2,
                "lag": 3,
                "last_delivered_id": last_read,
            },
            "district_summary": {
                "total": 2,
                "healthy": 1,
                "unhealthy": 0,
                "unknown": 1,
                "shown": 2,
                "lag_max_s": 120.0,
                "leases_by_replica": {},
            },
        }
        assert TOKEN not in msgspec.json.encode(report).decode()

    async def test_status_source_reports_missing_group_as_all_lag(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Without the translator group, every entry of the events stream counts as lag."""
        for i in range(4):
            await redis_client.xadd("st:events", {"n": str(i)})
        source = StatusSource(cfg=make_config(redis_url), redis=redis_client, health=Health())
        report = await source.report()
        assert msgspec.to_builtins(report.translator) == {
            "name": "legacy-translator",
            "exists": False,
            "consumers": 0,
            "pending": 0,
            "lag": 4,
            "last_delivered_id": None,
        }

    async def test_status_source_reports_missing_stream_as_empty(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Before anything was published there is no stream and no group: zero lag."""
        source = StatusSource(cfg=make_config(redis_url), redis=redis_client, health=Health())
        report = await source.report()
        assert report.translator is not None
        assert (report.translator.exists, report.translator.lag) == (False, 0)
        assert report.streams == {
            "st:events": 0,
            "st:deadletter": 0,
            "st:legacy:students": 0,
            "st:legacy:teachers": 0,
        }

    async def test_status_source_reports_unreachable_redis(
        self, down_redis: aioredis.Redis, redis_url: str
    ) -> None:
        """With Redis down the report still answers, saying so, with empty Redis parts."""
        health = Health()
        health.draining = True
        source = StatusSource(
            cfg=make_config(redis_url), redis=down_redis, health=health, clock=lambda: NOW
        )
        report = await source.report()
        assert (report.ready, report.reasons) == (
            False,
            ["draining", "redis unreachable: ConnectionError"],
        )
        assert msgspec.to_builtins(report.redis) == {
            "reachable": False,
            "error": "redis unreachable: ConnectionError",
            "problems": {},
            "warnings": {},
        }
        assert (report.districts, report.streams, report.translator) == ([], {}, None)
        assert gauge("clever_relay_redis_up") == 0.0

    async def test_status_source_reports_loops_and_problems(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Stale loops are listed as stuck, and Redis problems withhold readiness."""
        health = Health()
        health.register("poller:d1", 10.0)
        health.register("translator", 5.0)
        health.loops["translator"].last_tick = time.monotonic() - 60
        health.set_problem("redis_eviction", "maxmemory-policy is allkeys-lru")
        source = StatusSource(cfg=make_config(redis_url), redis=redis_client, health=health)
        report = await source.report()
        assert report.stuck == ["translator"]
        assert sorted(report.loops) == ["poller:d1", "translator"]
        assert report.loops["translator"].deadline_s == 5.0
        assert 60.0 <= report.loops["translator"].age_s < 70.0
        assert (report.ready, report.reasons) == (
            False,
            ["redis_eviction: maxmemory-policy is allkeys-lru"],
        )

    async def test_status_source_tolerates_malformed_poll_state(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Unparseable numbers and timestamps show as null instead of failing the report."""
        await redis_client.hset(
            "st:pollstate:d1",
            mapping={"last_success": "soon", "healthy": "yes", "newest_created": "yesterday"},
        )
        source = StatusSource(cfg=make_config(redis_url), redis=redis_client, health=Health())
        report = await source.report()
        d1 = report.districts[0]
        assert (d1.last_success, d1.healthy, d1.newest_created, d1.lag_s) == (
            None,
            None,
            "yesterday",
            None,
        )

    async def test_status_source_clamps_future_created_to_zero_lag(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A clock behind Clever's never shows a negative lag."""
        await redis_client.hset("st:pollstate:d1", "newest_created", iso(NOW + 30))
        source = StatusSource(
            cfg=make_config(redis_url), redis=redis_client, health=Health(), clock=lambda: NOW
        )
        report = await source.report()
        assert report.districts[0].lag_s == 0.0

    async def test_status_source_includes_component_status(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """What each running component says about itself is reported as given."""
        source = StatusSource(
            cfg=make_config(redis_url),
            redis=redis_client,
            health=Health(),
            components=lambda: {
                "poller:d1": {"state": "polling"},
                "translator": {"role": "standby"},
            },
        )
        report = await source.report()
        assert report.component_status == {
            "poller:d1": {"state": "polling"},
            "translator": {"role": "standby"},
        }


class TestStatusGauges:
    """Scrape-time gauges come from the same reading as the report."""

    async def test_status_gauges_refresh_from_redis(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """refresh_metrics sets lag, pending, district lag, stream lengths and redis_up."""
        await seed(redis_client, prefix="gz")
        await redis_client.set("gz:lease:d1", "1|relay-test|n1")  # this replica polls d1
        source = StatusSource(
            cfg=make_config(redis_url, prefix="gz"),
            redis=redis_client,
            health=Health(),
            clock=lambda: NOW,
        )
        await source.refresh_metrics()
        values: dict[str, Any] = {
            "lag": gauge("clever_relay_translator_group_lag"),
            "pending": gauge("clever_relay_translator_group_pending"),
            "d1": gauge("clever_relay_district_lag_seconds", district="d1"),
            "lag_max": gauge("clever_relay_district_lag_seconds_max"),
            "events": gauge("clever_relay_stream_length", stream="events"),
            "deadletter": gauge("clever_relay_stream_length", stream="deadletter"),
            "students": gauge("clever_relay_stream_length", stream="legacy:students"),
            "up": gauge("clever_relay_redis_up"),
            "build": gauge("clever_relay_build_info", version=__version__),
        }
        assert values == {
            "lag": 3.0,
            "pending": 2.0,
            "d1": 120.0,
            "lag_max": 120.0,
            "events": 5.0,
            "deadletter": 1.0,
            "students": 0.0,
            "up": 1.0,
            "build": 1.0,
        }

    async def test_status_gauges_survive_unreachable_redis(
        self, down_redis: aioredis.Redis, redis_url: str
    ) -> None:
        """refresh_metrics with Redis down does not raise and reports redis_up 0."""
        source = StatusSource(cfg=make_config(redis_url), redis=down_redis, health=Health())
        await source.refresh_metrics()
        assert gauge("clever_relay_redis_up") == 0.0


class TestStatusAtScale:
    """A fleet's /status summarizes; per-district series belong to the replica polling them."""

    async def test_status_shows_the_worst_districts_and_counts_all(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Of 30 districts, the unhealthy one and the 19 largest lags are shown, all counted."""
        ids = [f"d{i:02d}" for i in range(30)]
        cfg = validate(
            {
                "relay": {"instance": "me"},
                "clever": {"districts": [{"id": d, "token": "t"} for d in ids]},
                "redis": {"url": redis_url, "prefix": "ws"},
            }
        )
        for i, d in enumerate(ids):
            healthy = "0" if d == "d00" else "1"
            await redis_client.hset(
                f"ws:pollstate:{d}", mapping={"healthy": healthy, "newest_created": iso(NOW - i)}
            )
            await redis_client.set(f"ws:lease:{d}", f"1|{'me' if i % 2 else 'other'}|n")
        source = StatusSource(cfg=cfg, redis=redis_client, health=Health(), clock=lambda: NOW)
        report = await source.report()
        assert [d.id for d in report.districts] == ["d00", *(f"d{i}" for i in range(29, 10, -1))]
        assert msgspec.to_builtins(report.district_summary) == {
            "total": 30,
            "healthy": 29,
            "unhealthy": 1,
            "unknown": 0,
            "shown": 20,
            "lag_max_s": 29.0,
            "leases_by_replica": {"me": 15, "other": 15},
        }
        assert report.leases == {
            d.id: "me" if int(d.id[1:]) % 2 else "other" for d in report.districts
        }

    async def test_status_of_one_district_in_full(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """One district's stored state, lease holder and this replica's poller view."""
        await seed(redis_client)
        await redis_client.set("st:lease:d1", "3|relay-a|n")
        source = StatusSource(
            cfg=make_config(redis_url),
            redis=redis_client,
            health=Health(),
            detail=lambda d: {"phase": "caught_up"} if d == "d1" else None,
            clock=lambda: NOW,
        )
        detail = await source.district("d1")
        assert msgspec.to_builtins(detail) == {
            "district": {
                "id": "d1",
                "cursor": CURSOR,
                "healthy": True,
                "last_success": 1700000090.5,
                "last_error": "timeout: Clever did not answer in 30 s",
                "last_error_at": 1700000080.25,
                "newest_created": iso(NOW - 120),
                "lag_s": 120.0,
                "source": "static",
                "phase": "polling",
                "onboarding": None,
            },
            "lease_holder": "relay-a",
            "poller": {"phase": "caught_up"},
        }
        assert await source.district("nope") is None

    async def test_per_district_lag_only_for_districts_polled_here(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A district another replica polls has no lag series here; the maximum is global."""
        await seed(redis_client, prefix="pz")
        await redis_client.hset("pz:pollstate:d2", "newest_created", iso(NOW - 300))
        await redis_client.set("pz:lease:d1", "1|relay-test|n")
        await redis_client.set("pz:lease:d2", "1|relay-b|n")
        source = StatusSource(
            cfg=make_config(redis_url, prefix="pz"),
            redis=redis_client,
            health=Health(),
            clock=lambda: NOW,
        )
        await source.refresh_metrics()
        assert (
            gauge("clever_relay_district_lag_seconds", district="d1"),
            gauge("clever_relay_district_lag_seconds", district="d2"),
            gauge("clever_relay_district_lag_seconds_max"),
        ) == (120.0, None, 300.0)
