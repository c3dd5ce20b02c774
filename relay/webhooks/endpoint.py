"""One endpoint's three loops: ingest (streams to queues), delivery (queues to HTTP), stats.

Delivery takes the districts whose queue head is due, at most ``max_in_flight`` at once and
one per district (so a district's events arrive in order), POSTs each head and settles it in
Redis. Nothing about progress lives only in memory: after a crash the next process finds the
same heads, attempt counts and due times (see :mod:`relay.webhooks.store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from typing import TYPE_CHECKING, Any

import msgspec

from relay import logs
from relay.webhooks import metrics
from relay.webhooks.ingest import merge, parse_reply, select
from relay.webhooks.matcher import Matcher
from relay.webhooks.retries import after_failure
from relay.webhooks.sender import Outcome, Sender
from relay.webhooks.signing import WHSEC_PREFIX, decode_secret
from relay.webhooks.stats import EndpointStats
from relay.webhooks.store import DEAD, OK, RETRY, EndpointStore, QueuedEvent, decode_event

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config, WebhookEndpoint
    from relay.health import Health
    from relay.redis.keys import Keys

log = logs.get_logger("webhooks")

READ_COUNT = 200
"""Entries read per source stream per round."""
IDLE_S = 1.0
"""Longest wait between delivery rounds (picks up replays and re-enables by the CLI)."""
ERROR_PAUSE_S = 1.0
LOOP_DEADLINE_S = 60.0


def now_ms() -> int:
    """Wall-clock milliseconds: due times are stored and must mean the same after a restart."""
    return int(time.time() * 1000)


def load_keys(endpoint: WebhookEndpoint) -> list[bytes]:
    """The endpoint's HMAC keys; every secret is registered so logs never show it."""
    keys = []
    for secret in endpoint.resolve_secrets():
        logs.register_secret(secret)
        logs.register_secret(secret.removeprefix(WHSEC_PREFIX))
        keys.append(decode_secret(secret))
    return keys


def dead_fields(event: QueuedEvent, attempts: int, outcome: Outcome) -> dict[str, str | bytes]:
    """The fields of a dead-letter entry (docs/webhooks.md)."""
    return {
        "id": event.id,
        "type": event.type,
        "district": event.district,
        "data": event.data,
        "stream": event.stream,
        "entry": event.entry,
        "ms": str(event.ms),
        "attempts": str(attempts),
        "reason": outcome.reason(),
        "failed_at": str(int(time.time())),
    }


class EndpointWorker:
    """Delivers one endpoint's events."""

    def __init__(
        self,
        *,
        endpoint: WebhookEndpoint,
        cfg: Config,
        redis: aioredis.Redis,
        keys: Keys,
        health: Health,
        loops: str = "webhooks",
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.loops = loops
        """Prefix of this worker's loop names (``webhooks:p<i>`` with partitions)."""
        self.redis = redis
        self.health = health
        self.keys = keys.webhook(endpoint.name)
        self.store = EndpointStore(
            redis=redis, keys=self.keys, deadletter_maxlen=cfg.redis.deadletter_maxlen
        )
        self.matcher = Matcher(endpoint)
        self.sources = {s.key: s for s in self.matcher.sources(keys, list(cfg.legacy.record_types))}
        self.v3_streams = {s.key for s in self.sources.values() if s.v3}
        self.block_ms = cfg.legacy.block_ms
        self.sender = Sender(
            url=endpoint.url,
            keys=load_keys(endpoint),
            timeout_s=endpoint.timeout_s,
            max_in_flight=endpoint.max_in_flight,
        )
        self.stats = EndpointStats(endpoint=endpoint, store=self.store)
        self.wake = asyncio.Event()
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self._rng = random.SystemRandom()

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    # -- ingest -------------------------------------------------------------------------------

    async def ingest(self, stop: asyncio.Event) -> None:
        """Move matching source entries into district queues until ``stop``."""
        loop_name = f"{self.loops}:{self.name}:ingest"
        self.health.register(loop_name, LOOP_DEADLINE_S)
        positions: dict[str, str] | None = None
        try:
            while not stop.is_set():
                self.health.tick(loop_name)
                if self.stats.disabled is not None:
                    await self._pause(stop, IDLE_S)
                    continue
                try:
                    if positions is None:
                        positions = await self.store.positions(list(self.sources))
                    if not await self._ingest_once(positions):
                        positions = None
                except Exception:
                    log.exception("webhook_ingest_failed", endpoint=self.name)
                    positions = None
                    await self._pause(stop, ERROR_PAUSE_S)
        finally:
            self.health.unregister(loop_name)

    async def _ingest_once(self, positions: dict[str, str]) -> bool:
        """One read-merge-enqueue round; False when the positions must be re-read."""
        # One non-blocking XREAD is a consistent snapshot of all the streams. A *blocked* XREAD
        # wakes with only the stream that got data, so it serves just as the idle wait.
        reply = await self.redis.xread(positions, count=READ_COUNT)  # type: ignore[arg-type]  # redis-py types the streams dict too narrowly
        if not reply:
            await self.redis.xread(positions, count=1, block=self.block_ms)  # type: ignore[arg-type]  # as above
            return True
        taken, moved = merge(parse_reply(reply, self.sources), READ_COUNT)
        items = select(taken, self.matcher, self.v3_streams, self.name)
        written = await self.store.enqueue(
            expected=positions, moved=moved, items=items, now_ms=now_ms()
        )
        if not written:
            log.warning("webhook_position_moved", endpoint=self.name)
            return False
        positions.update(moved)
        if items:
            self.wake.set()
        return True

    # -- delivery -----------------------------------------------------------------------------

    async def deliver(self, stop: asyncio.Event) -> None:
        """Dispatch due queue heads until ``stop``, then wait for the attempts in flight."""
        loop_name = f"{self.loops}:{self.name}:delivery"
        self.health.register(loop_name, LOOP_DEADLINE_S)
        try:
            while not stop.is_set():
                self.health.tick(loop_name)
                self.wake.clear()
                try:
                    timeout_s = await self._dispatch_round()
                except Exception:
                    log.exception("webhook_dispatch_failed", endpoint=self.name)
                    timeout_s = ERROR_PAUSE_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout_s)
            if self.inflight:
                await asyncio.wait(list(self.inflight.values()))
        finally:
            # Only non-empty when this loop was cancelled (the service's grace ran out): stop
            # the attempts too rather than leave them to fail on a closed session and count a
            # failed attempt. Each head stays queued and is sent again by the next owner.
            for task in self.inflight.values():
                task.cancel()
            self.health.unregister(loop_name)

    async def _dispatch_round(self) -> float:
        """Start attempts for due districts; return how long to wait before the next round."""
        await self.stats.refresh_enabled()
        if self.stats.disabled is not None:
            return IDLE_S
        limit = self.endpoint.max_in_flight
        now = now_ms()
        if len(self.inflight) < limit:
            for district in await self.store.due(now, limit + len(self.inflight)):
                if district in self.inflight or len(self.inflight) >= limit:
                    continue
                task = asyncio.create_task(
                    self._attempt(district), name=f"webhook:{self.name}:{district}"
                )
                self.inflight[district] = task
                task.add_done_callback(functools.partial(self._attempt_done, district))
        next_ms = await self.store.next_due_ms(now)
        if next_ms is None:
            return IDLE_S
        return min(IDLE_S, max(0.0, (next_ms - now) / 1000))

    def _attempt_done(self, district: str, task: asyncio.Task[None]) -> None:
        self.inflight.pop(district, None)
        self.wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error(
                "webhook_attempt_crashed", endpoint=self.name, district=district, exc_info=exc
            )

    async def _attempt(self, district: str) -> None:
        """POST the district's head once and settle it (shielded: a drain lets it finish)."""
        raw, failed = await self.store.head(district)
        if raw is None:
            await self.store.complete(raw=b"", district=district, outcome=OK, now_ms=now_ms())
            return
        try:
            event = decode_event(raw)
        except msgspec.DecodeError:
            await asyncio.shield(self._dead_undecodable(raw, district, failed))
            return
        started = time.perf_counter()
        outcome = await self.sender.send(event)
        metrics.REQUEST_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        await asyncio.shield(self._settle(raw, event, failed, outcome))

    async def _dead_undecodable(self, raw: bytes, district: str, failed: int) -> None:
        """Dead-letter a queue item that does not decode, so it cannot block its district.

        Retrying could never succeed, and left at the head it would be re-attempted in a tight
        loop and hold back every later event of the district.
        """
        fields: dict[str, str | bytes] = {
            "district": district,
            "data": raw,
            "attempts": str(failed),
            "reason": "undecodable queue item",
            "failed_at": str(int(time.time())),
        }
        await self.store.complete(
            raw=raw, district=district, outcome=DEAD, now_ms=now_ms(), dead_fields=fields
        )
        metrics.DEAD_LETTERS.labels(self.name).inc()
        log.error("webhook_queue_item_undecodable", endpoint=self.name, district=district, raw=raw)

    async def _settle(self, raw: bytes, event: QueuedEvent, failed: int, outcome: Outcome) -> None:
        district = event.district
        if outcome.ok:
            await self.store.complete(raw=raw, district=district, outcome=OK, now_ms=now_ms())
            metrics.DELIVERED.labels(self.name).inc()
            self.stats.delivered(event)
            log.debug("webhook_delivered", endpoint=self.name, event_id=event.id, district=district)
            return
        metrics.FAILED_ATTEMPTS.labels(self.name, outcome.status_class).inc()
        self.stats.failed(event, outcome)
        if outcome.gone:
            await self.stats.disable(f"{outcome.reason()} for event {event.id}")
            log.error("webhook_endpoint_disabled", endpoint=self.name, event_id=event.id)
            return
        decision = after_failure(self.endpoint.retry_schedule_s, failed + 1, self._rng)
        now = now_ms()
        if decision.dead:
            fields = dead_fields(event, failed + 1, outcome)
            await self.store.complete(
                raw=raw, district=district, outcome=DEAD, now_ms=now, dead_fields=fields
            )
            metrics.DEAD_LETTERS.labels(self.name).inc()
            log.warning(
                "webhook_dead_lettered",
                endpoint=self.name,
                event_id=event.id,
                district=district,
                attempts=failed + 1,
                reason=outcome.reason(),
            )
            return
        due = now + int(decision.delay_s * 1000)
        await self.store.complete(
            raw=raw, district=district, outcome=RETRY, now_ms=now, due_ms=due, attempts=failed + 1
        )
        log.info(
            "webhook_retry_scheduled",
            endpoint=self.name,
            event_id=event.id,
            district=district,
            attempts=failed + 1,
            reason=outcome.reason(),
            delay_s=round(decision.delay_s, 3),
        )

    # -- stats --------------------------------------------------------------------------------

    async def report(self, stop: asyncio.Event, interval_s: float) -> None:
        """Refresh the metrics and the /status view every ``interval_s`` until ``stop``."""
        while not stop.is_set():
            try:
                await self.stats.refresh()
            except Exception:
                log.exception("webhook_stats_failed", endpoint=self.name)
            await self._pause(stop, interval_s)

    def status(self) -> dict[str, Any]:
        """The endpoint's state for /status."""
        return self.stats.view(in_flight=len(self.inflight))
