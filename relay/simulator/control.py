"""Unauthenticated control endpoints under ``/_sim`` for tests, the demo and benchmarks.

``GET /_sim/stats`` (``POST /_sim/stats/reset``), ``GET|POST /_sim/faults`` (a partial update,
returns the switches now in force), ``POST /_sim/events`` (append exact or generated events),
``GET /_sim/districts`` (adding, disconnecting and rotating districts:
:mod:`relay.simulator.fleet`). Only ever bind the simulator to loopback: these need no token.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from relay.simulator._http import json_error
from relay.simulator.context import SIM_KEY, Stats
from relay.simulator.faults import FaultsPatch
from relay.simulator.world import BadEvent


class AppendRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /_sim/events``: exact ``events`` and/or ``generate`` n activity events."""

    district: str
    events: list[dict[str, Any]] = []
    generate: int = 0


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(value), content_type="application/json"
    )


async def get_stats(request: web.Request) -> web.Response:
    """Request and fault counters."""
    return _json(request.app[SIM_KEY].stats)


async def reset_stats(request: web.Request) -> web.Response:
    """Zero every counter."""
    sim = request.app[SIM_KEY]
    sim.stats = Stats()
    return _json(sim.stats)


async def get_faults(request: web.Request) -> web.Response:
    """The fault switches in force."""
    return _json(request.app[SIM_KEY].injector.current())


async def post_faults(request: web.Request) -> web.Response:
    """Change some fault switches; returns all of them."""
    try:
        patch = msgspec.json.decode(await request.read(), type=FaultsPatch)
    except msgspec.DecodeError as exc:
        return json_error(400, str(exc))
    return _json(request.app[SIM_KEY].injector.update(patch))


async def post_events(request: web.Request) -> web.Response:
    """Append events to a district's feed; returns their ids."""
    sim = request.app[SIM_KEY]
    try:
        body = msgspec.json.decode(await request.read(), type=AppendRequest)
        district = sim.world.district(body.district)
    except msgspec.DecodeError as exc:
        return json_error(400, str(exc))
    except KeyError:
        return json_error(404, f"no district {body.district}")
    ids: list[str] = []
    try:
        ids.extend(district.add_event(event) for event in body.events)
    except BadEvent as exc:
        return json_error(400, f"{exc} (appended {len(ids)} before it)")
    ids.extend(district.generate(body.generate))
    return _json({"ids": ids, "last": district.feed.last_id})


async def get_districts(request: web.Request) -> web.Response:
    """Every district with its token and event count."""
    world = request.app[SIM_KEY].world
    return _json(
        [
            {
                "id": d.id,
                "token": d.token,
                "name": d.name,
                "events": len(d.feed),
                "last_event": d.feed.last_id,
                "authorized": d.authorized,
            }
            for d in world.districts
        ]
    )


def add_routes(app: web.Application) -> None:
    """Register the ``/_sim`` routes."""
    app.router.add_get("/_sim/stats", get_stats)
    app.router.add_post("/_sim/stats/reset", reset_stats)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", post_faults)
    app.router.add_post("/_sim/events", post_events)
    app.router.add_get("/_sim/districts", get_districts)
