"""The poller: one loop per district, from Clever's events feed to the events stream.

Each district's loop fetches a page after its cursor, normalizes the events (invalid ones become
dead letters, so nothing blocks and nothing is dropped silently), and publishes the page and the
new cursor atomically (:mod:`relay.publish`). While page N is being published, page N+1 is
already being fetched (at most one page ahead). Districts are independent tasks: a slow,
failing or unauthorized district never stalls the others.

What the loop trusts is Redis, not its memory: after any Redis error or a refused
compare-and-set, it re-reads the stored cursor and continues from there, so a publish whose
outcome is unknown is neither lost nor repeated.

A quiet district with an old cursor (FACTS §2.5): an empty page is normal for a district with no
changes, so it is *not* treated as a lost cursor by itself. Only when the cursor's ObjectId time
is older than Clever's 30-day retention does the loop also ask for the feed's newest event id;
if Clever has a newer event than the cursor yet returns nothing after it, the cursor is lost.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import RedisError

from relay.backoff import Backoff, sleep_or_stop
from relay.clever.client import CleverClient, PageTooLarge, Stopped, call_with_retries
from relay.errors import CleverAuthError, CleverError, CursorLostError, FencedError
from relay.leases import LeaseRunner, LeaseTable
from relay.logs import get_logger, register_secret
from relay.messages import CURSOR_LOST, ControlMessage, encode
from relay.metrics import CURSOR_AGE, DISTRICT_LAG, DISTRICT_UP, EVENTS_PUBLISHED, POLL_ERRORS
from relay.publish import Batch, LeaseLostError, Publisher, build_batches, is_event_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config, District
    from relay.health import Health
    from relay.keys import Keys

log = get_logger("poller")
T = TypeVar("T")

RETENTION_S = 30 * 86400
"""Clever keeps events 30 days (FACTS §2.5)."""
OLD_CURSOR_S = RETENTION_S - 86400
"""A cursor this old may have expired: empty pages trigger the newest-event check."""
RATE_WINDOW_S = 60.0
HEALTH_MARGIN_S = 30.0
UNHEALTHY_AFTER = 3
"""Consecutive transient failures before the district shows as unhealthy in /status."""


@dataclass
class _Prefetch:
    cursor: str | None
    task: asyncio.Task[list[Batch]]


class DistrictPoller:
    """The poll loop of one district."""

    def __init__(
        self,
        *,
        district: District,
        cfg: Config,
        publisher: Publisher,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
        keys: Keys,
    ) -> None:
        self.id = district.id
        self.start = district.start
        self.cfg = cfg
        self.publisher = publisher
        self.redis = redis
        self.health = health
        self.keys = keys
        token = district.resolve_token()
        register_secret(token)
        self.client = CleverClient(
            session=session,
            base_url=cfg.clever.base_url,
            district=district.id,
            token=token,
            timeout_s=cfg.clever.request_timeout_s,
            rate_limit_reserve=cfg.clever.rate_limit_reserve,
        )
        self.name = f"poller:{district.id}"
        self.limit = cfg.clever.page_limit
        self.cursor: str | None = None
        self.state = "not_held"
        self.lease: str | None = None
        self.lease_lost = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._synced = False
        self._ahead: _Prefetch | None = None
        self._redis_backoff = Backoff(cap_s=cfg.clever.max_backoff_s)
        self._stop = asyncio.Event()
        self._progress_at = time.monotonic()
        CURSOR_AGE.labels(self.id).set_function(lambda: time.monotonic() - self._progress_at)

    def status(self) -> dict[str, object]:
        """State for /status: no token, nothing that needs Redis."""
        return {
            "state": self.state,
            "leased": self.lease is not None,
            "cursor": self.cursor,
            "page_limit": self.limit,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    async def run(self, stop: asyncio.Event, *, lease: str | None = None) -> None:
        """Poll until ``stop`` is set (or the cursor is lost in ``fail`` mode); never raises.

        Every publish carries ``lease`` (the held district lease value) for the fencing check;
        a refused lease ends the run with ``lease_lost`` set. A run always starts from the
        stored cursor: another replica may have moved it since this one last polled.
        """
        self._stop = stop
        self.lease, self.lease_lost = lease, False
        self._synced, self.state = False, "starting"
        c = self.cfg.clever
        deadline_s = c.request_timeout_s + c.poll_interval_s + c.max_backoff_s + RATE_WINDOW_S
        self.health.register(self.name, deadline_s=deadline_s + HEALTH_MARGIN_S)
        DISTRICT_UP.labels(self.id).set(1)
        try:
            await self._loop()
        finally:
            self._drop_prefetch()
            self.health.unregister(self.name)
            self.lease = None
            if self.state not in ("cursor_lost", "lease_lost"):
                self.state = "stopped"
            log.info("district_stopped", district=self.id, cursor=self.cursor, state=self.state)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self.health.tick(self.name)
            try:
                if not self._synced:
                    await self._sync_cursor()
                await self._step()
            except (Stopped, LeaseLostError) as exc:
                self._ended(exc)
                return
            except CleverAuthError as exc:
                await self._unauthorized(exc)
            except CursorLostError as exc:
                if not await self._cursor_lost(exc):
                    return
            except PageTooLarge as exc:
                self._drop_prefetch()
                self.limit = max(1, exc.limit // 2)
                log.warning("page_limit_halved", district=self.id, limit=self.limit)
            except (RedisError, FencedError) as exc:
                await self._resync(exc)
            except Exception as exc:  # the loop boundary: log, wait, carry on (STYLE §7)
                log.exception("poll_loop_failed", district=self.id, error=repr(exc))
                await self._resync(exc)

    def _ended(self, exc: Exception) -> None:
        """The loop ends: asked to stop, or another replica holds the lease now."""
        if isinstance(exc, LeaseLostError):
            self.state, self.lease_lost = "lease_lost", True
            log.warning("district_lease_lost", district=self.id, holder=exc.holder)

    async def _resync(self, exc: Exception) -> None:
        """After a Redis error or a refused CAS: wait, then trust only the stored cursor."""
        self._drop_prefetch()
        self._synced = False
        self.state = "backoff"
        delay = self._redis_backoff.next_delay()
        log.warning("poll_resync", district=self.id, error=repr(exc), retry_in_s=round(delay, 3))
        self._record_error("redis" if isinstance(exc, RedisError) else type(exc).__name__)
        await sleep_or_stop(delay, self._stop)

    async def _sync_cursor(self) -> None:
        """Load the stored cursor; with none stored, settle the start position (CONTRACT §3)."""
        stored = await self.publisher.read_cursor(self.id)
        self._synced = True
        if stored is not None or self.start == "earliest":
            self.cursor = stored
            return
        target = self.start
        if target == "latest":
            target_or_none = await self._retrying(self.client.latest_event_id)
            if target_or_none is None:
                log.info("start_feed_empty", district=self.id)
                self.cursor = None
                return
            target = target_or_none
        # Store the start now: a crash before the first event must not move "latest" forward.
        self.cursor = None
        await self._publish(Batch(expected=None, new_cursor=target))
        log.info("start_position_stored", district=self.id, start=self.start, cursor=target)

    async def _step(self) -> None:
        """Fetch (or take the prefetched) page, then publish it while fetching the next."""
        batches = await self._next_batches()
        if batches is None:
            return
        if not batches:
            await self._caught_up()
            return
        if self.state != "polling":
            self.state = "polling"
            DISTRICT_UP.labels(self.id).set(1)
        self._prefetch(batches[-1].new_cursor)
        for batch in batches:
            await self._publish(batch)
        self._redis_backoff.reset()

    async def _next_batches(self) -> list[Batch] | None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.cursor == self.cursor:
            task = ahead.task
        else:
            if ahead is not None:
                ahead.task.cancel()
            task = asyncio.create_task(self._fetch(self.cursor), name=f"fetch:{self.id}")
        return await self._until_stop(task)

    async def _until_stop(self, task: asyncio.Task[list[Batch]]) -> list[Batch] | None:
        """Await ``task`` unless ``stop`` comes first (then cancel it: nothing is written yet)."""
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            return None
        return task.result()

    def _prefetch(self, cursor: str | None) -> None:
        task = asyncio.create_task(self._fetch(cursor), name=f"prefetch:{self.id}")
        self._ahead = _Prefetch(cursor, task)

    def _drop_prefetch(self) -> None:
        if self._ahead is not None:
            self._ahead.task.cancel()
            self._ahead = None

    async def _fetch(self, cursor: str | None) -> list[Batch]:
        """One page after ``cursor`` as publishable batches, retrying transient failures."""
        limit = self.limit

        async def once() -> list[Batch]:
            page = await self.client.events_page(starting_after=cursor, limit=limit)
            return build_batches(page, district=self.id, expected=cursor)

        return await self._retrying(once)

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(cap_s=self.cfg.clever.max_backoff_s)

        def on_error(exc: CleverError) -> None:
            self.health.tick(self.name)
            self.last_error, self.last_error_at = exc.kind, time.time()
            if backoff.attempt >= UNHEALTHY_AFTER:
                self.state = "backoff"
                DISTRICT_UP.labels(self.id).set(0)
                self._record_error(exc.kind)

        return await call_with_retries(
            fn,
            district=self.id,
            max_backoff_s=self.cfg.clever.max_backoff_s,
            stop=self._stop,
            on_error=on_error,
            backoff=backoff,
        )

    async def _publish(self, batch: Batch) -> None:
        """Publish one batch; raises RedisError/FencedError for the loop to resync."""
        await asyncio.shield(self.publisher.publish(self.id, batch, lease=self.lease))
        self.cursor = batch.new_cursor
        self._progress_at = time.monotonic()
        if batch.event_count:
            EVENTS_PUBLISHED.labels(self.id).inc(batch.event_count)
        if batch.newest_created:
            DISTRICT_LAG.labels(self.id).set(_lag_s(batch.newest_created))

    async def _caught_up(self) -> None:
        """An empty page: nothing new. Check an old cursor, note success, wait the interval."""
        if self.cursor is not None and _cursor_age_s(self.cursor) > OLD_CURSOR_S:
            latest = await self._retrying(self.client.latest_event_id)
            if latest is not None and latest > self.cursor:
                raise CursorLostError(self.id, self.cursor, 200)
        self.state = "caught_up"
        self._progress_at = time.monotonic()
        DISTRICT_UP.labels(self.id).set(1)
        DISTRICT_LAG.labels(self.id).set(0)
        await self.redis.hset(
            self.keys.poll_state(self.id),
            mapping={"last_success": repr(time.time()), "healthy": "1"},
        )
        await sleep_or_stop(self.cfg.clever.poll_interval_s, self._stop)

    async def _unauthorized(self, exc: CleverAuthError) -> None:
        """Clever refused the token: mark the district unhealthy and retry slowly."""
        self._drop_prefetch()
        self.state = "unauthorized"
        DISTRICT_UP.labels(self.id).set(0)
        POLL_ERRORS.labels(self.id, "auth").inc()
        retry_s = self.cfg.clever.auth_retry_s
        log.error("clever_token_refused", district=self.id, status=exc.status, retry_in_s=retry_s)
        self._record_error("auth")
        await self._wait_ticking(retry_s)

    async def _cursor_lost(self, exc: CursorLostError) -> bool:
        """Report a lost cursor on the stream; returns True when polling goes on (``latest``)."""
        self._drop_prefetch()
        mode = self.cfg.clever.on_cursor_lost
        POLL_ERRORS.labels(self.id, "cursor_lost").inc()
        DISTRICT_UP.labels(self.id).set(0)
        resumed = await self._retrying(self.client.latest_event_id) if mode == "latest" else None
        reason = f"Clever answered {exc.status} to starting_after={exc.cursor}"
        if exc.status == 200:
            reason = f"cursor {exc.cursor} is past retention and Clever returns nothing after it"
        control = ControlMessage(
            type=CURSOR_LOST,
            district=self.id,
            created=_now_iso(),
            reason=reason,
            cursor=exc.cursor,
            resumed_from=resumed,
        )
        new_cursor = resumed if mode == "latest" else exc.cursor
        await self.publisher.publish(
            self.id,
            Batch(expected=exc.cursor, new_cursor=new_cursor, control=encode(control)),
            lease=self.lease,
        )
        self._record_error("cursor_lost")
        if mode == "fail":
            self.state = "cursor_lost"
            log.error(
                "cursor_lost_district_stopped",
                district=self.id,
                cursor=exc.cursor,
                reason=reason,
                hint="resync from the Data API, then `clever-relay cursor set`",
            )
            return False
        log.error(
            "cursor_lost_resumed_at_latest",
            district=self.id,
            cursor=exc.cursor,
            resumed_from=resumed,
            reason=reason,
        )
        self.cursor = resumed
        return True

    async def _wait_ticking(self, delay_s: float) -> None:
        """Sleep ``delay_s`` (or until stop), ticking health so a long wait is not "stuck"."""
        end = time.monotonic() + delay_s
        while (left := end - time.monotonic()) > 0:
            self.health.tick(self.name)
            if await sleep_or_stop(min(left, self.cfg.clever.poll_interval_s + 1.0), self._stop):
                return

    def _record_error(self, kind: str) -> None:
        """Remember the error and mirror it to the poll-state hash (best effort)."""
        now = time.time()
        self.last_error, self.last_error_at = kind, now
        mapping = {"last_error": kind, "last_error_at": repr(now), "healthy": "0"}
        task = asyncio.create_task(self._write_state(mapping))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _write_state(self, mapping: dict[str, str]) -> None:
        try:
            await self.redis.hset(self.keys.poll_state(self.id), mapping=mapping)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        except RedisError:
            log.debug("poll_state_write_failed", district=self.id)


_background: set[asyncio.Task[None]] = set()
"""Strong references to best-effort poll-state writes (asyncio keeps only weak ones)."""


class Poller:
    """Polls the districts whose leases this replica holds (``relay`` component ``poller``).

    Every configured district has a :class:`DistrictPoller`; a :class:`~relay.leases.LeaseRunner`
    runs exactly those whose lease this replica holds, so N replicas share the districts
    (issue 8). ``instance`` names the replica in leases and /status (default: ``[relay]
    instance`` or the host name, as :func:`relay.service.instance_name`).
    """

    name = "poller"

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
        keys: Keys,
        instance: str | None = None,
    ) -> None:
        publisher = Publisher(
            redis=redis,
            keys=keys,
            events_maxlen=cfg.redis.events_maxlen,
            deadletter_maxlen=cfg.redis.deadletter_maxlen,
        )
        self.districts = [
            DistrictPoller(
                district=d,
                cfg=cfg,
                publisher=publisher,
                redis=redis,
                session=session,
                health=health,
                keys=keys,
            )
            for d in cfg.clever.districts
        ]
        self.instance = instance or cfg.relay.instance or socket.gethostname()
        table = LeaseTable(
            redis=redis,
            keys=keys,
            instance=self.instance,
            districts=[d.id for d in self.districts],
            ttl_s=cfg.relay.lease_ttl_s,
        )
        work = {d.id: d for d in self.districts}
        self.leases = LeaseRunner(table=table, work=work, health=health)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll held districts until ``stop``; returns once each has finished its publish."""
        await self.leases.run(stop)

    def status(self) -> dict[str, dict[str, object]]:
        """Per district: state, lease held here, cursor, page limit, last error (no token)."""
        return {d.id: d.status() for d in self.districts}


def _cursor_age_s(cursor: str) -> float:
    """Age of an ObjectId from its leading 4-byte timestamp (0 if it is not one)."""
    if not is_event_id(cursor):
        return 0.0
    return time.time() - int(cursor[:8], 16)


def _lag_s(created: str) -> float:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(created).timestamp())
    except ValueError:
        return 0.0


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
