"""Create the redis-py asyncio client every component shares.

Transient connection errors are retried inside redis-py (STYLE §7: its ``Retry`` rather than
hand-written loops) for a few hundred milliseconds; longer outages surface to the components,
which back off and resume from what Redis says (cursors, stored positions), never from memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay import logs

if TYPE_CHECKING:
    from relay.config import RedisSection

SOCKET_TIMEOUT_S = 10.0
"""Longer than any BLOCK the relay uses (block_ms defaults to 1 s) so a blocking read is not cut."""


def create_redis(cfg: RedisSection) -> aioredis.Redis:
    """A client for ``cfg.url`` with bounded retries; the password is registered as a secret."""
    client = aioredis.Redis.from_url(
        cfg.url,
        decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=5.0,
        health_check_interval=int(cfg.health_check_interval_s),
    )
    password = client.connection_pool.connection_kwargs.get("password")
    if password:
        logs.register_secret(str(password))
    return client
