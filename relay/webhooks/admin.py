"""Operator commands on an endpoint's dead letters: list, replay, purge (docs/webhooks.md).

``clever-relay webhooks list|replay|purge --config PATH --endpoint NAME`` and the web console
(docs/console.md) call these; each takes an optional open client (the console passes the
service's) and optional entry ids (one or a few dead letters instead of all). Replay
puts each dead letter back at the end of its district's queue (removing it from the
dead-letter stream in the same script, so a crash mid-replay neither loses nor doubles one)
and re-enables an endpoint disabled by a 410 Gone: a running relay delivers them within a
second. Purge drops the dead letters for good.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import msgspec

from relay.errors import ConfigError
from relay.redis.client import create_redis
from relay.redis.keys import EndpointKeys, Keys
from relay.webhooks.store import QueuedEvent, encode_event

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import redis.asyncio as aioredis

    from relay.config import Config

PAGE = 500

_REPLAY_LUA = """
local n = 0
local i = 2
while i <= #ARGV do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[3 + tonumber(ARGV[i + 1])], ARGV[i + 3])
    redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[i + 2])
    n = n + 1
  end
  i = i + 4
end
return n
"""

_PURGE_LUA = """
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
"""


class DeadLetter(msgspec.Struct, frozen=True):
    """One entry of an endpoint's dead-letter stream, as ``webhooks list`` shows it."""

    entry: str
    """The dead-letter stream entry id."""
    id: str
    type: str
    district: str
    attempts: int
    reason: str
    failed_at: int
    """Unix seconds of the last attempt."""
    data: bytes
    stream: str
    source_entry: str
    ms: int

    def line(self) -> str:
        """One human line (the CLI prints these)."""
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.failed_at))
        return (
            f"{self.entry} {self.id} {self.type} district={self.district} "
            f"attempts={self.attempts} reason={self.reason!r} failed_at={when}"
        )

    def event(self) -> QueuedEvent:
        """The queued event this dead letter came from."""
        return QueuedEvent(
            id=self.id,
            type=self.type,
            district=self.district,
            data=self.data,
            stream=self.stream,
            entry=self.source_entry,
            ms=self.ms,
        )


def _endpoint_keys(cfg: Config, endpoint: str) -> list[EndpointKeys]:
    """The keys of a configured endpoint.

    Raises:
        ConfigError: no endpoint has that name (the CLI exits 2).
    """
    if endpoint not in {e.name for e in cfg.webhooks.endpoints}:
        raise ConfigError([f"--endpoint: no webhook endpoint named {endpoint!r} in the config"])
    return [
        k.webhook(endpoint) for k in Keys(cfg.redis.prefix, cfg.redis.partitions).all_partitions()
    ]


def _tagged(index: int, total: int, letters: list[DeadLetter]) -> list[DeadLetter]:
    """With partitions, entry ids read ``p<i>/<id>`` (the partition's stream, then the id)."""
    if total == 1:
        return letters
    return [msgspec.structs.replace(d, entry=f"p{index}/{d.entry}") for d in letters]


def _locate(entry: str, total: int) -> tuple[int, str]:
    """(partition, stream id) of a dead letter's entry id; partition -1 when it names none."""
    if total == 1:
        return 0, entry
    part, _, stream_id = entry.partition("/")
    index = int(part[1:]) if part[:1] == "p" and part[1:].isdigit() else -1
    return (index, stream_id) if 0 <= index < total else (-1, entry)


def _grouped(entries: Sequence[str], total: int) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for entry in entries:
        index, stream_id = _locate(entry, total)
        if index >= 0:
            out.setdefault(index, []).append(stream_id)
    return out


def _dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode()

    return DeadLetter(
        entry=entry_id.decode(),
        id=text("id"),
        type=text("type"),
        district=text("district"),
        attempts=int(text("attempts") or 0),
        reason=text("reason"),
        failed_at=int(text("failed_at") or 0),
        data=fields.get(b"data", b""),
        stream=text("stream"),
        source_entry=text("entry"),
        ms=int(text("ms") or 0),
    )


@contextlib.asynccontextmanager
async def _client(cfg: Config, redis: aioredis.Redis | None) -> AsyncIterator[aioredis.Redis]:
    """The caller's client, or a new one closed afterwards (the CLI's case)."""
    if redis is not None:
        yield redis
        return
    own = create_redis(cfg.redis)
    try:
        yield own
    finally:
        await own.aclose()


async def _page(redis: aioredis.Redis, key: str, after: str, limit: int = PAGE) -> list[DeadLetter]:
    reply: Any = await redis.xrange(key, min=f"({after}" if after else "-", count=limit)
    return [_dead_letter(entry_id, fields) for entry_id, fields in reply]


async def _entries(redis: aioredis.Redis, key: str, ids: Sequence[str]) -> list[DeadLetter]:
    """The dead letters with these entry ids (unknown ids are skipped)."""
    out: list[DeadLetter] = []
    for entry_id in ids:
        reply: Any = await redis.xrange(key, min=entry_id, max=entry_id)
        out.extend(_dead_letter(found, fields) for found, fields in reply)
    return out


async def list_dead_letters(
    cfg: Config, endpoint: str, *, redis: aioredis.Redis | None = None
) -> list[DeadLetter]:
    """Every dead letter of ``endpoint``, oldest first (partition by partition)."""
    parts = _endpoint_keys(cfg, endpoint)
    async with _client(cfg, redis) as client:
        out: list[DeadLetter] = []
        for index, keys in enumerate(parts):
            mine: list[DeadLetter] = []
            while page := await _page(client, keys.deadletter, mine[-1].entry if mine else ""):
                mine.extend(page)
            out += _tagged(index, len(parts), mine)
        return out


async def page_dead_letters(
    cfg: Config, endpoint: str, *, redis: aioredis.Redis, after: str = "", limit: int = PAGE
) -> list[DeadLetter]:
    """Up to ``limit`` dead letters of ``endpoint`` after entry ``after``, oldest first
    (partition by partition)."""
    parts = _endpoint_keys(cfg, endpoint)
    start, after_id = _locate(after, len(parts)) if after else (0, "")
    out: list[DeadLetter] = []
    for index in range(max(0, start), len(parts)):
        low = after_id if index == start else ""
        page = await _page(redis, parts[index].deadletter, low, limit - len(out))
        out += _tagged(index, len(parts), page)
        if len(out) >= limit:
            break
    return out


async def _requeue(client: aioredis.Redis, keys: EndpointKeys, page: list[DeadLetter]) -> int:
    """Move one page of dead letters back to their district queues (one script)."""
    script = client.register_script(_REPLAY_LUA)
    queues: dict[str, int] = {}
    args: list[str | bytes | int] = [int(time.time() * 1000)]
    for dead in page:
        index = queues.setdefault(keys.queue(dead.district), len(queues) + 1)
        args += [dead.entry, index, dead.district, encode_event(dead.event())]
    return int(await script(keys=[keys.deadletter, keys.due, keys.state, *queues], args=args))


async def replay(
    cfg: Config,
    endpoint: str,
    entries: Sequence[str] | None = None,
    *,
    redis: aioredis.Redis | None = None,
) -> int:
    """Queue dead letters of ``endpoint`` again and re-enable it; returns how many.

    Args:
        entries: these dead-letter entry ids; ``None`` means all of them.
    """
    parts = _endpoint_keys(cfg, endpoint)
    wanted = None if entries is None else _grouped(entries, len(parts))
    async with _client(cfg, redis) as client:
        total = 0
        for index, keys in enumerate(parts):
            if wanted is None:
                total += await _replay_all(client, keys)
            elif index in wanted:
                total += await _replay_some(client, keys, wanted[index])
            await client.hdel(keys.state, "disabled", "disabled_at")
        return total


async def _replay_all(client: aioredis.Redis, keys: EndpointKeys) -> int:
    total, after = 0, ""
    while page := await _page(client, keys.deadletter, after):
        after = page[-1].entry
        total += await _requeue(client, keys, page)
    return total


async def _replay_some(client: aioredis.Redis, keys: EndpointKeys, entries: list[str]) -> int:
    total = 0
    for start in range(0, len(entries), PAGE):
        found = await _entries(client, keys.deadletter, entries[start : start + PAGE])
        total += await _requeue(client, keys, found) if found else 0
    return total


async def enable(cfg: Config, endpoint: str, *, redis: aioredis.Redis | None = None) -> bool:
    """Re-enable an endpoint disabled by a 410 Gone; returns whether it was disabled."""
    parts = _endpoint_keys(cfg, endpoint)
    async with _client(cfg, redis) as client:
        found = [await client.hdel(k.state, "disabled", "disabled_at") for k in parts]
        return any(found)


async def purge(
    cfg: Config,
    endpoint: str,
    entries: Sequence[str] | None = None,
    *,
    redis: aioredis.Redis | None = None,
) -> int:
    """Delete dead letters of ``endpoint`` (``None``: all); returns how many were deleted."""
    parts = _endpoint_keys(cfg, endpoint)
    async with _client(cfg, redis) as client:
        total = 0
        if entries is None:
            purge_all = client.register_script(_PURGE_LUA)
            for keys in parts:
                total += int(await purge_all(keys=[keys.deadletter]))
            return total
        for index, ids in _grouped(entries, len(parts)).items():
            key = parts[index].deadletter
            for start in range(0, len(ids), PAGE):
                total += int(await client.xdel(key, *ids[start : start + PAGE]))
        return total
