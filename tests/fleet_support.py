"""Helpers for the fleet tests: discovery configs, simulator fleet control, stream readers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from relay.redis.keys import Keys
from tests.test_poller import PREFIX

if TYPE_CHECKING:
    import redis.asyncio as aioredis

KEYS = Keys(PREFIX)
CONTROL = ("relay.district_onboarded", "relay.district_removed")


def fleet_cfg(
    redis_url: str,
    base_url: str,
    *,
    components: tuple[str, ...] = ("poller",),
    static: list[dict[str, str]] | None = None,
    **discovery: Any,
) -> dict[str, Any]:
    """A config tree that discovers the simulator's districts (short intervals, prefix ``t``)."""
    return {
        "relay": {"components": list(components), "lease_ttl_s": 1.0, "shutdown_grace_s": 5.0},
        "redis": {"url": redis_url, "prefix": PREFIX},
        "clever": {
            "base_url": base_url,
            "page_limit": 500,
            "poll_interval_s": 0.1,
            "max_backoff_s": 0.2,
            "request_timeout_s": 5.0,
            "auth_retry_s": 2.0,
            "districts": static or [],
            "discovery": {
                "client_id": "sim_client_id",
                "client_secret": "sim_client_secret",
                "oauth_base_url": base_url,
                "interval_s": 0.5,
                **discovery,
            },
        },
        "legacy": {"block_ms": 50, "lease_ttl_s": 1.0},
        "log": {"level": "warning"},
    }


async def sim_call(method: str, url: str, body: object = None) -> Any:
    """One simulator control request; returns its JSON answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def entries_by_district(redis: aioredis.Redis) -> dict[str, list[tuple[str, str]]]:
    """``(type, id)`` of every events-stream entry, per district, in stream order."""
    raw: Any = await redis.xrange(KEYS.events)
    out: dict[str, list[tuple[str, str]]] = {}
    for _, fields in raw:
        district = fields[b"district"].decode()
        out.setdefault(district, []).append((fields[b"type"].decode(), fields[b"id"].decode()))
    return out


def event_ids(entries: list[tuple[str, str]]) -> list[str]:
    """The Clever event ids among a district's entries (control entries left out)."""
    return [event_id for kind, event_id in entries if not kind.startswith("relay.")]


async def control_entries(redis: aioredis.Redis, kind: str) -> list[dict[str, Any]]:
    """The decoded ``data`` of every control entry of type ``kind``, in stream order."""
    raw: Any = await redis.xrange(KEYS.events)
    return [
        msgspec.json.decode(fields[b"data"])
        for _, fields in raw
        if fields[b"type"].decode() == kind
    ]


async def phases(redis: aioredis.Redis, districts: list[str]) -> dict[str, str | None]:
    """Each district's fleet phase in Redis."""
    out: dict[str, str | None] = {}
    for district in districts:
        value: Any = await redis.hget(KEYS.fleet(district), "phase")
        out[district] = None if value is None else bytes(value).decode()
    return out
