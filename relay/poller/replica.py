"""The ``poller`` component: polls exactly the districts whose lease this replica holds.

Every configured district gets a :class:`~relay.poller.district.DistrictPoller`, all sharing one
:class:`~relay.publish.Publisher`; a :class:`~relay.district_leases.LeaseRunner` starts and
stops them as this replica gains and loses district leases, so N replicas share the districts
(issue 8).
"""

from __future__ import annotations

import functools
import socket
from collections import Counter
from typing import TYPE_CHECKING

from relay.district_leases import LeaseRunner, LeaseTable
from relay.metrics import DISTRICTS
from relay.poller.district import DistrictPoller
from relay.poller.prefetch import PrefetchBudget
from relay.publish import Publisher

if TYPE_CHECKING:
    import asyncio

    import aiohttp
    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health
    from relay.keys import Keys

PHASES = ("starting", "polling", "caught_up", "backoff", "unauthorized", "cursor_lost")
"""Phases of a held district (``DistrictPoller.state``) counted by ``clever_relay_districts``."""
NORMAL_PHASES = frozenset(("starting", "polling", "caught_up"))
ATTENTION_SHOWN = 20
"""Districts not polling normally shown in full in the poller's ``/status`` summary."""


class Poller:
    """Polls the districts whose leases this replica holds (``relay`` component ``poller``).

    Every configured district has a :class:`DistrictPoller`; a
    :class:`~relay.district_leases.LeaseRunner` runs exactly those whose lease this replica
    holds, so N replicas share the districts (issue 8). ``instance`` names the replica in leases
    and /status (default: ``[relay] instance`` or the host name, as
    :func:`relay.service.instance_name`).
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
        budget = PrefetchBudget()
        self.districts = [
            DistrictPoller(
                district=d,
                cfg=cfg,
                publisher=publisher,
                redis=redis,
                session=session,
                health=health,
                keys=keys,
                budget=budget,
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
        self.by_id = {d.id: d for d in self.districts}
        self.leases = LeaseRunner(table=table, work=self.by_id, health=health)
        for phase in PHASES:
            DISTRICTS.labels(phase).set_function(functools.partial(self.count_phase, phase))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll held districts until ``stop``; returns once each has finished its publish."""
        await self.leases.run(stop)

    def status(self) -> dict[str, object]:
        """A summary for ``/status``: districts held here by phase, and those not polling
        normally (at most :data:`ATTENTION_SHOWN`) in full; one district in full with
        :meth:`district_status` (a fleet of thousands would not fit)."""
        held = [self.by_id[d] for d in sorted(self.leases.table.held)]
        phases = Counter(d.state for d in held)
        attention = [d for d in held if d.state not in NORMAL_PHASES][:ATTENTION_SHOWN]
        return {
            "instance": self.instance,
            "held": len(held),
            "by_phase": dict(sorted(phases.items())),
            "attention": {d.id: d.status() for d in attention},
        }

    def district_status(self, district: str) -> dict[str, object] | None:
        """One district as this replica's poller sees it (None if not configured here)."""
        poller = self.by_id.get(district)
        return None if poller is None else poller.status()

    def count_phase(self, phase: str) -> int:
        """Districts held here in ``phase`` (``clever_relay_districts``, read at scrape time)."""
        return sum(1 for d in self.leases.table.held if self.by_id[d].state == phase)
