"""Read-model writes: pure operations from legacy events or v2 objects, applied by Lua.

One legacy event (:class:`relay.translate.rules.LegacyOut` with its id and JSON) becomes one
``V`` operation; a v2 object from the sync becomes one ``O`` operation; a vanished object one
``R`` operation. Operations are flat argument lists so they can ride in the translator's batch
script (:data:`LUA_FUNCTIONS` + :data:`LUA_DISPATCH`) and in this module's own script
(:class:`ReadModelWriter`), and so the read model changes in the very Lua call that appends
the legacy events: it is exactly as fresh as the legacy streams.

Python extracts each object's references once (:func:`references`, a narrow msgspec decode);
the script keeps them beside the object (``<base>:refs:<rt>``) and, when they change, moves
the object between reverse relations (school → students, student → contacts, teacher →
sections ...), so the caller never needs the previous state and Redis never parses JSON.
Event index entries are written with ``redis.pcall``: an id at or below a stream's top (a
replay) is ignored, never fatal.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import msgspec

from relay.readmodel.entry_ids import stream_id
from relay.redis.keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.translate.rules import LegacyOut

Arg = bytes | str | int

OP_WIDTH = {"V": 13, "O": 7, "R": 4}
"""Arguments per operation, the op code included."""

LUA_FUNCTIONS = """
local function rm_lines(text)
  local out = {}
  if text then for line in string.gmatch(text, '[^\\n]+') do out[line] = true end end
  return out
end
local function rm_put(base, rt, id, json, refs)
  local rkey = base .. ':refs:' .. rt
  local old = redis.call('HGET', rkey, id) or ''
  if json then
    if redis.call('HSET', base .. ':obj:' .. rt, id, json) == 1 then
      redis.call('ZADD', base .. ':ids:' .. rt, 0, id)
    end
  else
    redis.call('HDEL', base .. ':obj:' .. rt, id)
    redis.call('ZREM', base .. ':ids:' .. rt, id)
    refs = ''
  end
  if old == refs then return end
  local before, after = rm_lines(old), rm_lines(refs)
  for k in pairs(before) do
    if not after[k] then redis.call('ZREM', base .. ':rel:' .. k .. ':' .. rt, id) end
  end
  for k in pairs(after) do
    if not before[k] then redis.call('ZADD', base .. ':rel:' .. k .. ':' .. rt, 0, id) end
  end
  if refs == '' then redis.call('HDEL', rkey, id) else redis.call('HSET', rkey, id, refs) end
end
local function rm_idmap(base, rt, id, v3)
  if v3 ~= '' then
    redis.call('HSET', base .. ':idmap', rt .. ':' .. id, v3, 'v3:' .. rt .. ':' .. v3, id)
  end
end
local function rm_contact_schools(base, refs)
  local out = {}
  for line in pairs(rm_lines(refs)) do
    local sid = string.match(line, '^students:(.*)$')
    if sid then
      local st = redis.call('HGET', base .. ':refs:students', sid)
      for l in pairs(rm_lines(st)) do
        local school = string.match(l, '^schools:(.*)$')
        if school then out[school] = true end
      end
    end
  end
  return out
end
local function rm_apply(a, i, maxlen)
  local op, base, rt = a[i], a[i + 1], a[i + 2]
  if op == 'V' then
    local id, json, refs, sid, data = a[i + 4], a[i + 5], a[i + 6], a[i + 8], a[i + 10]
    if type(data) == 'number' then data = a[data] end
    if a[i + 3] == 'deleted' then
      json = nil
    elseif type(json) == 'table' then
      json = string.sub(data, json[1], json[2])
    end
    rm_put(base, rt, id, json, refs)
    if a[i + 3] == 'created' then rm_idmap(base, rt, id, a[i + 11]) end
    local added = redis.pcall('XADD', base .. ':events', 'MAXLEN', '~', maxlen, sid,
      'type', a[i + 9], 'data', data, 'id', a[i + 12])
    if type(added) == 'table' and added.err then return end
    redis.pcall('XADD', base .. ':events:' .. rt, 'MAXLEN', '~', maxlen, sid, 'r', rt)
    local schools = rm_lines(a[i + 7])
    if rt == 'contacts' then schools = rm_contact_schools(base, refs) end
    for s in pairs(schools) do
      redis.pcall('XADD', base .. ':events:school:' .. s, 'MAXLEN', '~', maxlen, sid, 'r', rt)
      redis.pcall('XADD', base .. ':events:schooltype:' .. rt .. ':' .. s, 'MAXLEN', '~', maxlen,
        sid, 'r', rt)
    end
  elseif op == 'O' then
    rm_put(base, rt, a[i + 3], a[i + 4], a[i + 5])
    rm_idmap(base, rt, a[i + 3], a[i + 6])
  else
    rm_put(base, rt, a[i + 3], nil, '')
  end
end
"""
"""Lua functions to paste before a script's main body; ``rm_apply(a, i, maxlen)`` applies the
operation starting at ``a[i]`` of the array ``a`` (``ARGV``, or an unpacked op list), see
:data:`OP_WIDTH`; ``maxlen`` trims the event streams. In an unpacked op list a ``V``
operation may point at its JSON instead of carrying it again: ``data`` (``a[i + 10]``) as the
index in ``a`` of the same event JSON (the legacy XADD's), and the object (``a[i + 5]``) as
``{first, last}`` byte positions of the object inside that JSON (it is embedded verbatim)."""

_APPLY = (
    LUA_FUNCTIONS
    + """
local i, maxlen = 2, ARGV[1]
while i <= #ARGV do
  local op = ARGV[i]
  rm_apply(ARGV, i, maxlen)
  if op == 'V' then i = i + 13 elseif op == 'O' then i = i + 7 else i = i + 4 end
end
return 1
"""
)

REFS: dict[str, tuple[tuple[str, str], ...]] = {
    "students": (("schools", "school"), ("schools", "schools")),
    "teachers": (("schools", "school"), ("schools", "schools")),
    "schooladmins": (("schools", "schools"),),
    "contacts": (("students", "students"),),
    "sections": (
        ("schools", "school"),
        ("students", "students"),
        ("teachers", "teacher"),
        ("teachers", "teachers"),
        ("courses", "course"),
        ("terms", "term_id"),
    ),
}
"""Per record type: (referenced record type, field) pairs that the reverse relations index."""
SCHOOL_FIELDS = ("school", "schools")


class _Refs(msgspec.Struct, frozen=True):
    """The reference fields of any v2 object (others are skipped by the decoder)."""

    id: str
    school: str | None = None
    schools: list[str] | None = None
    students: list[str] | None = None
    teacher: str | None = None
    teachers: list[str] | None = None
    course: str | None = None
    term_id: str | None = None


_refs_decoder = msgspec.json.Decoder(_Refs)


def _values(refs: _Refs, field: str) -> list[str]:
    value = getattr(refs, field)
    if isinstance(value, str):
        return [value] if value else []
    return [x for x in value or () if x]


def references(record_type: str, obj: bytes) -> tuple[str, str, str]:
    """``(id, refs, schools)`` of an encoded v2 object, as the Lua expects them.

    ``refs``: newline-joined ``<record type>:<id>`` of every object it references (the reverse
    relations it belongs to); ``schools``: newline-joined school ids its events relate to.

    Raises:
        msgspec.DecodeError: the JSON has no string ``id`` or a reference field is malformed.
    """
    decoded = _refs_decoder.decode(obj)
    spec = REFS.get(record_type)
    refs = (
        sorted({f"{target}:{v}" for target, field in spec for v in _values(decoded, field)})
        if spec
        else ()
    )
    if record_type == "schools":
        schools = [decoded.id]
    elif record_type in ("students", "teachers", "schooladmins", "sections"):
        schools = sorted({v for field in SCHOOL_FIELDS for v in _values(decoded, field)})
    else:
        schools = []
    return decoded.id, "\n".join(refs), "\n".join(schools)


@lru_cache(maxsize=4096)
def _base(prefix: str, district: str) -> str:
    """A district's key base, built once per district (the translator asks per event)."""
    return Keys(prefix).read_model(district).base


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
    object_id, refs, schools = references(out.record_type, obj)
    return [
        "V",
        _base(prefix, district),
        out.record_type,
        action,
        object_id,
        obj,
        refs,
        schools,
        stream_id(legacy_id),
        out.type,
        data,
        v3_id or "",
        legacy_id,
    ]


def put_op(
    *, prefix: str, district: str, record_type: str, obj: bytes, v3_id: str | None = None
) -> list[Arg]:
    """The operation that stores one v2 object (as the sync reads it), no event."""
    base = _base(prefix, district)
    object_id, refs, _ = references(record_type, obj)
    return ["O", base, record_type, object_id, obj, refs, v3_id or ""]


def remove_op(*, prefix: str, district: str, record_type: str, v2_id: str) -> list[Arg]:
    """The operation that forgets one v2 object and its relations."""
    return ["R", _base(prefix, district), record_type, v2_id]


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
