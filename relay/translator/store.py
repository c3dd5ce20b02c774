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

import asyncio
from typing import TYPE_CHECKING

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.readmodel.crosswalk import LUA as CROSSWALK_LUA
from relay.readmodel.crosswalk import SWEEP_PER_WRITE
from relay.readmodel.snapshots import AT_SUFFIX
from relay.readmodel.writer import LUA_FUNCTIONS
from relay.redis.client import is_cluster

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection

    from relay.redis.keys import Keys

FENCED = -1
"""What :meth:`Store.commit` returns when the lease is no longer ours."""

# The batch travels as ONE script argument: a MessagePack array (``cmsgpack.unpack``, built
# into Redis' Lua since 2.6) instead of one argument per field. redis-py encodes and
# length-prefixes every argument in Python, which cost more than translating the events did.
#
# Layout of the array (see :class:`BatchWrite`; KEYS[k] are resolved by index):
#
#   per source entry:  <stream id> <n ops> <op> ... <op>
#   ops:
#     'X' k id type district source data   XADD KEYS[k] MAXLEN ~ legacy_max * (legacy event)
#     'H' k field value                    HSET KEYS[k] field value
#     'U' k uid json at                    HSET KEYS[k] uid json uid:at at (a user snapshot and
#                                          the time it reflects, see seed_snapshots)
#     'D' k field                          HDEL KEYS[k] field
#     'L' reason detail district source data partial   XADD <p>:deadletter (this source
#                                          entry; partial '1': one role of it, the rest went out)
#     'V' <12 fields>                       the v2 read model's write of one legacy event
#                                          (relay.readmodel.writer.event_op; rm_apply); its
#                                          event JSON is the preceding X's, by index
#                                          (BatchWrite.read_model)
#     'C' n cmd k arg1 .. arg(n-2)         redis.call(cmd, KEYS[k], arg1, ..): any other write
#     'M' k3 k2 kx uid entry del now keep  the ID crosswalk's update of one user
#                                          (relay.readmodel.crosswalk: xw_update)
#     'K' district                         hold this entry: HSET KEYS[5] (<p>:translator:held)
#                                          <stream id> district (relay.translator.held)
#
# KEYS[6] (<p>:translator:emitted) ends up holding the last legacy id written, the highest.
#
# Ops of an entry at or below the stored position are skipped (effectively once) unless the
# entry is held (then it is taken out of the held hash and applied); every entry is
# acknowledged. The position only moves forward. To add a write, prefer 'C'
# (BatchWrite.command); add a dedicated op only if it is hot enough for its packing to matter.
_COMMIT = (
    LUA_FUNCTIONS
    + CROSSWALK_LUA
    + f"local SWEEP_PER_WRITE = {SWEEP_PER_WRITE}\n"
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local group, legacy_max, dl_max = ARGV[2], ARGV[3], ARGV[4]
local ops = cmsgpack.unpack(ARGV[5])
local function split(sid)
  local d = string.find(sid, '-', 1, true)
  return tonumber(string.sub(sid, 1, d - 1)), tonumber(string.sub(sid, d + 1))
end
local pms, pseq = -1, -1
local pos = redis.call('GET', KEYS[2])
if pos then pms, pseq = split(pos) end
local held = redis.call('HLEN', KEYS[5]) > 0
local i, n, applied, last, ids, emitted = 1, #ops, 0, nil, {}, nil
local sweeps = {}
while i <= n do
  local sid, nops = ops[i], ops[i + 1]
  i = i + 2
  local ms, seq = split(sid)
  local above = ms > pms or (ms == pms and seq > pseq)
  local fresh = above
  if held and redis.call('HDEL', KEYS[5], sid) == 1 then fresh = true end
  for _ = 1, nops do
    local op = ops[i]
    if op == 'X' then
      if fresh then
        redis.call('XADD', KEYS[ops[i + 1]], 'MAXLEN', '~', legacy_max, '*',
          'id', ops[i + 2], 'type', ops[i + 3], 'district', ops[i + 4],
          'source', ops[i + 5], 'data', ops[i + 6])
        emitted = ops[i + 2]
      end
      i = i + 7
    elseif op == 'H' then
      if fresh then redis.call('HSET', KEYS[ops[i + 1]], ops[i + 2], ops[i + 3]) end
      i = i + 4
    elseif op == 'U' then
      if fresh then
        local uid = ops[i + 2]
        redis.call('HSET', KEYS[ops[i + 1]], uid, ops[i + 3], uid .. ':at', ops[i + 4])
      end
      i = i + 5
    elseif op == 'D' then
      if fresh then redis.call('HDEL', KEYS[ops[i + 1]], ops[i + 2]) end
      i = i + 3
    elseif op == 'L' then
      if fresh then
        local f = {'stage', 'translator', 'reason', ops[i + 1], 'detail', ops[i + 2],
          'district', ops[i + 3], 'source', ops[i + 4], 'entry', sid, 'data', ops[i + 5]}
        if ops[i + 6] ~= '' then f[#f + 1] = 'partial'; f[#f + 1] = ops[i + 6] end
        redis.call('XADD', KEYS[4], 'MAXLEN', '~', dl_max, '*', unpack(f))
      end
      i = i + 7
    elseif op == 'V' then
      if fresh then rm_apply(ops, i, legacy_max) end
      i = i + 13
    elseif op == 'K' then
      if fresh then redis.call('HSET', KEYS[5], sid, ops[i + 1]) end
      i = i + 2
    elseif op == 'C' then
      local nargs = ops[i + 1]
      if fresh then
        redis.call(ops[i + 2], KEYS[ops[i + 3]], unpack(ops, i + 4, i + 1 + nargs))
      end
      i = i + 2 + nargs
    -- begin ID crosswalk (relay.readmodel.crosswalk)
    elseif op == 'M' then
      if fresh then
        xw_update(KEYS[ops[i + 1]], KEYS[ops[i + 2]], KEYS[ops[i + 3]],
          ops[i + 4], ops[i + 5], ops[i + 6], ops[i + 7], ops[i + 8])
        -- The expiry sweep runs once per crosswalk per batch, not once per user.
        local kx = ops[i + 3]
        local sw = sweeps[kx]
        if sw then sw[3], sw[5] = ops[i + 7], sw[5] + 1
        else sweeps[kx] = {ops[i + 1], ops[i + 2], ops[i + 7], ops[i + 8], 1} end
      end
      i = i + 9
    -- end ID crosswalk
    else
      return redis.error_reply('unknown batch op ' .. tostring(op))
    end
  end
  if fresh then applied = applied + 1 end
  if above then pms, pseq, last = ms, seq, sid end
  ids[#ids + 1] = sid
end
for kx, sw in pairs(sweeps) do
  xw_sweep(KEYS[sw[1]], KEYS[sw[2]], KEYS[kx], sw[3], sw[4], SWEEP_PER_WRITE * sw[5])
end
if last then redis.call('SET', KEYS[2], last) end
if emitted then redis.call('SET', KEYS[6], emitted) end
for j = 1, #ids, 1000 do
  redis.call('XACK', KEYS[3], group, unpack(ids, j, math.min(j + 999, #ids)))
end
return applied
"""
)

_packer = msgspec.msgpack.Encoder()


def msgpack_str(data: bytes | msgspec.Raw) -> msgspec.Raw:
    """``data`` as a MessagePack *str* (Lua's cmsgpack cannot read *bin*; Lua strings are
    bytes, so any bytes go through unchanged), spliced in without decoding it."""
    n = len(data)
    if n < 0x20:
        head = bytes((0xA0 | n,))
    elif n < 0x100:
        head = b"\xd9" + bytes((n,))
    elif n < 0x10000:
        head = b"\xda" + n.to_bytes(2, "big")
    else:
        head = b"\xdb" + n.to_bytes(4, "big")
    return msgspec.Raw(b"".join((head, data)))


_OBJECT_MARK = b'"object":'


def _object_at(data: bytes, obj: bytes) -> int:
    """Where ``obj`` starts inside the event JSON ``data`` (-1 if it is not there).

    The object follows the first ``"object":`` (``encode_legacy_event`` puts it there
    verbatim); the comparison makes any other layout fall back to a plain search.
    """
    start = data.find(_OBJECT_MARK) + len(_OBJECT_MARK)
    if data.startswith(obj, start):
        return start
    return data.find(obj)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


Arg = str | int | msgspec.Raw | list[int]
"""One element of the packed op list: text, a count or key index, a :func:`msgpack_str`, or a
``[first, last]`` position pair (a read-model object inside its event JSON)."""
DATA_AT, OBJECT_AT = 10, 5
"""Positions of the event JSON and of the object in a ``V`` operation (``event_op``)."""


class BatchWrite:
    """Everything one batch writes, grouped by source entry, as the commit script's op list.

    Each ``begin`` starts a source entry; the write methods append one op each (layout in the
    comment above ``_COMMIT``). Keys are passed as KEYS (declared, so scripts stay correct on
    any deployment) and referenced by index from the ops.
    """

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.key_names: list[str] = [
            keys.translator_lease,
            keys.translator_position,
            keys.events,
            keys.deadletter,
            keys.translator_held,
            keys.translator_emitted,
        ]
        self._key_index: dict[str, int] = {name: i + 1 for i, name in enumerate(self.key_names)}
        self._legacy_keys: dict[str, int] = {}
        self.ops: list[Arg] = []
        self.entries = 0
        self.last_id: str | None = None
        self._count_at = -1
        self._last_data: tuple[bytes, int] | None = None
        """The last legacy event JSON and its (1-based, Lua) index in :attr:`ops`."""

    def key(self, name: str) -> int:
        """The KEYS index of ``name``, declaring it on first use."""
        index = self._key_index.get(name)
        if index is None:
            self.key_names.append(name)
            index = self._key_index[name] = len(self.key_names)
        return index

    def begin(self, stream_id: str) -> None:
        """Start the operations of source entry ``stream_id`` (entries must come in order)."""
        self.ops += (stream_id, 0)
        self._count_at = len(self.ops) - 1
        self.entries += 1
        self.last_id = stream_id

    def _op(self, *parts: Arg) -> None:
        self.ops += parts
        count = self.ops[self._count_at]
        assert isinstance(count, int)
        self.ops[self._count_at] = count + 1

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
        key = self._legacy_keys.get(record_type)
        if key is None:
            key = self._legacy_keys[record_type] = self.key(self.keys.legacy(record_type))
        self._op("X", key, legacy_id, type_, district, source, msgpack_str(data))
        self._last_data = (data, len(self.ops))

    def put_user(self, district: str, user_id: str, user: bytes | msgspec.Raw, at: int) -> None:
        """Store the last known v3 user and the time it reflects (epoch ms of the event)."""
        self._op("U", self.key(self.keys.users(district)), user_id, msgpack_str(user), at)

    def drop_user(self, district: str, user_id: str) -> None:
        """Forget a deleted user (its snapshot and the snapshot's time)."""
        self.command("HDEL", self.keys.users(district), user_id, f"{user_id}{AT_SUFFIX}")

    def put_teacher(self, district: str, user_id: str, legacy_id: str) -> None:
        """Remember a teacher's legacy id."""
        self._op("H", self.key(self.keys.teachers(district)), user_id, legacy_id)

    def dead_letter(
        self,
        *,
        reason: str,
        detail: str,
        district: str,
        source: str,
        data: bytes,
        partial: bool = False,
    ) -> None:
        """Send the current source entry to ``<p>:deadletter`` instead of translating it
        (``partial``: only one role of it; the entry gets ``partial 1`` and is not replayable)."""
        self._op("L", reason, detail, district, source, msgpack_str(data), "1" if partial else "")

    def hold(self, district: str) -> None:
        """Set the current entry aside in the held hash (its district is held back)."""
        self._op("K", district)

    def read_model(self, op: list[bytes | str | int]) -> None:
        """The v2 read model's write of one legacy event of the current entry (docs/v2-api.md).

        ``op`` comes from :func:`relay.readmodel.writer.event_op`; it runs in the same script as
        the legacy XADD, fenced and skipped on replay like the rest, so the read model is
        exactly as fresh as the legacy streams. When its event JSON is the one of the legacy
        XADD just added, the event JSON and the object inside it travel once: the operation
        points at them (see :data:`relay.readmodel.writer.LUA_FUNCTIONS`).
        """
        parts: list[Arg | bytes] = list(op)
        last, data, obj = self._last_data, op[DATA_AT], op[OBJECT_AT]
        if last is not None and data is last[0] and isinstance(obj, bytes):
            parts[DATA_AT] = last[1]
            start = _object_at(data, obj)
            if start >= 0:
                parts[OBJECT_AT] = [start + 1, start + len(obj)]
        self._op(*(msgpack_str(a) if isinstance(a, bytes) else a for a in parts))

    def command(self, name: str, key: str, *args: str | int | bytes) -> None:
        """Any other write of the current entry: ``redis.call(name, key, *args)`` if fresh.

        The extension point for writes beyond the legacy streams (e.g. read models): the
        command runs in the same atomic script, fenced and skipped on replay like the rest.
        """
        packed = [msgpack_str(a) if isinstance(a, bytes) else a for a in args]
        self._op("C", len(args) + 2, name, self.key(key), *packed)

    def crosswalk(
        self,
        keys: tuple[str, str, str],
        *,
        uid: str,
        entry: str,
        deleted: bool,
        now: int,
        keep: int,
    ) -> None:
        """The crosswalk update of one user (op ``M``; ``relay.readmodel.crosswalk.record``)."""
        k3, k2, kx = (self.key(name) for name in keys)
        self._op("M", k3, k2, kx, uid, entry, "1" if deleted else "0", now, keep)

    def packed(self) -> bytes:
        """The op list as the script's one MessagePack argument."""
        return _packer.encode(self.ops)


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

    async def held(self) -> dict[str, str]:
        """The held entries (entry id → district), see :mod:`relay.translator.held`."""
        stored = await self.redis.hgetall(self.keys.translator_held)
        return {_str(k): _str(v) for k, v in stored.items()}

    async def emitted(self) -> str:
        """The highest legacy id written ("" before any; :mod:`relay.translator.held`)."""
        value = await self.redis.get(self.keys.translator_emitted)
        return "" if value is None else _str(value)

    async def users(self, wanted: dict[str, list[str]]) -> dict[tuple[str, str], bytes | None]:
        """Snapshots of the given user ids per district, one HMGET per district."""
        return await self._hmget(wanted, self.keys.users)

    async def teachers(self, wanted: dict[str, list[str]]) -> dict[tuple[str, str], str]:
        """Known teacher legacy ids of the given user ids per district (misses left out)."""
        found = await self._hmget(wanted, self.keys.teachers)
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
                self.keys.teachers(district), items=[x for kv in found.items() for x in kv]
            )

    async def commit(self, batch: BatchWrite, lease_value: bytes) -> int:
        """Apply ``batch`` atomically; returns entries newly applied, or :data:`FENCED`."""
        return await (await self.send(batch, lease_value))

    async def send(self, batch: BatchWrite, lease_value: bytes) -> asyncio.Future[int]:
        """Send the commit of ``batch`` now; the returned future resolves as :meth:`commit`.

        When this returns, the script call is on the wire, so the caller can translate the
        next batch while Redis runs it (awaiting a plain ``Script`` call in a task gives no
        such guarantee: redis-py awaits several times before writing). One pooled connection
        carries the call and is released once the reply is read. On Redis Cluster the call
        goes through redis-py's script call in a task (correct, less overlap).
        """
        args: list[bytes | str | int] = [
            lease_value,
            self.group,
            self.legacy_maxlen,
            self.deadletter_maxlen,
            batch.packed(),
        ]
        keys = batch.key_names
        if is_cluster(self.redis):
            return asyncio.ensure_future(self._run(keys, args))
        pool = self.redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # unannotated
        try:
            await conn.send_command("EVALSHA", self._commit.sha, len(keys), *keys, *args)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await conn.disconnect()
            await pool.release(conn)
            return asyncio.ensure_future(self._run(keys, args))
        except BaseException:
            await conn.disconnect()
            await pool.release(conn)
            raise
        return asyncio.ensure_future(self._reply(conn, keys, args))

    async def _run(self, keys: list[str], args: list[bytes | str | int]) -> int:
        """The commit through redis-py's script call (loads the script, retries on errors)."""
        return int(await self._commit(keys=keys, args=args))

    async def _reply(
        self, conn: AbstractConnection, keys: list[str], args: list[bytes | str | int]
    ) -> int:
        """Read the reply of :meth:`send`. On NOSCRIPT (Redis lost its script cache: nothing
        ran) or a lost connection the call is made again through redis-py: the script skips
        whatever a first run applied, so running it twice writes nothing twice."""
        pool = self.redis.connection_pool
        broken = False
        try:
            applied = await conn.read_response()
        except NoScriptError:
            applied = None
        except (RedisConnectionError, RedisTimeoutError, OSError):
            broken, applied = True, None
        except BaseException:
            broken = True
            raise
        finally:
            if broken:
                await conn.disconnect()
            await pool.release(conn)
        return await self._run(keys, args) if applied is None else int(applied)
