"""Read one legacy topic as one, whatever ``[redis] partitions`` is (docs/legacy-consumers.md).

With P partitions a topic such as ``students`` is P streams, one per partition
(``<p>:legacy:students`` when P = 1, ``{<p>.p<i>}:legacy:students`` otherwise), and each
district's events are all in one of them, in order. :class:`TopicReader` keeps one consumer
group per stream (same group name on each), reads this consumer's pending entries of a stream
first (after a crash) and then new ones, and hands back entries stream by stream in stream
order, so handling them in the order returned keeps every district's order. Each stream is
read with its own command, so on Redis Cluster no command spans two slots.

Usage::

    reader = TopicReader(redis, prefix="clever", partitions=3, topic="students",
                         group="my-app", consumer="worker-1")
    await reader.ensure_groups()
    while True:
        for entry in await reader.read(block_ms=5000):
            if entry.fields is not None:
                handle(entry.fields[b"data"])
            await reader.ack(entry)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from relay.redis.keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

PENDING = "0"
NEW = ">"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of one partition's stream of the topic."""

    stream: str
    id: str
    fields: dict[bytes, bytes] | None
    """``None``: a pending entry the stream's MAXLEN trimmed meanwhile (acknowledge it)."""


class TopicReader:
    """One consumer of one legacy topic across every partition (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        topic: str,
        group: str,
        consumer: str,
        partitions: int = 1,
        count: int = 100,
    ) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.count = count
        keys = Keys(prefix, partitions)
        self.streams = [part.legacy(topic) for part in keys.all_partitions()]
        """The topic's streams, partition 0 first."""
        self._positions = dict.fromkeys(self.streams, PENDING)
        self._turn = 0

    async def ensure_groups(self, start: str = "0") -> None:
        """Create the group on every partition's stream (at ``start``) unless it exists."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id=start, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, *, block_ms: int = 0) -> list[Entry]:
        """The next entries: each stream's pending ones first, then new ones.

        When no stream has any, waits up to ``block_ms`` on one stream (a different one each
        time), so an idle reader costs one command per wait, not P.
        """
        out: list[Entry] = []
        for stream in self.streams:
            out += await self._read(stream, block_ms=None)
        if out or not block_ms:
            return out
        stream = self.streams[self._turn % len(self.streams)]
        self._turn += 1
        return await self._read(stream, block_ms=block_ms)

    async def _read(self, stream: str, *, block_ms: int | None) -> list[Entry]:
        if self._positions[stream] == PENDING:
            pending = await self._group_read(stream, PENDING, block_ms=None)
            if pending:
                return pending
            self._positions[stream] = NEW  # no pending entries left: read new ones
        return await self._group_read(stream, NEW, block_ms=block_ms)

    async def _group_read(self, stream: str, position: str, *, block_ms: int | None) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {stream: position}, count=self.count, block=block_ms
        )
        entries = reply[0][1] if reply else []
        return [Entry(stream, _text(eid), fields or None) for eid, fields in entries]

    async def ack(self, entry: Entry) -> None:
        """Acknowledge a handled entry (it will not be delivered again)."""
        await self.redis.xack(entry.stream, self.group, entry.id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
