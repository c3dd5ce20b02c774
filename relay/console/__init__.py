"""The operator's web console at ``/console`` on the ops server (docs/console.md).

Server-rendered pages (Jinja2, autoescaped) with one small script and one stylesheet shipped in
this package: no build step, nothing fetched from elsewhere, so it works offline. It is off
unless ``[http] console_token_env`` or ``console_token_file`` is set, and it is served by the
``http`` component on the ops server's host and port. Data is read from Redis through small
functions (:mod:`relay.console.fleet`, :mod:`relay.console.pipeline`); actions call the same
functions as the CLI (:mod:`relay.console.actions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from relay.console import views
from relay.console.state import HERE, Console

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config

__all__ = ["Console", "add_console"]


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
