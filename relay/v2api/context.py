"""What every v2 handler needs, kept under one typed ``web.AppKey``, and the auth wrapper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from relay.logs import get_logger
from relay.v2api.keys import ReadModelKeys
from relay.v2api.paging import PageError, error_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import redis.asyncio as aioredis

    from relay.v2api.auth import Authenticator
    from relay.v2api.pages import PageScripts

log = get_logger("v2api")


@dataclass(frozen=True, slots=True)
class V2Context:
    """The Redis client, key prefix, default page size, the key checker and page scripts."""

    redis: aioredis.Redis
    prefix: str
    default_limit: int
    auth: Authenticator
    pages: PageScripts

    def keys(self, district: str) -> ReadModelKeys:
        """The read-model keys of ``district``."""
        return ReadModelKeys(self.prefix, district)


V2_KEY = web.AppKey("v2api", V2Context)


def guarded(
    handler: Callable[[web.Request, V2Context, ReadModelKeys], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: 401 without a valid key, the district's keys otherwise; 400/413 from
    :class:`~relay.v2api.paging.PageError`."""

    async def wrapped(request: web.Request) -> web.Response:
        ctx = request.app[V2_KEY]
        district = ctx.auth.district(request.headers.get("Authorization"))
        if district is None:
            return error_response(401, "invalid or missing API key")
        try:
            return await handler(request, ctx, ctx.keys(district))
        except PageError as exc:
            return error_response(exc.status, exc.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
