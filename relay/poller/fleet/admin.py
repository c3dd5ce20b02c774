"""Operator commands for the fleet: ``clever-relay districts list`` and ``sync --district``.

``districts list`` reads Redis only (any machine with the config can run it, while the relay
runs): every static and discovered district with its source, phase, cursor, lag and onboarding
progress. ``sync --district ID`` for a discovered district asks Clever's token list for that
district's token (``?district=ID``) and then runs the same Data API sync as for a static one.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from relay.config import District
from relay.errors import RelayError
from relay.poller.fleet.registry import describe, discovered_districts
from relay.poller.fleet.tokens import TokensClient
from relay.redis.client import create_redis
from relay.redis.keys import Keys

if TYPE_CHECKING:
    from relay.config import Config

COLUMNS = ("district", "source", "phase", "cursor", "lag_s", "onboarding")


async def district_rows(cfg: Config) -> list[tuple[str, ...]]:
    """One row per district (static first, then discovered, each sorted), as :data:`COLUMNS`."""
    keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
    redis = create_redis(cfg.redis)
    try:
        static = [d.id for d in cfg.clever.districts]
        districts = static + await discovered_districts(redis, keys, cfg, static)
        pipe = redis.pipeline(transaction=False)
        for district in districts:
            _ = pipe.get(keys.cursor(district))
            _ = pipe.hgetall(keys.poll_state(district))
            _ = pipe.hgetall(keys.fleet(district))
        replies: list[Any] = await pipe.execute()
    finally:
        await redis.aclose()
    rows: list[tuple[str, ...]] = []
    for i, district in enumerate(districts):
        cursor, state, fleet = replies[3 * i : 3 * i + 3]
        state, fleet = _texts(state), _texts(fleet)
        source, phase, onboarding = describe(fleet, state, static=i < len(static))
        rows.append(
            (
                district,
                source,
                phase,
                _text(cursor) if cursor is not None else "-",
                _lag(state.get("newest_created")),
                _onboarding(onboarding),
            )
        )
    return rows


def _texts(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lag(created: str | None) -> str:
    if not created:
        return "-"
    try:
        return f"{max(0.0, time.time() - datetime.fromisoformat(created).timestamp()):.1f}"
    except ValueError:
        return "-"


def _onboarding(onboarding: dict[str, object] | None) -> str:
    """``done 123`` or ``syncing 45`` (v2 objects written), ``-`` when not onboarded by sync."""
    if onboarding is None:
        return "-"
    objects = onboarding.get("objects")
    total = sum(objects.values()) if isinstance(objects, dict) else 0
    return f"{'done' if onboarding.get('done') else 'syncing'} {total}"


async def discovered_as_static(cfg: Config, district: str) -> Config:
    """``cfg`` with ``district`` as its only static district, its token read from Clever's list.

    Raises:
        ConfigError: the app's credentials cannot be read.
        RelayError: Clever refused the app's credentials or does not list the district.
    """
    discovery = cfg.clever.discovery
    if discovery is None or any(d.id == district for d in cfg.clever.districts):
        return cfg
    client_id, secret = discovery.resolve_credentials()
    async with aiohttp.ClientSession() as session:
        tokens = TokensClient(
            session=session,
            oauth_base_url=discovery.oauth_base_url,
            client_id=client_id,
            client_secret=secret,
            timeout_s=cfg.clever.request_timeout_s,
        )
        listed = await tokens.districts(district)
    if district not in listed:
        raise RelayError(f"district {district} is not in Clever's token list for this app")
    entry = District(id=district, token=listed[district].token)
    clever = msgspec.structs.replace(cfg.clever, districts=[entry])
    return msgspec.structs.replace(cfg, clever=clever)
