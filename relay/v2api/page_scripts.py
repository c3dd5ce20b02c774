"""Pages read inside Redis: one Lua call returns a page's ids and stored JSON.

A page of 1,000 objects or events is 1,000 stored JSON strings; fetching them as 1,000 replies
costs the Python process far more (argument packing, reply parsing, id conversion) than Redis
spends reading them. So the scripts read the range and return one flat array
``[id, json, id, json, ...]`` (parsed by hiredis in C, no per-item argument packing); Python
wraps each item as Clever does (``{"data": <json>, "uri": "<prefix><id>"}``) by joining bytes.
(Joining inside Lua was measured slower: Lua interns every string it builds.) Reads are
bounded by ``limit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_COMMON = """
local function wrap(out, body, id)
  out[#out + 1] = id
  out[#out + 1] = body
end
local function field(fields, name)
  for j = 1, #fields, 2 do if fields[j] == name then return fields[j + 1] end end
  return nil
end
local function reversed(list)
  local out = {}
  for j = #list, 1, -1 do out[#out + 1] = list[j] end
  return out
end
"""

_OBJECTS = (
    _COMMON
    + """
local lo, hi, limit, back = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ids
if back == '1' then
  ids = reversed(redis.call('ZREVRANGEBYLEX', KEYS[1], hi, lo, 'LIMIT', 0, limit))
else
  ids = redis.call('ZRANGEBYLEX', KEYS[1], lo, hi, 'LIMIT', 0, limit)
end
local parts = {}
for j = 1, #ids, 1000 do
  local chunk = {unpack(ids, j, math.min(j + 999, #ids))}
  local bodies = redis.call('HMGET', KEYS[2], unpack(chunk))
  for k = 1, #chunk do
    if bodies[k] then
      wrap(parts, bodies[k], chunk[k])
    end
  end
end
return parts
"""
)

_EVENTS = (
    _COMMON
    + """
local lo, hi, limit, back = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local entries
if back == '1' then
  entries = reversed(redis.call('XREVRANGE', KEYS[1], hi, lo, 'COUNT', limit))
else
  entries = redis.call('XRANGE', KEYS[1], lo, hi, 'COUNT', limit)
end
local parts = {}
for _, e in ipairs(entries) do
  local id = field(e[2], 'id')
  wrap(parts, field(e[2], 'data'), id)
end
return parts
"""
)

_EVENTS_BY_ID = (
    _COMMON
    + """
local parts = {}
for j = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[j], ARGV[j], 'COUNT', 1)[1]
  if e then
    local id = field(e[2], 'id')
    wrap(parts, field(e[2], 'data'), id)
  end
end
return parts
"""
)


class Joined:
    """One page: the items wrapped as Clever's list items, joined; the first and last ids."""

    __slots__ = ("first", "items", "last")

    def __init__(self, reply: list[bytes], uri_prefix: str) -> None:
        prefix = b'{"data":'
        middle = b',"uri":"' + uri_prefix.encode()
        ids = reply[0::2]
        bodies = reply[1::2]
        self.items: bytes = b",".join(
            b"".join((prefix, body, middle, oid, b'"}'))
            for oid, body in zip(ids, bodies, strict=True)
        )
        self.first: str | None = ids[0].decode() if ids else None
        self.last: str | None = ids[-1].decode() if ids else None


class PageScripts:
    """The page scripts, registered once per Redis client."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._objects = redis.register_script(_OBJECTS)
        self._events = redis.register_script(_EVENTS)
        self._events_by_id = redis.register_script(_EVENTS_BY_ID)

    async def objects(
        self,
        *,
        ids_key: str,
        objects_key: str,
        lo: str,
        hi: str,
        limit: int,
        backward: bool,
        uri_prefix: str,
    ) -> Joined:
        """Objects of a sorted set of ids between ``lo`` and ``hi`` (ZRANGEBYLEX bounds)."""
        args: list[str | int] = [lo, hi, limit, "1" if backward else "0"]
        return Joined(await self._objects(keys=[ids_key, objects_key], args=args), uri_prefix)

    async def events(
        self, *, key: str, lo: str, hi: str, limit: int, backward: bool, uri_prefix: str
    ) -> Joined:
        """Events of a district's stream between ``lo`` and ``hi`` (XRANGE bounds)."""
        args: list[str | int] = [lo, hi, limit, "1" if backward else "0"]
        return Joined(await self._events(keys=[key], args=args), uri_prefix)

    async def events_by_id(self, *, key: str, entry_ids: list[str], uri_prefix: str) -> Joined:
        """The events with these stream entry ids (ascending), skipping trimmed ones."""
        if not entry_ids:
            return Joined([], uri_prefix)
        return Joined(await self._events_by_id(keys=[key], args=entry_ids), uri_prefix)
