"""Helpers for the webhook tests: loopback receivers, configs, stream writers, a deadline poll."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from relay.config import Config, validate
from relay.health import Health
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.webhooks.delivery import WebhookDelivery
from tests.redis_server import free_port

SECRET_A = "whsec_" + base64.b64encode(b"first-secret-key-0123456789abcdef").decode()
SECRET_B = "whsec_" + base64.b64encode(b"second-secret-key-987654321fedcba").decode()


def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks v1 signature, written from the spec without the relay's code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether any signature of the header verifies under ``secret`` (constant-time)."""
    wanted = independent_signature(
        secret, headers["webhook-id"], headers["webhook-timestamp"], body
    ).encode()
    return any(
        hmac.compare_digest(s.encode(), wanted) for s in headers["webhook-signature"].split()
    )


@dataclass
class Received:
    """One request a receiver got and what it answered."""

    id: str
    headers: dict[str, str]
    body: bytes
    status: int


Behaviour = Callable[[int, str], Awaitable[int]]
"""(request number from 1, webhook-id) -> status to answer."""


async def always_ok(_n: int, _id: str) -> int:
    """A healthy receiver."""
    return 200


@dataclass
class Receiver:
    """A real aiohttp server on loopback that records every request."""

    behaviour: Behaviour = always_ok
    port: int = 0
    """0 until :meth:`start` binds a port the OS picks (no race with other processes for a
    port chosen earlier); asking for :attr:`url` before that reserves a free port instead."""
    received: list[Received] = field(default_factory=list)
    arrivals: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the relay should POST."""
        if self.port == 0:  # a test that wants the address before anything listens there
            self.port = free_port()
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        """Listen on the port."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        if self.port == 0:
            self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        self.arrivals += 1
        status = await self.behaviour(self.arrivals, msg_id)
        self.received.append(Received(msg_id, dict(request.headers), body, status))
        return web.Response(status=status)

    def delivered(self) -> list[str]:
        """Ids answered with a 2xx, in arrival order."""
        return [r.id for r in self.received if 200 <= r.status < 300]


def endpoint(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """An endpoint table with test-friendly defaults (short schedule)."""
    table: dict[str, Any] = {
        "name": name,
        "url": url,
        "topics": ["students.*", "teachers.*"],
        "secret": SECRET_A,
        "timeout_s": 2.0,
        "retry_schedule_s": [0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
    }
    table.update(extra)
    return table


def make_config(redis_url: str, endpoints: list[dict[str, Any]]) -> Config:
    """A config running only the webhooks component."""
    return validate(
        {
            "relay": {"components": ["webhooks"]},
            "redis": {"url": redis_url, "prefix": "t"},
            "legacy": {"block_ms": 50},
            "webhooks": {"endpoints": endpoints},
        }
    )


async def eventually(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout_s: float = 15.0
) -> None:
    """Poll ``predicate`` until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


class Feed:
    """Writes legacy and v3 entries shaped like the translator's and the poller's."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "t") -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self.n = 0

    def next_id(self) -> str:
        """An ascending 24-hex legacy id."""
        self.n += 1
        return f"{self.n:024x}"

    async def legacy(self, event_type: str, district: str, event_id: str | None = None) -> str:
        """Append a legacy event; returns its id."""
        event_id = event_id or self.next_id()
        data = b'{"id":"%s","type":"%s"}' % (event_id.encode(), event_type.encode())
        await self.redis.xadd(
            self.keys.legacy(event_type.partition(".")[0]),
            {"id": event_id, "type": event_type, "district": district, "source": "s", "data": data},
        )
        return event_id

    async def v3(self, event_type: str, district: str, event_id: str) -> str:
        """Append a v3 message to the events stream; returns its stream entry id."""
        data = b'{"id":"%s","type":"%s"}' % (event_id.encode(), event_type.encode())
        entry = await self.redis.xadd(
            self.keys.events,
            {"id": event_id, "type": event_type, "district": district, "data": data},
        )
        return entry.decode() if isinstance(entry, bytes) else entry


async def groups_ready(redis: aioredis.Redis, streams: list[str], group: str) -> bool:
    """Whether ``group`` exists on every stream (the endpoint started reading)."""
    for stream in streams:
        if not await redis.exists(stream):
            return False
        names = [g["name"].decode() for g in await redis.xinfo_groups(stream)]
        if group not in names:
            return False
    return True


@contextlib.asynccontextmanager
async def running(cfg: Config, **kwargs: Any) -> AsyncIterator[WebhookDelivery]:
    """Run the component until the block ends, then stop it and wait for its drain."""
    redis = create_redis(cfg.redis)
    session = aiohttp.ClientSession()
    component = WebhookDelivery(
        cfg=cfg,
        redis=redis,
        session=session,
        health=Health(),
        keys=Keys(cfg.redis.prefix),
        **kwargs,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(component.run(stop))
    try:
        for worker in component.workers:
            await eventually(lambda w=worker: groups_ready(redis, list(w.sources), w.keys.group))
        yield component
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await session.close()
        await redis.aclose()
