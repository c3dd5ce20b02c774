"""The token list client against a real HTTP server, and the fleet scripts against real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from relay.errors import CleverError, DiscoveryAuthError
from relay.health import Health
from relay.poller.fleet.registry import Registry
from relay.poller.fleet.tokens import TokensClient
from relay.translator.consumer import Translator
from tests.fleet_support import KEYS
from tests.test_translator_helpers import (
    DISTRICT_A,
    drained,
    event,
    eventually,
    legacy_streams,
    object_id,
    publish,
    student,
    test_cfg,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import redis.asyncio as aioredis


def _item(district: str, token: str, owner_type: str = "district") -> dict[str, Any]:
    return {
        "id": f"t-{district}",
        "created": "2026-01-01T00:00:00.000Z",
        "owner": {"type": owner_type, "id": district},
        "access_token": token,
        "scopes": ["read:students"],
    }


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Any], Any]]:
    """Serve one handler for ``/oauth/tokens`` on a free port; yields a starter."""
    runners: list[web.AppRunner] = []

    async def start(handler: Any) -> str:
        app = web.Application()
        app.router.add_get("/oauth/tokens", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def _read(base_url: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as session:
        client = TokensClient(
            session=session,
            oauth_base_url=base_url,
            client_id="app",
            client_secret="s3cr3t",
            timeout_s=5.0,
        )
        assert "s3cr3t" not in repr(client)
        found = await client.districts()
    return {d: t.token for d, t in found.items()}


class TestTokensClient:
    async def test_follows_relative_and_absolute_next_links(self, serve: Any) -> None:
        """Three pages (relative, then absolute next link) give every district once."""
        base = ""

        async def handler(request: web.Request) -> web.Response:
            assert request.headers["Authorization"] == "Basic YXBwOnMzY3IzdA=="
            page = request.query.get("page", "1")
            data, nxt = {
                "1": ([_item("d1", "t1")], "/oauth/tokens?owner_type=district&page=2"),
                "2": ([_item("d2", "t2")], f"{base}/oauth/tokens?owner_type=district&page=3"),
                "3": ([_item("d3", "t3"), _item("u9", "x", owner_type="user")], None),
            }[page]
            links = [{"rel": "next", "uri": nxt}] if nxt else []
            return web.json_response({"data": data, "links": links})

        base = await serve(handler)
        assert await _read(base) == {"d1": "t1", "d2": "t2", "d3": "t3"}

    async def test_a_next_link_with_another_scheme_is_not_followed(self, serve: Any) -> None:
        """A next link to the same host under another scheme never gets the credentials."""
        base = ""

        async def handler(request: web.Request) -> web.Response:
            if request.query.get("page") == "2":
                return web.json_response({"data": [_item("d2", "t2")], "links": []})
            other = base.replace("http://", "https://", 1)
            links = [{"rel": "next", "uri": f"{other}/oauth/tokens?page=2"}]
            return web.json_response({"data": [_item("d1", "t1")], "links": links})

        base = await serve(handler)
        assert await _read(base) == {"d1": "t1"}

    async def test_a_next_link_that_loops_ends_the_walk(self, serve: Any) -> None:
        """A next link pointing back at the same page stops instead of looping forever."""

        async def handler(request: web.Request) -> web.Response:
            links = [{"rel": "next", "uri": "/oauth/tokens?owner_type=district"}]
            return web.json_response({"data": [_item("d1", "t1")], "links": links})

        assert await _read(await serve(handler)) == {"d1": "t1"}

    @pytest.mark.parametrize(
        ("status", "body", "kind"),
        [(500, b"{}", "5xx"), (200, b"not json", "malformed"), (404, b"{}", "4xx")],
    )
    async def test_failures_are_transient_errors(
        self, serve: Any, status: int, body: bytes, kind: str
    ) -> None:
        """5xx, an unreadable body and other 4xx answers are retryable errors of their kind."""

        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=status, body=body, content_type="application/json")

        with pytest.raises(CleverError) as err:
            await _read(await serve(handler))
        assert err.value.kind == kind

    @pytest.mark.parametrize("status", [401, 403])
    async def test_refused_credentials(self, serve: Any, status: int) -> None:
        """401 and 403 mean the app's client id or secret were refused; no secret in the text."""

        async def handler(request: web.Request) -> web.Response:
            return web.json_response({"message": "no"}, status=status)

        with pytest.raises(DiscoveryAuthError) as err:
            await _read(await serve(handler))
        assert str(err.value) == f"Clever answered {status} to the app's client id and secret"


class TestRegistry:
    async def test_removal_is_written_once_and_a_stale_read_cannot_undo_it(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Two replicas report the removal: one entry; a read begun before it keeps it removed."""
        registry = Registry(redis_client, KEYS, events_maxlen=1000)
        before = time.time() - 5
        assert await registry.seen(
            ["d1"], initial="onboarding", read_started=before, retention_s=60
        )
        await redis_client.hset(KEYS.fleet("d1"), "onboarded_at", "1")
        await redis_client.set(KEYS.cursor("d1"), "6b0000000000000000000001")
        firsts = [await registry.remove("d1", "gone"), await registry.remove("d1", "gone")]
        stale = await registry.seen(
            ["d1"], initial="onboarding", read_started=before, retention_s=60
        )
        fresh = await registry.seen(
            ["d1"], initial="onboarding", read_started=time.time() + 1, retention_s=60
        )
        entries: Any = await redis_client.xrange(KEYS.events)
        assert firsts == [True, False]
        assert (stale, fresh) == ({"d1": "removed"}, {"d1": "polling"})
        assert [(f[b"type"], f[b"id"]) for _, f in entries] == [
            (b"relay.district_removed", b"6b0000000000000000000001")
        ]
        assert json.loads(entries[0][1][b"data"])["cursor"] == "6b0000000000000000000001"

    async def test_return_after_retention_or_unfinished_onboarding_onboards_again(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Back after retention (or before onboarding ended): onboarding, old cursor recorded."""
        registry = Registry(redis_client, KEYS, events_maxlen=1000)
        for district, onboarded in (("late", True), ("early", False)):
            await registry.seen([district], initial="onboarding", read_started=0.0, retention_s=60)
            if onboarded:
                await redis_client.hset(KEYS.fleet(district), "onboarded_at", "1")
            await redis_client.set(KEYS.cursor(district), "6b0000000000000000000002")
            await registry.remove(district, "gone")
        await redis_client.hset(KEYS.fleet("late"), "removed_at", repr(time.time() - 120))
        phases = await registry.seen(
            ["early", "late"], initial="onboarding", read_started=time.time() + 1, retention_s=60
        )
        assert phases == {"early": "onboarding", "late": "onboarding"}
        assert (await registry.read("late"))["old_cursor"] == "6b0000000000000000000002"
        assert (await registry.read("early"))["reonboard"] == "1"  # a stale sync's state goes
        assert await registry.known() == ["early", "late"]

    async def test_return_after_retention_takes_the_configured_phase_and_drops_the_cursor(
        self, redis_client: aioredis.Redis
    ) -> None:
        """With ``onboard`` latest/earliest a district back after retention skips the sync."""
        registry = Registry(redis_client, KEYS, events_maxlen=1000)
        await registry.seen(["d"], initial="polling", read_started=0.0, retention_s=60)
        await redis_client.set(KEYS.cursor("d"), "6b0000000000000000000004")
        await registry.remove("d", "gone")
        await redis_client.hset(KEYS.fleet("d"), "removed_at", repr(time.time() - 120))
        phases = await registry.seen(
            ["d"], initial="polling", read_started=time.time() + 1, retention_s=60
        )
        state = await registry.read("d")
        assert (phases, state["old_cursor"], state["reonboard"]) == (
            {"d": "polling"},
            "6b0000000000000000000004",
            "1",
        )

    async def test_a_new_district_with_a_cursor_polls_without_onboarding(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A district first seen with a stored cursor (it was static before) goes on polling."""
        registry = Registry(redis_client, KEYS, events_maxlen=1000)
        await redis_client.set(KEYS.cursor("was-static"), "6b0000000000000000000003")
        phases = await registry.seen(
            ["was-static", "new"], initial="onboarding", read_started=0.0, retention_s=60
        )
        assert phases == {"was-static": "polling", "new": "onboarding"}


class TestTranslatorSkipsFleetEntries:
    async def test_onboarded_and_removed_entries_are_acknowledged_not_translated(
        self, redis_url: str, redis_client: aioredis.Redis
    ) -> None:
        """Fleet control entries are acknowledged: no legacy event, no dead letter."""
        registry = Registry(redis_client, KEYS, events_maxlen=1000)
        await registry.seen([DISTRICT_A], initial="onboarding", read_started=0.0, retention_s=60)
        assert await registry.onboarded(DISTRICT_A, lease=None, cursor=None, counts={"students": 1})
        await publish(
            redis_client, DISTRICT_A, [event("users.created", student(object_id(9), DISTRICT_A))]
        )
        assert await registry.remove(DISTRICT_A, "gone")
        async with aiohttp.ClientSession() as session:
            translator = Translator(
                cfg=test_cfg(redis_url),
                redis=redis_client,
                session=session,
                health=Health(),
                keys=KEYS,
                consumer_name="t1",
            )
            stop = asyncio.Event()
            task = asyncio.create_task(translator.run(stop))
            try:
                await eventually(lambda: drained(redis_client), what="drained")
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
        streams = await legacy_streams(redis_client)
        assert [(k, [e["type"] for e in v]) for k, v in streams.items()] == [
            ("students", ["students.created"])
        ]
        assert await redis_client.xlen(KEYS.deadletter) == 0
        assert await redis_client.xlen(KEYS.events) == 3
