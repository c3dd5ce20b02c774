"""The process behind ``clever-relay run``: start the components, stop them gracefully.

Start order (STYLE §6): Redis client, the shared aiohttp session, the ops server, then the
components. A component is anything with a ``name`` and ``async run(stop)`` that returns once
``stop`` is set and its work in flight is written. Redis being down at start is not fatal:
components retry, and ``/readyz`` says why the replica is not ready.

Drain order on SIGTERM/SIGINT: readiness turns 503, the components are told to stop taking new
work, they get ``shutdown_grace_s`` to finish what is in flight, stragglers are cancelled and get
``cancel_deadline_s`` to clean up (:func:`relay.tasks.cancel_and_wait`), then the session, Redis
and the ops server close. The exit code is 0 for a requested stop and 1 when
a component died on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from relay import __version__, logs
from relay.health import Health
from relay.metrics import set_per_district
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.tasks import cancel_and_wait

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config

log = logs.get_logger("service")

EXIT_OK = 0
EXIT_FAILURE = 1


class Component(Protocol):
    """A long-running part of the relay (poller, translator, webhooks...)."""

    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish what is in flight and return."""

    def status(self) -> Any:
        """A JSON-able description for ``/status`` (never a secret)."""


def instance_name(cfg: Config) -> str:
    """The replica's name in logs, leases and /status."""
    return cfg.relay.instance or socket.gethostname()


def build_components(
    cfg: Config,
    *,
    redis: aioredis.Redis,
    session: aiohttp.ClientSession,
    health: Health,
    keys: Keys,
) -> list[Component]:
    """Instantiate the components named in ``[relay] components`` (except ``http``)."""
    components: list[Component] = []
    if "poller" in cfg.relay.components:
        from relay.poller import Poller

        components.append(
            Poller(
                cfg=cfg,
                redis=redis,
                session=session,
                health=health,
                keys=keys,
                instance=instance_name(cfg),
            )
        )
    if "webhooks" in cfg.relay.components and keys.partitions > 1:
        from relay.webhooks.partitions import PartitionedWebhooks

        components.append(
            PartitionedWebhooks(cfg=cfg, redis=redis, session=session, health=health, keys=keys)
        )
    elif "webhooks" in cfg.relay.components:
        from relay.webhooks.delivery import WebhookDelivery

        components.append(
            WebhookDelivery(cfg=cfg, redis=redis, session=session, health=health, keys=keys)
        )
    if "translator" in cfg.relay.components and keys.partitions > 1:
        from relay.translator.partitions import PartitionedTranslator

        components.append(
            PartitionedTranslator(
                cfg=cfg,
                redis=redis,
                session=session,
                health=health,
                keys=keys,
                consumer_name=instance_name(cfg),
            )
        )
    elif "translator" in cfg.relay.components:
        from relay.translator.consumer import Translator

        components.append(
            Translator(
                cfg=cfg,
                redis=redis,
                session=session,
                health=health,
                keys=keys,
                consumer_name=instance_name(cfg),
            )
        )
    return components


class Service:
    """Owns the lifecycle of one relay process."""

    def __init__(self, cfg: Config, *, components: list[Component] | None = None) -> None:
        """Prepare a service; ``components`` replaces the configured ones (tests, embedding)."""
        self.cfg = cfg
        self.keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
        self.health = Health()
        self.stop = asyncio.Event()
        self.components: list[Component] = []
        self._given = components
        self.failed = False

    def request_stop(self) -> None:
        """Signal handler body: start the drain (idempotent)."""
        if not self.stop.is_set():
            log.info("shutdown_requested")
            self.health.draining = True
            self.stop.set()

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return EXIT_FAILURE if self.failed else EXIT_OK

    async def _run(self) -> None:
        cfg = self.cfg
        set_per_district(cfg.http.per_district_metrics)
        for district in cfg.clever.districts:
            logs.register_secret(district.resolve_token())
        redis = create_redis(cfg.redis)
        # The request side's own pool: API load cannot take the pipeline's connections.
        api_redis = create_redis(cfg.redis, max_connections=cfg.redis.api_max_connections)
        timeout = aiohttp.ClientTimeout(total=cfg.clever.request_timeout_s)
        session = aiohttp.ClientSession(
            timeout=timeout, headers={"User-Agent": f"clever-relay/{__version__}"}
        )
        ops = None
        try:
            if self._given is not None:
                self.components = self._given
            else:
                self.components = build_components(
                    cfg, redis=redis, session=session, health=self.health, keys=self.keys
                )
            if {"http", "v2api"} & set(cfg.relay.components):
                ops = await self._start_ops(redis, api_redis)
            # Everything built so far (config, one poller per district, modules) lives as long
            # as the process: keep it out of the cyclic GC's full passes, which otherwise walk
            # it over and over and cost a fleet of quiet districts more CPU than polling does.
            gc.collect()
            gc.freeze()
            log.info(
                "relay_started",
                version=__version__,
                instance=instance_name(cfg),
                components=list(cfg.relay.components),
                districts=len(cfg.clever.districts),
            )
            await self._supervise(redis)
        finally:
            await session.close()
            await redis.aclose()
            await api_redis.aclose()
            if ops is not None:
                await ops.stop()
            log.info("relay_stopped", failed=self.failed)

    async def _start_ops(self, redis: aioredis.Redis, api_redis: aioredis.Redis) -> Any:
        """The ops server: /readyz pings with the pipeline's client (it reports the pipeline's
        health), /status, /metrics and the v2 API use the request side's."""
        from relay.ops.server import OpsServer
        from relay.ops.status import StatusSource

        status = StatusSource(
            cfg=self.cfg,
            redis=api_redis,
            health=self.health,
            components=self.status,
            detail=self.district_status,
        )
        ops = OpsServer(cfg=self.cfg, redis=redis, health=self.health, status=status)
        if "v2api" in self.cfg.relay.components:
            from relay.v2api.server import add_routes

            add_routes(ops.app, cfg=self.cfg, redis=api_redis, keys=self.keys)
        await ops.start()
        return ops

    def status(self) -> dict[str, Any]:
        """What each component says about itself, for ``/status``."""
        return {component.name: component.status() for component in self.components}

    def district_status(self, district: str) -> dict[str, Any] | None:
        """What this replica's poller says about one district (``/status?district=<id>``)."""
        for component in self.components:
            detail = getattr(component, "district_status", None)
            if detail is not None:
                found: dict[str, Any] | None = detail(district)
                return found
        return None

    async def _supervise(self, redis: aioredis.Redis) -> None:
        from relay.redis.checks import watch_redis

        if not await self._partitions_agree(redis):
            self.failed = True
            return
        tasks = {
            asyncio.create_task(component.run(self.stop), name=component.name)
            for component in self.components
        }
        for task in tasks:
            task.add_done_callback(self._component_done)
        watcher = asyncio.create_task(
            watch_redis(
                redis,
                self.health,
                self.cfg.redis.health_check_interval_s,
                self.stop,
                url=self.cfg.redis.url,
            ),
            name="redis-watch",
        )
        stopper = asyncio.create_task(self.stop.wait(), name="stop")
        await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        deadline_s = self.cfg.relay.cancel_deadline_s
        await cancel_and_wait([stopper], deadline_s=deadline_s)
        self.request_stop()
        await self._drain(tasks)
        await cancel_and_wait([watcher], deadline_s=deadline_s)

    async def _partitions_agree(self, redis: aioredis.Redis) -> bool:
        """Refuse to start with a partition count other than the data's (docs/scaling.md).

        With one partition a Redis that does not answer yet is not fatal (the check is made
        at the next start). With more, nothing starts before Redis has confirmed the count.
        """
        from redis.exceptions import RedisError

        from relay.errors import PartitionsChangedError
        from relay.redis.partitions import check_partitions

        while not self.stop.is_set():
            try:
                await check_partitions(redis, self.keys)
            except PartitionsChangedError as exc:
                log.exception("partitions_changed", error=str(exc))
                return False
            except (RedisError, OSError) as exc:
                if self.keys.partitions == 1:
                    return True
                log.warning("partitions_check_waiting", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=1.0)
                continue
            return True
        return True

    def _component_done(self, task: asyncio.Task[None]) -> None:
        """Judge how a component ended: raising, or returning before a stop, is a failure.

        As a done callback it runs as soon as the task ends, before the supervisor reacts, so
        ``stop`` tells whether the component was asked to return.
        """
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failed = True
            log.error("component_crashed", name=task.get_name(), exc_info=exc)
        elif not self.stop.is_set():
            self.failed = True
            log.error("component_exited", name=task.get_name())

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        grace_s = self.cfg.relay.shutdown_grace_s
        pending = {task for task in tasks if not task.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for task in pending:
            log.warning("component_cancelled_after_grace", name=task.get_name(), grace_s=grace_s)
        await cancel_and_wait(pending, deadline_s=self.cfg.relay.cancel_deadline_s)


def run_service(cfg: Config) -> int:
    """Run the relay in this process (uvloop when installed); returns the exit code."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(Service(cfg).run())
    return uvloop.run(Service(cfg).run())
