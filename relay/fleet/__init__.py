"""The district fleet: districts discovered from Clever's token list, onboarded, rotated, removed.

- :mod:`relay.fleet.tokens`: the OAuth tokens endpoint (HTTP Basic, ``next`` paging).
- :mod:`relay.fleet.registry`: the fleet state each district keeps in Redis (phase, progress).
- :mod:`relay.fleet.onboarding`: a new district's crash-safe sync before it polls.
- :mod:`relay.fleet.discovery`: the loop that reads the list and changes the poller's districts.

- :mod:`relay.fleet.admin`: ``clever-relay fleet`` (the districts as the fleet sees them).

How an operator runs it: docs/fleet.md.
"""

from __future__ import annotations

__all__ = ["Fleet", "Onboarding", "Registry"]


def __getattr__(name: str) -> object:
    """Import lazily: the poller imports the registry, and the fleet's loop imports the poller."""
    if name == "Fleet":
        from relay.fleet.discovery import Fleet

        return Fleet
    if name == "Onboarding":
        from relay.fleet.onboarding import Onboarding

        return Onboarding
    if name == "Registry":
        from relay.fleet.registry import Registry

        return Registry
    raise AttributeError(name)
