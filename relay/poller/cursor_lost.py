"""A cursor Clever no longer knows: detect it on quiet districts, report it on the stream.

Clever answers 400/404 to a ``starting_after`` it does not know (:class:`CursorLostError` from the
client). A quiet district with an old cursor is the subtle case (docs/clever-api.md): an empty page
is normal for a district with no changes, so it is *not* a lost cursor by itself. Only when the
cursor's ObjectId time is older than Clever's 30-day retention does the poller also ask for the
feed's newest event id, and then at most once per ``retention_check_interval_s`` per district (a
quiet district costs one request per poll, not two; a lost cursor is still detected within that
interval plus one poll interval, docs/operations.md); if Clever has a newer event than the
cursor, it asks once more for what follows the cursor (an event may have arrived between the
two requests), and only if that is still empty is the cursor lost.

Either way one ``relay.cursor_lost`` control entry goes on the events stream (once per lost
cursor, however often the process restarts), then the district stops (``on_cursor_lost =
"fail"``) or resumes at the feed's newest event (``"latest"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from relay.errors import CursorLostError
from relay.logs import get_logger
from relay.messages import CURSOR_LOST, ControlMessage, encode
from relay.metrics import POLL_ERRORS, district_label
from relay.poller.publish import Batch, is_event_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from relay.clever.client import CleverClient
    from relay.config import Config
    from relay.poller.publish import Publisher

log = get_logger("poller")
T = TypeVar("T")

RETENTION_S = 30 * 86400
"""Clever keeps events 30 days (docs/clever-api.md)."""
OLD_CURSOR_S = RETENTION_S - 86400
"""A cursor this old may have expired: empty pages trigger the newest-event check."""


class CursorPoller(Protocol):
    """What these checks read of a district's poller (:class:`relay.poller.DistrictPoller`).

    A protocol, so this module does not import the poller. The only field written here is the
    check's own schedule (``retention_check_at``); the cursor and the state are the poller's to
    set, from what :func:`report_cursor_lost` returns.
    """

    id: str
    cfg: Config
    client: CleverClient
    publisher: Publisher
    lease: str | None
    retention_check_at: float

    @property
    def cursor(self) -> str | None:
        """The event id the district polls after."""

    async def retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Call a Clever request until it succeeds (the poller's retries)."""

    def drop_prefetch(self) -> None:
        """Cancel the page fetched ahead."""

    def set_up(self, value: int) -> None:
        """Set the district's ``up`` gauge."""

    def record_error(self, kind: str) -> None:
        """Remember the error for ``/status``."""


@dataclass(frozen=True, slots=True)
class CursorLostOutcome:
    """What the poller does after a lost cursor was reported."""

    keep_polling: bool
    """True with ``on_cursor_lost = "latest"``; False: the district stops (``"fail"``)."""
    cursor: str | None
    """Where polling resumes (the feed's newest event) when it goes on."""


async def check_quiet_cursor(poller: CursorPoller) -> None:
    """After an empty page: raise if ``poller``'s old cursor is past Clever's retention.

    Raises:
        CursorLostError: Clever has newer events than the cursor but returns none after it.
    """
    now = time.monotonic()
    if now < poller.retention_check_at:  # the common case: one comparison per quiet poll
        return
    cursor = poller.cursor
    age_s = 0.0 if cursor is None else cursor_age_s(cursor)
    interval_s = poller.cfg.clever.retention_check_interval_s
    if cursor is None or age_s <= OLD_CURSOR_S:
        # Young: nothing to check until it is old (a newer cursor is younger still; a cursor
        # set older by hand comes with a resync, which clears this).
        poller.retention_check_at = now + min(interval_s, OLD_CURSOR_S - age_s)
        return
    poller.retention_check_at = now + interval_s
    latest = await poller.retrying(poller.client.latest_event_id)
    if latest is None or latest <= cursor:
        return
    again = await poller.retrying(lambda: poller.client.events_page(starting_after=cursor, limit=1))
    if not again.data:
        raise CursorLostError(poller.id, cursor, 200)


async def report_cursor_lost(poller: CursorPoller, exc: CursorLostError) -> CursorLostOutcome:
    """Put the control entry on the stream; returns whether and where polling goes on."""
    poller.drop_prefetch()
    mode = poller.cfg.clever.on_cursor_lost
    POLL_ERRORS.labels(district_label(poller.id), "cursor_lost").inc()
    poller.set_up(0)
    resumed = await poller.retrying(poller.client.latest_event_id) if mode == "latest" else None
    reason = f"Clever answered {exc.status} to starting_after={exc.cursor}"
    if exc.status == 200:
        reason = f"cursor {exc.cursor} is past retention and Clever returns nothing after it"
    control = ControlMessage(
        type=CURSOR_LOST,
        district=poller.id,
        created=_now_iso(),
        reason=reason,
        cursor=exc.cursor,
        resumed_from=resumed,
    )
    new_cursor = resumed if mode == "latest" else exc.cursor
    await poller.publisher.publish(
        poller.id,
        Batch(expected=exc.cursor, new_cursor=new_cursor, control=encode(control)),
        lease=poller.lease,
    )
    poller.record_error("cursor_lost")
    if mode == "fail":
        log.error(
            "cursor_lost_district_stopped",
            district=poller.id,
            cursor=exc.cursor,
            reason=reason,
            hint="resync from the Data API, then `clever-relay cursor set`",
        )
        return CursorLostOutcome(keep_polling=False, cursor=exc.cursor)
    log.error(
        "cursor_lost_resumed_at_latest",
        district=poller.id,
        cursor=exc.cursor,
        resumed_from=resumed,
        reason=reason,
    )
    return CursorLostOutcome(keep_polling=True, cursor=resumed)


def cursor_age_s(cursor: str) -> float:
    """Age of an ObjectId from its leading 4-byte timestamp (0 if it is not one)."""
    if not is_event_id(cursor):
        return 0.0
    return time.time() - int(cursor[:8], 16)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
