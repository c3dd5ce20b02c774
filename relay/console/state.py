"""What the console's handlers share (:class:`Console`): config, Redis, sign-in, templates.

The routes are added by :func:`relay.console.add_console`; the pages are in
:mod:`relay.console.views`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

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
                    raise web.HTTPForbidden(
                        text="missing or wrong CSRF token", headers=SECURITY_HEADERS
                    )
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
