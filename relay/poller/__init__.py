"""The poller: from Clever's events feed to the relay's events stream, one loop per district.

The package reads like the data flow:

- :mod:`relay.poller.component`: :class:`Poller`, the component; runs the districts whose lease
  this replica holds.
- :mod:`relay.poller.district`: :class:`DistrictPoller`, one district's fetch-publish loop and
  its error handling.
- :mod:`relay.poller.start`: where a district without a stored cursor starts (``start``).
- :mod:`relay.poller.cursor_lost`: detecting and reporting a cursor Clever no longer knows.
- :mod:`relay.poller.batches`: a fetched page as chained, atomically published chunks.
- :mod:`relay.poller.prefetch`: fetching the next page ahead, within a memory budget.
- :mod:`relay.poller.publish`: the fenced Lua publish of a batch and its cursor.
- :mod:`relay.poller.cursor_admin`: ``clever-relay cursor show|set``.
- :mod:`relay.poller.fleet`: the district fleet (discovery, onboarding, registry), which runs
  inside the component when ``[clever.discovery]`` is set.
"""

from relay.poller.component import Poller
from relay.poller.district import DistrictPoller

__all__ = ["DistrictPoller", "Poller"]
