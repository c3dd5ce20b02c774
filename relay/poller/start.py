"""Where a district starts: the stored cursor, or its configured ``start`` (docs/configuration.md).

A run always begins from the cursor stored in Redis (another replica may have moved it). Only a
district with no stored cursor uses ``start``: ``earliest`` (no cursor: the feed's beginning),
``latest`` (the newest event id now) or an explicit event id. A settled start is stored at once,
through the same fenced compare-and-set publish as events, so a crash before the first event
does not move ``latest`` forward on restart. A discovered district that is still onboarding
first runs its sync (:mod:`relay.fleet.onboarding`), which settles the cursor itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.logs import get_logger
from relay.poller.publish import Batch

if TYPE_CHECKING:
    from relay.poller.district import DistrictPoller

log = get_logger("poller")


async def sync_cursor(poller: DistrictPoller) -> None:
    """Load ``poller``'s stored cursor; with none stored, settle and store its start position.

    Raises:
        redis.exceptions.RedisError, FencedError: the loop resyncs and calls this again.
    """
    if poller.onboarding is not None and await poller.onboarding.prepare(poller):
        return
    stored = await poller.publisher.read_cursor(poller.id)
    if stored is not None or poller.start == "earliest":
        poller.cursor = stored
        return
    target: str | None = poller.start
    if target == "latest":
        target = await poller.retrying(poller.client.latest_event_id)
        if target is None:
            log.info("start_feed_empty", district=poller.id)
            poller.cursor = None
            return
    poller.cursor = None
    await poller.publish(Batch(expected=None, new_cursor=target))
    log.info("start_position_stored", district=poller.id, start=poller.start, cursor=target)
