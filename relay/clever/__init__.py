"""Talking to Clever's v3.0 API: the events client, the Data API lists, the rate limiter.

- :mod:`relay.clever.client`: :class:`CleverClient` (events, retries, error mapping).
- :mod:`relay.clever.dataclient`: :class:`DataClient`, the Data API lists ``clever-relay sync``
  pages through.
- :mod:`relay.clever.ratelimit`: the per-token rate limiter both share.

Its errors live in :mod:`relay.errors` and are re-exported here.
"""

from relay.clever.client import CleverClient, FetchedPage, call_with_retries
from relay.clever.dataclient import DataClient
from relay.errors import CleverNotFound, PageTooLarge, Stopped

__all__ = [
    "CleverClient",
    "CleverNotFound",
    "DataClient",
    "FetchedPage",
    "PageTooLarge",
    "Stopped",
    "call_with_retries",
]
