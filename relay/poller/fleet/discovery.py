"""The discovery loop: read the token list, then add, re-token and remove districts.

Every replica reads the list itself (every ``interval_s``, and at once when a district's token
is refused, at most once per ``reread_min_s``, 30 s by default), so tokens live only in process
memory, never in Redis. What must be agreed on is decided in Redis by the fleet scripts
(:mod:`relay.poller.fleet.registry`): a district's phase, and the control entries, which exactly one
replica appends. Which replica polls a discovered district is decided by the district leases,
exactly as for static ones.

- **New or returning district**: added to this replica's poller; its fleet phase (new:
  ``onboarding`` with ``onboard = "sync"``, else ``polling``) tells its poll loop whether to
  onboard first (:mod:`relay.poller.fleet.onboarding`).
- **New token** for a known district: used from the next request on.
- **Absent from two consecutive reads**: removed here (loop stopped, lease released) and, by
  whichever replica gets there first, marked ``removed`` with one ``relay.district_removed``.
- A static ``[[clever.districts]]`` entry wins for its district: the list's entry is ignored.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

from relay.backoff import Backoff, sleep_or_stop
from relay.errors import CleverError, ConfigError, DiscoveryAuthError
from relay.logs import get_logger, register_secret
from relay.metrics import FLEET_DISTRICTS
from relay.poller.cursor_lost import RETENTION_S
from relay.poller.fleet.onboarding import Onboarding
from relay.poller.fleet.registry import ONBOARDING, POLLING, REMOVED, Registry
from relay.poller.fleet.tokens import DistrictToken, TokensClient

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.redis.keys import Keys

log = get_logger("fleet")

ABSENT_READS = 2
"""Consecutive reads a district must be missing from before it counts as removed."""
RESUME_WITHIN_S = RETENTION_S - 86400
"""A district back within this of its removal resumes from its cursor, else is onboarded again
(a day's margin: the events after its cursor must still be within Clever's retention)."""


class PolledDistrict(Protocol):
    """What discovery reads and changes of one district's poller (token, source, phase)."""

    @property
    def token(self) -> str:
        """The token in use."""

    @property
    def source(self) -> str:
        """``static`` or ``discovered``."""

    @property
    def phase(self) -> str:
        """The district's fleet phase on this replica."""

    def set_token(self, token: str) -> None:
        """Use a rotated token from the next request on."""


class FleetPoller(Protocol):
    """What discovery changes: this replica's poller (:class:`relay.poller.Poller`).

    A protocol, so discovery does not import the poller that runs it.
    """

    @property
    def keys(self) -> Keys:
        """The relay's key names."""

    @property
    def by_id(self) -> Mapping[str, PolledDistrict]:
        """The districts configured here, by id."""

    def add_discovered(
        self, district_id: str, token: str, *, start: str, onboarding: Onboarding
    ) -> object:
        """Add a discovered district (its lease is taken after :meth:`commit`)."""

    def remove(self, district_id: str) -> None:
        """Stop and forget a district."""

    def commit(self) -> None:
        """Apply the additions and removals to the district leases."""


class Fleet:
    """The discovery loop of one replica (runs inside the ``poller`` component)."""

    name = "poller:discovery"

    def __init__(
        self,
        *,
        cfg: Config,
        poller: FleetPoller,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        health: Health,
    ) -> None:
        discovery = cfg.clever.discovery
        assert discovery is not None
        self.discovery = discovery
        self.cfg = cfg
        self.poller = poller
        self.health = health
        self.registry = Registry(redis, poller.keys, events_maxlen=cfg.redis.events_maxlen)
        self.onboarding = Onboarding(
            cfg=cfg,
            redis=redis,
            session=session,
            registry=self.registry,
            limit=discovery.max_onboarding,
        )
        self._session = session
        self.static = frozenset(d.id for d in cfg.clever.districts)
        self.members: set[str] = set()
        """Districts this replica counts as in the fleet (listed, or known and not removed)."""
        self.absent: dict[str, int] = {}
        self.removed: set[str] = set()
        self.state = "starting"
        self.last_read_at: float | None = None
        self._last_read_mono = -discovery.reread_min_s
        self._reread = asyncio.Event()
        self._tokens: TokensClient | None = None

    def request_reread(self, district: str) -> None:
        """A district's token was refused: read the list again soon (rate-limited)."""
        log.info("token_list_reread_requested", district=district)
        self._reread.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Read the list every ``interval_s`` (sooner after a refusal) until ``stop``."""
        self.health.register(self.name, deadline_s=self.discovery.interval_s + 120.0)
        backoff = Backoff(cap_s=self.cfg.clever.max_backoff_s)
        try:
            while not stop.is_set():
                self.health.tick(self.name)
                delay = self.discovery.interval_s
                try:
                    await self.read_once()
                    backoff.reset()
                except (CleverError, RedisError, DiscoveryAuthError, ConfigError) as exc:
                    delay = min(delay, backoff.next_delay())
                    self._failed(exc)
                except Exception as exc:  # the loop boundary: log, wait, carry on
                    log.exception("discovery_loop_failed", error=repr(exc))
                    delay = min(delay, backoff.next_delay())
                await self._wait(delay, stop)
        finally:
            self.health.unregister(self.name)

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, DiscoveryAuthError):
            self.state = "unauthorized"
            self._tokens = None  # read the credentials again: a mounted secret file may change
            log.error("token_list_refused", status=exc.status, hint="check the client id/secret")
        else:
            self.state = "backoff"
            log.warning("token_list_read_failed", error=str(exc))

    async def _wait(self, delay_s: float, stop: asyncio.Event) -> None:
        """Sleep ``delay_s``; a re-read request ends it once ``reread_min_s`` has passed."""
        end = time.monotonic() + delay_s
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            self.health.tick(self.name)
            if self._reread.is_set():
                soonest = self._last_read_mono + self.discovery.reread_min_s - time.monotonic()
                if soonest <= 0:
                    self._reread.clear()
                    return
                left = min(left, soonest)
            await sleep_or_stop(min(left, 1.0), stop)

    def _client(self) -> TokensClient:
        if self._tokens is None:
            client_id, secret = self.discovery.resolve_credentials()
            register_secret(secret)
            self._tokens = TokensClient(
                session=self._session,
                oauth_base_url=self.discovery.oauth_base_url,
                client_id=client_id,
                client_secret=secret,
                timeout_s=self.cfg.clever.request_timeout_s,
            )
        return self._tokens

    async def read_once(self) -> None:
        """One read of the list and everything it changes."""
        if self.last_read_at is None:
            known = await self.registry.known()
            self.members.update(d for d in known if d not in self.static)
        started = time.time()
        self._last_read_mono = time.monotonic()
        listed = await self._client().districts()
        for token in listed.values():
            register_secret(token.token)
        listed = {d: t for d, t in listed.items() if d not in self.static}
        initial = ONBOARDING if self.discovery.onboard == "sync" else POLLING
        phases = await self.registry.seen(
            sorted(listed), initial=initial, read_started=started, retention_s=RESUME_WITHIN_S
        )
        try:
            for district, phase in phases.items():
                if phase != REMOVED:
                    self._present(listed[district])
            for district in sorted(self.members - set(listed)):
                await self._missing(district)
        finally:
            self.poller.commit()
        self.state, self.last_read_at = "ok", time.time()
        self._count()
        log.info("token_list_read", districts=len(listed), polled=len(self.poller.by_id))

    def _present(self, item: DistrictToken) -> None:
        district = item.district
        self.absent.pop(district, None)
        self.removed.discard(district)
        self.members.add(district)
        current = self.poller.by_id.get(district)
        if current is None:
            start = "earliest" if self.discovery.onboard == "sync" else self.discovery.onboard
            self.poller.add_discovered(
                district, item.token, start=start, onboarding=self.onboarding
            )
            log.info("district_discovered", district=district)
        elif current.token != item.token:
            current.set_token(item.token)
            log.info("district_token_rotated", district=district)

    async def _missing(self, district: str) -> None:
        count = self.absent[district] = self.absent.get(district, 0) + 1
        if count < ABSENT_READS:
            return
        reason = f"absent from {count} consecutive reads of the token list"
        if await self.registry.remove(district, reason):
            log.warning("district_removed", district=district, reason=reason)
        self.poller.remove(district)
        self.members.discard(district)
        self.absent.pop(district, None)
        self.removed.add(district)

    def _count(self) -> None:
        """Refresh ``clever_relay_fleet_districts`` (districts by source and phase, here)."""
        counts: dict[tuple[str, str], int] = {("discovered", REMOVED): len(self.removed)}
        for poller in self.poller.by_id.values():
            key = (poller.source, poller.phase)
            counts[key] = counts.get(key, 0) + 1
        for source in ("static", "discovered"):
            for phase in (ONBOARDING, POLLING, "unauthorized", REMOVED):
                FLEET_DISTRICTS.labels(source, phase).set(counts.get((source, phase), 0))

    def removed_status(self) -> dict[str, dict[str, object]]:
        """/status records of the districts this replica saw removed."""
        return {
            d: {"source": "discovered", "phase": REMOVED, "state": "stopped", "leased": False}
            for d in sorted(self.removed)
        }
