"""What every v2 handler needs, kept under one typed ``web.AppKey``, and the auth wrapper.

The wrapper also bounds the v2 requests in flight (``[v2api] max_concurrent_requests``): one
more is answered 503 with ``Retry-After`` at once, before it touches Redis, so a crowd of
clients queues on its own side and the API's Redis pool is never asked for more connections
than it has (see docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from relay.errors import PageError
from relay.logs import get_logger
from relay.redis.keys import Keys, ReadModelKeys
from relay.v2api.paging import error_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import redis.asyncio as aioredis

    from relay.v2api.auth import Authenticator
    from relay.v2api.page_scripts import PageScripts

log = get_logger("v2api")


class Limiter:
    """A count of requests in flight with a ceiling; full means answer 503, never wait."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0

    def try_enter(self) -> bool:
        """Take a slot if one is free (no await between test and increment: no race)."""
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Give the slot back."""
        self.in_flight -= 1


@dataclass(frozen=True, slots=True)
class V2Context:
    """The Redis client, key prefix, default page size, the key checker and page scripts."""

    redis: aioredis.Redis
    prefix: str
    default_limit: int
    auth: Authenticator
    pages: PageScripts
    limiter: Limiter = field(default_factory=lambda: Limiter(40, 1))
    partitions: int = 1
    """``[redis] partitions``: a district's read model lives in its partition."""

    def keys(self, district: str) -> ReadModelKeys:
        """The read-model keys of ``district`` (in its partition)."""
        return Keys(self.prefix, self.partitions).read_model(district)


V2_KEY = web.AppKey("v2api", V2Context)


def guarded(
    handler: Callable[[web.Request, V2Context, ReadModelKeys], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: 401 without a valid key, 503 when the process serves its maximum of
    requests, the district's keys otherwise; 400/413 from :class:`~relay.v2api.paging.PageError`."""

    async def wrapped(request: web.Request) -> web.Response:
        ctx = request.app[V2_KEY]
        district = ctx.auth.district(request.headers.get("Authorization"))
        if district is None:
            return error_response(401, "invalid or missing API key")
        limiter = ctx.limiter
        if not limiter.try_enter():
            response = error_response(503, "too many requests in flight, retry later")
            response.headers["Retry-After"] = str(limiter.retry_after_s)
            return response
        try:
            return await handler(request, ctx, ctx.keys(district))
        except PageError as exc:
            return error_response(exc.status, exc.message)
        finally:
            limiter.leave()

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
