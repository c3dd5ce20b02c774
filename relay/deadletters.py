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
    """The dead-letter stream entry id (also when it was dead-lettered, in ms)."""
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
        return int(self.entry.split("-", 1)[0]) / 1000

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


async def count(redis: aioredis.Redis, prefix: str) -> int:
    """How many dead letters there are."""
    return int(await redis.xlen(Keys(prefix).deadletter))


async def page(
    redis: aioredis.Redis, prefix: str, *, after: str = "", limit: int = PAGE
) -> list[RelayDeadLetter]:
    """Up to ``limit`` dead letters, oldest first, after entry id ``after`` (exclusive)."""
    reply: Any = await redis.xrange(
        Keys(prefix).deadletter, min=f"({after}" if after else "-", count=limit
    )
    return [parse_entry(entry_id, fields) for entry_id, fields in reply]


async def list_all(redis: aioredis.Redis, prefix: str) -> list[RelayDeadLetter]:
    """Every dead letter, oldest first."""
    out: list[RelayDeadLetter] = []
    while batch := await page(redis, prefix, after=out[-1].entry if out else ""):
        out.extend(batch)
    return out


async def replay(redis: aioredis.Redis, prefix: str, entries: Sequence[str] | None = None) -> int:
    """Re-append translator dead letters to the events stream; returns how many moved.

    Args:
        entries: these entry ids; ``None`` means every translator dead letter. Poller dead
            letters, partial ones (left for ``sync``) and unknown ids are left alone (not
            counted).

    Raises:
        PartialDeadLetterError: ``entries`` names a partial dead letter (nothing is replayed).
    """
    keys = Keys(prefix)
    script = redis.register_script(_REPLAY_LUA)
    if entries is not None:
        await _refuse_partial(redis, keys, entries)
        total = 0
        for start in range(0, len(entries), PAGE):
            chunk = list(entries[start : start + PAGE])
            total += int(await script(keys=[keys.deadletter, keys.events], args=chunk))
        return total
    total, after = 0, ""
    while batch := await page(redis, prefix, after=after):
        after = batch[-1].entry
        ids = [letter.entry for letter in batch if letter.replayable]
        if ids:
            total += int(await script(keys=[keys.deadletter, keys.events], args=ids))
    return total


async def _refuse_partial(redis: aioredis.Redis, keys: Keys, entries: Sequence[str]) -> None:
    for entry in entries:
        reply: Any = await redis.xrange(keys.deadletter, min=entry, max=entry)
        if reply and parse_entry(*reply[0]).partial:
            district = parse_entry(*reply[0]).district
            raise PartialDeadLetterError(
                f"dead letter {entry} is one role of a user event whose other roles went out: "
                "replaying it would re-translate the whole event; run "
                f"`clever-relay sync --district {district}` instead, then purge it"
            )


async def purge(redis: aioredis.Redis, prefix: str, entries: Sequence[str] | None = None) -> int:
    """Delete dead letters for good; ``None`` means all. Returns how many were deleted."""
    key = Keys(prefix).deadletter
    if entries is None:
        return int(await redis.xtrim(key, maxlen=0, approximate=False))
    total = 0
    for start in range(0, len(entries), PAGE):
        total += int(await redis.xdel(key, *entries[start : start + PAGE]))
    return total
