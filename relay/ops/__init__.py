"""The ops side of the relay: the HTTP server for probes, metrics and status.

- :mod:`relay.ops.server`: :class:`OpsServer`, ``/healthz``, ``/readyz``, ``/metrics``,
  ``/status`` (the v2 API and the console add their routes to the same application).
- :mod:`relay.ops.status`: :class:`StatusSource`, what ``/status`` reports, read from Redis.
- :mod:`relay.ops.protocol`: the aiohttp server pieces that keep protocol errors in JSON logs.

The Redis safety checks they surface live in :mod:`relay.redis.checks`.
"""

from relay.ops.server import OpsServer
from relay.ops.status import StatusSource

__all__ = ["OpsServer", "StatusSource"]
