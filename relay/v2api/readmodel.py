"""Read-model writes: pure operations from legacy events or v2 objects, applied by Lua.

One legacy event (:class:`relay.translate.rules.LegacyOut` with its id and JSON) becomes one
``V`` operation; a v2 object from the sync becomes one ``O`` operation; a vanished object one
``R`` operation. Operations are flat argument lists so they can ride in the translator's batch
script (:data:`LUA_FUNCTIONS` + :data:`LUA_DISPATCH`) and in this module's own script
(:class:`ReadModelWriter`), and so the read model changes in the very Lua call that appends
the legacy events: it is exactly as fresh as the legacy streams.

The script decodes the new and the stored object (``cjson``) to keep the reverse relations
(school → students, student → contacts, teacher → sections ...) and the per-school event
indexes right without the caller knowing the previous state. Event index entries are written
with ``redis.pcall``: an id at or below a stream's top (a replay) is ignored, never fatal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from relay.v2api.keys import ReadModelKeys, stream_id

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.translate.rules import LegacyOut

Arg = bytes | str | int

OP_WIDTH = {"V": 10, "O": 6, "R": 4}
"""Arguments per operation, the op code included."""

LUA_FUNCTIONS = """
local RM_REFS = {
  students = {{'schools', 'school'}, {'schools', 'schools'}},
  teachers = {{'schools', 'school'}, {'schools', 'schools'}},
  schooladmins = {{'schools', 'schools'}},
  contacts = {{'students', 'students'}},
  sections = {{'schools', 'school'}, {'students', 'students'}, {'teachers', 'teacher'},
              {'teachers', 'teachers'}, {'courses', 'course'}, {'terms', 'term_id'}},
}
local function rm_each(v, f)
  if type(v) == 'string' then f(v)
  elseif type(v) == 'table' then
    for _, x in ipairs(v) do if type(x) == 'string' then f(x) end end
  end
end
local function rm_refs(base, rt, o)
  local out = {}
  local spec = RM_REFS[rt]
  if spec == nil or type(o) ~= 'table' then return out end
  for _, s in ipairs(spec) do
    rm_each(o[s[2]], function(x) out[base .. ':rel:' .. s[1] .. ':' .. x .. ':' .. rt] = true end)
  end
  return out
end
local function rm_put(base, rt, id, json)
  local okey = base .. ':obj:' .. rt
  local old = redis.call('HGET', okey, id)
  if old and json and old == json then return cjson.decode(json) end
  local before, after, o = {}, {}, nil
  if old then before = rm_refs(base, rt, cjson.decode(old)) end
  if json then
    redis.call('HSET', okey, id, json)
    redis.call('ZADD', base .. ':ids:' .. rt, 0, id)
    o = cjson.decode(json)
    after = rm_refs(base, rt, o)
  elseif old then
    redis.call('HDEL', okey, id)
    redis.call('ZREM', base .. ':ids:' .. rt, id)
    o = cjson.decode(old)
  end
  for k in pairs(before) do if not after[k] then redis.call('ZREM', k, id) end end
  for k in pairs(after) do if not before[k] then redis.call('ZADD', k, 0, id) end end
  return o
end
local function rm_idmap(base, rt, id, v3)
  if v3 ~= '' then
    redis.call('HSET', base .. ':idmap', rt .. ':' .. id, v3, 'v3:' .. rt .. ':' .. v3, id)
  end
end
local function rm_schools(base, rt, id, o)
  local out = {}
  if type(o) ~= 'table' then return out end
  if rt == 'schools' then out[id] = true
  elseif rt == 'contacts' then
    rm_each(o['students'], function(s)
      local st = redis.call('HGET', base .. ':obj:students', s)
      if st then
        local so = cjson.decode(st)
        rm_each(so['school'], function(x) out[x] = true end)
        rm_each(so['schools'], function(x) out[x] = true end)
      end
    end)
  else
    rm_each(o['school'], function(x) out[x] = true end)
    rm_each(o['schools'], function(x) out[x] = true end)
  end
  return out
end
local function rm_apply(i, maxlen)
  local op, base, rt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'V' then
    local action, id, json, sid = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    local o
    if action == 'deleted' then o = rm_put(base, rt, id, nil)
    else o = rm_put(base, rt, id, json) end
    if o == nil then o = cjson.decode(json) end
    rm_idmap(base, rt, id, ARGV[i + 9])
    local added = redis.pcall('XADD', base .. ':events', 'MAXLEN', '~', maxlen, sid,
      'type', ARGV[i + 7], 'data', ARGV[i + 8])
    if type(added) == 'table' and added.err then return end
    redis.pcall('XADD', base .. ':events:' .. rt, 'MAXLEN', '~', maxlen, sid, 'r', rt)
    for s in pairs(rm_schools(base, rt, id, o)) do
      redis.pcall('XADD', base .. ':events:school:' .. s, 'MAXLEN', '~', maxlen, sid, 'r', rt)
    end
  elseif op == 'O' then
    rm_put(base, rt, ARGV[i + 3], ARGV[i + 4])
    rm_idmap(base, rt, ARGV[i + 3], ARGV[i + 5])
  else
    rm_put(base, rt, ARGV[i + 3], nil)
  end
end
"""
"""Lua functions to paste before a script's main body; ``rm_apply(i, maxlen)`` applies the
operation starting at ``ARGV[i]`` (see :data:`OP_WIDTH`)."""

_APPLY = (
    LUA_FUNCTIONS
    + """
local i, maxlen = 2, ARGV[1]
while i <= #ARGV do
  local op = ARGV[i]
  rm_apply(i, maxlen)
  if op == 'V' then i = i + 10 elseif op == 'O' then i = i + 6 else i = i + 4 end
end
return 1
"""
)


class _Ref(msgspec.Struct, frozen=True):
    id: str


_ref_decoder = msgspec.json.Decoder(_Ref)


def object_id(obj: bytes) -> str:
    """The ``id`` of an encoded v2 object.

    Raises:
        msgspec.DecodeError: the JSON has no string ``id``.
    """
    return _ref_decoder.decode(obj).id


def event_op(
    out: LegacyOut,
    *,
    prefix: str,
    district: str,
    legacy_id: str,
    data: bytes,
    v3_id: str | None = None,
) -> list[Arg]:
    """The read-model operation of one legacy event: apply its object, index the event.

    Args:
        out: the translated event (record type, type, v2 object).
        prefix: ``redis.prefix``.
        district: the event's district.
        legacy_id: the legacy event id (24 hex).
        data: the v2 event JSON exactly as appended to the legacy stream.
        v3_id: the v3 user id behind a user role's object, to record the id mapping.
    """
    obj = bytes(out.object)
    action = out.type.rpartition(".")[2]
    return [
        "V",
        ReadModelKeys(prefix, district).base,
        out.record_type,
        action,
        object_id(obj),
        obj,
        stream_id(legacy_id),
        out.type,
        data,
        v3_id or "",
    ]


def put_op(
    *, prefix: str, district: str, record_type: str, obj: bytes, v3_id: str | None = None
) -> list[Arg]:
    """The operation that stores one v2 object (as the sync reads it), no event."""
    base = ReadModelKeys(prefix, district).base
    return ["O", base, record_type, object_id(obj), obj, v3_id or ""]


def remove_op(*, prefix: str, district: str, record_type: str, v2_id: str) -> list[Arg]:
    """The operation that forgets one v2 object and its relations."""
    return ["R", ReadModelKeys(prefix, district).base, record_type, v2_id]


class ReadModelWriter:
    """Applies operations in one Lua call (the sync's writes, and tests without a translator)."""

    def __init__(self, redis: aioredis.Redis, *, maxlen: int = 1_000_000) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.script = redis.register_script(_APPLY)

    async def apply(self, ops: list[list[Arg]]) -> None:
        """Apply ``ops`` in order, atomically."""
        if not ops:
            return
        args: list[Arg] = [self.maxlen]
        for op in ops:
            args += op
        await self.script(keys=[], args=args)
