"""Dead letters of every kind behind one interface, and the operator actions on them.

A *source* is ``relay`` (``<p>:deadletter``: translator and poller dead letters) or
``webhook:<endpoint>`` (``<p>:webhooks:deadletter:<endpoint>``). Listing, replay and purge call
the same functions as ``clever-relay deadletter`` and ``clever-relay webhooks``, so the console
and the CLI cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from relay import deadletters
from relay.errors import UnknownSource
from relay.logs import scrub
from relay.redis.keys import Keys
from relay.webhooks import admin

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis.asyncio as aioredis

    from relay.config import Config

RELAY = "relay"
WEBHOOK = "webhook:"


class Letter(msgspec.Struct, frozen=True, kw_only=True):
    """One dead letter as the console lists it, whichever stream it is in."""

    entry: str
    kind: str
    """``translator``, ``poller`` or ``webhook``."""
    reason: str
    detail: str
    district: str
    event_id: str
    at: float
    payload: str
    replayable: bool


def sources(cfg: Config) -> list[str]:
    """Every dead-letter source of this deployment."""
    return [RELAY, *(f"{WEBHOOK}{e.name}" for e in cfg.webhooks.endpoints)]


def _endpoint(cfg: Config, source: str) -> str | None:
    """The endpoint name of a webhook source, ``None`` for the relay's own stream."""
    if source not in sources(cfg):
        raise UnknownSource(source)
    return None if source == RELAY else source.removeprefix(WEBHOOK)


async def count(redis: aioredis.Redis, cfg: Config, source: str) -> int:
    """How many dead letters ``source`` holds."""
    endpoint = _endpoint(cfg, source)
    if endpoint is None:
        return await deadletters.count(redis, Keys(cfg.redis.prefix, cfg.redis.partitions))
    parts = Keys(cfg.redis.prefix, cfg.redis.partitions).all_partitions()
    return sum([int(await redis.xlen(k.webhook(endpoint).deadletter)) for k in parts])


async def page(
    redis: aioredis.Redis, cfg: Config, source: str, *, after: str, limit: int
) -> list[Letter]:
    """Up to ``limit`` dead letters of ``source`` after entry ``after``, oldest first."""
    endpoint = _endpoint(cfg, source)
    if endpoint is None:
        found = await deadletters.page(
            redis, Keys(cfg.redis.prefix, cfg.redis.partitions), after=after, limit=limit
        )
        return [
            Letter(
                entry=d.entry,
                kind=d.stage,
                reason=d.reason,
                detail=d.detail,
                district=d.district,
                event_id=d.event_id,
                at=d.at,
                payload=scrub(d.payload),
                replayable=d.replayable,
            )
            for d in found
        ]
    letters = await admin.page_dead_letters(cfg, endpoint, redis=redis, after=after, limit=limit)
    return [
        Letter(
            entry=w.entry,
            kind="webhook",
            reason=w.reason,
            detail=f"{w.type}, {w.attempts} attempt(s)",
            district=w.district,
            event_id=w.id,
            at=float(w.failed_at),
            payload=scrub(w.data.decode(errors="replace")),
            replayable=True,
        )
        for w in letters
    ]


async def replay(
    redis: aioredis.Redis, cfg: Config, source: str, entries: Sequence[str] | None
) -> int:
    """Replay ``entries`` of ``source`` (``None``: all); returns how many went back."""
    endpoint = _endpoint(cfg, source)
    if endpoint is None:
        return await deadletters.replay(
            redis, Keys(cfg.redis.prefix, cfg.redis.partitions), entries
        )
    return await admin.replay(cfg, endpoint, entries, redis=redis)


async def purge(
    redis: aioredis.Redis, cfg: Config, source: str, entries: Sequence[str] | None
) -> int:
    """Delete ``entries`` of ``source`` (``None``: all); returns how many were deleted."""
    endpoint = _endpoint(cfg, source)
    if endpoint is None:
        return await deadletters.purge(redis, Keys(cfg.redis.prefix, cfg.redis.partitions), entries)
    return await admin.purge(cfg, endpoint, entries, redis=redis)


async def enable(redis: aioredis.Redis, cfg: Config, endpoint: str) -> bool:
    """Re-enable a webhook endpoint; whether it was disabled."""
    return await admin.enable(cfg, endpoint, redis=redis)
