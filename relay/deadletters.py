"""Operator commands on the relay's own dead letters (``<p>:deadletter``): list, replay, purge.

``clever-relay deadletter list|replay|purge`` and the web console (docs/console.md) both call
these, so a dead letter handled from either place is handled the same way.

Replay means: append the original event to the events stream again, so the translator
processes it like a new event, and delete the dead letter, in one script (a crash mid-replay
neither loses nor doubles one). Only ``stage = translator`` entries can be replayed: a poller
dead letter is not a valid event (docs/operations.md, "Dead letters"), and a *partial* one
(one role of a user event whose other roles went out) would repeat those roles: it is repaired
by ``clever-relay sync --district ID``. Purge deletes entries
for good. Each function takes an open client, so the console reuses the service's; the CLI
opens one per command.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from relay.redis.keys import Keys

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis.asyncio as aioredis

PAGE = 500


class PartialDeadLetterError(ValueError):
    """A replay named a partial dead letter (the message says to run ``sync`` instead)."""


_REPLAY_LUA = """
local n = 0
for _, id in ipairs(ARGV) do
  local e = redis.call('XRANGE', KEYS[1], id, id)[1]
  if e then
    local f = {}
    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
    if f['stage'] == 'translator' and not f['partial'] then
      local ok, msg = pcall(cjson.decode, f['data'])
      if ok and type(msg) == 'table' and msg['type'] then
        redis.call('XADD', KEYS[2], '*', 'id', f['source'], 'type', msg['type'],
          'district', f['district'], 'data', f['data'])
        redis.call('XDEL', KEYS[1], id)
        n = n + 1
      end
    end
  end
end
return n
"""


class RelayDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``<p>:deadletter``: why it was set aside and what it carried."""

    entry: str
    """The dead-letter stream entry id (also when it was dead-lettered, in ms); with
    partitions ``p<i>/<id>``, ``i`` the partition."""
    stage: str
    """``poller`` (Clever sent something that is not an event) or ``translator``."""
    reason: str
    detail: str
    district: str
    event_id: str
    """The Clever event id, when it could be read."""
    payload: str
    """``data`` (the normalized message) for the translator, ``raw`` (Clever's JSON) for the
    poller."""
    partial: bool = False
    """One role of a user event (the others went out): not replayable, a sync repairs it."""

    @property
    def replayable(self) -> bool:
        """Only a whole translator dead letter is a valid event that can go through again."""
        return self.stage == "translator" and not self.partial

    @property
    def at(self) -> float:
        """Unix seconds when it was dead-lettered (from the entry id)."""
        return int(self.entry.rsplit("/", 1)[-1].split("-", 1)[0]) / 1000

    def line(self) -> str:
        """One human line (the CLI prints these)."""
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        return (
            f"{self.entry} stage={self.stage} reason={self.reason!r} district={self.district} "
            f"event={self.event_id or '-'} at={when}"
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry(entry_id: Any, raw: dict[Any, Any]) -> RelayDeadLetter:
    """Decode one XRANGE reply entry (bytes or str keys)."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    stage = fields.get("stage", "")
    return RelayDeadLetter(
        entry=_text(entry_id),
        stage=stage,
        reason=fields.get("reason", ""),
        detail=fields.get("detail", ""),
        district=fields.get("district", ""),
        event_id=fields.get("source") or fields.get("id", ""),
        payload=fields.get("data" if stage == "translator" else "raw", ""),
        partial="partial" in fields,
    )


def _keys(keys: Keys | str) -> Keys:
    return Keys(keys) if isinstance(keys, str) else keys


def _locate(keys: Keys, entry: str) -> tuple[int, str]:
    """(partition, stream id) of an entry id: ``p<i>/<id>`` with partitions, else ``<id>``."""
    if keys.partitions == 1:
        return 0, entry
    part, _, stream_id = entry.partition("/")
    index = int(part[1:]) if part[:1] == "p" and part[1:].isdigit() else -1
    return (index, stream_id) if 0 <= index < keys.partitions else (-1, entry)


def _grouped(keys: Keys, entries: Sequence[str]) -> dict[int, list[str]]:
    """Entry ids by partition (ids naming no partition are left out: unknown)."""
    out: dict[int, list[str]] = {}
    for entry in entries:
        index, stream_id = _locate(keys, entry)
        if index >= 0:
            out.setdefault(index, []).append(stream_id)
    return out


async def count(redis: aioredis.Redis, prefix: Keys | str) -> int:
    """How many dead letters there are (in every partition)."""
    return sum([int(await redis.xlen(k.deadletter)) for k in _keys(prefix).all_partitions()])


async def page(
    redis: aioredis.Redis, prefix: Keys | str, *, after: str = "", limit: int = PAGE
) -> list[RelayDeadLetter]:
    """Up to ``limit`` dead letters after entry id ``after`` (exclusive): oldest first, and
    with partitions, partition by partition (entry ids then read ``p<i>/<stream id>``)."""
    keys = _keys(prefix)
    start, after_id = _locate(keys, after) if after else (0, "")
    out: list[RelayDeadLetter] = []
    for index in range(max(0, start), keys.partitions):
        low = f"({after_id}" if after_id and index == start else "-"
        reply: Any = await redis.xrange(
            keys.partition(index).deadletter, min=low, count=limit - len(out)
        )
        tag = f"p{index}/" if keys.partitions > 1 else ""
        out += [parse_entry(f"{tag}{_text(eid)}", fields) for eid, fields in reply]
        if len(out) >= limit:
            break
    return out


async def list_all(redis: aioredis.Redis, prefix: Keys | str) -> list[RelayDeadLetter]:
    """Every dead letter, oldest first (partition by partition)."""
    out: list[RelayDeadLetter] = []
    while batch := await page(redis, prefix, after=out[-1].entry if out else ""):
        out.extend(batch)
    return out


async def replay(
    redis: aioredis.Redis, prefix: Keys | str, entries: Sequence[str] | None = None
) -> int:
    """Re-append translator dead letters to their partition's events stream; returns how many
    moved.

    Args:
        entries: these entry ids; ``None`` means every translator dead letter. Poller dead
            letters, partial ones (left for ``sync``) and unknown ids are left alone (not
            counted).

    Raises:
        PartialDeadLetterError: ``entries`` names a partial dead letter (nothing is replayed).
    """
    keys = _keys(prefix)
    script = redis.register_script(_REPLAY_LUA)
    if entries is None:
        entries = [e.entry for e in await list_all(redis, keys) if e.replayable]
    else:
        await _refuse_partial(redis, keys, entries)
    total = 0
    for index, ids in _grouped(keys, entries).items():
        part = keys.partition(index)
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            total += int(await script(keys=[part.deadletter, part.events], args=chunk))
    return total


async def _refuse_partial(redis: aioredis.Redis, keys: Keys, entries: Sequence[str]) -> None:
    """Raise before anything moves if ``entries`` names a partial dead letter."""
    for entry in entries:
        index, stream_id = _locate(keys, entry)
        if index < 0:
            continue
        reply: Any = await redis.xrange(
            keys.partition(index).deadletter, min=stream_id, max=stream_id
        )
        if reply and (letter := parse_entry(entry, reply[0][1])).partial:
            raise PartialDeadLetterError(
                f"dead letter {entry} is one role of a user event whose other roles went out: "
                "replaying it would re-translate the whole event; run "
                f"`clever-relay sync --district {letter.district}` instead, then purge it"
            )


async def purge(
    redis: aioredis.Redis, prefix: Keys | str, entries: Sequence[str] | None = None
) -> int:
    """Delete dead letters for good; ``None`` means all. Returns how many were deleted."""
    keys = _keys(prefix)
    if entries is None:
        return sum(
            [
                int(await redis.xtrim(k.deadletter, maxlen=0, approximate=False))
                for k in keys.all_partitions()
            ]
        )
    total = 0
    for index, ids in _grouped(keys, entries).items():
        key = keys.partition(index).deadletter
        for start in range(0, len(ids), PAGE):
            total += int(await redis.xdel(key, *ids[start : start + PAGE]))
    return total
