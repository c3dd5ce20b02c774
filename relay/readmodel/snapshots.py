"""The translator's user snapshots (``<p>:users:<district>``), seeded by ``clever-relay sync``.

The translator diffs each ``users.updated`` against the last snapshot of the user, which its
batch script writes (:mod:`relay.translator.store`); a sync seeds the same hash from the Data API
so a district's first updates after a sync have something to diff against. The seed lives here,
beside the read model the sync fills, so the sync does not import the translator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline

AT_SUFFIX = ":at"
"""``<uid>:at`` beside ``<uid>`` in ``<p>:users:<district>``: epoch ms the snapshot reflects."""


_SEED = """
for i = 1, #ARGV, 3 do
  local at = redis.call('HGET', KEYS[1], ARGV[i] .. ':at')
  if not at or tonumber(at) < tonumber(ARGV[i + 2]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1], ARGV[i] .. ':at', ARGV[i + 2])
  end
end
return 0
"""


async def seed_snapshots(
    client: aioredis.Redis | Pipeline, key: str, users: list[tuple[str, bytes, int]]
) -> None:
    """Write ``(user id, v3 JSON, time in epoch ms)`` snapshots unless a newer one is stored.

    The snapshot rule (``docs/translation.md``, "Snapshots"): every snapshot is stored with the
    time it reflects: the event's ``created`` when the translator writes it, the user's
    ``last_modified`` when ``clever-relay sync`` does. A seed replaces a snapshot only when the
    stored time is older or unknown (written before snapshot times existed), so a re-sync never
    overwrites what the translator learned from a newer event. One script per page: atomic, one
    round trip. ``client`` may be a pipeline (the sync's page transaction).
    """
    if not users:
        return
    args: list[str | bytes | int] = []
    for user_id, user, at in users:
        args += (user_id, user, at)
    await client.eval(_SEED, 1, key, *args)
