"""Operator access to the stored cursors (``clever-relay cursor show|set``).

Setting a cursor is the recovery step after a lost cursor: resync the district from the Data
API, then set its cursor to the event id the resync started from. A running poller notices
on its next publish (its compare-and-set is refused) and continues from the new cursor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.errors import ConfigError
from relay.poller.fleet.registry import discovered_districts
from relay.poller.publish import is_event_id
from relay.redis.client import create_redis
from relay.redis.keys import Keys

if TYPE_CHECKING:
    from relay.config import Config


def _check_district(cfg: Config, district: str) -> None:
    if cfg.clever.discovery is not None:
        return  # any district may be discovered (docs/fleet.md)
    known = [d.id for d in cfg.clever.districts]
    if district not in known:
        listed = ", ".join(known) or "none"
        raise ConfigError([f"--district: {district} is not configured (configured: {listed})"])


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


async def show_cursors(cfg: Config, district: str | None) -> list[tuple[str, str | None]]:
    """Each configured and discovered district (or just ``district``) with its stored cursor.

    Raises:
        ConfigError: ``district`` is not configured.
    """
    if district is not None:
        _check_district(cfg, district)
    keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
    redis = create_redis(cfg.redis)
    try:
        static = [d.id for d in cfg.clever.districts]
        found = await discovered_districts(redis, keys, cfg, static) if district is None else []
        ids = [district] if district is not None else static + found
        values = await redis.mget([keys.cursor(i) for i in ids]) if ids else []
    finally:
        await redis.aclose()
    return [(i, _text(v)) for i, v in zip(ids, values, strict=True)]


async def set_cursor(cfg: Config, district: str, event_id: str) -> str | None:
    """Store ``event_id`` as the cursor of ``district``; returns the previous cursor.

    The lost-cursor marker in the district's poll state is cleared too, so a later loss of the
    new cursor is reported again.

    Raises:
        ConfigError: the district is not configured or ``event_id`` is not a 24-hex event id.
    """
    _check_district(cfg, district)
    if not is_event_id(event_id):
        raise ConfigError([f"EVENT_ID: {event_id!r} is not a Clever event id (24 lowercase hex)"])
    keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
    redis = create_redis(cfg.redis)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            _ = pipe.set(keys.cursor(district), event_id, get=True)
            _ = pipe.hdel(keys.poll_state(district), "lost_cursor")
            previous, _ = await pipe.execute()
    finally:
        await redis.aclose()
    return _text(previous)
