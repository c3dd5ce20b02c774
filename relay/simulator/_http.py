"""Request helpers shared by the API handlers: Clever's error body, paging parameters, district."""

from __future__ import annotations

import msgspec
from aiohttp import web

from relay.simulator import paging
from relay.simulator._ids import is_object_id
from relay.simulator.world import District

DISTRICT_KEY: web.RequestKey[District] = web.RequestKey("sim_district", District)


def json_error(status: int, message: str) -> web.Response:
    """Clever's error body: ``{"message": ...}``."""
    return web.Response(
        status=status,
        body=msgspec.json.encode({"message": message}),
        content_type="application/json",
    )


def district_of(request: web.Request) -> District:
    """The district the request's token belongs to (set by the middleware)."""
    return request[DISTRICT_KEY]


def parse_page(request: web.Request, default_limit: int) -> paging.PageRequest | web.Response:
    """The validated paging parameters, or the 400/413 response Clever would give."""
    query = request.query
    try:
        limit = int(query.get("limit", default_limit))
    except ValueError:
        return json_error(400, "limit must be an integer")
    if limit > paging.MAX_LIMIT:
        return json_error(413, f"limit may not exceed {paging.MAX_LIMIT}")
    if limit < 1:
        return json_error(400, "limit must be at least 1")
    after, before = query.get("starting_after"), query.get("ending_before")
    if after is not None and not is_object_id(after):
        return json_error(400, "starting_after must be an object id")
    if before is not None and before != "last" and not is_object_id(before):
        return json_error(400, "ending_before must be an object id or 'last'")
    return paging.PageRequest(limit=limit, starting_after=after, ending_before=before)
