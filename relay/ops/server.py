"""The ops HTTP server (the ``http`` component): health, readiness, metrics and status.

It runs beside the relay's loops with ``web.AppRunner`` + ``TCPSite`` rather than ``run_app``,
because the service owns the event loop and the signals (``handle_signals=False``); shared
objects live under typed ``web.AppKey``\\ s. Endpoints (docs/operations.md):

- ``GET /healthz``: liveness. 200 ``{"alive": true}`` while every registered loop ticked within
  its deadline, else 503 ``{"alive": false, "stuck": [names]}`` so the kubelet restarts the pod.
- ``GET /readyz``: 200 ``{"ready": true}`` when Redis answers a PING (bounded by 1 s, asked on
  every call), the service is not draining and no Redis check blocks; else 503
  ``{"ready": false, "reasons": [...]}``.
- ``GET /metrics``: Prometheus text, Redis-derived gauges refreshed at scrape time.
- ``GET /status``: the JSON report of :mod:`relay.ops.status`.
- ``/console``: the operator's web console (:mod:`relay.console`), only when configured.

A failing handler answers 500 ``{"error": "internal error"}`` (``{"message": ...}``, Clever's
shape, under ``/v2.*``) and logs the exception; a
traceback never reaches the client. Unknown paths and wrong methods answer 404/405 in the same
JSON shapes, and requests too malformed to reach the application are answered and logged by
:mod:`relay.ops.protocol`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from relay.config import Config
from relay.health import Health
from relay.logs import get_logger, scrub
from relay.metrics import REGISTRY
from relay.ops.protocol import ProtocolLogger, Runner
from relay.ops.status import StatusSource, describe_redis_error, readiness_reasons

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aiohttp.typedefs import Handler

PING_TIMEOUT_S = 1.0
SHUTDOWN_TIMEOUT_S = 2.0

CONFIG_KEY = web.AppKey("config", Config)
REDIS_KEY = web.AppKey("redis", aioredis.Redis)
HEALTH_KEY = web.AppKey("health", Health)
STATUS_KEY = web.AppKey("status", StatusSource)

log = get_logger("http")


def _json(payload: object, *, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(payload), status=status, content_type="application/json"
    )


async def ping_redis(redis: aioredis.Redis, timeout_s: float = PING_TIMEOUT_S) -> str | None:
    """PING Redis within ``timeout_s``; ``None`` when it answered, else the reason."""
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return describe_redis_error(exc)
    return None


async def get_healthz(request: web.Request) -> web.Response:
    """Liveness: 503 naming the loops that missed their heartbeat deadline."""
    stuck = request.app[HEALTH_KEY].stuck()
    if stuck:
        return _json({"alive": False, "stuck": stuck}, status=503)
    return _json({"alive": True})


async def get_readyz(request: web.Request) -> web.Response:
    """Readiness: Redis answers, not draining, no Redis check blocking (docs/operations.md)."""
    health = request.app[HEALTH_KEY]
    redis_error = await ping_redis(request.app[REDIS_KEY])
    reasons = readiness_reasons(health, redis_error)
    if reasons:
        return _json({"ready": False, "reasons": reasons}, status=503)
    return _json({"ready": True})


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of :data:`relay.metrics.REGISTRY`."""
    await request.app[STATUS_KEY].refresh_metrics()
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def get_status(request: web.Request) -> web.Response:
    """The JSON status report (docs/operations.md); ``?district=<id>``: that district in full."""
    district = request.query.get("district")
    if district is not None:
        return await _district_status(request, district)
    report = await request.app[STATUS_KEY].report()
    # Components report their own state; scrub any registered secret they might echo.
    text = scrub(msgspec.json.encode(report).decode())
    return web.Response(text=text, content_type="application/json")


def _error(request: web.Request, status: int, message: str) -> web.Response:
    """The JSON error body: Clever's ``{"message"}`` under ``/v2.*``, ``{"error"}`` elsewhere."""
    key = "message" if request.path.startswith("/v2.") else "error"
    return _json({key: message}, status=status)


async def _district_status(request: web.Request, district: str) -> web.Response:
    source = request.app[STATUS_KEY]
    try:
        detail = await source.district(district)
    except (RedisError, OSError, TimeoutError) as exc:
        return _json({"error": describe_redis_error(exc)}, status=503)
    if detail is None:
        return _json({"error": "no such district"}, status=404)
    return web.Response(
        text=scrub(msgspec.json.encode(detail).decode()), content_type="application/json"
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn an unexpected exception into a bare 500 (never a traceback), and aiohttp's
    text/plain 4xx (unknown path, wrong method) into JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(request, exc.status, exc.reason.lower())
        if request.path.startswith("/console"):  # keep the console's security headers
            for name, value in exc.headers.items():
                response.headers.setdefault(name, value)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    except Exception:
        log.exception("ops_request_failed", path=request.path)
        # Under /v2.*, Clever's InternalError shape, so a v2 client's error handling works.
        return _error(request, 500, "internal error")


def build_app(
    *, cfg: Config, redis: aioredis.Redis, health: Health, status: StatusSource
) -> web.Application:
    """The ops application, ready for ``AppRunner`` or pytest-aiohttp's ``aiohttp_client``.

    Other components may add routes or sub-apps to it before it starts (the v2 API shares
    the port).
    """
    app = web.Application(middlewares=[_errors])
    app[CONFIG_KEY] = cfg
    app[REDIS_KEY] = redis
    app[HEALTH_KEY] = health
    app[STATUS_KEY] = status
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/status", get_status)
    if cfg.http.console_enabled:
        from relay.console import add_console

        add_console(app, cfg=cfg, redis=redis)
    return app


class OpsServer:
    """Serves :func:`build_app` on ``cfg.http.host``:``cfg.http.port`` until :meth:`stop`.

    Args:
        cfg: the loaded config.
        redis: the service's Redis client (not closed here: the service owns it).
        health: shared heartbeats and readiness state.
        status: a ready :class:`StatusSource`, or the service's callable returning what each
            component says about itself (a ``StatusSource`` is then built around it).
        detail: what this replica's poller says about one district (``/status?district=``).
    """

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        health: Health,
        status: StatusSource | Callable[[], Mapping[str, Any]] | None = None,
        detail: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        if isinstance(status, StatusSource):
            source = status
        else:
            source = StatusSource(
                cfg=cfg, redis=redis, health=health, components=status, detail=detail
            )
        self.app = build_app(cfg=cfg, redis=redis, health=health, status=source)
        self._host = cfg.http.host
        self._port = cfg.http.port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int | None:
        """The port actually bound (``None`` before :meth:`start`)."""
        if self._runner is None or not self._runner.addresses:
            return None
        port: int = self._runner.addresses[0][1]
        return port

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` (after cleaning up) when the port is taken."""
        runner = Runner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            logger=ProtocolLogger(),
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("http_started", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop serving; in-flight requests get :data:`SHUTDOWN_TIMEOUT_S` to finish."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("http_stopped")
