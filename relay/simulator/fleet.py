"""The app's side of Clever: the OAuth tokens endpoint and run-time district changes.

``GET /oauth/tokens?owner_type=district`` (or ``?district=<id>``) answers, behind HTTP Basic with
the app's client id and secret, one record per district that authorized the app, in Clever's
shape ``{"data": [{"id", "created", "owner": {"type", "id"}, "access_token", "scopes"}],
"links": [...]}``, paged by district id with a ``next`` link once a page is full
(``tokens_page_size``). The ``/_sim/districts`` control endpoints add a district (generated
data, or a disconnected one coming back with a new token), disconnect one (its token then
answers 401, its feed is kept), rotate a token (the old one answers 401 at once) and revoke one
(it answers 401 but stays listed, until the next rotation), so tests
and the demo can exercise the relay's fleet handling (docs/fleet.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from relay.simulator._http import json_error
from relay.simulator._ids import iso_ms
from relay.simulator.context import SIM_KEY, Simulator
from relay.simulator.world import District, token_for

SCOPES = ("read:district_admins", "read:school_admins", "read:students", "read:teachers")
TOKENS_PATH = "/oauth/tokens"


class AddRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /_sim/districts``: reconnect ``id``, or a new district of ``events``."""

    id: str | None = None
    events: int = 100


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(value), content_type="application/json"
    )


def _basic_ok(header: str, sim: Simulator) -> bool:
    """Whether ``Authorization`` carries the app's client id and secret (constant time)."""
    if header[:6].lower() != "basic ":
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected = f"{sim.options.client_id}:{sim.options.client_secret}".encode()
    return hmac.compare_digest(f"{user}:{password}".encode(), expected)


def token_record(district: District) -> dict[str, object]:
    """One ``data[]`` item of the tokens list (the record id changes with every rotation)."""
    digest = hashlib.sha256(f"{district.id}:{district.rotations}".encode()).hexdigest()
    return {
        "id": digest[:24],
        "created": iso_ms(district.token_created),
        "owner": {"type": "district", "id": district.id},
        "access_token": district.token,
        "scopes": list(SCOPES),
    }


async def list_tokens(request: web.Request) -> web.Response:
    """``GET /oauth/tokens``: the authorized districts' tokens, paged by district id."""
    sim = request.app[SIM_KEY]
    if not _basic_ok(request.headers.get("Authorization", ""), sim):
        sim.stats.responses_401 += 1
        return json_error(401, "invalid client credentials")
    query = request.query
    wanted = query.get("district")
    if wanted is None and query.get("owner_type") != "district":
        return json_error(400, "owner_type=district or district=<id> is required")
    after = query.get("starting_after", "")
    authorized = sorted(
        (d for d in sim.world.districts if d.authorized and (wanted is None or d.id == wanted)),
        key=lambda d: d.id,
    )
    rest = [d for d in authorized if d.id > after]
    size = max(1, sim.options.tokens_page_size)
    page = rest[:size]
    links = [{"rel": "self", "uri": f"{TOKENS_PATH}?{urlencode(list(query.items()))}"}]
    if len(rest) > size:
        params = {k: v for k, v in query.items() if k != "starting_after"}
        params["starting_after"] = page[-1].id
        links.append({"rel": "next", "uri": f"{TOKENS_PATH}?{urlencode(params)}"})
    return _json({"data": [token_record(d) for d in page], "links": links})


async def add_district(request: web.Request) -> web.Response:
    """Add a generated district, or reconnect a disconnected one (with a new token)."""
    sim = request.app[SIM_KEY]
    try:
        body = msgspec.json.decode(await request.read() or b"{}", type=AddRequest)
    except msgspec.DecodeError as exc:
        return json_error(400, str(exc))
    if body.id is None:
        district = sim.world.add_generated(max(0, body.events))
    else:
        try:
            district = sim.world.district(body.id)
        except KeyError:
            return json_error(404, f"no district {body.id}")
        if not district.authorized:
            _rotate(district)
            district.authorized = True
    return _json({"id": district.id, "token": district.token, "last_event": district.feed.last_id})


async def remove_district(request: web.Request) -> web.Response:
    """Disconnect a district: gone from the tokens list, its token answers 401."""
    district = _find(request)
    if district is None:
        return json_error(404, f"no district {request.match_info['id']}")
    district.authorized = False
    return _json({"id": district.id})


async def rotate_token(request: web.Request) -> web.Response:
    """Issue a new token for a district; the old one answers 401 from now on."""
    district = _find(request)
    if district is None:
        return json_error(404, f"no district {request.match_info['id']}")
    _rotate(district)
    return _json({"id": district.id, "token": district.token})


async def revoke_token(request: web.Request) -> web.Response:
    """Refuse a district's token (401) while the tokens list still shows it."""
    district = _find(request)
    if district is None:
        return json_error(404, f"no district {request.match_info['id']}")
    district.revoked = True
    return _json({"id": district.id})


def _find(request: web.Request) -> District | None:
    try:
        return request.app[SIM_KEY].world.district(request.match_info["id"])
    except KeyError:
        return None


def _rotate(district: District) -> None:
    district.revoked = False
    district.rotations += 1
    district.token = f"{token_for(district.id)}_r{district.rotations}"
    district.token_created = time.time()


def add_routes(app: web.Application) -> None:
    """Register the tokens endpoint and the fleet control endpoints."""
    app.router.add_get(TOKENS_PATH, list_tokens)
    app.router.add_post("/_sim/districts", add_district)
    app.router.add_delete("/_sim/districts/{id}", remove_district)
    app.router.add_post("/_sim/districts/{id}/rotate", rotate_token)
    app.router.add_post("/_sim/districts/{id}/revoke", revoke_token)
