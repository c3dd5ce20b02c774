"""The district fleet: districts discovered from Clever's token list, onboarded, rotated, removed.

Part of the poller component: its discovery loop runs inside :class:`relay.poller.Poller` and
changes which districts it polls.

- :mod:`~relay.poller.fleet.tokens`: the OAuth tokens endpoint (HTTP Basic, ``next`` paging).
- :mod:`~relay.poller.fleet.registry`: each district's fleet state in Redis (phase, progress).
- :mod:`~relay.poller.fleet.onboarding`: a new district's crash-safe sync before it polls.
- :mod:`~relay.poller.fleet.discovery`: the loop that reads the list and changes the districts.
- :mod:`~relay.poller.fleet.admin`: ``clever-relay fleet`` (the districts as the fleet sees them).

How an operator runs it: docs/fleet.md.
"""

from __future__ import annotations

__all__ = ["Fleet", "Onboarding", "Registry"]


def __getattr__(name: str) -> object:
    """Import lazily: the poller imports the registry, and the fleet's loop imports the poller."""
    if name == "Fleet":
        from relay.poller.fleet.discovery import Fleet

        return Fleet
    if name == "Onboarding":
        from relay.poller.fleet.onboarding import Onboarding

        return Onboarding
    if name == "Registry":
        from relay.poller.fleet.registry import Registry

        return Registry
    raise AttributeError(name)
