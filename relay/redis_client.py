"""Create the redis-py asyncio client every component shares.

Transient connection errors are retried inside redis-py (STYLE §7: its ``Retry`` rather than
hand-written loops) for a few hundred milliseconds; longer outages surface to the components,
which back off and resume from what Redis says (cursors, stored positions), never from memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay import logs

if TYPE_CHECKING:
    from relay.config import RedisSection

MAX_CONNECTIONS = 100
"""Connections to Redis per process; commands beyond wait for one (at most SOCKET_TIMEOUT_S)."""
SOCKET_TIMEOUT_S = 10.0
"""Longer than any BLOCK the relay uses (block_ms defaults to 1 s) so a blocking read is not cut."""


def create_redis(cfg: RedisSection) -> aioredis.Redis:
    """A client for ``cfg.url`` with bounded retries; the password is registered as a secret.

    With ``[redis] cluster = true`` this is a :class:`redis.asyncio.RedisCluster` (the URL names
    any one node; the others are discovered). The rest of the relay is typed against
    ``redis.asyncio.Redis`` and uses only what both clients offer for single-slot keys: plain
    commands, blocking stream reads, EVALSHA scripts whose keys all share the prefix's hash
    tag, and non-transactional pipelines.
    """
    if cfg.cluster:
        return _create_cluster(cfg)
    # A *blocking* pool: with thousands of districts, more commands than connections are in
    # flight at once (a start, a burst of publishes). redis-py's default pool then raises
    # MaxConnectionsError, which made pollers resync in a storm and lease renewals fail (leases
    # lost, districts moving); this one makes the extra commands wait for a free connection.
    pool = aioredis.BlockingConnectionPool.from_url(
        cfg.url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT_S,
        decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=5.0,
        health_check_interval=int(cfg.health_check_interval_s),
    )
    client = aioredis.Redis.from_pool(pool)
    password = client.connection_pool.connection_kwargs.get("password")
    if password:
        logs.register_secret(str(password))
    return client


def _create_cluster(cfg: RedisSection) -> aioredis.Redis:
    """The Cluster client, cast to the annotated type (it is not a subclass of ``Redis``)."""
    password = urlsplit(cfg.url).password
    if password:
        logs.register_secret(unquote(password))
    client = RedisCluster.from_url(
        cfg.url,
        decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=5.0,
        health_check_interval=int(cfg.health_check_interval_s),
    )
    return cast("aioredis.Redis", client)


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (for code that must treat the two differently)."""
    return isinstance(client, RedisCluster)
