"""The ``poller`` component: polls exactly the districts whose lease this replica holds.

Every district gets a :class:`~relay.poller.district.DistrictPoller`, all sharing one
:class:`~relay.poller.publish.Publisher`; a :class:`~relay.poller.district_leases.LeaseRunner`
starts and stops them as this replica gains and loses district leases, so N replicas share the
districts (issue 8). The districts are the static ``[[clever.districts]]`` plus, with
``[clever.discovery]``, those read from Clever's token list (:mod:`relay.poller.fleet.discovery`
adds, re-tokens and removes them here at run time; docs/fleet.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections import Counter
from typing import TYPE_CHECKING

from relay.config import District
from relay.metrics import CURSOR_AGE, DISTRICT_LAG, DISTRICT_UP, DISTRICTS
from relay.poller.district import DistrictPoller
from relay.poller.district_leases import LeaseRunner, LeaseTable
from relay.poller.prefetch import PrefetchBudget
from relay.poller.publish import Publisher

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.poller.fleet.discovery import Fleet
    from relay.poller.fleet.onboarding import Onboarding
    from relay.redis.keys import Keys

PHASES = ("starting", "polling", "caught_up", "backoff", "unauthorized", "cursor_lost")
"""Phases of a held district (``DistrictPoller.state``) counted by ``clever_relay_districts``."""
NORMAL_PHASES = frozenset(("starting", "polling", "caught_up"))
ATTENTION_SHOWN = 20
"""Districts not polling normally shown in full in the poller's ``/status`` summary."""


class Poller:
    """Polls the districts whose leases this replica holds (``relay`` component ``poller``).

    ``instance`` names the replica in leases and /status (default: ``[relay] instance`` or the
    host name, as :func:`relay.service.instance_name`).
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
        self.cfg = cfg
        self.publisher = Publisher(
            redis=redis,
            keys=keys,
            events_maxlen=cfg.redis.events_maxlen,
            deadletter_maxlen=cfg.redis.deadletter_maxlen,
        )
        self._redis, self._session, self._health, self.keys = redis, session, health, keys
        self._budget = PrefetchBudget()
        self.by_id: dict[str, DistrictPoller] = {
            d.id: self._district_poller(d) for d in cfg.clever.districts
        }
        self.instance = instance or cfg.relay.instance or socket.gethostname()
        table = LeaseTable(
            redis=redis,
            keys=keys,
            instance=self.instance,
            districts=list(self.by_id),
            ttl_s=cfg.relay.lease_ttl_s,
        )
        self.leases = LeaseRunner(table=table, work=dict(self.by_id), health=health)
        for phase in PHASES:
            DISTRICTS.labels(phase).set_function(functools.partial(self.count_phase, phase))
        self.fleet: Fleet | None = None
        if cfg.clever.discovery is not None:
            from relay.poller.fleet.discovery import Fleet

            self.fleet = Fleet(cfg=cfg, poller=self, redis=redis, session=session, health=health)

    @property
    def districts(self) -> list[DistrictPoller]:
        """Every district's poll loop (held here or not)."""
        return list(self.by_id.values())

    def _district_poller(self, district: District) -> DistrictPoller:
        return DistrictPoller(
            district=district,
            cfg=self.cfg,
            publisher=self.publisher,
            redis=self._redis,
            session=self._session,
            health=self._health,
            keys=self.keys,
            budget=self._budget,
        )

    def add_discovered(
        self, district_id: str, token: str, *, start: str, onboarding: Onboarding
    ) -> DistrictPoller:
        """Add a discovered district; after :meth:`commit`, its lease is taken (here or
        elsewhere) at the next lease tick."""
        poller = self._district_poller(District(id=district_id, token=token, start=start))
        poller.source = "discovered"
        poller.onboarding = onboarding
        if self.fleet is not None:
            poller.on_auth_failure = self.fleet.request_reread
        self.by_id[district_id] = poller
        return poller

    def remove(self, district_id: str) -> None:
        """Stop polling a district and release its lease (after :meth:`commit`)."""
        if self.by_id.pop(district_id, None) is not None:
            for gauge in (CURSOR_AGE, DISTRICT_UP, DISTRICT_LAG):
                with contextlib.suppress(KeyError):
                    gauge.remove(district_id)

    def commit(self) -> None:
        """Hand the district set, after adds and removals, to the lease runner (next tick)."""
        self.leases.set_work(self.by_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll held districts until ``stop``; returns once each has finished its publish."""
        if self.fleet is None:
            await self.leases.run(stop)
            return
        await asyncio.gather(self.fleet.run(stop), self.leases.run(stop))

    def status(self) -> dict[str, object]:
        """A summary for ``/status``: districts held here by phase, and those not polling
        normally (at most :data:`ATTENTION_SHOWN`) in full; one district in full with
        :meth:`district_status` (a fleet of thousands would not fit)."""
        held = [self.by_id[d] for d in sorted(self.leases.table.held) if d in self.by_id]
        phases = Counter(d.state for d in held)
        attention = [d for d in held if d.state not in NORMAL_PHASES][:ATTENTION_SHOWN]
        return {
            "instance": self.instance,
            "held": len(held),
            "by_phase": dict(sorted(phases.items())),
            "attention": {d.id: d.status() for d in attention},
            # Districts discovery saw leave (bounded like ``attention``).
            "removed": dict(list(self.fleet.removed_status().items())[:ATTENTION_SHOWN])
            if self.fleet is not None
            else {},
        }

    def district_status(self, district: str) -> dict[str, object] | None:
        """One district as this replica's poller sees it (None if not configured here)."""
        poller = self.by_id.get(district)
        return None if poller is None else poller.status()

    def count_phase(self, phase: str) -> int:
        """Districts held here in ``phase`` (``clever_relay_districts``, read at scrape time)."""
        # A district discovery has just removed may still be held until the next lease tick.
        return sum(
            1
            for d in self.leases.table.held
            if (poller := self.by_id.get(d)) is not None and poller.state == phase
        )
