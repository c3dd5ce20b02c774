"""One district's poll loop: fetch a page after the cursor, publish it, repeat.

Each page is normalized and published chunk by chunk (:mod:`relay.poller.batches`), each chunk
atomic with its cursor (:mod:`relay.poller.publish`); invalid events become dead letters, so nothing
blocks and nothing is dropped silently. While a page is published, the next one is already being
fetched (at most one page ahead, within the process's budget, :mod:`relay.poller.prefetch`):
a page fetched ahead is just the HTTP body and its envelope, never normalized events. Districts
are independent tasks: a slow, failing or unauthorized district never stalls the others.

What the loop trusts is Redis, not its memory: after any Redis error or a refused
compare-and-set, it re-reads the stored cursor and continues from there, so a publish whose
outcome is unknown is neither lost nor repeated. Start positions live in
:mod:`relay.poller.start`, lost cursors in :mod:`relay.poller.cursor_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import RedisError

from relay.backoff import Backoff, sleep_or_stop
from relay.clever.client import CleverClient, call_with_retries
from relay.errors import (
    CleverAuthError,
    CleverError,
    CursorLostError,
    FencedError,
    LeaseLostError,
    PageTooLarge,
    Stopped,
)
from relay.logs import get_logger, register_secret
from relay.metrics import (
    CURSOR_AGE,
    DISTRICT_LAG,
    DISTRICT_UP,
    EVENTS_PUBLISHED,
    POLL_ERRORS,
    district_label,
    per_district,
)
from relay.poller.batches import iter_batches, page_end_cursor
from relay.poller.cursor_lost import check_quiet_cursor, report_cursor_lost
from relay.poller.prefetch import PrefetchBudget, Prefetcher
from relay.poller.publish import Batch
from relay.poller.start import start_position
from relay.tasks import cancel_and_wait

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp
    import redis.asyncio as aioredis
    from prometheus_client import Gauge

    from relay.config import Config, District
    from relay.health import Health
    from relay.messages import EventsPage
    from relay.poller.fleet.onboarding import Onboarding
    from relay.poller.publish import Publisher
    from relay.redis.keys import Keys

log = get_logger("poller")
T = TypeVar("T")

RATE_WINDOW_S = 60.0
HEALTH_MARGIN_S = 30.0
UNHEALTHY_AFTER = 3
"""Consecutive transient failures before the district shows as unhealthy in /status."""
QUIET_STATE_EVERY_S = 30.0
"""A quiet district refreshes ``last_success`` in its poll-state hash at most this often
(every empty page did: one Redis write per poll, the largest share of a quiet fleet's cost);
the first success after an error is always written at once."""


@dataclass
class _Page:
    """A fetched page, decoded but not normalized, and where it leaves the cursor."""

    page: EventsPage
    size_bytes: int
    end_cursor: str | None
    """None for an empty page."""
    requested_at: float
    """``time.monotonic()`` when the request was made: Clever's state is from then."""


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
        budget: PrefetchBudget | None = None,
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
        self.token = token
        """The token in use (never shown: not in ``status()``, ``repr`` or logs)."""
        self.source = "static"
        """``static`` (``[[clever.districts]]``) or ``discovered`` (docs/fleet.md)."""
        self.phase = "polling"
        """Fleet phase on this replica: ``onboarding``, ``polling``, ``unauthorized``."""
        self.onboarding: Onboarding | None = None
        """Set for discovered districts: runs the onboarding sync before the first poll."""
        self.on_auth_failure: Callable[[str], None] | None = None
        """Called with the district id when Clever refuses the token (discovery re-reads)."""
        self.client = CleverClient(
            session=session,
            base_url=cfg.clever.base_url,
            district=district.id,
            token=token,
            timeout_s=cfg.clever.request_timeout_s,
            rate_limit_reserve=cfg.clever.rate_limit_reserve,
            api_version=cfg.clever.api_version,
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
        self.retention_check_at = 0.0
        """``time.monotonic()`` before which an old quiet cursor is not re-checked."""
        self._ahead: Prefetcher[_Page] = Prefetcher(budget or PrefetchBudget(), district.id)
        self._redis_backoff = Backoff(cap_s=cfg.clever.max_backoff_s)
        self._stop = asyncio.Event()
        self._stopping: asyncio.Task[bool] | None = None
        """One waiter on ``_stop`` per run, shared by every fetch (not a new task per poll)."""
        self._interrupt: asyncio.Timeout | None = None
        """The fetch in progress in the loop's own task, which ``stop`` interrupts."""
        self._state_written_at = -QUIET_STATE_EVERY_S
        self._up: Gauge | None = None
        """This district's ``clever_relay_district_up`` while this replica polls it."""
        self._progress_at = time.monotonic()

    def set_token(self, token: str) -> None:
        """Use a rotated token from the next request on: no restart, the cursor stays."""
        register_secret(token)
        self.token = token
        self.client.set_token(token)

    async def stop_requested(self) -> None:
        """Return once this run is asked to stop."""
        await self._stop.wait()

    def stopping(self) -> bool:
        """Whether this run has been asked to stop."""
        return self._stop.is_set()

    def status(self) -> dict[str, object]:
        """State for /status: no token, nothing that needs Redis."""
        progress = self.onboarding.progress.get(self.id) if self.onboarding else None
        return {
            "source": self.source,
            "phase": self.phase,
            "onboarding": progress,
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
        self._series(present=True)
        self.set_up(1)
        self._stopping = asyncio.create_task(stop.wait())
        self._stopping.add_done_callback(self._on_stop)
        try:
            await self._loop()
        finally:
            self._stopping.cancel()
            self.drop_prefetch()
            self.health.unregister(self.name)
            self.lease = None
            if self.state not in ("cursor_lost", "lease_lost"):
                self.state = "stopped"
            if self.state != "cursor_lost":  # a parked district keeps showing up = 0
                self._series(present=False)
            log.info("district_stopped", district=self.id, cursor=self.cursor, state=self.state)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self.health.tick(self.name)
            try:
                if not self._synced:
                    await self._sync_cursor()
                    self._synced, self.retention_check_at = True, 0.0
                await self._step()
            except (Stopped, LeaseLostError) as exc:
                self._ended(exc)
                return
            except CleverAuthError as exc:
                await self._unauthorized(exc)
            except CursorLostError as exc:
                outcome = await report_cursor_lost(self, exc)
                if not outcome.keep_polling:
                    self.state = "cursor_lost"
                    return
                self.cursor = outcome.cursor
            except PageTooLarge as exc:
                self.drop_prefetch()
                self.limit = max(1, exc.limit // 2)
                log.warning("page_limit_halved", district=self.id, limit=self.limit)
            except (RedisError, FencedError) as exc:
                await self._resync(exc)
            except Exception as exc:  # the loop boundary: log, wait, carry on (STYLE §7)
                log.exception("poll_loop_failed", district=self.id, error=repr(exc))
                await self._resync(exc)

    def _series(self, *, present: bool) -> None:
        """Create (or remove) this district's gauges: only the replica polling it exports them,
        and none at all with ``[http] per_district_metrics = false``."""
        if present and per_district():
            self._up = DISTRICT_UP.labels(self.id)
            CURSOR_AGE.labels(self.id).set_function(lambda: time.monotonic() - self._progress_at)
            return
        self._up = None
        for gauge in (DISTRICT_UP, CURSOR_AGE, DISTRICT_LAG):
            with contextlib.suppress(KeyError):
                gauge.remove(self.id)

    def set_up(self, value: int) -> None:
        """Set ``clever_relay_district_up`` (when this district's series exist)."""
        if self._up is not None:
            self._up.set(value)

    def _ended(self, exc: Exception) -> None:
        """The loop ends: asked to stop, or another replica holds the lease now."""
        if isinstance(exc, LeaseLostError):
            self.state, self.lease_lost = "lease_lost", True
            log.warning("district_lease_lost", district=self.id, holder=exc.holder)

    async def _resync(self, exc: Exception) -> None:
        """After a Redis error or a refused CAS: wait, then trust only the stored cursor."""
        self.drop_prefetch()
        self._synced = False
        self.state = "backoff"
        delay = self._redis_backoff.next_delay()
        log.warning("poll_resync", district=self.id, error=repr(exc), retry_in_s=round(delay, 3))
        self.record_error("redis" if isinstance(exc, RedisError) else type(exc).__name__)
        await sleep_or_stop(delay, self._stop)

    async def _step(self) -> None:
        """Fetch (or take the prefetched) page, then publish it while fetching the next."""
        fetched = await self._next_page()
        if fetched is None:
            return
        if fetched.end_cursor is None:
            await self._caught_up(fetched.requested_at)
            return
        if self.state != "polling":
            self.state = self.phase = "polling"
            self.set_up(1)
        ahead = fetched.end_cursor
        self._ahead.start(ahead, fetched.size_bytes, lambda: self._fetch(ahead))
        # Only the envelope stays referenced; each chunk's encodings are dropped once published.
        for batch in iter_batches(
            fetched.page,
            district=self.id,
            expected=self.cursor,
            api_version=self.client.api_version,
        ):
            await self.publish(batch)
            del batch
        self._redis_backoff.reset()

    async def _next_page(self) -> _Page | None:
        task = self._ahead.take(self.cursor)
        if task is not None:
            return await self._until_stop(task)
        return await self._fetch_unless_stopped()

    async def _fetch_unless_stopped(self) -> _Page | None:
        """Fetch in this task; ``stop`` interrupts it the way a timeout would (nothing is
        written yet). A quiet district does this every poll: no task and no wait set per poll
        (they were a large share of a quiet fleet's CPU)."""
        if self._stop.is_set():
            return None
        interrupt = self._interrupt = asyncio.timeout(None)
        try:
            async with interrupt:
                return await self._fetch(self.cursor)
        except TimeoutError:
            if interrupt.expired() and self._stop.is_set():
                return None
            raise
        finally:
            self._interrupt = None

    def _on_stop(self, _: object) -> None:
        """``stop`` was set: interrupt the fetch in progress, if any."""
        if self._interrupt is not None:
            self._interrupt.reschedule(asyncio.get_running_loop().time())

    async def _until_stop(self, task: asyncio.Task[_Page]) -> _Page | None:
        """Await ``task`` unless ``stop`` comes first (then cancel it: nothing is written yet)."""
        stopper = self._stopping
        if stopper is None or stopper.cancelled():  # called outside run()
            stopper = self._stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # a hard shutdown must not leave the fetch running on a closed session
            raise
        if not task.done():
            await cancel_and_wait([task], deadline_s=self.cfg.relay.cancel_deadline_s)
            return None
        return task.result()

    def drop_prefetch(self) -> None:
        """Cancel the page fetched ahead (the cursor it was fetched after may be wrong now)."""
        self._ahead.drop()

    async def _fetch(self, cursor: str | None) -> _Page:
        """One page after ``cursor``, decoded and checked, retrying transient failures."""
        limit = self.limit

        async def once() -> _Page:
            requested_at = time.monotonic()
            fetched = await self.client.fetch_events(starting_after=cursor, limit=limit)
            end_cursor = page_end_cursor(fetched.page)
            return _Page(fetched.page, fetched.size_bytes, end_cursor, requested_at)

        return await self.retrying(once)

    async def _sync_cursor(self) -> None:
        """Load the stored cursor; with none stored, settle and store the start position.

        Raises:
            redis.exceptions.RedisError, FencedError: the loop resyncs and calls this again.
        """
        if self.onboarding is not None and await self.onboarding.prepare(self):
            return
        position = await start_position(
            district=self.id,
            start=self.start,
            publisher=self.publisher,
            latest=partial(self.retrying, self.client.latest_event_id),
        )
        if not position.store:
            self.cursor = position.cursor
            return
        self.cursor = None
        await self.publish(Batch(expected=None, new_cursor=position.cursor))
        log.info(
            "start_position_stored", district=self.id, start=self.start, cursor=position.cursor
        )

    async def retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Call ``fn`` (a Clever request) until it succeeds, keeping health and /status current.

        Raises:
            Stopped: ``stop`` was set while waiting to retry.
        """
        backoff = Backoff(cap_s=self.cfg.clever.max_backoff_s)

        def on_error(exc: CleverError) -> None:
            self.health.tick(self.name)
            self.last_error, self.last_error_at = exc.kind, time.time()
            if backoff.attempt >= UNHEALTHY_AFTER:
                self.state = "backoff"
                self.set_up(0)
                self.record_error(exc.kind)

        return await call_with_retries(
            fn,
            district=self.id,
            max_backoff_s=self.cfg.clever.max_backoff_s,
            stop=self._stop,
            on_error=on_error,
            backoff=backoff,
        )

    async def publish(self, batch: Batch) -> None:
        """Publish one batch; raises RedisError/FencedError for the loop to resync."""
        await asyncio.shield(self.publisher.publish(self.id, batch, lease=self.lease))
        self.cursor = batch.new_cursor
        self._progress_at = time.monotonic()
        if batch.event_count:
            EVENTS_PUBLISHED.labels(district_label(self.id)).inc(batch.event_count)
        if batch.newest_created and self._up is not None:
            DISTRICT_LAG.labels(self.id).set(_lag_s(batch.newest_created))

    async def _caught_up(self, requested_at: float) -> None:
        """An empty page: nothing new. Check an old cursor, note success, wait the interval.

        The interval counts from when the empty page was requested: a page fetched ahead may
        have waited while the previous page was published, and events that arrived meanwhile
        must not wait that long on top of the interval.
        """
        await check_quiet_cursor(self)
        self.state, self.phase = "caught_up", "polling"
        now = self._progress_at = time.monotonic()
        self.set_up(1)
        if now - self._state_written_at >= QUIET_STATE_EVERY_S:
            await self.redis.hset(
                self.keys.poll_state(self.id),
                mapping={"last_success": repr(time.time()), "healthy": "1"},
            )
            self._state_written_at = now
        waited_s = time.monotonic() - requested_at
        await sleep_or_stop(self.cfg.clever.poll_interval_s - waited_s, self._stop)

    async def _unauthorized(self, exc: CleverAuthError) -> None:
        """Clever refused the token: mark the district unhealthy and retry slowly.

        A token replaced since the refused request is tried at once; otherwise discovery (if
        on) is asked to read the token list again, and a new token ends the wait early.
        """
        self.drop_prefetch()
        if not self.client.token_refused():
            return
        self.state = self.phase = "unauthorized"
        self.set_up(0)
        POLL_ERRORS.labels(district_label(self.id), "auth").inc()
        retry_s = self.cfg.clever.auth_retry_s
        log.error("clever_token_refused", district=self.id, status=exc.status, retry_in_s=retry_s)
        self.record_error("auth")
        if self.on_auth_failure is not None:
            self.on_auth_failure(self.id)
        end = time.monotonic() + retry_s
        while self.client.token_refused() and (left := end - time.monotonic()) > 0:
            self.health.tick(self.name)
            if await sleep_or_stop(min(left, 1.0), self._stop):
                return

    def record_error(self, kind: str) -> None:
        """Remember the error and mirror it to the poll-state hash (best effort)."""
        now = time.time()
        self.last_error, self.last_error_at = kind, now
        self._state_written_at = -QUIET_STATE_EVERY_S  # the next success is written at once
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


def _lag_s(created: str) -> float:
    try:
        return max(0.0, time.time() - datetime.fromisoformat(created).timestamp())
    except ValueError:
        return 0.0
