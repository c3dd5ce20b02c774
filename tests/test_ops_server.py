"""Tests of the ops HTTP endpoints (CONTRACT §7) with pytest-aiohttp and a real Redis."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from relay import metrics
from relay.config import Config, validate
from relay.health import Health
from relay.logs import register_secret
from relay.metrics import (
    DEAD_LETTERED,
    EVENTS_POLLED,
    EVENTS_PUBLISHED,
    EVENTS_TRANSLATED,
    POLL_ERRORS,
    RATE_LIMIT_WAIT,
    REGISTRY,
)
from relay.ops.server import OpsServer, build_app
from relay.ops.status import BUILD_INFO, REDIS_UP, STREAM_LENGTH, StatusReport, StatusSource
from relay.webhooks import metrics as webhook_metrics
from tests.redis_server import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from aiohttp.test_utils import TestClient
    from prometheus_client.metrics_core import Metric
    from pytest_aiohttp import AiohttpClient

    from tests.redis_server import RedisServer

    Client = TestClient[web.Request, web.Application]

TOKEN = "secret-token-value"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
ALLOWED_LABELS = {
    "district",
    "phase",
    "type",
    "stage",
    "reason",
    "kind",
    "component",
    "stream",
    "version",
    "endpoint",
    "status_class",
    "source",
    "note",
}


def make_config(redis_url: str, *, port: int = 8080) -> Config:
    """A config whose first district carries an inline token that must never leak."""
    return validate(
        {
            "relay": {"instance": "ops-test"},
            "clever": {
                "districts": [
                    {"id": "opsd1", "token": TOKEN},
                    {"id": "opsd2", "token_env": "CLEVER_TOKEN_OPSD2"},
                ]
            },
            "redis": {"url": redis_url, "prefix": "ops"},
            "legacy": {"record_types": ["students"]},
            "http": {"host": "127.0.0.1", "port": port},
        }
    )


async def serve(
    aiohttp_client: AiohttpClient,
    redis: aioredis.Redis,
    health: Health,
    *,
    status: StatusSource | None = None,
) -> Client:
    """Serve build_app over pytest-aiohttp's test client."""
    cfg = make_config("redis://127.0.0.1:6379/0")
    source = status or StatusSource(cfg=cfg, redis=redis, health=health)
    app = build_app(cfg=cfg, redis=redis, health=health, status=source)
    client: Client = await aiohttp_client(app)
    return client


async def body(response: aiohttp.ClientResponse) -> Any:
    """The decoded JSON body, checking the content type on the way."""
    assert response.content_type == "application/json"
    return msgspec.json.decode(await response.read())


def sample(families: dict[str, Any], name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` in parsed families."""
    for family in families.values():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                value: float = s.value
                return value
    return None


def registry_value(name: str, **labels: str) -> float:
    """The current value of a sample straight from the registry (0 when absent)."""
    value: float | None = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@pytest.fixture
def health() -> Health:
    """Fresh heartbeats and readiness state."""
    return Health()


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, redis_client: aioredis.Redis, health: Health
) -> Client:
    """A test client of the ops app on the session Redis."""
    return await serve(aiohttp_client, redis_client, health)


@pytest.fixture
async def down_client(
    aiohttp_client: AiohttpClient, redis_factory: Callable[..., RedisServer], health: Health
) -> AsyncIterator[Client]:
    """A test client of the ops app whose Redis has been killed."""
    server = redis_factory()
    redis = aioredis.Redis.from_url(server.url)
    server.kill()
    yield await serve(aiohttp_client, redis, health)
    await redis.aclose()


@pytest.fixture
async def silent_redis() -> AsyncIterator[aioredis.Redis]:
    """A client of a TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    yield redis
    await redis.aclose()
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


class TestHealthz:
    """/healthz is liveness: heartbeats only."""

    async def test_healthz_alive_when_loops_tick(self, client: Client, health: Health) -> None:
        """Fresh loops answer 200 alive."""
        health.register("poller:opsd1", 30.0)
        response = await client.get("/healthz")
        assert (response.status, await body(response)) == (200, {"alive": True})

    async def test_healthz_names_stuck_loops(self, client: Client, health: Health) -> None:
        """A loop past its deadline answers 503 naming it, and only it."""
        health.register("poller:opsd1", 30.0)
        health.register("translator", 5.0)
        health.loops["translator"].last_tick = time.monotonic() - 6
        response = await client.get("/healthz")
        assert (response.status, await body(response)) == (
            503,
            {"alive": False, "stuck": ["translator"]},
        )

    async def test_healthz_alive_while_draining_without_redis(
        self, down_client: Client, health: Health
    ) -> None:
        """Liveness ignores Redis and draining: restarting would not help either."""
        health.draining = True
        response = await down_client.get("/healthz")
        assert (response.status, await body(response)) == (200, {"alive": True})


class TestReadyz:
    """/readyz: Redis answers, not draining, no Redis check blocking."""

    async def test_readyz_ready(self, client: Client) -> None:
        """A reachable Redis and no problems answer 200 ready."""
        response = await client.get("/readyz")
        assert (response.status, await body(response)) == (200, {"ready": True})

    async def test_readyz_unready_while_draining(self, client: Client, health: Health) -> None:
        """Draining (after SIGTERM) answers 503 with the reason."""
        health.draining = True
        response = await client.get("/readyz")
        assert (response.status, await body(response)) == (
            503,
            {"ready": False, "reasons": ["draining"]},
        )

    async def test_readyz_unready_on_redis_problem(self, client: Client, health: Health) -> None:
        """A Redis check problem (evicting policy) answers 503 naming it; clearing it recovers."""
        health.set_problem("redis_eviction", "maxmemory-policy is allkeys-lru")
        response = await client.get("/readyz")
        assert (response.status, await body(response)) == (
            503,
            {"ready": False, "reasons": ["redis_eviction: maxmemory-policy is allkeys-lru"]},
        )
        health.set_problem("redis_eviction", None)
        assert (await client.get("/readyz")).status == 200

    async def test_readyz_unready_when_redis_down(
        self, down_client: Client, health: Health
    ) -> None:
        """A dead Redis answers 503 naming the failure, after any draining reason."""
        health.draining = True
        response = await down_client.get("/readyz")
        assert (response.status, await body(response)) == (
            503,
            {"ready": False, "reasons": ["draining", "redis unreachable: ConnectionError"]},
        )

    async def test_readyz_recovers_when_redis_restarts(
        self, aiohttp_client: AiohttpClient, redis_factory: Callable[..., RedisServer]
    ) -> None:
        """Readiness follows Redis going away and coming back, on every call."""
        server = redis_factory()
        redis = aioredis.Redis.from_url(server.url)
        try:
            client = await serve(aiohttp_client, redis, Health())
            assert (await client.get("/readyz")).status == 200
            server.kill()
            assert (await client.get("/readyz")).status == 503
            server.start()
            assert (await client.get("/readyz")).status == 200
        finally:
            await redis.aclose()

    async def test_readyz_bounds_a_silent_redis(
        self, aiohttp_client: AiohttpClient, silent_redis: aioredis.Redis
    ) -> None:
        """A Redis that accepts but never answers costs about one second, then 503."""
        client = await serve(aiohttp_client, silent_redis, Health())
        started = time.monotonic()
        response = await client.get("/readyz")
        assert time.monotonic() - started < 2.5
        assert (response.status, await body(response)) == (
            503,
            {"ready": False, "reasons": ["redis unreachable: TimeoutError"]},
        )


class TestMetrics:
    """/metrics: Prometheus text with conventional names and Redis-derived gauges."""

    async def scrape(self, client: Client) -> dict[str, Any]:
        """GET /metrics and parse it with prometheus-client's own parser."""
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
        assert TOKEN not in text
        return {f.name: f for f in text_string_to_metric_families(text)}

    async def test_metrics_after_a_known_run(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """Counters moved by a run and gauges read from Redis show exactly the run's values."""
        before = {
            "polled": registry_value("clever_relay_events_polled_total", district="opsd1"),
            "errors": registry_value(
                "clever_relay_poll_errors_total", district="opsd1", kind="timeout"
            ),
        }
        EVENTS_POLLED.labels("opsd1").inc(7)
        EVENTS_PUBLISHED.labels("opsd1").inc(7)
        EVENTS_TRANSLATED.labels("students.created").inc(3)
        DEAD_LETTERED.labels("translate", "invalid_object").inc()
        POLL_ERRORS.labels("opsd1", "timeout").inc(2)
        RATE_LIMIT_WAIT.labels("opsd1").inc(1.5)
        for i in range(6):
            await redis_client.xadd("ops:events", {"n": str(i)})
        await redis_client.xgroup_create("ops:events", "legacy-translator", id="0")
        await redis_client.xreadgroup("legacy-translator", "c", {"ops:events": ">"}, count=4)
        await redis_client.hset("ops:pollstate:opsd1", "newest_created", "2000-01-01T00:00:00Z")
        await redis_client.set("ops:lease:opsd1", "1|ops-test|n")  # polled by this replica
        families = await self.scrape(client)
        assert sample(families, "clever_relay_events_polled_total", district="opsd1") == (
            before["polled"] + 7
        )
        assert sample(
            families, "clever_relay_poll_errors_total", district="opsd1", kind="timeout"
        ) == (before["errors"] + 2)
        gauges = {
            "lag": sample(families, "clever_relay_translator_group_lag"),
            "pending": sample(families, "clever_relay_translator_group_pending"),
            "events": sample(families, "clever_relay_stream_length", stream="events"),
            "up": sample(families, "clever_relay_redis_up"),
        }
        assert gauges == {"lag": 2.0, "pending": 4.0, "events": 6.0, "up": 1.0}
        district_lag = sample(families, "clever_relay_district_lag_seconds", district="opsd1")
        assert district_lag is not None
        assert district_lag > 24 * 365 * 86400
        assert sample(families, "clever_relay_district_lag_seconds_max") == district_lag

    async def test_metrics_follow_naming_conventions(self, client: Client) -> None:
        """Every family has the prefix, counters end in _total, and labels stay low-cardinality."""
        EVENTS_POLLED.labels("opsd1").inc(0)
        # Webhook metrics register on import; pull them in so the check does not depend on
        # which tests ran before this one.
        webhook_metrics.FAILED_ATTEMPTS.labels("opsd1-hook", "5xx").inc(0)
        families = await self.scrape(client)
        assert families
        for family in families.values():
            assert family.name.startswith("clever_relay_"), family.name
            for s in family.samples:
                if family.type == "counter":
                    assert s.name.endswith(("_total", "_created")), s.name
                assert set(s.labels) - {"le"} <= ALLOWED_LABELS, s.name

    async def test_metrics_answer_when_redis_down(self, down_client: Client) -> None:
        """A scrape with Redis down still answers, with clever_relay_redis_up 0."""
        families = await self.scrape(down_client)
        assert sample(families, "clever_relay_redis_up") == 0.0


class TestStatusEndpoint:
    """/status serves the StatusSource report as JSON, without secrets."""

    async def test_status_endpoint_serves_report(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """The JSON decodes as a StatusReport that names the districts but not their tokens."""
        await redis_client.set("ops:cursor:opsd1", "65f1a2b3c4d5e6f7a8b9c0d1")
        response = await client.get("/status")
        assert response.status == 200
        raw = await response.read()
        assert TOKEN.encode() not in raw
        report = msgspec.json.decode(raw, type=StatusReport)
        assert [(d.id, d.cursor) for d in report.districts] == [
            ("opsd1", "65f1a2b3c4d5e6f7a8b9c0d1"),
            ("opsd2", None),
        ]
        assert (report.instance, report.ready, report.streams) == (
            "ops-test",
            True,
            {"ops:events": 0, "ops:deadletter": 0, "ops:legacy:students": 0},
        )

    async def test_status_endpoint_shows_one_district_in_full(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """``?district=<id>`` answers that district's detail; an unknown id answers 404."""
        await redis_client.set("ops:cursor:opsd1", "65f1a2b3c4d5e6f7a8b9c0d1")
        response = await client.get("/status", params={"district": "opsd1"})
        document = await body(response)
        assert (response.status, document["district"]["cursor"], document["lease_holder"]) == (
            200,
            "65f1a2b3c4d5e6f7a8b9c0d1",
            None,
        )
        missing = await client.get("/status", params={"district": "nope"})
        assert (missing.status, await body(missing)) == (404, {"error": "no such district"})

    async def test_status_endpoint_answers_when_redis_down(self, down_client: Client) -> None:
        """With Redis down /status still answers 200, saying Redis is unreachable."""
        response = await down_client.get("/status")
        assert response.status == 200
        document = await body(response)
        assert (document["ready"], document["redis"]["reachable"]) == (False, False)

    async def test_status_endpoint_scrubs_secrets_components_echo(
        self, aiohttp_client: AiohttpClient, redis_client: aioredis.Redis
    ) -> None:
        """A registered secret a component puts in its status is redacted from the body."""
        register_secret(TOKEN)
        health = Health()
        cfg = make_config("redis://127.0.0.1:6379/0")
        status = StatusSource(
            cfg=cfg,
            redis=redis_client,
            health=health,
            components=lambda: {"poller:opsd1": {"last_error": f"401 for Bearer {TOKEN}"}},
        )
        client = await serve(aiohttp_client, redis_client, health, status=status)
        document = await body(await client.get("/status"))
        assert document["component_status"] == {
            "poller:opsd1": {"last_error": "401 for Bearer [REDACTED]"}
        }


class FailingStatus(StatusSource):
    """A status source that breaks, to exercise the error middleware."""

    async def report(self) -> StatusReport:
        """Fail the way an unexpected bug would."""
        raise RuntimeError("boom: internal detail")


class TestErrors:
    """Unexpected failures answer a bare 500, never a traceback."""

    async def test_errors_hide_internals(
        self, aiohttp_client: AiohttpClient, redis_client: aioredis.Redis
    ) -> None:
        """A failing handler answers 500 with a generic JSON body."""
        health = Health()
        cfg = make_config("redis://127.0.0.1:6379/0")
        status = FailingStatus(cfg=cfg, redis=redis_client, health=health)
        client = await serve(aiohttp_client, redis_client, health, status=status)
        response = await client.get("/status")
        assert (response.status, await body(response)) == (500, {"error": "internal error"})

    async def test_errors_under_v2_use_clevers_message_shape(
        self, aiohttp_client: AiohttpClient, redis_client: aioredis.Redis
    ) -> None:
        """A failing /v2.* handler answers 500 {"message": ...}, as Clever's InternalError."""
        health = Health()
        cfg = make_config("redis://127.0.0.1:6379/0")
        status = StatusSource(cfg=cfg, redis=redis_client, health=health)
        app = build_app(cfg=cfg, redis=redis_client, health=health, status=status)

        async def broken(request: web.Request) -> web.Response:
            raise RuntimeError("boom: internal detail")

        app.router.add_get("/v2.1/students", broken)
        client = await aiohttp_client(app)
        response = await client.get("/v2.1/students")
        assert (response.status, await body(response)) == (500, {"message": "internal error"})

    async def test_errors_unknown_path_is_404(self, client: Client) -> None:
        """Paths outside the four endpoints are plain 404s."""
        assert (await client.get("/nope")).status == 404


class TestOpsServer:
    """OpsServer runs the app with AppRunner on the configured host and port."""

    async def test_ops_server_serves_until_stopped(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """After start the endpoints answer on the configured port; after stop it is closed."""
        port = free_port()
        server = OpsServer(
            cfg=make_config(redis_url, port=port), redis=redis_client, health=Health()
        )
        assert server.port is None
        await server.start()
        try:
            assert server.port == port
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/readyz") as response,
            ):
                assert (response.status, await response.json()) == (200, {"ready": True})
        finally:
            await server.stop()
        assert server.port is None
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"http://127.0.0.1:{port}/healthz")

    async def test_ops_server_wraps_component_status_callable(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Given the service's status callable, /status reports what it returns."""
        port = free_port()
        server = OpsServer(
            cfg=make_config(redis_url, port=port),
            redis=redis_client,
            health=Health(),
            status=lambda: {"translator": {"role": "active"}},
        )
        await server.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/status") as response,
            ):
                document = await response.json()
        finally:
            await server.stop()
        assert document["component_status"] == {"translator": {"role": "active"}}

    async def test_ops_server_start_fails_on_taken_port(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A second server on a taken port raises OSError and leaves nothing running."""
        cfg = make_config(redis_url, port=free_port())
        first = OpsServer(cfg=cfg, redis=redis_client, health=Health())
        second = OpsServer(cfg=cfg, redis=redis_client, health=Health())
        await first.start()
        try:
            with pytest.raises(OSError):
                await second.start()
            assert second.port is None
        finally:
            await first.stop()
            await second.stop()


def core_metrics() -> list[Metric]:
    """The families of relay.metrics and the ops gauges (component packages document theirs)."""
    names = {c._name for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)}
    names |= {STREAM_LENGTH._name, REDIS_UP._name, BUILD_INFO._name}
    return [m for m in REGISTRY.collect() if m.name in names]


class TestOperationsDoc:
    """docs/operations.md documents exactly the metrics the relay exposes."""

    def test_operations_doc_documents_every_metric(self) -> None:
        """Every core metric family (relay.metrics and the ops gauges) is named in the runbook."""
        text = DOCS.read_text()
        names = {f"{m.name}_total" if m.type == "counter" else m.name for m in core_metrics()}
        assert len(names) >= 18
        assert sorted(n for n in names if f"`{n}`" not in text) == []

    def test_operations_doc_names_only_real_metrics(self) -> None:
        """Every metric the runbook (and its PromQL) mentions exists."""
        samples = {s.name for m in core_metrics() for s in m.samples}
        samples |= {f"{m.name}_total" if m.type == "counter" else m.name for m in core_metrics()}
        mentioned = set(re.findall(r"clever_relay_[a-z0-9_]+", DOCS.read_text()))
        assert sorted(mentioned - samples) == []

    async def entries(self, redis: aioredis.Redis, key: str) -> list[tuple[str, Any]]:
        """A stream's entries as (id, fields) with the id decoded."""
        raw: Any = await redis.xrange(key)
        return [(entry_id.decode(), fields) for entry_id, fields in raw]

    def lua(self, name: str) -> str:
        """The Lua script the runbook gives for ``name`` (the block after "with `name`:")."""
        text = DOCS.read_text()
        match = re.search(rf"with `{re.escape(name)}`:\n\n```lua\n(.*?)```", text, re.DOTALL)
        assert match is not None, name
        return match.group(1)

    async def dead_letter(self, redis: aioredis.Redis, stage: str, reason: str, n: int) -> str:
        """Append a dead letter shaped like the poller's or the translator's."""
        data = f'{{"id":"65f1a2b3c4d5e6f7a8b9c0d{n}","type":"users.updated"}}'
        if stage == "poller":
            fields = {"stage": stage, "reason": reason, "district": "d1", "raw": data, "id": ""}
        else:
            fields = {
                "stage": stage,
                "reason": reason,
                "detail": "no legacy_id",
                "district": "d1",
                "source": f"65f1a2b3c4d5e6f7a8b9c0d{n}",
                "entry": "1-0",
                "data": data,
            }
        entry_id = await redis.xadd("ops:deadletter", fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    async def test_operations_doc_replay_one_script(self, redis_client: aioredis.Redis) -> None:
        """The runbook's replay-one script moves a translator dead letter back to the events."""
        script = self.lua("replay-one.lua")
        entry = await self.dead_letter(redis_client, "translator", "missing_legacy_id", 1)
        poller = await self.dead_letter(redis_client, "poller", "invalid_event", 2)
        await redis_client.eval(script, 2, "ops:deadletter", "ops:events", entry)
        ((_, fields),) = await self.entries(redis_client, "ops:events")
        assert fields == {
            b"id": b"65f1a2b3c4d5e6f7a8b9c0d1",
            b"type": b"users.updated",
            b"district": b"d1",
            b"data": b'{"id":"65f1a2b3c4d5e6f7a8b9c0d1","type":"users.updated"}',
        }
        with pytest.raises(redis.exceptions.ResponseError, match="not a translator dead letter"):
            await redis_client.eval(script, 2, "ops:deadletter", "ops:events", poller)
        assert [e[0] for e in await self.entries(redis_client, "ops:deadletter")] == [poller]

    async def test_operations_doc_replay_reason_script(self, redis_client: aioredis.Redis) -> None:
        """The runbook's replay-reason script replays only translator entries of that reason."""
        await self.dead_letter(redis_client, "translator", "missing_legacy_id", 1)
        kept = await self.dead_letter(redis_client, "translator", "invalid_object", 2)
        await self.dead_letter(redis_client, "translator", "missing_legacy_id", 3)
        poller = await self.dead_letter(redis_client, "poller", "missing_legacy_id", 4)
        replayed = await redis_client.eval(
            self.lua("replay-reason.lua"),
            2,
            "ops:deadletter",
            "ops:events",
            "missing_legacy_id",
            "1000",
        )
        assert replayed == 2
        sources = [f[b"id"] for _, f in await self.entries(redis_client, "ops:events")]
        assert sources == [b"65f1a2b3c4d5e6f7a8b9c0d1", b"65f1a2b3c4d5e6f7a8b9c0d3"]
        assert [e[0] for e in await self.entries(redis_client, "ops:deadletter")] == [
            kept,
            poller,
        ]
