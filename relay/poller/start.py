"""Where a district starts: the stored cursor, or its configured ``start`` (docs/configuration.md).

A run always begins from the cursor stored in Redis (another replica may have moved it). Only a
district with no stored cursor uses ``start``: ``earliest`` (no cursor: the feed's beginning),
``latest`` (the newest event id now) or an explicit event id. A settled start is stored at once,
through the same fenced compare-and-set publish as events, so a crash before the first event
does not move ``latest`` forward on restart. A discovered district that is still onboarding
first runs its sync (:mod:`relay.poller.fleet.onboarding`), which settles the cursor itself.

:func:`start_position` decides, from the stored cursor and the district's ``start``; the poller
applies the decision (it owns its cursor and its fenced publish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from relay.poller.publish import Publisher

log = get_logger("poller")


@dataclass(frozen=True, slots=True)
class StartPosition:
    """Where a district's polling starts."""

    cursor: str | None
    """The event id to poll after (None: the feed's beginning, or an empty feed)."""
    store: bool
    """True when ``cursor`` is a settled start not stored yet: store it before polling."""


async def start_position(
    *,
    district: str,
    start: str,
    publisher: Publisher,
    latest: Callable[[], Awaitable[str | None]],
) -> StartPosition:
    """The stored cursor of ``district``; with none stored, the position ``start`` settles to.

    ``latest`` asks Clever for the feed's newest event id (with the poller's retries).

    Raises:
        redis.exceptions.RedisError: the loop resyncs and calls this again.
    """
    stored = await publisher.read_cursor(district)
    if stored is not None or start == "earliest":
        return StartPosition(stored, store=False)
    target: str | None = start
    if target == "latest":
        target = await latest()
        if target is None:
            log.info("start_feed_empty", district=district)
            return StartPosition(None, store=False)
    return StartPosition(target, store=True)
