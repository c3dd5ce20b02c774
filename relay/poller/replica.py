"""The ``poller`` component: polls exactly the districts whose lease this replica holds.

Every configured district gets a :class:`~relay.poller.district.DistrictPoller`, all sharing one
:class:`~relay.publish.Publisher`; a :class:`~relay.district_leases.LeaseRunner` starts and
stops them as this replica gains and loses district leases, so N replicas share the districts
(issue 8).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from relay.district_leases import LeaseRunner, LeaseTable
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
        work = {d.id: d for d in self.districts}
        self.leases = LeaseRunner(table=table, work=work, health=health)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll held districts until ``stop``; returns once each has finished its publish."""
        await self.leases.run(stop)

    def status(self) -> dict[str, dict[str, object]]:
        """Per district: state, lease held here, cursor, page limit, last error (no token)."""
        return {d.id: d.status() for d in self.districts}
