"""The running simulator's shared state: world, options, limiter, fault injector and stats.

One ``Simulator`` per aiohttp application, stored under ``SIM_KEY``; this is the only mutable
state of a server and every handler reaches it through the request's app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from relay.simulator.faults import FaultInjector
from relay.simulator.feed import Feed
from relay.simulator.options import SimOptions
from relay.simulator.ratelimit import FixedWindowLimiter
from relay.simulator.world import DAY_S, World


@dataclass
class TokenStats:
    """Counters for one district token (keyed by district id: tokens are never shown)."""

    requests: int = 0
    responses_429_forced: int = 0
    responses_429_unforced: int = 0
    events_served: int = 0


@dataclass
class Stats:
    """What the simulator saw; ``responses_429_unforced`` > 0 means a client broke the limit."""

    requests: int = 0
    responses_429_forced: int = 0
    responses_429_unforced: int = 0
    responses_401: int = 0
    events_served: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    per_token: dict[str, TokenStats] = field(default_factory=dict)

    def token(self, district_id: str) -> TokenStats:
        """The counters of one district's token."""
        stats = self.per_token.get(district_id)
        if stats is None:
            stats = self.per_token[district_id] = TokenStats()
        return stats

    def status(self, code: int) -> None:
        """Count one response status."""
        key = str(code)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def fault(self, name: str) -> None:
        """Count one injected fault."""
        self.faults[name] = self.faults.get(name, 0) + 1


class Simulator:
    """Everything a request handler needs."""

    def __init__(self, world: World, options: SimOptions) -> None:
        self.world = world
        self.options = options
        self.stats = Stats()
        self.limiter = FixedWindowLimiter(limit=options.rate_limit, window_s=options.rate_window_s)
        self.injector = FaultInjector(options.faults, seed=options.seed)

    def first_visible(self, feed: Feed) -> int:
        """Position of the oldest event still within the retention window."""
        days = self.options.retention_days
        return feed.first_visible(None if days <= 0 else time.time() - days * DAY_S)


SIM_KEY = web.AppKey("simulator", Simulator)
