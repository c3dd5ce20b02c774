"""Tests of the web console over HTTP (pytest-aiohttp) with a real Redis: access, pages, actions."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from relay.config import Config, validate
from relay.console import fleet, pipeline
from relay.errors import ConfigError
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.redis.keys import EndpointKeys, Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from aiohttp.test_utils import TestClient
    from pytest_aiohttp import AiohttpClient

    Client = TestClient[web.Request, web.Application]

TOKEN = "console-token-value-1234-0123456789abcdef"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Ng=="
DATA = '{"id":"65f1a2b3c4d5e6f7a8b9c0d1","type":"users.updated","data":{"object":{"id":"u1"}}}'


def make_config(redis_url: str, *, console: bool = True) -> Config:
    """Two static districts, one webhook endpoint with a credential in its URL, the console."""
    http: dict[str, Any] = {"host": "127.0.0.1", "port": 8080}
    if console:
        http["console_token_env"] = "CONSOLE_TEST_TOKEN"
    return validate(
        {
            "relay": {"instance": "console-test"},
            "clever": {"districts": [{"id": "d1", "token": "t1"}, {"id": "d2", "token": "t2"}]},
            "redis": {"url": redis_url, "prefix": "cons"},
            "legacy": {"record_types": ["students"]},
            "http": http,
            "webhooks": {
                "endpoints": [
                    {
                        "name": "hook",
                        "url": "https://user:pw@hooks.example/in?key=abc",
                        "topics": ["*"],
                        "secret": WEBHOOK_SECRET,
                    }
                ]
            },
        }
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Client:
    """The ops app with the console on the session Redis."""
    monkeypatch.setenv("CONSOLE_TEST_TOKEN", TOKEN)
    cfg = make_config("redis://127.0.0.1:6379/0")
    health = Health()
    source = StatusSource(cfg=cfg, redis=redis_client, health=health)
    app = build_app(cfg=cfg, redis=redis_client, health=health, status=source)
    result: Client = await aiohttp_client(app)
    return result


async def sign_in(client: Client, who: str = "ada") -> str:
    """Sign in and return the CSRF token of the session."""
    response = await client.post("/console/login", data={"token": TOKEN, "who": who})
    assert response.status == 200
    return csrf(await response.text())


def csrf(page: str) -> str:
    """The CSRF token embedded in a page's forms."""
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match is not None
    return match.group(1)


async def translator_letter(redis: aioredis.Redis, n: int) -> str:
    """Append a translator dead letter shaped like the translator's."""
    entry: Any = await redis.xadd(
        "cons:deadletter",
        {
            "stage": "translator",
            "reason": "missing_legacy_id",
            "detail": "no legacy_id",
            "district": "d1",
            "source": f"65f1a2b3c4d5e6f7a8b9c0d{n}",
            "entry": "1-0",
            "data": DATA,
        },
    )
    return str(entry.decode())


class TestAccess:
    async def test_console_off_without_a_token_setting(
        self, aiohttp_client: AiohttpClient, redis_client: aioredis.Redis
    ) -> None:
        """Without console_token_env/_file, /console does not exist."""
        cfg = make_config("redis://127.0.0.1:6379/0", console=False)
        health = Health()
        app = build_app(
            cfg=cfg,
            redis=redis_client,
            health=health,
            status=StatusSource(cfg=cfg, redis=redis_client, health=health),
        )
        client = await aiohttp_client(app)
        assert (await client.get("/console/login")).status == 404

    async def test_pages_redirect_to_sign_in(self, client: Client) -> None:
        """Every page needs a session: without one the browser is sent to the sign-in form."""
        for path in ("/console/fleet", "/console/pipeline", "/console/deadletters"):
            response = await client.get(path, allow_redirects=False)
            assert (response.status, response.headers["Location"]) == (303, "/console/login")

    async def test_wrong_token_is_refused(self, client: Client) -> None:
        """A wrong token gets 401, no cookie, and a failed-login log line without the token."""
        with capture_logs() as logs:
            response = await client.post("/console/login", data={"token": "nope", "who": "x"})
        assert response.status == 401
        assert "relay_console" not in response.cookies
        assert [e["event"] for e in logs] == ["console_login_failed"]

    async def test_sign_in_sets_a_strict_httponly_cookie(self, client: Client) -> None:
        """The session cookie is HttpOnly, SameSite=Strict and scoped to /console."""
        response = await client.post(
            "/console/login", data={"token": TOKEN, "who": "ada"}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/console/fleet")
        morsel = response.cookies["relay_console"]
        assert (morsel["httponly"], morsel["samesite"], morsel["path"]) == (
            True,
            "Strict",
            "/console",
        )

    async def test_post_without_csrf_is_forbidden(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """A state-changing POST without the session's CSRF token changes nothing (403)."""
        await sign_in(client)
        entry = await translator_letter(redis_client, 1)
        response = await client.post(
            "/console/deadletters/apply",
            data={"source": "relay", "action": "purge", "scope": "all", "csrf": "0" * 64},
        )
        assert response.status == 403
        assert await redis_client.xlen("cons:deadletter") == 1
        assert entry
        # The refusal keeps the console's security headers.
        assert (response.headers["X-Frame-Options"], response.headers["Cache-Control"]) == (
            "DENY",
            "no-store",
        )

    async def test_cookie_is_secure_behind_a_tls_proxy(self, client: Client) -> None:
        """With ``X-Forwarded-Proto: https`` (a TLS-terminating proxy) the cookie is Secure."""
        response = await client.post(
            "/console/login",
            data={"token": TOKEN, "who": "ada"},
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
        )
        assert response.cookies["relay_console"]["secure"] is True

    async def test_pages_show_no_secret(self, client: Client) -> None:
        """No page shows the console token, a district token, a webhook secret or URL credential."""
        await sign_in(client)
        for path in ("fleet", "pipeline", "deadletters", "webhooks"):
            page = await (await client.get(f"/console/{path}")).text()
            assert [s for s in (TOKEN, WEBHOOK_SECRET, "user:pw", "key=abc") if s in page] == []
        webhooks = await (await client.get("/console/webhooks")).text()
        assert "https://hooks.example/in" in webhooks

    async def test_security_headers(self, client: Client) -> None:
        """Pages forbid framing and any script or style from elsewhere."""
        response = await client.get("/console/login")
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert response.headers["X-Frame-Options"] == "DENY"


class TestFleet:
    async def test_fleet_phase_derived_from_poll_state(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """Without a phase field, healthy=1 reads polling and an auth error unauthorized."""
        await redis_client.hset("cons:pollstate:d1", mapping={"healthy": "1"})
        await redis_client.hset("cons:pollstate:d2", mapping={"healthy": "0", "last_error": "auth"})
        rows = await fleet.read_fleet(redis_client, "cons", ["d1", "d2"], time.time())
        assert [(r.id, r.source, r.phase) for r in rows] == [
            ("d1", "static", "polling"),
            ("d2", "static", "unauthorized"),
        ]

    async def test_fleet_pages_five_thousand_districts(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """5,000 districts (2 static, the rest discovered) page 50 at a time."""
        keys = Keys("cons")
        pipe = redis_client.pipeline(transaction=False)
        for i in range(4998):
            phase = "onboarding" if i % 10 == 0 else "polling"
            _ = pipe.sadd(keys.fleet_known, f"x{i:04d}")
            _ = pipe.hset(keys.fleet(f"x{i:04d}"), mapping={"phase": phase})
        await pipe.execute()
        await sign_in(client)
        page = await (await client.get("/console/fleet?phase=onboarding&page=2")).text()
        assert "5000 district(s)" in page
        assert "500 matching" in page
        assert "page 2 of 10" in page
        assert len(re.findall(r'<tr data-district="', page)) == 50
        assert 'data-district="x0500"' in page

    def test_select_sorts_missing_values_last(self) -> None:
        """Sorting by lag puts districts without a lag last in both directions."""
        rows = [
            fleet.District(
                id=name,
                source="static",
                phase="polling",
                progress=None,
                lag_s=lag,
                last_event=None,
                last_success=None,
                last_error=None,
                last_error_at=None,
                replica=None,
            )
            for name, lag in (("a", 5.0), ("b", None), ("c", 50.0))
        ]
        up = fleet.select(rows, sort="lag")
        down = fleet.select(rows, sort="lag", descending=True)
        assert [r.id for r in up.rows] == ["a", "c", "b"]
        assert [r.id for r in down.rows] == ["c", "a", "b"]


class TestPipeline:
    def test_rate_meter_rate_between_views(self) -> None:
        """No rate on the first view; then entries added over the time between views."""
        now = [100.0]
        meter = pipeline.RateMeter(clock=lambda: now[0], window_s=300)
        assert meter.observe("s", 1000) is None
        now[0] = 110.0
        assert meter.observe("s", 1250) == 25.0
        now[0] = 500.0
        assert meter.observe("s", 1300) is None

    async def test_pipeline_page_shows_streams_group_and_redis(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """The pipeline page lists stream lengths, the translator group and the eviction policy."""
        await redis_client.xadd("cons:events", {"id": "1"})
        await redis_client.xgroup_create("cons:events", "legacy-translator", id="0")
        await sign_in(client)
        page = await (await client.get("/console/pipeline")).text()
        assert re.findall(r'<td class="mono">(cons:[a-z:]+)</td><td>(\d+)</td>', page) == [
            ("cons:events", "1"),
            ("cons:deadletter", "0"),
            ("cons:legacy:students", "0"),
        ]
        assert "<td>1</td><td>0</td>" in page  # lag 1, pending 0
        assert "noeviction" in page


class TestDeadLetters:
    async def test_replay_one_after_confirmation(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """Replay asks first, then re-appends the event to the events stream and logs who."""
        token = await sign_in(client, who="ada")
        entry = await translator_letter(redis_client, 1)
        confirm = await client.post(
            "/console/deadletters/confirm",
            data={"csrf": token, "source": "relay", "row": f"replay:{entry}"},
        )
        assert "Confirm: replay 1 dead letter(s)" in await confirm.text()
        assert await redis_client.xlen("cons:deadletter") == 1
        with capture_logs() as logs:
            done = await client.post(
                "/console/deadletters/apply",
                data={
                    "csrf": token,
                    "source": "relay",
                    "action": "replay",
                    "scope": "selected",
                    "entries": entry,
                },
            )
        assert "1 dead letter(s) replayed" in await done.text()
        events: Any = await redis_client.xrange("cons:events")
        assert [fields for _, fields in events] == [
            {
                b"id": b"65f1a2b3c4d5e6f7a8b9c0d1",
                b"type": b"users.updated",
                b"district": b"d1",
                b"data": DATA.encode(),
            }
        ]
        assert await redis_client.xlen("cons:deadletter") == 0
        [action] = [e for e in logs if e["event"] == "console_action"]
        assert {k: action[k] for k in ("who", "action", "source", "entries", "count")} == {
            "who": "ada",
            "action": "replay",
            "source": "relay",
            "entries": [entry],
            "count": 1,
        }

    async def test_purge_all_deletes_every_one(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """Purge all empties the stream."""
        token = await sign_in(client)
        for n in range(3):
            await translator_letter(redis_client, n)
        done = await client.post(
            "/console/deadletters/apply",
            data={"csrf": token, "source": "relay", "action": "purge", "scope": "all"},
        )
        assert "3 dead letter(s) purged" in await done.text()
        assert await redis_client.xlen("cons:deadletter") == 0

    async def test_webhook_dead_letter_purge_one_and_enable(
        self, client: Client, redis_client: aioredis.Redis
    ) -> None:
        """A webhook dead letter is listed with its reason and purged alone; re-enable works."""
        keys = EndpointKeys("cons", "hook")
        fields = {
            "id": "e1",
            "type": "students.updated",
            "district": "d1",
            "attempts": "7",
            "reason": "HTTP 500",
            "failed_at": "1718000000",
            "data": "{}",
            "stream": "cons:legacy:students",
            "entry": "1-0",
            "ms": "1",
        }
        first: Any = await redis_client.xadd(keys.deadletter, fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        await redis_client.xadd(keys.deadletter, fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        await redis_client.hset(keys.state, mapping={"disabled": "410 Gone", "disabled_at": "1"})
        token = await sign_in(client)
        page = await (await client.get("/console/deadletters?source=webhook:hook")).text()
        assert page.count("HTTP 500") == 2
        await client.post(
            "/console/deadletters/apply",
            data={
                "csrf": token,
                "source": "webhook:hook",
                "action": "purge",
                "scope": "selected",
                "entries": first.decode(),
            },
        )
        assert await redis_client.xlen(keys.deadletter) == 1
        webhooks = await (await client.get("/console/webhooks")).text()
        assert "disabled" in webhooks
        await client.post("/console/webhooks/enable", data={"csrf": token, "endpoint": "hook"})
        assert await redis_client.hgetall(keys.state) == {}


class TestConfig:
    def test_console_token_sources_are_exclusive(self) -> None:
        """Setting both console_token_env and console_token_file is a config error."""
        with pytest.raises(ConfigError) as err:
            validate(
                {
                    "relay": {"components": ["http"]},
                    "http": {"console_token_env": "A", "console_token_file": "/x"},
                }
            )
        assert err.value.problems == ["http: set console_token_env or console_token_file, not both"]

    def test_unset_console_token_fails_naming_the_key(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unset variable is reported with the key, not a value."""
        monkeypatch.delenv("CONSOLE_TEST_TOKEN", raising=False)
        cfg = make_config("redis://127.0.0.1:6379/0")
        with pytest.raises(ConfigError) as err:
            cfg.http.resolve_console_token()
        assert err.value.problems == [
            "http.console_token_env: variable CONSOLE_TEST_TOKEN is unset"
        ]

    def test_short_console_token_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A console token under 32 characters is a config problem (it guards purges)."""
        monkeypatch.setenv("CONSOLE_TEST_TOKEN", "admin")
        cfg = make_config("redis://127.0.0.1:6379/0")
        with pytest.raises(ConfigError) as err:
            cfg.http.resolve_console_token()
        assert err.value.problems == ["http: console token too short (5 characters, at least 32)"]
