"""The translator's consumer group on ``<p>:events``: fenced reads, claims, (re)creation.

Reads and claims are fenced by the lease value: a group hands an entry to whichever consumer
asks, so a paused ex-holder that woke up after a takeover could otherwise take entries into its
own pending list while the new holder reads past them, and a district's events would be
reordered. With the check, after a takeover only the holder can take deliveries. Claims run in
a Lua script that checks the value first. Reads use ``WATCH lease; GET lease; MULTI;
XREADGROUP; EXEC`` instead: equally fenced (EXEC does nothing if the lease key changed after
the GET), and it spares Redis converting ~500 entries to Lua tables and back on every batch,
which cost about three times the XREADGROUP itself (on Redis Cluster, whose client offers no
WATCH, the read is a Lua script that checks the value first). Idle waits use a plain ``XREAD BLOCK``
(which takes nothing from the group), because blocking commands cannot block in a script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, WatchError

from relay.errors import TranslatorFencedError
from relay.redis.client import is_cluster

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  'COUNT', ARGV[6], 'JUSTID')
"""

_READ = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4],
  'STREAMS', KEYS[2], ARGV[5])
"""
"""The fenced read on Redis Cluster, whose client has no WATCH/MULTI."""

NEW = ">"
"""Read entries never delivered to the group."""
PENDING = "0"
"""Read this consumer's own pending entries, oldest first."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One delivered events-stream entry; ``fields`` is None if it was trimmed while pending."""

    stream_id: str
    fields: dict[bytes, bytes] | None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_nogroup(exc: ResponseError) -> bool:
    """Whether Redis says the stream or the group is gone (the NOGROUP stall of other relays)."""
    return "NOGROUP" in str(exc)


def _script_entries(reply: Any) -> list[Entry]:
    """Turn a raw XREADGROUP reply (as a script returns it) into entries."""
    if not reply:
        return []
    entries: list[Entry] = []
    for raw_id, flat in reply[0][1]:
        fields = None
        if flat:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
        entries.append(Entry(raw_id.decode(), fields))
    return entries


def _entries(reply: Any) -> list[Entry]:
    """Turn redis-py's XREADGROUP reply (``[[stream, [(id, fields | None), ...]]]``) into
    entries."""
    if not reply:
        return []
    return [Entry(raw_id.decode(), fields or None) for raw_id, fields in reply[0][1]]


class GroupReader:
    """One consumer's view of the translator group."""

    def __init__(
        self, redis: aioredis.Redis, *, stream: str, lease_key: str, group: str, consumer: str
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.lease_key = lease_key
        self.group = group
        self.consumer = consumer
        self._claim = redis.register_script(_CLAIM)
        self._read = redis.register_script(_READ)
        self._cluster = is_cluster(redis)

    async def ensure_group(self, start_id: str) -> bool:
        """Create the group at ``start_id`` unless it exists; returns whether it was created."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    async def read(self, lease_value: bytes, start: str, count: int) -> list[Entry]:
        """Up to ``count`` entries from ``start`` (:data:`NEW` or :data:`PENDING`), non-blocking.

        Raises:
            TranslatorFencedError: the lease is not held with ``lease_value``.
            ResponseError: e.g. NOGROUP.
            RedisConnectionError: the connection broke (entries may have been delivered).
        """
        if self._cluster:
            reply = await self._read(
                keys=[self.lease_key, self.stream],
                args=[lease_value, self.group, self.consumer, count, start],
            )
            if reply == -1:
                raise TranslatorFencedError
            return _script_entries(reply)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(self.lease_key)
                if await pipe.get(self.lease_key) != lease_value:
                    raise TranslatorFencedError
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                _ = pipe.xreadgroup(self.group, self.consumer, {self.stream: start}, count=count)
                (reply,) = await pipe.execute()
        except WatchError as exc:
            # redis-py also raises WatchError when the connection dies while watching: only a
            # changed lease is a fence; anything else is Redis being unavailable.
            if await self.redis.get(self.lease_key) != lease_value:
                raise TranslatorFencedError from None
            raise RedisConnectionError(f"connection lost during the fenced read: {exc}") from exc
        return _entries(reply)

    async def claim_all(self, lease_value: bytes, *, min_idle_ms: int, count: int) -> int:
        """Move every pending entry idle >= ``min_idle_ms`` to this consumer; returns how many.

        Raises:
            TranslatorFencedError: the lease is not held with ``lease_value``.
        """
        cursor, claimed = "0-0", 0
        while True:
            reply = await self._claim(
                keys=[self.lease_key, self.stream],
                args=[lease_value, self.group, self.consumer, min_idle_ms, cursor, count],
            )
            if reply == -1:
                raise TranslatorFencedError
            cursor = reply[0].decode()
            claimed += len(reply[1])
            if cursor == "0-0":
                return claimed

    async def deliveries(self, entries: list[Entry]) -> dict[str, int]:
        """How many times each of this consumer's pending ``entries`` has been delivered."""
        if not entries:
            return {}
        rows = await self.redis.xpending_range(
            self.stream,
            self.group,
            min=entries[0].stream_id,
            max=entries[-1].stream_id,
            count=len(entries),
            consumername=self.consumer,
        )
        return {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}

    async def entries(self, ids: list[str]) -> list[Entry]:
        """The entries with these ids, read from the stream (not the group: held entries are
        acknowledged); one whose entry was trimmed meanwhile comes back with ``fields`` None."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                _ = pipe.xrange(self.stream, min=sid, max=sid, count=1)
            replies = await pipe.execute()
        return [
            Entry(sid, reply[0][1] or None if reply else None)
            for sid, reply in zip(ids, replies, strict=True)
        ]

    async def last_delivered(self) -> str:
        """The group's last-delivered id (where :data:`NEW` reads continue)."""
        for info in await self.redis.xinfo_groups(self.stream):
            if _text(info["name"]) == self.group:
                return _text(info["last-delivered-id"])
        return "0-0"

    async def wait_for_new(self, after_id: str, block_ms: int) -> None:
        """Block until an entry newer than ``after_id`` exists or ``block_ms`` passes."""
        await self.redis.xread({self.stream: after_id}, count=1, block=block_ms)


LAG_COUNT_CAP = 10_000
"""Entries counted at most when Redis cannot say a group's lag (a larger lag reads as this)."""
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
"""


async def group_lag(redis: aioredis.Redis, stream: str, info: dict[Any, Any]) -> int:
    """The group's lag: entries of ``stream`` after its last-delivered id.

    ``info`` is the group's ``XINFO GROUPS`` row. Redis reports ``lag`` from its
    entries-read counter, which it does not keep across a restart from the AOF: it answers nil
    until the group reads again, and a gauge set only from that value keeps its pre-restart
    figure. Then the entries after the last-delivered id are counted inside Redis (up to
    :data:`LAG_COUNT_CAP`), which is right whatever Redis remembers.
    """
    lag = info.get("lag")
    if lag is not None:
        return int(lag)
    after = _text(info["last-delivered-id"])
    counted = await redis.eval(_COUNT_AFTER, 1, stream, after, LAG_COUNT_CAP)
    return int(counted)
