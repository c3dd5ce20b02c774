"""``clever-relay check-config --connect``: does Redis answer, and does Clever accept each token?

``check-config`` alone is instant and offline. With ``--connect`` it also tries what ``run``
needs first: Redis answers ``PING`` (and its ``maxmemory-policy`` and persistence are reported,
as the running relay checks them, docs/operations.md), and each district's token is accepted by
Clever, with one cheap request per district (``GET /v3.0/events?limit=1``). Every problem is one
line naming the key it comes from; the caller exits 2 if there is any.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from redis.exceptions import RedisError

from relay import __version__
from relay.logs import scrub
from relay.redis.checks import read_persistence, read_policy
from relay.redis.client import create_redis

if TYPE_CHECKING:
    from relay.config import Config, District

CONNECT_TIMEOUT_S = 10.0


async def redis_report(cfg: Config) -> tuple[list[str], list[str]]:
    """(problems, notes) about the configured Redis."""
    url = scrub(cfg.redis.url)
    redis = create_redis(cfg.redis)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await redis.ping()
            policy = await read_policy(redis)
            persistent = await read_persistence(redis)
    except (RedisError, OSError, TimeoutError) as exc:
        reason = f"{type(exc).__name__}: {scrub(str(exc))}".rstrip(": ")
        return [f"redis.url: no Redis answers at {url} ({reason})"], []
    finally:
        await redis.aclose()
    persistence = {True: "on", False: "off", None: "unknown"}[persistent]
    notes = [f"redis ok: {url}, maxmemory-policy {policy or 'unknown'}, persistence {persistence}"]
    problems = []
    if policy is not None and policy != "noeviction":
        problems.append(
            f"redis: maxmemory-policy is {policy}: Redis may evict streams and cursors; "
            "set it to noeviction"
        )
    return problems, notes


async def token_problem(
    session: aiohttp.ClientSession, base_url: str, index: int, district: District
) -> str | None:
    """One request with the district's token; a line saying what is wrong, else ``None``."""
    where = f"clever.districts[{index}] ({district.id})"
    url = f"{base_url.rstrip('/')}/v3.0/events?limit=1"
    headers = {"Authorization": f"Bearer {district.resolve_token()}"}
    try:
        async with session.get(url, headers=headers) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{where}: Clever did not answer at {base_url} ({type(exc).__name__})"
    if status in (401, 403):
        return f"{where}: token rejected by Clever (HTTP {status})"
    if status != 200:
        return f"{where}: GET /v3.0/events answered HTTP {status}"
    return None


async def discovery_problem(session: aiohttp.ClientSession, cfg: Config) -> str | None:
    """One token-list request with the app's client id and secret; what is wrong, else None."""
    discovery = cfg.clever.discovery
    if discovery is None:
        return None
    client_id, secret = discovery.resolve_credentials()
    base = discovery.oauth_base_url.rstrip("/")
    auth = aiohttp.BasicAuth(client_id, secret)
    try:
        async with session.get(f"{base}/oauth/tokens?owner_type=district", auth=auth) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"clever.discovery: Clever did not answer at {base} ({type(exc).__name__})"
    if status in (401, 403):
        return f"clever.discovery: client id/secret refused (HTTP {status})"
    if status != 200:
        return f"clever.discovery: GET /oauth/tokens answered HTTP {status}"
    return None


async def connect_report(cfg: Config) -> tuple[list[str], list[str]]:
    """(problems, notes) for Redis and every district's token."""
    problems, notes = await redis_report(cfg)
    timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_S)
    headers = {"User-Agent": f"clever-relay/{__version__}"}
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        found = await asyncio.gather(
            *(
                token_problem(session, cfg.clever.base_url, i, d)
                for i, d in enumerate(cfg.clever.districts)
            )
        )
        listed = await discovery_problem(session, cfg)
    problems += [line for line in found if line is not None]
    if listed is not None:
        problems.append(listed)
    accepted = found.count(None)
    notes.append(f"clever ok: {accepted} of {len(found)} district token(s) accepted")
    return problems, notes
