"""The atomic publish: a page's stream entries and the district's new cursor in one Lua call.

(:mod:`relay.poller.batches` turns a fetched page, chunk by chunk, into what one such call writes.)

The relay promises (docs/architecture.md) that a crash at any instant neither loses nor duplicates
an event. The events of a page (or chunk), its dead letters, the poll-state hash and the cursor are
written by one script, so Redis applies all of it or none of it. The script first compares the
stored cursor with the one the poller *expects* (compare-and-set): a second poller on the same
district, a retry of a publish whose reply was lost, or an operator's ``cursor set`` makes it refuse
with :class:`~relay.errors.FencedError` instead of writing a duplicate. Before that, when the poller
holds a district lease (:mod:`relay.poller.district_leases`), the script checks that the lease still
holds the poller's value (fencing token included) and refuses with :class:`LeaseLostError`
otherwise, so an ex-owner woken from a pause cannot write.

The script is sent with EVALSHA (redis-py ``register_script`` loads it on ``NOSCRIPT``), and every
key it touches is passed in ``KEYS`` so a hash-tagged prefix keeps them in one Cluster slot.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relay.errors import FencedError, LeaseLostError
from relay.metrics import PUBLISH_SECONDS

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from relay.redis.keys import Keys

FIXED_ARGS = 11
"""ARGV slots before the per-entry triples (keep in step with the script)."""

_PUBLISH_LUA = """
if ARGV[11] ~= '' then
  local lease = redis.call('GET', KEYS[5]) or ''
  if lease ~= ARGV[11] then
    return {3, lease}
  end
end
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then
  return {0, cur}
end
local district = ARGV[3]
local i = 12
for _ = 1, tonumber(ARGV[6]) do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
    'id', ARGV[i], 'type', ARGV[i + 1], 'district', district, 'data', ARGV[i + 2])
  i = i + 3
end
for _ = 1, tonumber(ARGV[7]) do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
    'stage', 'poller', 'reason', ARGV[i + 1], 'district', district, 'raw', ARGV[i + 2],
    'id', ARGV[i])
  i = i + 3
end
local code = 1
if ARGV[10] ~= '' then
  -- A control entry (relay.cursor_lost) is written once per lost cursor, not once per restart;
  -- the cursor still moves (a loss reported in "fail" mode, resumed later in "latest" mode).
  if redis.call('HGET', KEYS[4], 'lost_cursor') == ARGV[1] then
    code = 2
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
      'id', ARGV[1], 'type', 'relay.cursor_lost', 'district', district, 'data', ARGV[10])
    redis.call('HSET', KEYS[4], 'lost_cursor', ARGV[1])
  end
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[10] == '' then
  redis.call('HSET', KEYS[4], 'last_success', ARGV[9], 'healthy', '1')
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[4], 'newest_created', ARGV[8])
end
return {code, ARGV[2]}
"""

PUBLISHED = 1
FENCED = 0
ALREADY_REPORTED = 2
LEASE_LOST = 3


@dataclass
class Batch:
    """What one publish writes; ``entries`` and ``dead`` are flat ``(id, a, b)`` triples.

    ``entries``: event id, event type, normalized JSON. ``dead``: event id (or ""), reason,
    raw event JSON. Flat lists keep the hot path free of per-event objects.
    """

    expected: str | None
    new_cursor: str | None
    entries: list[bytes | str] = field(default_factory=list)
    dead: list[bytes | str] = field(default_factory=list)
    newest_created: str = ""
    control: bytes = b""
    """A ``relay.cursor_lost`` message (JSON); the entry's ``id`` is the lost ``expected``."""

    @property
    def event_count(self) -> int:
        """How many events this batch appends to the events stream."""
        return len(self.entries) // 3

    @property
    def dead_count(self) -> int:
        """How many dead letters this batch appends."""
        return len(self.dead) // 3


class Publisher:
    """Runs the publish script for the districts of one poller."""

    def __init__(
        self, *, redis: aioredis.Redis, keys: Keys, events_maxlen: int, deadletter_maxlen: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.events_maxlen = str(events_maxlen)
        self.deadletter_maxlen = str(deadletter_maxlen)
        self._script: AsyncScript = redis.register_script(_PUBLISH_LUA)

    async def publish(self, district: str, batch: Batch, *, lease: str | None = None) -> bool:
        """Write ``batch`` atomically if the stored cursor is still ``batch.expected``.

        With ``lease`` (the district lease value this poller holds), the same script first
        checks that the lease still holds exactly that value: the fencing check.

        Returns:
            True when written; False when it was a control entry already written for this
            lost cursor (only the cursor moved, to ``batch.new_cursor``).

        Raises:
            LeaseLostError: ``lease`` is no longer the stored lease (nothing was written).
            FencedError: the stored cursor is not the expected one (nothing was written).
            redis.exceptions.RedisError: the outcome is unknown; re-read the cursor.
        """
        keys = self.keys.of(district)
        args: list[bytes | str] = [
            batch.expected or "",
            batch.new_cursor or "",
            district,
            self.events_maxlen,
            self.deadletter_maxlen,
            str(batch.event_count),
            str(batch.dead_count),
            batch.newest_created,
            repr(time.time()),
            batch.control,
            lease or "",
        ]
        args += batch.entries
        args += batch.dead
        started = time.perf_counter()
        code, stored = await self._script(
            keys=[
                keys.cursor(district),
                keys.events,
                keys.deadletter,
                keys.poll_state(district),
                keys.lease(district),
            ],
            args=args,
        )
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        if code == LEASE_LOST:
            raise LeaseLostError(district, _text(stored))
        if code == FENCED:
            found = _text(stored)
            raise FencedError(
                f"district {district}: cursor is {found or 'unset'}, expected "
                f"{batch.expected or 'unset'}; not publishing"
            )
        return bool(code == PUBLISHED)

    async def read_cursor(self, district: str) -> str | None:
        """The stored cursor of ``district`` (None when unset)."""
        value = await self.redis.get(self.keys.cursor(district))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


CHUNK_EVENTS = 1000
"""Most events per publish call: bounds how long one script holds Redis (a 10,000-event page is
at least ten calls, each atomic with its own cursor; see :mod:`relay.poller.batches`)."""

_EVENT_ID = re.compile(r"[0-9a-f]{24}")


def is_event_id(value: str) -> bool:
    """True for a Clever event id (a 24-hex ObjectId)."""
    return len(value) == 24 and _EVENT_ID.fullmatch(value) is not None
