"""The translator: reads ``<p>:events`` with a consumer group, writes the legacy streams.

One process at a time is *active*: it holds the lease (:mod:`relay.redis.single_active_lease`)
and reads the group; the others are *standby* and take over when the lease lapses. That keeps every
district's events in order without per-district coordination (docs/architecture-translator.md
explains the choice and how to scale past one active translator).

The active loop, per iteration:

1. On activation: create the group if missing (at the stored position), claim every entry
   pending with other consumers (a crashed ex-holder's), and read this consumer's pending
   entries before any new one.
2. Read a batch (fenced ``XREADGROUP``), translate it
   (:class:`~relay.translator.batch.BatchTranslator`), write it in one atomic script
   (:class:`~relay.translator.store.Store`), which also acknowledges the entries. In the steady
   state (new entries, nothing waiting) the write is left in flight while the next batch is
   read and translated, so the translator's CPU and Redis' script run side by side; it is
   awaited before the next write is sent (writes stay in order), before any other read, when
   idle, and on the way out. The next batch reads the in-flight batch's snapshot and
   teacher-id writes from memory (``BatchTranslator`` carries them), not from Redis.
3. When idle, block on ``XREAD`` for at most ``block_ms``; periodically sweep entries idle for
   ``claim_idle_ms`` from any other consumer.
4. A district whose entry cannot be translated now is held (:mod:`relay.translator.held`): its
   entries are set aside while the other districts' go on, and retried alone, oldest first,
   when its back-off allows (between batches, so never more than ``block_ms`` late).

After any Redis error (connection lost, NOGROUP: Redis lost the group, OOM, READONLY) the
next step starts over as on activation: the write in flight is settled, the position re-read,
the group re-created at it if missing, and this consumer's pending entries read first. The
position check in the write script keeps anything re-delivered from being written twice.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.backoff import Backoff, sleep_or_stop
from relay.errors import TranslatorFencedError
from relay.logs import get_logger
from relay.metrics import (
    DEAD_LETTERED,
    EVENTS_SKIPPED,
    EVENTS_TRANSLATED,
    PREVIOUS_UNREADABLE,
    REDIS_RECONNECTS,
    TRANSLATOR_HELD,
    TRANSLATOR_LAG,
    TRANSLATOR_PENDING,
)
from relay.redis.single_active_lease import SingleActiveLease
from relay.throttle import Throttle
from relay.translate.ids import parse_stream_id
from relay.translator.batch import BatchTranslator, Outcome, Prepared
from relay.translator.group import (
    NEW,
    PENDING,
    GroupReader,
    group_lag,
    is_nogroup,
)
from relay.translator.held import RETRY_BASE_S, RETRY_CAP_S, Holds
from relay.translator.lookup import TeacherLookup
from relay.translator.store import FENCED, Store

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.redis.keys import Keys

log = get_logger("translator")

REDIS_BACKOFF_CAP_S = 5.0
GAUGE_INTERVAL_S = 5.0


class Translator:
    """The ``translator`` component (see the module docstring)."""

    name = "translator"

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
        keys: Keys,
        consumer_name: str | None = None,
        retry_base_s: float = RETRY_BASE_S,
        lookup: TeacherLookup | None = None,
        partition: int | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        legacy = cfg.legacy
        self.cfg = cfg
        if partition is not None:
            self.name = f"translator:p{partition}"
        self.gate = gate
        """With partitions: asked before taking the lease (this replica's fair share)."""
        self.step_down = False
        """Set to hand the lease over after the write in flight (a rebalance)."""
        self.health = health
        self.consumer = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self.lease = SingleActiveLease(
            redis, key=keys.translator_lease, owner=self.consumer, ttl_s=legacy.lease_ttl_s
        )
        self.reader = GroupReader(
            redis,
            stream=keys.events,
            lease_key=keys.translator_lease,
            group=legacy.group,
            consumer=self.consumer,
        )
        self.store = Store(
            redis,
            keys,
            group=legacy.group,
            legacy_maxlen=cfg.redis.legacy_maxlen,
            deadletter_maxlen=cfg.redis.deadletter_maxlen,
        )
        self.holds = Holds(base_s=retry_base_s, cap_s=RETRY_CAP_S, partition=partition or 0)
        self.batches = BatchTranslator(
            keys=keys,
            store=self.store,
            lookup=lookup or TeacherLookup(cfg=cfg, session=session),
            record_types=frozenset(legacy.record_types),
            max_deliveries=legacy.max_deliveries,
            # Configured v2 clients mean the v2 API is served (by this process or another).
            read_model=bool(cfg.v2api.clients),
            idmap_retention_s=cfg.v2api.idmap_deleted_retention_s,
            holds=self.holds,
        )
        self.role = "standby"
        self.position: str | None = None
        self.last_seen = "0-0"
        self._pending_count: int | None = None
        """None: read new entries; else re-read own pending entries, this many at a time."""
        self._resync = False
        """A Redis error interrupted the active loop: re-activate before reading (``_resume``)."""
        self._outage = Throttle()
        self._inflight: tuple[asyncio.Future[int], Outcome] | None = None
        """The batch write sent but not yet awaited, and its outcome."""
        self._ahead: Prepared | None = None
        """The next batch, read and prepared (on top of the in-flight write) before it."""
        self._next_sweep = 0.0
        self._next_gauges = 0.0
        self._block_ms = max(1, min(legacy.block_ms, int(legacy.lease_ttl_s * 1000 / 3)))
        deadline_s = max(
            60.0,
            3 * legacy.block_ms / 1000,
            2 * legacy.lease_ttl_s,
            2 * cfg.clever.request_timeout_s,
        )
        health.register(self.name, deadline_s)

    def status(self) -> dict[str, object]:
        """Role, consumer name, fencing number and last translated position, for ``/status``."""
        return {
            "role": self.role,
            "consumer": self.consumer,
            "group": self.cfg.legacy.group,
            "fence": self.lease.fence,
            "position": self.position,
            "held": self.holds.summary(),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Translate until ``stop`` is set; the batch in flight is written before returning."""
        backoff = Backoff(cap_s=REDIS_BACKOFF_CAP_S)
        try:
            while not stop.is_set():
                self.health.tick(self.name)
                try:
                    await self._step(stop)
                    backoff.reset()
                    self._outage.reset()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    REDIS_RECONNECTS.labels(self.name).inc()
                    # Rate-limited: the Redis watch names an outage and its URL once per 30 s.
                    quiet = self._outage.allow()
                    if quiet is not None:
                        log.warning(
                            "redis_unavailable", error=str(exc), role=self.role, suppressed=quiet
                        )
                    self._resync = True
                    await sleep_or_stop(backoff.next_delay(), stop)
                except ResponseError as exc:
                    # NOGROUP: the group is gone (re-activation re-creates it at the stored
                    # position). Anything else (OOM under noeviction, READONLY in a failover):
                    # Redis refuses for now; wait and start over as after any Redis error.
                    self._resync = True
                    if is_nogroup(exc):
                        log.exception("translator_group_lost", group=self.cfg.legacy.group)
                        continue
                    log.exception("redis_command_failed", role=self.role)
                    await sleep_or_stop(backoff.next_delay(), stop)
        finally:
            try:
                await self._drain()
            finally:
                await self._resign()

    async def _resign(self) -> None:
        """Hand the lease over at once on the way out (a standby need not wait for the TTL)."""
        self.role = "standby"
        self.health.unregister(self.name)
        try:
            await asyncio.shield(self.lease.release())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            log.warning("lease_release_failed")

    async def _step(self, stop: asyncio.Event) -> None:
        if self.step_down:
            await self._hand_over()
            await sleep_or_stop(self.lease.ttl_ms / 3000, stop)
            return
        if not self.lease.held:
            if (self.gate is not None and not self.gate()) or not await self.lease.acquire():
                self.role = "standby"
                await sleep_or_stop(self.lease.ttl_ms / 3000, stop)
                return
            await self._activate()
        elif self.lease.renew_due() and not await self.lease.renew():
            await self._drain()
            self._deactivate("lease_lost")
            return
        try:
            if self._resync:
                await self._resume()
            await self._work(stop)
        except TranslatorFencedError:
            self.lease.lost()
            await self._drain()
            self._deactivate("fenced")

    async def _hand_over(self) -> None:
        """Give the lease up on request (a partition rebalance), after the write in flight."""
        self.step_down = False
        if not self.lease.held:
            return
        await self._drain()
        self._deactivate("rebalance")
        await self.lease.release()

    async def _settle(self) -> None:
        """Await the batch write in flight, if any.

        Raises:
            TranslatorFencedError: the write was refused (the lease changed hands).
        """
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        future, outcome = inflight
        try:
            applied = await asyncio.shield(future)
        except BaseException:
            self._forget()
            raise
        if applied == FENCED:
            self._forget()
            raise TranslatorFencedError
        self._committed(outcome)

    async def _drain(self) -> None:
        """Settle the write in flight on the way to standby or out; failures are only logged
        (its entries stay pending and are re-read by whoever holds the lease next)."""
        try:
            await self._settle()
        except (
            TranslatorFencedError,
            RedisConnectionError,
            RedisTimeoutError,
            OSError,
            ResponseError,
        ) as exc:
            log.warning("translator_write_lost", error=type(exc).__name__)

    async def _activate(self) -> None:
        value = self.lease.value
        assert value is not None
        self.position = await self.store.position()
        self.holds.load(await self.store.held())
        self.holds.emitted = await self.store.emitted()
        await self.reader.ensure_group(self.position or "0")
        claimed = await self.reader.claim_all(
            value, min_idle_ms=0, count=self.cfg.legacy.batch_size
        )
        self.last_seen = await self.reader.last_delivered()
        self._pending_count = self.cfg.legacy.batch_size
        self._next_sweep = time.monotonic() + self.cfg.legacy.claim_idle_ms / 1000
        self._resync = False
        self.role = "active"
        log.info(
            "translator_active",
            consumer=self.consumer,
            fence=self.lease.fence,
            position=self.position,
            claimed=claimed,
            held=len(self.holds.ids),
        )

    async def _resume(self) -> None:
        """After a Redis error, start over as on activation: entries may have been delivered
        to this consumer without reaching it (a lost reply, a batch read ahead of a failed
        write). They stay pending here, and reading only new entries would write later events
        first, then skip these as below the position: lost. Re-reading the position and the
        pending entries first keeps every event, in order."""
        await self._drain()
        self._forget()
        await self._activate()

    def _forget(self) -> None:
        """Drop what was built on an unconfirmed write: its carry and the batch read ahead
        (those entries stay pending and are re-read)."""
        self.batches.forget()
        self._ahead = None

    def _deactivate(self, reason: str) -> None:
        self._forget()
        self.holds.clear()
        if self.role == "active":
            log.warning("translator_standby", consumer=self.consumer, reason=reason)
        self.role = "standby"

    async def _work(self, stop: asyncio.Event) -> None:
        value = self.lease.value
        assert value is not None
        if self._ahead is not None:
            prepared, self._ahead = self._ahead, None
            await self._process(prepared, stop)
            return
        deliveries: dict[str, int] = {}
        if self._pending_count is None and await self._retry_held():
            return
        if self._pending_count is not None:
            await self._settle()
            entries = await self.reader.read(value, PENDING, self._pending_count)
            if not entries:
                self._pending_count = None
                return
            deliveries = await self.reader.deliveries(entries)
        else:
            if await self._sweep(value):
                return
            entries = await self.reader.read(value, NEW, self.cfg.legacy.batch_size)
            if not entries:
                await self._settle()
                await self._update_gauges()
                await self.reader.wait_for_new(self.last_seen, self._block_ms)
                return
            self.last_seen = entries[-1].stream_id
        prepared = await self.batches.prepare(
            entries, deliveries=deliveries, position=self.position
        )
        await self._process(prepared, stop)

    async def _retry_held(self) -> bool:
        """Retry the set-aside entries of one held district that is due; False if none is."""
        district = self.holds.due()
        if district is None:
            return False
        held = self.holds.districts[district]
        await self._settle()
        entries = await self.reader.entries(held.ids[: self.cfg.legacy.batch_size])
        prepared = await self.batches.prepare(
            entries,
            deliveries={entries[0].stream_id: held.deliveries},
            position=self.position,
            retrying=district,
        )
        await self._process(prepared, stop=None)
        return True

    async def _sweep(self, value: bytes) -> bool:
        """Claim entries idle past ``claim_idle_ms`` in other consumers; True if any were."""
        if time.monotonic() < self._next_sweep:
            return False
        legacy = self.cfg.legacy
        self._next_sweep = time.monotonic() + legacy.claim_idle_ms / 1000
        await self._settle()
        claimed = await self.reader.claim_all(
            value, min_idle_ms=legacy.claim_idle_ms, count=legacy.batch_size
        )
        if claimed:
            log.warning("translator_claimed_idle", claimed=claimed)
            self._pending_count = legacy.batch_size
        return claimed > 0

    async def _read_ahead(self, value: bytes) -> None:
        """Read and prepare the next batch before sending this one's write (see the module
        docstring): Redis serves one command at a time, so reads sent after the write would
        wait for its script, and translating could not overlap with it."""
        entries = await self.reader.read(value, NEW, self.cfg.legacy.batch_size)
        if entries:
            self.last_seen = entries[-1].stream_id
            self._ahead = await self.batches.prepare(entries, deliveries={}, position=self.position)

    async def _process(self, prepared: Prepared, stop: asyncio.Event | None) -> None:
        value = self.lease.value
        assert value is not None
        outcome = await self.batches.finish(prepared)
        await self._settle()
        steady = (
            stop is not None
            and prepared.retrying is None
            and self._pending_count is None
            and not stop.is_set()
            and time.monotonic() < self._next_sweep
            and self.holds.due() is None  # a due held district is retried next, not after it
        )
        if steady:
            await self._read_ahead(value)
        if outcome.write.entries:
            self._inflight = (await self.store.send(outcome.write, value), outcome)
            if not steady:
                await self._settle()

    def _committed(self, outcome: Outcome) -> None:
        last = outcome.write.last_id
        assert last is not None
        TRANSLATOR_HELD.set(len(self.holds.ids))
        if self.position is None or parse_stream_id(last) > parse_stream_id(self.position):
            self.position = last
        for type_, n in outcome.translated.items():
            EVENTS_TRANSLATED.labels(type_).inc(n)
        for reason, n in outcome.skipped.items():
            EVENTS_SKIPPED.labels(reason).inc(n)
        for note, n in outcome.notes.items():
            PREVIOUS_UNREADABLE.labels(note).inc(n)
        for reason, n in outcome.dead.items():
            DEAD_LETTERED.labels("translator", reason).inc(n)
            log.warning("dead_lettered", stage="translator", reason=reason, count=n)

    async def _update_gauges(self) -> None:
        """Group lag and pending for /metrics, at most every few seconds and only when idle.

        With partitions each partition's translator sees only its own group, so none of them
        sets these process-wide gauges: the ops server's scrape sets them to the sum over every
        partition (:mod:`relay.ops.status`)."""
        if self.cfg.redis.partitions > 1 or time.monotonic() < self._next_gauges:
            return
        self._next_gauges = time.monotonic() + GAUGE_INTERVAL_S
        for info in await self.reader.redis.xinfo_groups(self.reader.stream):
            if info["name"].decode() == self.cfg.legacy.group:
                TRANSLATOR_PENDING.set(int(info["pending"]))
                TRANSLATOR_LAG.set(await group_lag(self.reader.redis, self.reader.stream, info))
