"""Create the redis-py asyncio clients: one for the pipeline, one for the request side.

The two are bulkheads (see docs/operations.md): each has its own bounded pool
(``[redis] pipeline_max_connections`` / ``api_max_connections``), so a burst of v2 API requests
can exhaust only the API's connections, never the poller's or the translator's. A pool that is
empty makes the command wait (``BlockingConnectionPool``, up to ``pool_timeout_s``) instead of
raising at once as redis-py's default pool does.

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

SOCKET_TIMEOUT_S = 10.0
"""Longer than any BLOCK the relay uses (block_ms defaults to 1 s) so a blocking read is not cut."""


def create_redis(cfg: RedisSection, *, max_connections: int | None = None) -> aioredis.Redis:
    """A client for ``cfg.url`` with bounded retries; the password is registered as a secret.

    ``max_connections`` sizes its pool (default ``cfg.pipeline_max_connections``); a command
    finding no free connection waits for one up to ``cfg.pool_timeout_s``.

    With ``[redis] cluster = true`` this is a :class:`redis.asyncio.RedisCluster` (the URL names
    any one node; the others are discovered). The rest of the relay is typed against
    ``redis.asyncio.Redis`` and uses only what both clients offer for single-slot keys: plain
    commands, blocking stream reads, EVALSHA scripts whose keys all share the prefix's hash
    tag, and non-transactional pipelines.
    """
    size = cfg.pipeline_max_connections if max_connections is None else max_connections
    if cfg.cluster:
        return _create_cluster(cfg, size)
    # A *blocking* pool: more commands in flight than connections (a start of thousands of
    # districts, a burst of publishes, a crowd of v2 clients) wait for a free connection instead
    # of raising MaxConnectionsError (which made pollers resync in a storm and leases fail).
    pool = aioredis.BlockingConnectionPool.from_url(
        cfg.url,
        max_connections=size,
        timeout=cfg.pool_timeout_s,
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


def _create_cluster(cfg: RedisSection, size: int) -> aioredis.Redis:
    """The Cluster client, cast to the annotated type (it is not a subclass of ``Redis``).

    Its per-node pools are bounded by ``size`` too; redis-py's cluster client has no waiting
    pool, so there the v2 API's request bound is what keeps the API within its budget.
    """
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
        max_connections=size,
    )
    return cast("aioredis.Redis", client)


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (for code that must treat the two differently)."""
    return isinstance(client, RedisCluster)
