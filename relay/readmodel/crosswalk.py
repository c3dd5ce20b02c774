"""The ID crosswalk: v3 user id ↔ each role's v2 id, per district (``docs/migration.md``).

Vendors moving off v2 re-key their own records: their database holds v2 ids (a teacher's v2 id
is ``roles.teacher.legacy_id`` in v3; a student's is the user id), and the v3 user id is new.
The translator already knows every user's role ids, so it keeps the map in the same atomic
write as its user snapshots (op ``M`` of the batch script, :data:`LUA`), and ``sync`` fills it
in the same MULTI as the page it writes. Keys (``relay.redis.keys.Keys``):

- ``<p>:idmap:<district>:v3``: hash v3 user id → ``{"roles": {role: v2 id}}``;
- ``<p>:idmap:<district>:v2``: hash v2 id → ``{"v3_user_id": ..., "role": ...}``;
- ``<p>:idmap:<district>:expiry``: sorted set of deleted mappings by deletion time (ms).

A deleted user, or a role whose ``legacy_id`` changed, leaves its mappings resolvable with a
``deleted_at`` (ms) for ``[v2api] idmap_deleted_retention_s``: vendors backfill after the fact.
Reads treat older deletions as unknown, so the retention is exact; every write that changes the
map also removes up to :data:`SWEEP_PER_WRITE` of them from Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from relay.translate import v3

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis

    from relay.redis.keys import Keys

DEFAULT_RETENTION_S = 90 * 86400.0
"""How long a deleted mapping stays resolvable unless configured otherwise (90 days)."""
SWEEP_PER_WRITE = 64
"""Expired deletions removed from Redis per crosswalk write (bounds a script's run time)."""

LUA = """
local function xw_update(k3, k2, kx, uid, entry, deleted, now, keep)
  local old = redis.call('HGET', k3, uid)
  if old == entry and deleted ~= '1' then return end
  now = tonumber(now)
  local given = cjson.decode(entry).roles
  local before = {}
  if old then before = cjson.decode(old).roles or {} end
  local after = given
  if deleted == '1' then
    if not old then before = given end
    after = {}
  end
  for role, v2 in pairs(before) do
    if after[role] ~= v2 then
      local cur = redis.call('HGET', k2, v2)
      local e = cur and cjson.decode(cur) or {v3_user_id = uid, role = role}
      if e.v3_user_id == uid and e.role == role and not e.deleted_at then
        e.deleted_at = now
        redis.call('HSET', k2, v2, cjson.encode(e))
        redis.call('ZADD', kx, now, '2:' .. v2)
      end
    end
  end
  for role, v2 in pairs(after) do
    redis.call('HSET', k2, v2, cjson.encode({v3_user_id = uid, role = role}))
    redis.call('ZREM', kx, '2:' .. v2)
  end
  if deleted == '1' then
    redis.call('HSET', k3, uid, cjson.encode({roles = before, deleted_at = now}))
    redis.call('ZADD', kx, now, '3:' .. uid)
  else
    redis.call('HSET', k3, uid, entry)
    redis.call('ZREM', kx, '3:' .. uid)
  end
end
local function xw_sweep(k3, k2, kx, now, keep, limit)
  local cutoff = tonumber(now) - tonumber(keep)
  local gone = redis.call('ZRANGEBYSCORE', kx, '-inf', cutoff, 'LIMIT', 0, limit)
  for _, m in ipairs(gone) do
    local key = k2
    if string.sub(m, 1, 1) == '3' then key = k3 end
    redis.call('HDEL', key, string.sub(m, 3))
    redis.call('ZREM', kx, m)
  end
end
local function xw_apply(k3, k2, kx, uid, entry, deleted, now, keep)
  xw_update(k3, k2, kx, uid, entry, deleted, now, keep)
  xw_sweep(k3, k2, kx, now, keep, SWEEP_LIMIT)
end
""".replace("SWEEP_LIMIT", str(SWEEP_PER_WRITE))
"""``xw_apply(k3, k2, kx, uid, entry, deleted, now_ms, keep_ms)``: ``entry`` is the user's v3
hash value as :func:`encode_entry` makes it; ``deleted`` is ``'1'`` for a deleted user (its roles,
if the map never saw the user, come from ``entry``). An entry equal to the stored one (the usual
``users.updated``: no ``legacy_id`` changed) costs one HGET. Pasted before the batch script's
body and :data:`_APPLY`'s."""

_APPLY = (
    LUA
    + """
local i = 3
while i <= #ARGV do
  xw_apply(KEYS[1], KEYS[2], KEYS[3], ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[1], ARGV[2])
  i = i + 3
end
return 1
"""
)

_user_decoder = msgspec.json.Decoder(v3.User)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class CrosswalkKeys:
    """The three keys of one district's crosswalk."""

    v3: str
    v2: str
    expiry: str

    @classmethod
    def of(cls, keys: Keys, district: str) -> CrosswalkKeys:
        """Built from ``relay.redis.keys.Keys`` (one place names every key), once per district."""
        return _keys_of(keys, district)


@lru_cache(maxsize=4096)
def _keys_of(keys: Keys, district: str) -> CrosswalkKeys:
    """The translator asks per user event; the names only change with the district."""
    return CrosswalkKeys(
        keys.idmap_v3(district), keys.idmap_v2(district), keys.idmap_expiry(district)
    )


def role_ids(user: v3.User) -> dict[str, str]:
    """Each present role's v2 id, as the translator's v2 objects carry it (``docs/translation.md``):
    the user id for a student, ``legacy_id`` for the others (a contact without one keeps its user
    id; a teacher, staff or district admin without one has no v2 id and is left out)."""
    roles = user.roles
    out: dict[str, str] = {}
    if isinstance(roles, msgspec.UnsetType):
        return out
    if isinstance(roles.student, v3.StudentRole):
        out["student"] = user.id
    for name in ("teacher", "staff", "district_admin", "contact"):
        role = getattr(roles, name)
        if role is None or isinstance(role, msgspec.UnsetType):
            continue
        legacy = role.legacy_id
        if isinstance(legacy, str) and legacy:
            out[name] = legacy
        elif name == "contact":
            out[name] = user.id
    return out


def encode_entry(ids: dict[str, str]) -> str:
    """A live user's v3 hash value ``{"roles": {role: v2 id}}``, the same bytes for the same
    roles (:func:`role_ids` has a fixed order), so an unchanged user is one comparison in Lua."""
    return _encoder.encode({"roles": ids}).decode()


def now_ms() -> int:
    """Wall-clock milliseconds: deletion times (shared by every replica's clock)."""
    return int(time.time() * 1000)


class CrosswalkOps(Protocol):
    """Where :func:`record` adds its op: the translator's batch write (its ``crosswalk`` op).

    A protocol, so this module does not import the translator that pastes its Lua.
    """

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
        """Add one user's crosswalk update (op ``M``) to the batch."""


def record(
    write: CrosswalkOps, keys: Keys, district: str, user: v3.User, *, deleted: bool, keep_s: float
) -> None:
    """Add one user's crosswalk update to the translator's batch (op ``M``)."""
    k = CrosswalkKeys.of(keys, district)
    write.crosswalk(
        (k.v3, k.v2, k.expiry),
        uid=user.id,
        entry=encode_entry(role_ids(user)),
        deleted=deleted,
        now=now_ms(),
        keep=int(keep_s * 1000),
    )


class CrosswalkWriter:
    """The crosswalk writes of ``sync``: one script call per page, inside the page's MULTI."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, keep_s: float) -> None:
        self.keys = keys
        self.keep_ms = int(keep_s * 1000)
        self.script = redis.register_script(_APPLY)

    def args(self, raw_users: list[bytes]) -> list[str | int]:
        """Script arguments for a page of Data API users (undecodable ones are skipped)."""
        args: list[str | int] = [now_ms(), self.keep_ms]
        for raw in raw_users:
            try:
                user = _user_decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            args += (user.id, encode_entry(role_ids(user)), "0")
        return args

    async def put(self, district: str, raw_users: list[bytes], client: Any = None) -> None:
        """Record a page of users (``client``: a pipeline to join its MULTI)."""
        args = self.args(raw_users)
        if len(args) > 2:
            k = CrosswalkKeys.of(self.keys, district)
            await self.script(keys=[k.v3, k.v2, k.expiry], args=args, client=client)


_entry_decoder = msgspec.json.Decoder(dict[str, Any])


class CrosswalkReader:
    """Look-ups and the full scan, hiding deletions older than the retention."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, keep_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.keep_ms = int(keep_s * 1000)

    def _visible(self, entry: dict[str, Any], now: int) -> bool:
        deleted_at = entry.get("deleted_at")
        return not isinstance(deleted_at, (int, float)) or deleted_at + self.keep_ms > now

    async def _get(self, key: str, field: str) -> dict[str, Any] | None:
        raw: Any = await self.redis.hget(key, field)
        if raw is None:
            return None
        entry = _entry_decoder.decode(raw)
        return entry if self._visible(entry, now_ms()) else None

    async def by_v3(self, district: str, user_id: str) -> dict[str, Any] | None:
        """``{"roles": {role: v2 id}, ["deleted_at": ms]}`` of a v3 user id, or None."""
        return await self._get(CrosswalkKeys.of(self.keys, district).v3, user_id)

    async def by_v2(self, district: str, v2_id: str) -> dict[str, Any] | None:
        """``{"v3_user_id", "role", ["deleted_at": ms]}`` of a v2 id, or None."""
        return await self._get(CrosswalkKeys.of(self.keys, district).v2, v2_id)

    async def count(self, district: str) -> int:
        """How many v2 ids the map holds (deleted ones included): the export's progress total."""
        return int(await self.redis.hlen(CrosswalkKeys.of(self.keys, district).v2))

    async def scan(
        self, district: str, *, batch: int = 5000, deleted: bool = False
    ) -> AsyncIterator[list[tuple[str, str, str]]]:
        """Every live mapping as ``(v3 user id, role, v2 id)``, a batch of HSCAN at a time
        (``deleted``: the resolvable deleted ones instead). Order is Redis' hash order."""
        key, cursor, now = CrosswalkKeys.of(self.keys, district).v2, 0, now_ms()
        while True:
            reply: Any = await self.redis.hscan(key, cursor, count=batch)
            cursor, found = reply
            rows = []
            for v2_id, raw in found.items():
                entry = _entry_decoder.decode(raw)
                if ("deleted_at" in entry) != deleted or not self._visible(entry, now):
                    continue
                rows.append((str(entry["v3_user_id"]), str(entry["role"]), v2_id.decode()))
            if rows:
                yield rows
            if cursor == 0:
                return
