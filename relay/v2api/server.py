"""The v2 API routes, added to the ops server's application (same port, docs/v2-api.md).

``add_routes`` is what the service calls when ``"v2api"`` is in ``relay.components``: it
resolves the client keys (failing fast on a bad one) and registers every endpoint under both
``/v2.0`` and ``/v2.1`` (v2.0 answers converted by :mod:`relay.v2api.v20`). Handlers
never scan a district: see :mod:`relay.v2api.events` and :mod:`relay.v2api.records`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from relay.v2api import events, idmap, records, v20
from relay.v2api.auth import Authenticator
from relay.v2api.context import V2_KEY, Limiter, V2Context, guarded
from relay.v2api.page_scripts import PageScripts

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from aiohttp import web

    from relay.config import Config
    from relay.redis.keys import Keys


def add_routes(app: web.Application, *, cfg: Config, redis: aioredis.Redis, keys: Keys) -> None:
    """Register the v2 endpoints on ``app`` (before it starts).

    Raises:
        ConfigError: a client key cannot be read, is empty, or is a Clever token.
    """
    app[V2_KEY] = V2Context(
        redis=redis,
        prefix=keys.prefix,
        partitions=keys.partitions,
        default_limit=cfg.v2api.default_limit,
        auth=Authenticator.from_config(cfg),
        pages=PageScripts(redis),
        limiter=Limiter(cfg.v2api.max_concurrent_requests, cfg.v2api.retry_after_s),
    )
    collections = "|".join(records.PATHS)
    router = app.router
    for version in ("v2.0", "v2.1"):
        event, obj = partial(v20.events_handler, version), partial(v20.data_handler, version)
        router.add_get(f"/{version}/events", guarded(event(events.list_events)))
        router.add_get(f"/{version}/events/{{id}}", guarded(event(events.get_event)))
        base = f"/{version}/{{collection:{collections}}}"
        router.add_get(base, guarded(obj(records.list_objects)))
        router.add_get(f"{base}/{{id}}", guarded(obj(records.get_object)))
        router.add_get(f"{base}/{{id}}/{{relation}}", guarded(obj(records.related)))
    idmap.add_routes(app, cfg=cfg, redis=redis, keys=keys)
