"""``GET /v2.0/events``, ``/v2.1/events`` and ``/v2.1/events/{id}`` from the district's index.

Without filters a page is one ``XRANGE`` on ``<base>:events`` (entry ids mirror legacy ids, see
:func:`relay.redis.keys.stream_id`). ``record_type`` merges the per-type index streams,
``school`` reads that school's index stream, and both merge the school's per-type index
streams (each read at most ``limit`` entries, in one pipeline); then the events' JSON comes
from ``<base>:events`` by entry id. No request reads more than a page's worth per index, so
none scans the district or a school.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.config import ALL_RECORD_TYPES
from relay.errors import PageError
from relay.readmodel.entry_ids import stream_id
from relay.v2api.paging import (
    LAST,
    Page,
    error_response,
    joined_response,
    links,
    one_response,
    parse_page,
    self_link,
)

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from aiohttp import web

    from relay.redis.keys import ReadModelKeys
    from relay.v2api.context import V2Context
    from relay.v2api.page_scripts import Joined

RECORD_TYPES: tuple[str, ...] = ALL_RECORD_TYPES
"""The ``record_type`` values v2 consumers may filter on: the legacy streams' record types."""
ALIASES = {"district_admins": "districtadmins", "school_admins": "schooladmins"}


def _sort_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _bounds(page: Page) -> tuple[str, str]:
    """``(lo, hi)`` for XRANGE from the page's legacy ids (exclusive)."""
    try:
        lo = "-" if page.starting_after is None else "(" + stream_id(page.starting_after)
        hi = "+"
        if page.ending_before is not None and page.ending_before != LAST:
            hi = "(" + stream_id(page.ending_before)
    except ValueError:
        raise PageError(400, "starting_after and ending_before must be event ids") from None
    if hi == "(0-0":
        raise PageError(400, "ending_before: no event id comes before it")
    if lo != "-" and hi != "+" and _sort_key(lo[1:]) >= _sort_key(hi[1:]):
        raise PageError(400, "starting_after must come before ending_before")
    return lo, hi


def _record_types(request: web.Request) -> frozenset[str] | None:
    """The requested record types (aliases resolved); None for all."""
    given = request.query.getall("record_type", [])
    if not given:
        return None
    types = frozenset(ALIASES.get(value, value) for value in given)
    unknown = sorted(types - set(RECORD_TYPES))
    if unknown:
        raise PageError(400, f"unknown record_type: {', '.join(unknown)}")
    return None if len(types) == len(RECORD_TYPES) else types


async def _range(
    redis: aioredis.Redis, key: str, lo: str, hi: str, count: int, *, backward: bool
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    # redis-py types stream replies loosely; without decode_responses they are bytes.
    entries: Any
    if backward:
        entries = await redis.xrevrange(key, hi, lo, count=count)
        entries.reverse()
    else:
        entries = await redis.xrange(key, lo, hi, count=count)
    return list(entries)


async def _floored(ctx: V2Context, rk: ReadModelKeys, lo: str) -> str:
    """``lo`` raised to the oldest event ``<base>:events`` still holds.

    Index streams are trimmed on their own (each by its own length), so their oldest entries
    can name events already trimmed from ``<base>:events``; a page of only those would come
    back empty, which a consumer takes for the end of the feed and never gets past.
    """
    first: Any = await ctx.redis.xrange(rk.events, "-", "+", count=1)
    if not first:
        return lo
    oldest: str = first[0][0].decode()
    if lo == "-" or _sort_key(lo[1:]) < _sort_key(oldest):
        return oldest
    return lo


async def _merged_ids(ctx: V2Context, page: Page, keys: list[str], lo: str, hi: str) -> list[str]:
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            if page.backward:
                _ = pipe.xrevrange(key, hi, lo, count=page.limit)
            else:
                _ = pipe.xrange(key, lo, hi, count=page.limit)
        replies = await pipe.execute()
    ids = sorted({eid.decode() for reply in replies for eid, _ in reply}, key=_sort_key)
    return ids[-page.limit :] if page.backward else ids[: page.limit]


async def _select(
    ctx: V2Context, rk: ReadModelKeys, page: Page, request: web.Request, prefix: str
) -> Joined:
    types = _record_types(request)
    school = request.query.get("school") or None
    lo, hi = _bounds(page)
    if school is not None or types is not None:
        lo = await _floored(ctx, rk, lo)
        if school is None:
            keys = [rk.events_of_type(t) for t in sorted(types or ())]
        elif types is None:
            keys = [rk.events_of_school(school)]
        else:
            keys = [rk.events_of_school_type(school, t) for t in sorted(types)]
        ids = await _merged_ids(ctx, page, keys, lo, hi)
        return await ctx.pages.events_by_id(key=rk.events, entry_ids=ids, uri_prefix=prefix)
    return await ctx.pages.events(
        key=rk.events, lo=lo, hi=hi, limit=page.limit, backward=page.backward, uri_prefix=prefix
    )


async def list_events(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """``GET /v2.x/events``: the district's legacy events, Clever's paging and envelope."""
    page = parse_page(request, ctx.default_limit)
    version = request.path.split("/")[1]
    joined = await _select(ctx, rk, page, request, f"/{version}/events/")
    return joined_response(joined.items, links(request, joined.first, joined.last))


async def get_event(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """``GET /v2.1/events/{id}``: one event, or 404."""
    event_id = request.match_info["id"]
    try:
        eid = stream_id(event_id)
    except ValueError:
        return error_response(404, f"event {event_id} not found")
    found: Any = await ctx.redis.xrange(rk.events, eid, eid, count=1)
    if not found:
        return error_response(404, f"event {event_id} not found")
    return one_response(found[0][1][b"data"], self_link(request))
