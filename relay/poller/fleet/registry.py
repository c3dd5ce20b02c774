"""Each discovered district's fleet state in Redis, shared by every replica.

``<p>:fleet:<district>`` is a hash: ``phase`` (``onboarding`` | ``polling`` | ``removed``),
``source``, ``first_seen``, ``onboarded_at``, ``counts`` (JSON, v2 objects the onboarding sync
wrote), ``progress`` (JSON, while syncing), ``removed_at``, ``old_cursor`` (a cursor to drop
before onboarding again). ``<p>:fleet:districts`` is the set of every district ever discovered
(what ``clever-relay districts list`` and a restarted replica start from). No token is ever
stored: every replica reads the token list itself (docs/fleet.md says why).

Phase changes are Lua scripts so that any number of replicas may report the same change and
exactly one control entry results: ``relay.district_removed`` is appended only by the call that
moves the phase to ``removed``, ``relay.district_onboarded`` only by the call that moves it from
``onboarding`` to ``polling``, and that one is fenced by the district lease like every publish.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from relay.errors import LeaseLostError
from relay.messages import DISTRICT_ONBOARDED, DISTRICT_REMOVED, FleetMessage, encode

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from relay.config import Config
    from relay.redis.keys import Keys

SEEN_CHUNK = 500
"""Districts per phase-script call: bounds how long one call holds Redis."""
ONBOARDING = "onboarding"
POLLING = "polling"
REMOVED = "removed"

_SEEN = """
local out = {}
for n = 1, (#KEYS - 1) / 2 do
  local fleet, cursor = KEYS[2 * n], KEYS[2 * n + 1]
  redis.call('SADD', KEYS[1], ARGV[4 + n])
  local phase = redis.call('HGET', fleet, 'phase')
  if not phase then
    if redis.call('EXISTS', cursor) == 1 then phase = 'polling' else phase = ARGV[1] end
    redis.call('HSET', fleet, 'phase', phase, 'source', 'discovered', 'first_seen', ARGV[3])
  elseif phase == 'removed' then
    local removed_at = tonumber(redis.call('HGET', fleet, 'removed_at') or '0')
    if tonumber(ARGV[2]) > removed_at then
      local expired = tonumber(ARGV[3]) - removed_at > tonumber(ARGV[4])
      local unfinished = ARGV[1] == 'onboarding' and not redis.call('HGET', fleet, 'onboarded_at')
      if expired or unfinished then
        if expired then phase = ARGV[1] else phase = 'onboarding' end
        local old = redis.call('GET', cursor)
        if old then redis.call('HSET', fleet, 'old_cursor', old) end
        redis.call('HSET', fleet, 'reonboard', '1')
      else
        phase = 'polling'
      end
      redis.call('HSET', fleet, 'phase', phase)
      redis.call('HDEL', fleet, 'removed_at')
    end
  end
  out[n] = phase
end
return out
"""

_REMOVE = """
local phase = redis.call('HGET', KEYS[1], 'phase')
if not phase or phase == 'removed' then return 0 end
redis.call('HSET', KEYS[1], 'phase', 'removed', 'removed_at', ARGV[1])
redis.call('HDEL', KEYS[1], 'progress')
local cursor = redis.call('GET', KEYS[3]) or ''
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
  'id', cursor, 'type', ARGV[3], 'district', ARGV[4], 'data', ARGV[5])
return 1
"""

_ONBOARDED = """
if ARGV[1] ~= '' then
  local lease = redis.call('GET', KEYS[3]) or ''
  if lease ~= ARGV[1] then return {3, lease} end
end
if redis.call('HGET', KEYS[1], 'phase') ~= 'onboarding' then return {2, ''} end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
  'id', ARGV[3], 'type', ARGV[4], 'district', ARGV[5], 'data', ARGV[6])
redis.call('HSET', KEYS[1], 'phase', 'polling', 'onboarded_at', ARGV[7], 'counts', ARGV[8])
redis.call('HDEL', KEYS[1], 'progress', 'old_cursor')
return {1, ''}
"""


def now_iso() -> str:
    """Now as Clever writes timestamps (ISO 8601, milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Registry:
    """Reads and changes districts' fleet state (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, events_maxlen: int) -> None:
        self.redis = redis
        self.keys = keys
        self.events_maxlen = str(events_maxlen)
        self._seen: AsyncScript = redis.register_script(_SEEN)
        self._remove: AsyncScript = redis.register_script(_REMOVE)
        self._onboarded: AsyncScript = redis.register_script(_ONBOARDED)

    async def seen(
        self, districts: list[str], *, initial: str, read_started: float, retention_s: float
    ) -> dict[str, str]:
        """Record that the list (read from ``read_started`` on) shows ``districts``.

        New districts get ``initial`` (``onboarding`` or ``polling``; ``polling`` when a cursor
        is stored already). A removed district comes back as ``polling`` (resumes from its
        cursor) within ``retention_s`` of its removal, else as ``initial`` with its old cursor
        and any stale sync state to drop (``old_cursor``, ``reonboard``), and also as
        ``onboarding`` when it left before its onboarding finished; a read that began before
        the removal cannot bring it back. Returns every district's phase now.
        """
        now = repr(time.time())
        out: dict[str, str] = {}
        # One script per partition's chunk: with partitions, the discovered set is per
        # partition too, so no script spans two Cluster slots.
        by_part: dict[str, list[str]] = {}
        for district in districts:
            by_part.setdefault(self.keys.of(district).prefix, []).append(district)
        for group in by_part.values():
            known = self.keys.of(group[0]).fleet_known
            for start in range(0, len(group), SEEN_CHUNK):
                chunk = group[start : start + SEEN_CHUNK]
                keys = [known]
                for district in chunk:
                    keys += [self.keys.fleet(district), self.keys.cursor(district)]
                args = [initial, repr(read_started), now, repr(retention_s), *chunk]
                phases: Any = await self._seen(keys=keys, args=args)
                out.update((d, _text(p)) for d, p in zip(chunk, phases, strict=True))
        return {d: out[d] for d in districts}

    async def remove(self, district: str, reason: str) -> bool:
        """Mark ``district`` removed and append ``relay.district_removed`` (only the first time).

        Returns whether this call made the change.
        """
        cursor = await self.redis.get(self.keys.cursor(district))
        message = FleetMessage(
            type=DISTRICT_REMOVED,
            district=district,
            created=now_iso(),
            cursor=None if cursor is None else _text(cursor),
            reason=reason,
        )
        done = await self._remove(
            keys=[
                self.keys.fleet(district),
                self.keys.of(district).events,
                self.keys.cursor(district),
            ],
            args=[
                repr(time.time()),
                self.events_maxlen,
                DISTRICT_REMOVED,
                district,
                encode(message),
            ],
        )
        return bool(done)

    async def onboarded(
        self, district: str, *, lease: str | None, cursor: str | None, counts: dict[str, int]
    ) -> bool:
        """Move ``district`` to ``polling`` and append ``relay.district_onboarded`` once.

        Returns False when another call already did it.

        Raises:
            LeaseLostError: the district lease is not ``lease`` any more (nothing written).
        """
        message = FleetMessage(
            type=DISTRICT_ONBOARDED,
            district=district,
            created=now_iso(),
            cursor=cursor,
            counts=counts,
        )
        code, holder = await self._onboarded(
            keys=[
                self.keys.fleet(district),
                self.keys.of(district).events,
                self.keys.lease(district),
            ],
            args=[
                lease or "",
                self.events_maxlen,
                cursor or "",
                DISTRICT_ONBOARDED,
                district,
                encode(message),
                repr(time.time()),
                json.dumps(counts, sort_keys=True),
            ],
        )
        if int(code) == 3:
            raise LeaseLostError(district, _text(holder))
        return int(code) == 1

    async def read(self, district: str) -> dict[str, str]:
        """The district's fleet hash (empty for a district never discovered)."""
        raw: Any = await self.redis.hgetall(self.keys.fleet(district))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def known(self) -> list[str]:
        """Every district ever discovered, sorted."""
        return sorted(await _known(self.redis, self.keys))

    async def set_progress(self, district: str, progress: dict[str, int]) -> None:
        """Store an onboarding's running counts (shown by ``districts list``)."""
        await self.redis.hset(
            self.keys.fleet(district), "progress", json.dumps(progress, sort_keys=True)
        )

    async def clear_old_cursor(self, district: str) -> None:
        """Forget the cursor and sync state to drop once they have been dropped."""
        await self.redis.hdel(self.keys.fleet(district), "old_cursor", "reonboard")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe(
    fleet: dict[str, str], poll_state: dict[str, str], *, static: bool
) -> tuple[str, str, dict[str, object] | None]:
    """A district's ``(source, phase, onboarding)`` for /status and ``districts list``.

    ``phase`` is the fleet phase (``polling`` for static districts), shown as ``unauthorized``
    while Clever refuses its token; ``onboarding`` is ``{"objects": {v2 type: count}, "done":
    bool}`` for a discovered district that was onboarded by sync (or is being), else None.
    """
    source = "static" if static else "discovered"
    phase = POLLING if static else fleet.get("phase", "discovered")
    if (
        phase == POLLING
        and poll_state.get("healthy") == "0"
        and poll_state.get("last_error") == "auth"
    ):
        phase = "unauthorized"
    raw = fleet.get("progress") if phase == ONBOARDING else fleet.get("counts")
    onboarding: dict[str, object] | None = None
    if not static and (raw is not None or phase == ONBOARDING):
        try:
            objects = json.loads(raw) if raw else {}
        except ValueError:
            objects = {}
        onboarding = {"objects": objects, "done": phase != ONBOARDING}
    return source, phase, onboarding


async def discovered_districts(
    redis: aioredis.Redis, keys: Keys, cfg: Config, static: list[str]
) -> list[str]:
    """Every district discovery has seen that is not also static, sorted (none without it)."""
    if cfg.clever.discovery is None:
        return []
    return sorted(d for d in await _known(redis, keys) if d not in set(static))


async def _known(redis: aioredis.Redis, keys: Keys) -> set[str]:
    """Every district discovery has seen (in every partition's set)."""
    found: set[str] = set()
    for part in keys.all_partitions():
        members: Any = await redis.smembers(part.fleet_known)
        found |= {_text(m) for m in members}
    return found
