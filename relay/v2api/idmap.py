"""``GET /idmap/v3/{user_id}`` and ``GET /idmap/v2/{v2_id}``: the ID crosswalk over HTTP.

Served on the v2 API port, authenticated with the same relay-issued keys and scoped to the key's
district (``docs/migration.md``). Answers are JSON; an id the crosswalk does not hold (or whose
deletion is older than ``[v2api] idmap_deleted_retention_s``) is 404 ``{"message"}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from relay.readmodel.crosswalk import CrosswalkReader
from relay.v2api.context import guarded
from relay.v2api.paging import error_response

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.redis.keys import Keys, ReadModelKeys
    from relay.v2api.context import V2Context

READER_KEY = web.AppKey("idmap_reader", CrosswalkReader)


def _deletion(entry: dict[str, Any]) -> dict[str, Any]:
    """``deleted`` (always) and ``deleted_at`` (ISO 8601 UTC, only when deleted)."""
    deleted_at = entry.get("deleted_at")
    if not isinstance(deleted_at, (int, float)):
        return {"deleted": False}
    when = datetime.fromtimestamp(deleted_at / 1000, tz=UTC)
    return {"deleted": True, "deleted_at": when.isoformat(timespec="milliseconds")[:-6] + "Z"}


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


async def by_v3(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """A v3 user id's v2 id per role: ``{district, v3_user_id, roles, deleted[, deleted_at]}``."""
    del ctx
    user_id = request.match_info["id"]
    entry = await request.app[READER_KEY].by_v3(rk.district, user_id)
    if entry is None:
        return error_response(404, f"no mapping for v3 user {user_id}")
    roles = dict(sorted((entry.get("roles") or {}).items()))
    return _json(
        {"district": rk.district, "v3_user_id": user_id, "roles": roles, **_deletion(entry)}
    )


async def by_v2(request: web.Request, ctx: V2Context, rk: ReadModelKeys) -> web.Response:
    """A v2 id's v3 user and role: ``{district, v2_id, v3_user_id, role, deleted[, ...]}``."""
    del ctx
    v2_id = request.match_info["id"]
    entry = await request.app[READER_KEY].by_v2(rk.district, v2_id)
    if entry is None:
        return error_response(404, f"no mapping for v2 id {v2_id}")
    return _json(
        {
            "district": rk.district,
            "v2_id": v2_id,
            "v3_user_id": entry["v3_user_id"],
            "role": entry["role"],
            **_deletion(entry),
        }
    )


def add_routes(app: web.Application, *, cfg: Config, redis: aioredis.Redis, keys: Keys) -> None:
    """Register both look-ups (called by :func:`relay.v2api.server.add_routes`)."""
    app[READER_KEY] = CrosswalkReader(redis, keys, keep_s=cfg.v2api.idmap_deleted_retention_s)
    app.router.add_get("/idmap/v3/{id}", guarded(by_v3))
    app.router.add_get("/idmap/v2/{id}", guarded(by_v2))
