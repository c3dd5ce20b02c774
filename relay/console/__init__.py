"""The operator's web console at ``/console`` on the ops server (docs/console.md).

Server-rendered pages (Jinja2, autoescaped) with one small script and one stylesheet shipped in
this package: no build step, nothing fetched from elsewhere, so it works offline. It is off
unless ``[http] console_token_env`` or ``console_token_file`` is set, and it is served by the
``http`` component on the ops server's host and port. Data is read from Redis through small
functions (:mod:`relay.console.fleet`, :mod:`relay.console.pipeline`); actions call the same
functions as the CLI (:mod:`relay.console.actions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from relay.console import views
from relay.console.auth import COOKIE, ConsoleAuth, Session
from relay.console.pipeline import RateMeter
from relay.logs import register_secret

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Page = Callable[["Console", web.Request, Session], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PublicPage = Callable[["Console", web.Request], Awaitable[web.StreamResponse]]


def _when(value: float | None) -> str:
    import time

    if value is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _pretty(payload: str) -> str:
    import json

    try:
        return json.dumps(json.loads(payload), indent=2, sort_keys=True)
    except ValueError:
        return payload


class Console:
    """What the console's handlers share: config, Redis, sign-in, templates, rate samples."""

    def __init__(self, *, cfg: Config, redis: aioredis.Redis, token: str) -> None:
        register_secret(token)
        self.cfg = cfg
        self.redis = redis
        self.auth = ConsoleAuth(token)
        self.meter = RateMeter()
        self.configured = [d.id for d in cfg.clever.districts]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(when=_when, duration=_duration, pretty=_pretty)

    def public(self, page: PublicPage) -> Handler:
        """Wrap a page anyone may see (the sign-in form): security headers only."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._headers(page(self, request))

        return handler

    def guard(self, page: Page, *, post: bool = False) -> Handler:
        """Wrap a page: session required, CSRF token checked on POST, security headers."""

        async def handler(request: web.Request) -> web.StreamResponse:
            session = self.auth.session(request.cookies.get(COOKIE))
            if session is None:
                raise web.HTTPSeeOther("/console/login")
            if post:
                form = await request.post()
                if not self.auth.csrf_ok(session, str(form.get("csrf", ""))):
                    raise web.HTTPForbidden(text="missing or wrong CSRF token")
            return await self._headers(page(self, request, session))

        return handler

    @staticmethod
    async def _headers(pending: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        try:
            response = await pending
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response


def add_console(app: web.Application, *, cfg: Config, redis: aioredis.Redis) -> None:
    """Serve the console on ``app`` when configured (reads the token now: a missing one fails
    start-up with the key named, like any other secret)."""
    if not cfg.http.console_enabled:
        return
    console = Console(cfg=cfg, redis=redis, token=cfg.http.resolve_console_token())
    router = app.router

    async def home(_: Console, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/console/fleet")

    router.add_get("/console", console.public(home))
    router.add_get("/console/login", console.public(views.login_form))
    router.add_post("/console/login", console.public(views.login))
    router.add_post("/console/logout", console.guard(views.logout, post=True))
    router.add_get("/console/fleet", console.guard(views.fleet_page))
    router.add_get("/console/pipeline", console.guard(views.pipeline_page))
    router.add_get("/console/deadletters", console.guard(views.letters_page))
    router.add_post("/console/deadletters/confirm", console.guard(views.confirm_letters, post=True))
    router.add_post("/console/deadletters/apply", console.guard(views.apply_letters, post=True))
    router.add_get("/console/webhooks", console.guard(views.webhooks_page))
    router.add_post("/console/webhooks/enable", console.guard(views.enable_endpoint, post=True))
    router.add_static("/console/static", HERE / "static")
