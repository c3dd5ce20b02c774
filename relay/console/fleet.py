"""The fleet as the console shows it: every district, read from Redis, filtered and paged here.

A district is any configured one plus any other with a poll-state hash (a district another
replica discovered). Its ``source`` and ``phase`` are read from the poll-state hash when the
poller writes them; older pollers do not, so the phase is then derived from what they do write
(``healthy`` and the kind of the last error) and the source is ``static`` for a configured
district. Sorting and filtering run over the whole fleet in this process (a few thousand small
hashes, one pipelined round trip), and only one page is rendered.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from relay.poller.district_leases import lease_holder
from relay.redis.keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

PER_PAGE = 50
SCAN_COUNT = 1000
PHASES = ("onboarding", "polling", "unauthorized", "cursor_lost", "failing", "waiting", "removed")
"""Every phase the console knows, in the order the counts are shown; others are shown as-is."""
SORT_KEYS = ("id", "source", "phase", "lag", "last_event", "errors", "replica")
_ERROR_PHASES = {"auth": "unauthorized", "cursor_lost": "cursor_lost"}


class District(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the fleet table."""

    id: str
    source: str
    """``static`` (in the config) or ``discovered``."""
    phase: str
    progress: str | None
    """Onboarding progress as the poller reports it (e.g. ``"1200/5000"``), if any."""
    lag_s: float | None
    last_event: str | None
    """Clever's ``created`` of the newest event published for the district."""
    last_success: float | None
    last_error: str | None
    last_error_at: float | None
    replica: str | None
    """The replica whose lease lets it poll the district now."""


class FleetPage(msgspec.Struct, frozen=True, kw_only=True):
    """What one request for the fleet page returns."""

    rows: list[District]
    total: int
    """Districts matching the filter."""
    fleet: int
    """Districts in all."""
    counts: dict[str, int]
    """Districts by phase, over the whole fleet."""
    page: int
    pages: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _lag_s(created: str | None, now: float) -> float | None:
    if not created:
        return None
    try:
        return round(max(0.0, now - datetime.fromisoformat(created).timestamp()), 1)
    except ValueError:
        return None


def derive_phase(fields: dict[str, str]) -> str:
    """The district's phase: the poller's own word for it, else derived from its health."""
    if fields.get("phase"):
        return fields["phase"]
    healthy = fields.get("healthy")
    if healthy == "1":
        return "polling"
    if healthy == "0":
        return _ERROR_PHASES.get(fields.get("last_error", ""), "failing")
    return "waiting"


async def district_ids(redis: aioredis.Redis, prefix: str, configured: list[str]) -> list[str]:
    """Configured districts, then any other that has a poll-state hash (sorted)."""
    keys = Keys(prefix)
    head = keys.poll_state("")
    seen = set(configured)
    found: set[str] = set()
    async for key in redis.scan_iter(match=f"{head}*", count=SCAN_COUNT):
        district = _text(key)[len(head) :]
        if district and ":" not in district and district not in seen:
            found.add(district)
    return [*configured, *sorted(found)]


async def read_fleet(
    redis: aioredis.Redis, prefix: str, configured: list[str], now: float
) -> list[District]:
    """Every district with its state, in one pipelined round trip after the key scan."""
    keys = Keys(prefix)
    ids = await district_ids(redis, prefix, configured)
    pipe = redis.pipeline(transaction=False)
    # Pipeline methods queue and return the pipeline; the replies come from execute().
    for district in ids:
        _ = pipe.hgetall(keys.poll_state(district))
        _ = pipe.get(keys.lease(district))
    replies = await pipe.execute()
    static = set(configured)
    return [
        _row(district, replies[2 * i], replies[2 * i + 1], district in static, now)
        for i, district in enumerate(ids)
    ]


def _row(district: str, state: dict[Any, Any], lease: Any, static: bool, now: float) -> District:
    fields = {_text(k): _text(v) for k, v in state.items()}
    newest = fields.get("newest_created") or None
    return District(
        id=district,
        source=fields.get("source") or ("static" if static else "discovered"),
        phase=derive_phase(fields),
        progress=fields.get("progress") or None,
        lag_s=_lag_s(newest, now),
        last_event=newest,
        last_success=_float(fields.get("last_success")),
        last_error=fields.get("last_error") or None,
        last_error_at=_float(fields.get("last_error_at")),
        replica=lease_holder(lease),
    )


def _sort_key(sort: str) -> Any:
    """A key function that puts missing values last whatever the direction."""

    def key(row: District) -> tuple[int, Any]:
        value: Any = {
            "id": row.id,
            "source": row.source,
            "phase": row.phase,
            "lag": row.lag_s,
            "last_event": row.last_event,
            "errors": row.last_error_at,
            "replica": row.replica,
        }[sort]
        return (value is None, value if value is not None else 0)

    return key


def select(
    rows: list[District],
    *,
    query: str = "",
    phase: str = "",
    sort: str = "id",
    descending: bool = False,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> FleetPage:
    """Filter (id, replica or error containing ``query``; exact ``phase``), sort, one page."""
    counts = {name: 0 for name in PHASES}
    for row in rows:
        counts[row.phase] = counts.get(row.phase, 0) + 1
    needle = query.strip().lower()
    matching = [
        row
        for row in rows
        if (not phase or row.phase == phase)
        and (not needle or any(needle in (v or "").lower() for v in _searched(row)))
    ]
    present = [r for r in matching if _sort_key(sort)(r)[0] == 0]
    absent = [r for r in matching if _sort_key(sort)(r)[0] == 1]
    present.sort(key=_sort_key(sort), reverse=descending)
    ordered = present + absent
    pages = max(1, math.ceil(len(ordered) / per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    return FleetPage(
        rows=ordered[start : start + per_page],
        total=len(ordered),
        fleet=len(rows),
        counts=counts,
        page=page,
        pages=pages,
    )


def _searched(row: District) -> tuple[str | None, ...]:
    return (row.id, row.replica, row.last_error, row.source)
