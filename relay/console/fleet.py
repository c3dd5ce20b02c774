"""The fleet as the console shows it: every district, read from Redis, filtered and paged here.

A district is any configured one, any discovered one (the fleet registry's set), and any other
with a poll-state hash. Its ``source``, fleet ``phase`` and onboarding progress come from the
fleet registry's reading (:func:`relay.poller.fleet.registry.describe`, the same as ``/status`` and
``districts list``); a district that should be polling is shown by what its poller last wrote
(``healthy`` and the kind of the last error: ``unauthorized``, ``cursor_lost``, ``failing``, or
``waiting`` before its first poll). Sorting and filtering run over the whole fleet in this
process (a few thousand small hashes, one pipelined round trip), and only one page is rendered.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from relay.messages import lag_s_since
from relay.poller.district_leases import lease_holder
from relay.poller.fleet.registry import POLLING, describe
from relay.redis.keys import Keys
from relay.redis.replies import decoded, float_or_none

if TYPE_CHECKING:
    import redis.asyncio as aioredis

PER_PAGE = 50
SCAN_COUNT = 1000
PHASES = (
    "onboarding",
    "polling",
    "unauthorized",
    "cursor_lost",
    "failing",
    "waiting",
    "discovered",
    "removed",
)
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
    """Onboarding progress (objects synced, e.g. ``"1200 objects so far"``), if any."""
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


def derive_phase(fleet_phase: str, fields: dict[str, str]) -> str:
    """The district's phase: its fleet phase, refined by its poller's health while polling."""
    if fleet_phase != POLLING:
        return fleet_phase
    healthy = fields.get("healthy")
    if healthy == "1":
        return "polling"
    if healthy == "0":
        return _ERROR_PHASES.get(fields.get("last_error", ""), "failing")
    return "waiting"


async def district_ids(
    redis: aioredis.Redis, prefix: Keys | str, configured: list[str]
) -> list[str]:
    """Configured districts, then every discovered one and any other with a poll-state hash
    (in every partition)."""
    seen = set(configured)
    found: set[str] = set()
    for keys in _keys(prefix).all_partitions():
        head = keys.poll_state("")
        members: Any = await redis.smembers(keys.fleet_known)
        found |= {decoded(m) for m in members} - seen
        async for key in redis.scan_iter(match=f"{head}*", count=SCAN_COUNT):
            district = decoded(key)[len(head) :]
            if district and ":" not in district and district not in seen:
                found.add(district)
    return [*configured, *sorted(found)]


def _keys(prefix: Keys | str) -> Keys:
    return Keys(prefix) if isinstance(prefix, str) else prefix


async def read_fleet(
    redis: aioredis.Redis, prefix: Keys | str, configured: list[str], now: float
) -> list[District]:
    """Every district with its state, in one pipelined round trip after the key scan."""
    keys = _keys(prefix)
    ids = await district_ids(redis, prefix, configured)
    pipe = redis.pipeline(transaction=False)
    # Pipeline methods queue and return the pipeline; the replies come from execute().
    for district in ids:
        _ = pipe.hgetall(keys.poll_state(district))
        _ = pipe.get(keys.lease(district))
        _ = pipe.hgetall(keys.fleet(district))
    replies = await pipe.execute()
    static = set(configured)
    return [
        _row(district, replies[3 * i : 3 * i + 3], district in static, now)
        for i, district in enumerate(ids)
    ]


def _row(district: str, replies: list[Any], static: bool, now: float) -> District:
    state, lease, fleet = replies
    fields = {decoded(k): decoded(v) for k, v in state.items()}
    source, fleet_phase, onboarding = describe(
        {decoded(k): decoded(v) for k, v in fleet.items()}, fields, static=static
    )
    newest = fields.get("newest_created") or None
    return District(
        id=district,
        source=source,
        phase=derive_phase(fleet_phase, fields),
        progress=_progress(onboarding),
        lag_s=lag_s_since(newest, now),
        last_event=newest,
        last_success=float_or_none(fields.get("last_success")),
        last_error=fields.get("last_error") or None,
        last_error_at=float_or_none(fields.get("last_error_at")),
        replica=lease_holder(lease),
    )


def _progress(onboarding: dict[str, object] | None) -> str | None:
    """Onboarding progress in a few words: objects synced so far, and whether it is done."""
    if onboarding is None:
        return None
    objects = onboarding.get("objects")
    count = (
        sum(v for v in objects.values() if isinstance(v, int)) if isinstance(objects, dict) else 0
    )
    return f"{count} objects{'' if onboarding.get('done') else ' so far'}"


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
