"""The ops side of the relay: the HTTP server for probes, metrics and status.

:mod:`relay.ops.server` serves the endpoints; :mod:`relay.ops.status` reads what they report
from Redis. The Redis safety checks they surface live in :mod:`relay.redis.checks`.
"""
