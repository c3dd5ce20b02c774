"""The aiohttp application: Clever's v3 Events API behind auth, rate limit and faults.

Every route is served under ``/v3.0`` and ``/v3.1`` (same ids; v3.1 adds fields:
:mod:`relay.simulator.versions`). Request flow for ``/v3.x/*``: bearer token → district (401
``{"message"}`` otherwise) → the token's fixed window (429 with an empty body once spent) → one
fault draw → the handler → ``X-RateLimit-*`` headers on every authenticated answer. Data API
handlers live in ``dataapi.py``, the unauthenticated ``/_sim`` control endpoints in ``control.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from relay.simulator import control, dataapi, fleet, paging, versions
from relay.simulator._http import DISTRICT_KEY, district_of, json_error, parse_page
from relay.simulator.context import SIM_KEY, Simulator
from relay.simulator.faults import malform
from relay.simulator.feed import CursorLost, EventFilter
from relay.simulator.live import live_activity

if TYPE_CHECKING:
    from relay.simulator.options import SimOptions
    from relay.simulator.ratelimit import Verdict
    from relay.simulator.world import District, World

API_PREFIXES = tuple(f"/{version}/" for version in versions.VERSIONS)


async def list_events(request: web.Request) -> web.Response:
    """``GET /v3.0/events``."""
    sim, district = request.app[SIM_KEY], district_of(request)
    page = parse_page(request, sim.options.default_limit)
    if isinstance(page, web.Response):
        return page
    feed = district.feed
    lo = sim.first_visible(feed)
    flt = EventFilter(
        record_types=frozenset(request.query.getall("record_type", [])),
        school=request.query.get("school"),
    )
    positions: list[int] = []
    try:
        if page.starting_after is not None and sim.options.cursor_lost != "resume":
            feed.check_cursor(page.starting_after, lo=lo)
        positions = feed.select(page, flt, lo=lo)
    except CursorLost as exc:
        sim.stats.fault("cursor_lost")
        if sim.options.cursor_lost == "404":
            state = "expired" if exc.expired else "not found"
            return json_error(404, f"event {exc.event_id} {state}")
    items = feed.page_items(positions, versions.version_of(request.path))
    sim.stats.events_served += len(items)
    sim.stats.token(district.id).events_served += len(items)
    first = feed.ids[positions[0]] if positions else None
    last = feed.ids[positions[-1]] if positions else None
    links = paging.links(request.path, list(request.query.items()), first, last)
    return web.Response(body=paging.envelope(items, links), content_type="application/json")


async def get_event(request: web.Request) -> web.Response:
    """``GET /v3.0/events/{id}``."""
    sim, district = request.app[SIM_KEY], district_of(request)
    event_id = request.match_info["id"]
    body = district.feed.get(
        event_id, lo=sim.first_visible(district.feed), version=versions.version_of(request.path)
    )
    if body is None:
        return json_error(404, f"event {event_id} not found")
    links = msgspec.json.encode([{"rel": "self", "uri": request.path}])
    return web.Response(
        body=b'{"data":' + body + b',"links":' + links + b"}", content_type="application/json"
    )


def _too_many(verdict: Verdict) -> web.Response:
    return web.Response(status=429, headers=verdict.headers())


async def _drop(request: web.Request) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def _truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
    body = bytes(response.body) if isinstance(response.body, (bytes, bytearray)) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream


async def _faulted(
    request: web.Request,
    sim: Simulator,
    fault: str | None,
    handler: Handler,
    headers: dict[str, str],
) -> web.StreamResponse:
    if fault is not None:
        sim.stats.fault(fault)
    if fault in ("500", "502", "503"):
        failed = json_error(int(fault), "simulated Clever failure")
        failed.headers.update(headers)
        return failed
    if fault == "drop":
        return await _drop(request)
    response = await handler(request)
    response.headers.update(headers)
    if not isinstance(response, web.Response) or response.status != 200:
        return response
    if fault == "malformed" and isinstance(response.body, (bytes, bytearray)):
        response.body = malform(bytes(response.body))
    elif fault == "truncate":
        return await _truncated(request, response)
    return response


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, rate limit, faults and stats around every ``/v3.0`` and ``/v3.1`` request."""
    if not request.path.startswith(API_PREFIXES):
        return await handler(request)
    sim = request.app[SIM_KEY]
    sim.stats.requests += 1
    auth = request.headers.get("Authorization", "")
    district = sim.world.by_token(auth[7:]) if auth[:7].lower() == "bearer " else None
    if district is None:
        sim.stats.responses_401 += 1
        sim.stats.status(401)
        return json_error(401, "invalid or missing bearer token")
    request[DISTRICT_KEY] = district
    response = await _guarded(request, sim, district, handler)
    sim.stats.status(response.status)
    return response


async def _guarded(
    request: web.Request, sim: Simulator, district: District, handler: Handler
) -> web.StreamResponse:
    tstats = sim.stats.token(district.id)
    tstats.requests += 1
    verdict = sim.limiter.hit(district.id)
    if not verdict.allowed:
        sim.stats.responses_429_unforced += 1
        tstats.responses_429_unforced += 1
        return _too_many(verdict)
    if not sim.injector.applies(district.id):
        return await _faulted(request, sim, None, handler, verdict.headers())
    fault = sim.injector.draw()
    delay_s = sim.injector.delay_s()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    if fault == "429":
        sim.stats.responses_429_forced += 1
        tstats.responses_429_forced += 1
        sim.stats.fault("429")
        return _too_many(dataclasses.replace(verdict, allowed=False, remaining=0))
    return await _faulted(request, sim, fault, handler, verdict.headers())


def build_app(world: World, options: SimOptions) -> web.Application:
    """The simulator's aiohttp app (serve it with ``AppRunner`` or ``running_simulator``)."""
    app = web.Application(middlewares=[api_middleware])
    app[SIM_KEY] = Simulator(world, options)
    for version in versions.VERSIONS:
        app.router.add_get(f"/{version}/events", list_events)
        app.router.add_get(f"/{version}/events/{{id}}", get_event)
    dataapi.add_routes(app)
    control.add_routes(app)
    fleet.add_routes(app)
    if options.live_rate > 0:
        app.cleanup_ctx.append(live_activity)
    return app
