"""The v2 compatibility API (docs/v2-api.md): the HTTP routes that answer v2 requests.

Serving only: the data it reads is the read model (:mod:`relay.readmodel`), which ``clever-relay
sync`` fills and the translator keeps current; this package imports neither of those writers.

- :mod:`relay.v2api.server`: :func:`add_routes`, every route under ``/v2.0`` and ``/v2.1``.
- :mod:`relay.v2api.auth`: the relay-issued v2 keys, one per district.
- :mod:`relay.v2api.records`: the Data endpoints (records and their relations).
- :mod:`relay.v2api.events`: the events endpoints.
- :mod:`relay.v2api.idmap`: the ID crosswalk over HTTP.
- :mod:`relay.v2api.v20`: v2.1 objects converted for ``/v2.0`` answers, on the way out.
- :mod:`relay.v2api.paging`, :mod:`relay.v2api.page_scripts`, :mod:`relay.v2api.context`: the
  paging parameters and envelopes, the Lua page reads, what every handler receives.
"""

from __future__ import annotations

from relay.v2api.auth import Authenticator

__all__ = ["Authenticator", "add_routes"]


def __getattr__(name: str) -> object:
    """Import the routes lazily so ``clever-relay keys`` (auth only) stays light for the CLI."""
    if name == "add_routes":
        from relay.v2api.server import add_routes

        return add_routes
    raise AttributeError(name)
