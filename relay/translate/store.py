"""The translator's state in Redis and the one atomic write per batch.

State: the last known v3 user per id (``<p>:users:<district>`` hash, for diffing
``users.updated``), teacher user id → legacy id (``<p>:teachers:<district>`` hash, for sections),
and the stored position (``<p>:translator:position``: the last events-stream entry translated).

:class:`BatchWrite` collects, per source entry, the legacy XADDs, snapshot and teacher-map
writes and dead letters; :meth:`Store.commit` applies them with the XACKs in one Lua call. The
script first checks the lease value (a fenced-off ex-holder writes nothing), then skips every
source entry at or below the stored position: those were written before (a crash between the
write and the next read, a re-delivery) and are only acknowledged again. That is what makes a
replay unable to write a legacy event twice.

Reads (HMGET of snapshots and teacher ids) happen before translating, outside the script; that
is safe because only the lease holder writes these keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis.asyncio as aioredis

    from relay.keys import Keys

FENCED = -1
"""What :meth:`Store.commit` returns when the lease is no longer ours."""

_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local group, legacy_max, dl_max = ARGV[2], ARGV[3], ARGV[4]
local function split(sid)
  local d = string.find(sid, '-', 1, true)
  return tonumber(string.sub(sid, 1, d - 1)), tonumber(string.sub(sid, d + 1))
end
local pms, pseq = -1, -1
local pos = redis.call('GET', KEYS[2])
if pos then pms, pseq = split(pos) end
local i, applied, last, ids = 6, 0, nil, {}
for _ = 1, tonumber(ARGV[5]) do
  local sid, nops = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local ms, seq = split(sid)
  local fresh = ms > pms or (ms == pms and seq > pseq)
  for _ = 1, nops do
    local op = ARGV[i]
    if op == 'X' then
      if fresh then
        redis.call('XADD', KEYS[tonumber(ARGV[i + 1])], 'MAXLEN', '~', legacy_max, '*',
          'id', ARGV[i + 2], 'type', ARGV[i + 3], 'district', ARGV[i + 4],
          'source', ARGV[i + 5], 'data', ARGV[i + 6])
      end
      i = i + 7
    elseif op == 'H' then
      if fresh then redis.call('HSET', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]) end
      i = i + 4
    elseif op == 'D' then
      if fresh then redis.call('HDEL', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]) end
      i = i + 3
    else
      if fresh then
        redis.call('XADD', KEYS[4], 'MAXLEN', '~', dl_max, '*', 'stage', 'translator',
          'reason', ARGV[i + 1], 'detail', ARGV[i + 2], 'district', ARGV[i + 3],
          'source', ARGV[i + 4], 'entry', sid, 'data', ARGV[i + 5])
      end
      i = i + 6
    end
  end
  if fresh then
    applied, pms, pseq, last = applied + 1, ms, seq, sid
  end
  ids[#ids + 1] = sid
end
if last then redis.call('SET', KEYS[2], last) end
for j = 1, #ids, 1000 do
  redis.call('XACK', KEYS[3], group, unpack(ids, j, math.min(j + 999, #ids)))
end
return applied
"""


def teachers_key(keys: Keys, district: str) -> str:
    """Hash of teacher v3 user id → v2 legacy id for one district."""
    return f"{keys.prefix}:teachers:{district}"


class BatchWrite:
    """Everything one batch writes, grouped by source entry, ready for the commit script."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.key_names: list[str] = [
            keys.translator_lease,
            keys.translator_position,
            keys.events,
            keys.deadletter,
        ]
        self._key_index: dict[str, int] = {name: i + 1 for i, name in enumerate(self.key_names)}
        self.args: list[bytes | str | int] = []
        self.entries = 0
        self.last_id: str | None = None
        self._count_at = -1

    def _key(self, name: str) -> int:
        index = self._key_index.get(name)
        if index is None:
            self.key_names.append(name)
            index = self._key_index[name] = len(self.key_names)
        return index

    def begin(self, stream_id: str) -> None:
        """Start the operations of source entry ``stream_id`` (entries must come in order)."""
        self.args += [stream_id, 0]
        self._count_at = len(self.args) - 1
        self.entries += 1
        self.last_id = stream_id

    def _op(self, *parts: bytes | str | int) -> None:
        self.args += parts
        count = self.args[self._count_at]
        assert isinstance(count, int)
        self.args[self._count_at] = count + 1

    def legacy(
        self,
        record_type: str,
        *,
        legacy_id: str,
        type_: str,
        district: str,
        source: str,
        data: bytes,
    ) -> None:
        """Append one legacy event to ``<p>:legacy:<record_type>``."""
        self._op(
            "X", self._key(self.keys.legacy(record_type)), legacy_id, type_, district, source, data
        )

    def put_user(self, district: str, user_id: str, user: bytes) -> None:
        """Store the last known v3 user."""
        self._op("H", self._key(self.keys.users(district)), user_id, user)

    def drop_user(self, district: str, user_id: str) -> None:
        """Forget a deleted user."""
        self._op("D", self._key(self.keys.users(district)), user_id)

    def put_teacher(self, district: str, user_id: str, legacy_id: str) -> None:
        """Remember a teacher's legacy id."""
        self._op("H", self._key(teachers_key(self.keys, district)), user_id, legacy_id)

    def dead_letter(
        self, *, reason: str, detail: str, district: str, source: str, data: bytes
    ) -> None:
        """Send the current source entry to ``<p>:deadletter`` instead of translating it."""
        self._op("L", reason, detail, district, source, data)


class Store:
    """Reads and the atomic batch write of the translator's Redis state."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        group: str,
        legacy_maxlen: int,
        deadletter_maxlen: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.legacy_maxlen = legacy_maxlen
        self.deadletter_maxlen = deadletter_maxlen
        self._commit = redis.register_script(_COMMIT)

    async def position(self) -> str | None:
        """The last events-stream entry id translated, or None before the first batch."""
        value = await self.redis.get(self.keys.translator_position)
        return value.decode() if isinstance(value, bytes) else value

    async def users(self, wanted: dict[str, list[str]]) -> dict[tuple[str, str], bytes | None]:
        """Snapshots of the given user ids per district, one HMGET per district."""
        return await self._hmget(wanted, self.keys.users)

    async def teachers(self, wanted: dict[str, list[str]]) -> dict[tuple[str, str], str]:
        """Known teacher legacy ids of the given user ids per district (misses left out)."""
        found = await self._hmget(wanted, lambda district: teachers_key(self.keys, district))
        return {key: value.decode() for key, value in found.items() if isinstance(value, bytes)}

    async def _hmget(
        self, wanted: dict[str, list[str]], key_of: Callable[[str], str]
    ) -> dict[tuple[str, str], bytes | None]:
        districts = [district for district, ids in wanted.items() if ids]
        if not districts:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for district in districts:
                _ = pipe.hmget(key_of(district), wanted[district])
            replies = await pipe.execute()
        result: dict[tuple[str, str], bytes | None] = {}
        for district, values in zip(districts, replies, strict=True):
            result.update(
                ((district, uid), value)
                for uid, value in zip(wanted[district], values, strict=True)
            )
        return result

    async def cache_teachers(self, district: str, found: dict[str, str]) -> None:
        """Cache Data API look-up results (facts from Clever, so no fencing needed)."""
        if found:
            await self.redis.hset(
                teachers_key(self.keys, district), items=[x for kv in found.items() for x in kv]
            )

    async def commit(self, batch: BatchWrite, lease_value: bytes) -> int:
        """Apply ``batch`` atomically; returns entries newly applied, or :data:`FENCED`."""
        header: list[bytes | str | int] = [
            lease_value,
            self.group,
            self.legacy_maxlen,
            self.deadletter_maxlen,
            batch.entries,
        ]
        applied = await self._commit(keys=batch.key_names, args=header + batch.args)
        return int(applied)
