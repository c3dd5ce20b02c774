"""The Redis layer: the client, every key name, the safety checks and the single-active lease.

- :mod:`relay.redis.client`: :func:`~relay.redis.client.create_redis` (pool size, cluster or
  standalone, timeouts).
- :mod:`relay.redis.keys`: every key name the relay reads or writes (the one place to build one).
- :mod:`relay.redis.checks`: the eviction-policy and persistence checks ``/status`` shows.
- :mod:`relay.redis.replies`: reading values out of replies (text, numbers that may be missing).
- :mod:`relay.redis.single_active_lease`: a fenced lease one process holds while the others
  stand by (translator, webhook delivery).

The keys and the lease are re-exported here; the client and checks are imported from their
modules (they load redis-py, which the key names do not need).
"""

from relay.redis.keys import EndpointKeys, Keys, ReadModelKeys
from relay.redis.single_active_lease import SingleActiveLease

__all__ = ["EndpointKeys", "Keys", "ReadModelKeys", "SingleActiveLease"]
