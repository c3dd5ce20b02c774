"""An endpoint's delivery state in Redis: per-district queues, due times, attempts, dead letters.

Everything that must survive a crash lives here and changes only inside Lua scripts, so each
step is all-or-nothing:

* ``enqueue`` appends matching source entries to their district queues *and* moves the
  endpoint's consumer-group position past them, in one call: the read position and the queues
  never disagree, so a restart neither skips nor re-queues an entry. It is fenced: it writes
  only if the positions are still the ones the caller read (a second replica cannot queue the
  same entries twice).
* ``complete`` settles the head of one district queue after an attempt: pop it (delivered, or
  moved to the dead-letter stream) or record the failed attempt and when it is due again. It
  first checks the head is still the event that was attempted.

A district is in the ``due`` sorted set exactly when its queue is non-empty; its score is when
its head may next be attempted. Retry state therefore belongs to the head, and the later
events of a district wait behind it (docs/webhooks.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ResponseError

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from relay.redis.keys import EndpointKeys


class QueuedEvent(msgspec.Struct, frozen=True, array_like=True):
    """One event waiting for delivery (msgpack in a queue list; array-like to stay small)."""

    id: str
    type: str
    district: str
    data: bytes
    stream: str
    """The source stream key."""
    entry: str
    """The source stream entry id."""
    ms: int
    """When the source entry was written (its stream id's milliseconds): the event's age."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(QueuedEvent)


def encode_event(event: QueuedEvent) -> bytes:
    """The queue item bytes of ``event``."""
    return _ENCODER.encode(event)


def decode_event(raw: bytes) -> QueuedEvent:
    """The event of a queue item."""
    return _DECODER.decode(raw)


_POSITION_LUA = """
local function position(stream, group)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last
    for k = 1, #g, 2 do
      if g[k] == 'name' then name = g[k + 1] elseif g[k] == 'last-delivered-id' then
        last = g[k + 1] end
    end
    if name == group then return last end
  end
  return false
end
"""

_ENQUEUE_LUA = (
    _POSITION_LUA
    + """
local s = tonumber(ARGV[3])
for j = 1, s do
  if position(KEYS[1 + j], ARGV[1]) ~= ARGV[3 + j] then return 0 end
end
for j = 1, s do
  if ARGV[3 + s + j] ~= ARGV[3 + j] then
    redis.call('XGROUP', 'SETID', KEYS[1 + j], ARGV[1], ARGV[3 + s + j])
  end
end
local i = 4 + 2 * s
while i <= #ARGV do
  redis.call('RPUSH', KEYS[1 + s + tonumber(ARGV[i])], ARGV[i + 2])
  redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[i + 1])
  i = i + 3
end
return 1
"""
)

_COMPLETE_LUA = """
local head = redis.call('LINDEX', KEYS[1], 0)
if head ~= ARGV[1] then
  if not head then redis.call('ZREM', KEYS[2], ARGV[2]) end
  return 0
end
if ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
  return 1
end
redis.call('LPOP', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[2])
if ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, 8))
end
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1
"""

OK = "ok"
RETRY = "retry"
DEAD = "dead"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EndpointStore:
    """The Redis side of one endpoint: positions, queues and their settlement."""

    def __init__(self, *, redis: aioredis.Redis, keys: EndpointKeys, deadletter_maxlen: int):
        self.redis = redis
        self.keys = keys
        self.deadletter_maxlen = str(deadletter_maxlen)
        self._enqueue: AsyncScript = redis.register_script(_ENQUEUE_LUA)
        self._complete: AsyncScript = redis.register_script(_COMPLETE_LUA)

    async def positions(self, streams: list[str]) -> dict[str, str]:
        """Each stream's read position (the group's last-delivered-id), creating groups at ``$``.

        A new endpoint starts with the events written after it was first started; see
        docs/webhooks.md.
        """
        out: dict[str, str] = {}
        for stream in streams:
            try:
                await self.redis.xgroup_create(stream, self.keys.group, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            for group in await self.redis.xinfo_groups(stream):
                if _text(group["name"]) == self.keys.group:
                    out[stream] = _text(group["last-delivered-id"])
        return out

    async def enqueue(
        self,
        *,
        expected: dict[str, str],
        moved: dict[str, str],
        items: list[QueuedEvent],
        now_ms: int,
    ) -> bool:
        """Queue ``items`` (in order) and move the positions from ``expected`` to ``moved``.

        Returns:
            False when a position was not ``expected`` (another writer moved it; nothing done).
        """
        streams = list(expected)
        queues: dict[str, int] = {}
        args: list[str | bytes | int] = [self.keys.group, now_ms, len(streams)]
        args += [expected[s] for s in streams]
        args += [moved.get(s, expected[s]) for s in streams]
        for item in items:
            index = queues.setdefault(self.keys.queue(item.district), len(queues) + 1)
            args += [index, item.district, encode_event(item)]
        keys = [self.keys.due, *streams, *queues]
        return bool(await self._enqueue(keys=keys, args=args))

    async def head(self, district: str) -> tuple[bytes | None, int]:
        """The district's queue head (raw) and how many attempts at it failed so far."""
        async with self.redis.pipeline(transaction=False) as pipe:
            _ = pipe.lindex(self.keys.queue(district), 0)
            _ = pipe.hget(self.keys.attempts, district)
            raw, attempts = await pipe.execute()
        return raw, int(attempts or 0)

    async def complete(
        self,
        *,
        raw: bytes,
        district: str,
        outcome: str,
        now_ms: int,
        due_ms: int = 0,
        attempts: int = 0,
        dead_fields: dict[str, str | bytes] | None = None,
    ) -> bool:
        """Settle the head ``raw`` of ``district``: ``OK``, ``RETRY`` at ``due_ms``, or ``DEAD``.

        Returns:
            False when the head was no longer ``raw`` (purged or settled elsewhere).
        """
        args: list[str | bytes | int] = [
            raw,
            district,
            outcome,
            now_ms,
            due_ms,
            attempts,
            self.deadletter_maxlen,
        ]
        for field, value in (dead_fields or {}).items():
            args += [field, value]
        keys = [self.keys.queue(district), self.keys.due, self.keys.attempts, self.keys.deadletter]
        return bool(await self._complete(keys=keys, args=args))

    async def due(self, now_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` districts whose head is due, most overdue first."""
        raw = await self.redis.zrangebyscore(self.keys.due, "-inf", now_ms, start=0, num=limit)
        return [_text(d) for d in raw]

    async def next_due_ms(self, now_ms: int) -> int | None:
        """When the next not-yet-due head becomes due (None when nothing is waiting)."""
        raw = await self.redis.zrangebyscore(
            self.keys.due, f"({now_ms}", "+inf", start=0, num=1, withscores=True
        )
        return int(raw[0][1]) if raw else None

    async def disabled(self) -> str | None:
        """Why the endpoint is disabled (a 410 Gone), or None while it is enabled."""
        reason = await self.redis.hget(self.keys.state, "disabled")
        return None if reason is None else _text(reason)

    async def disable(self, reason: str, now_s: float) -> None:
        """Stop delivering to this endpoint until an operator enables it (replay does)."""
        await self.redis.hset(
            self.keys.state, mapping={"disabled": reason, "disabled_at": repr(now_s)}
        )
