"""Clever's v3 Data API lists and records, served from the district's current state.

``GET /v3.0/{users,schools,sections,courses,terms,districts}`` (and the same under ``/v3.1``,
with v3.1's fields: :mod:`relay.simulator.versions`) with the same paging as events
(``role`` filters users) and ``GET /v3.0/<type>/{id}``: what ``clever-relay sync`` and the
translator's look-ups read. The answer is always the state after every event so far, so a sync
taken at event E plus the events after E reproduce the live state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from relay.simulator import paging, versions
from relay.simulator._http import district_of, json_error, parse_page
from relay.simulator.context import SIM_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

    from relay.simulator.state import Store

LIST_TYPES = ("users", "schools", "sections", "courses", "terms", "districts")
ROLES = frozenset(("student", "teacher", "staff", "district_admin", "contact"))


def _store(request: web.Request) -> Store:
    return district_of(request).state[request.match_info["record_type"]]


async def list_records(request: web.Request) -> web.Response:
    """``GET /v3.0/<type>`` (``role=`` for users)."""
    page = parse_page(request, request.app[SIM_KEY].options.default_limit)
    if isinstance(page, web.Response):
        return page
    store = _store(request)
    role = request.query.get("role")
    match = None
    if role is not None:
        if role not in ROLES:
            return json_error(400, f"role must be one of {', '.join(sorted(ROLES))}")
        match = _has_role(store, role)
    positions = paging.select(store.ids, page, match=match)
    first = store.ids[positions[0]] if positions else None
    last = store.ids[positions[-1]] if positions else None
    links = paging.links(request.path, list(request.query.items()), first, last)
    return web.Response(
        body=paging.envelope(store.page_items(positions, versions.version_of(request.path)), links),
        content_type="application/json",
    )


def _has_role(store: Store, role: str) -> Callable[[int], bool]:
    ids, objects = store.ids, store.objects

    def match(i: int) -> bool:
        return bool((objects[ids[i]].get("roles") or {}).get(role))

    return match


async def get_record(request: web.Request) -> web.Response:
    """``GET /v3.0/<type>/{id}``: 404 ``{"message"}`` once deleted or never known."""
    record_id = request.match_info["id"]
    body = _store(request).encoded(record_id, versions.version_of(request.path))
    if body is None:
        return json_error(404, f"{request.match_info['record_type']} {record_id} not found")
    links = msgspec.json.encode([{"rel": "self", "uri": request.path}])
    return web.Response(
        body=b'{"data":' + body + b',"links":' + links + b"}", content_type="application/json"
    )


def add_routes(app: web.Application) -> None:
    """Register the Data API routes."""
    types = "|".join(LIST_TYPES)
    for version in versions.VERSIONS:
        app.router.add_get(f"/{version}/{{record_type:{types}}}", list_records)
        app.router.add_get(f"/{version}/{{record_type:{types}}}/{{id}}", get_record)
