"""Onboarding a new district: newest event id E0, Data API sync, then poll events after E0.

Runs inside the district's poll task (so only the replica holding the district lease does it)
before its first poll, whenever the district's fleet phase is ``onboarding``. The steps, each
safe to repeat after a SIGKILL at any instant:

1. A returning district whose events expired (``old_cursor`` in its fleet hash) first drops its
   old cursor, through the fenced compare-and-set publish.
2. The Data API sync of :mod:`relay.readmodel.sync` (its public entry, ``DistrictSync.run``): it
   records E0 before reading anything, writes each page with its progress (resumable), seeds the
   translator's teacher ids (and whatever else the sync seeds) and the v2 read model, and at its
   end stores E0 as the cursor unless one is stored. A rerun after the sync finished starts a
   new sync, which cannot move the stored E0: events are never skipped.
3. One fenced script moves the phase to ``polling`` and appends ``relay.district_onboarded``
   (once), then the district polls from the stored cursor: events after E0, none before it.

At most ``max_onboarding`` syncs run at once per replica (a semaphore); the others wait as
``onboarding``. A sync uses the district's own token and rate limit (the district does not poll
while it syncs), so one district's sync never spends another's budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

from relay.clever.dataclient import DataClient
from relay.errors import CleverAuthError, Stopped
from relay.logs import get_logger
from relay.poller.fleet.registry import ONBOARDING, POLLING
from relay.poller.publish import Batch
from relay.readmodel.sync import V2_TYPES_ALL, DistrictSync
from relay.redis.keys import Keys
from relay.tasks import cancel_and_wait

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from relay.clever.client import CleverClient
    from relay.config import Config
    from relay.health import Health
    from relay.poller.fleet.registry import Registry
    from relay.poller.publish import Publisher

log = get_logger("fleet")

PROGRESS_EVERY_S = 2.0
"""How often a running sync's counts are copied to Redis for ``districts list``."""


class OnboardingDistrict(Protocol):
    """What onboarding reads and sets of a district's poller (:class:`relay.poller.DistrictPoller`).

    A protocol, so onboarding does not import the poller that runs it.
    """

    id: str
    name: str
    token: str
    phase: str
    state: str
    cursor: str | None
    lease: str | None
    health: Health
    publisher: Publisher
    client: CleverClient

    async def publish(self, batch: Batch) -> None:
        """Publish ``batch`` fenced by the district's lease (sets ``cursor``)."""

    def stopping(self) -> bool:
        """Whether the poller's run has been asked to stop."""

    async def stop_requested(self) -> None:
        """Return once the poller's run is asked to stop."""


class Onboarding:
    """A replica's onboardings: the concurrency bound, the registry, in-flight progress."""

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        registry: Registry,
        limit: int,
    ) -> None:
        self.cfg = cfg
        self.redis = redis
        self.session = session
        self.registry = registry
        self.slots = asyncio.Semaphore(limit)
        self.progress: dict[str, dict[str, int]] = {}
        """District id → v2 objects written so far by its running sync."""

    async def prepare(self, poller: OnboardingDistrict) -> bool:
        """Onboard ``poller``'s district if its phase says so; True when it did (cursor set).

        Raises:
            Stopped: the poller was asked to stop (the sync resumes on the next run).
            CleverAuthError, RedisError, FencedError: the poll loop handles them and calls
                this again.
        """
        state = await self.registry.read(poller.id)
        while state.get("phase") not in (ONBOARDING, POLLING):
            # Removed (or its fleet hash deleted): polling from the feed's start would publish
            # its history without a sync; wait until the list brings it back or it is stopped.
            await self._park(poller)
            state = await self.registry.read(poller.id)
        if "old_cursor" in state or "reonboard" in state:
            await self._forget_old(poller, state.get("old_cursor"))
        if state.get("phase") != ONBOARDING:
            return False
        poller.phase = ONBOARDING
        poller.state = "onboarding"
        log.info("district_onboarding", district=poller.id)
        await self._wait_for_slot(poller)
        try:
            counts = await self._sync(poller)
        finally:
            self.slots.release()
        cursor = await poller.publisher.read_cursor(poller.id)
        await self.registry.onboarded(poller.id, lease=poller.lease, cursor=cursor, counts=counts)
        poller.cursor = cursor
        poller.phase = POLLING
        self.progress.pop(poller.id, None)
        log.info("district_onboarded", district=poller.id, cursor=cursor, counts=counts)
        return True

    async def _forget_old(self, poller: OnboardingDistrict, old: str | None) -> None:
        """A district back after leaving: drop its old cursor (outside the retention now, or
        before an unfinished onboarding) and a stale sync's state, so it starts afresh."""
        if old is not None and await poller.publisher.read_cursor(poller.id) == old:
            poller.cursor = old
            await poller.publish(Batch(expected=old, new_cursor=None))
        rk = Keys(self.cfg.redis.prefix).read_model(poller.id)
        await self.redis.delete(rk.sync, *(rk.sync_seen(rt) for rt in V2_TYPES_ALL))
        await self.registry.clear_old_cursor(poller.id)

    async def _park(self, poller: OnboardingDistrict) -> None:
        """Wait one progress period, ticking health.

        Raises:
            Stopped: the poller was asked to stop.
        """
        poller.health.tick(poller.name)
        if poller.stopping():
            raise Stopped("stop requested while removed")
        await asyncio.sleep(PROGRESS_EVERY_S)

    async def _wait_for_slot(self, poller: OnboardingDistrict) -> None:
        """Take an onboarding slot, ticking the district's health while waiting (a long queue
        of new districts is not a stuck loop) and giving up when the poller is stopped.

        Raises:
            Stopped: the poller was asked to stop while waiting.
        """
        while True:
            poller.health.tick(poller.name)
            if poller.stopping():
                raise Stopped("stop requested while waiting to onboard")
            try:
                async with asyncio.timeout(PROGRESS_EVERY_S):
                    await self.slots.acquire()
            except TimeoutError:
                continue
            return

    async def _sync(self, poller: OnboardingDistrict) -> dict[str, int]:
        """Run the district's Data API sync until done, or until the poller is stopped."""
        c = self.cfg.clever
        client = DataClient(
            session=self.session,
            base_url=c.base_url,
            district=poller.id,
            token=poller.token,
            timeout_s=c.request_timeout_s,
            rate_limit_reserve=c.rate_limit_reserve,
            api_version=c.api_version,
        )
        sync = DistrictSync(cfg=self.cfg, redis=self.redis, client=client, district=poller.id)
        self.progress[poller.id] = sync.counts
        token = poller.token
        try:
            return await self._watch(poller, sync)
        except CleverAuthError:
            if poller.token == token:  # not replaced meanwhile: the poller must wait for one
                poller.client.mark_refused()
            raise

    async def _watch(self, poller: OnboardingDistrict, sync: DistrictSync) -> dict[str, int]:
        """Run ``sync``, storing its progress, until it is done or the poller is stopped."""
        task = asyncio.create_task(sync.run(), name=f"onboard:{poller.id}")
        stopper = asyncio.create_task(poller.stop_requested())
        try:
            while not task.done():
                poller.health.tick(poller.name)
                await asyncio.wait(
                    {task, stopper}, timeout=PROGRESS_EVERY_S, return_when=asyncio.FIRST_COMPLETED
                )
                if stopper.done():
                    raise Stopped("stop requested while onboarding")
                with contextlib.suppress(Exception):
                    await self.registry.set_progress(poller.id, dict(sync.counts))
            await task
        finally:
            await cancel_and_wait([stopper, task], deadline_s=self.cfg.relay.cancel_deadline_s)
        return dict(sync.counts)
