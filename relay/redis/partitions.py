"""The partition count is part of a deployment's data: refuse to start with another one.

A district's partition is a hash of its id modulo ``[redis] partitions``
(:func:`relay.redis.keys.partition_of`), and its cursor, streams and state live in that
partition. Starting with another count would look for them in the wrong place and poll every
district from its start again. So the first start stores the count in ``<p>:partitions`` and
every later start compares (docs/scaling.md, "Choosing P"). A deployment that predates the
key holds its data in the unpartitioned names: its count is 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.errors import PartitionsChangedError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.redis.keys import Keys


async def check_partitions(redis: aioredis.Redis, keys: Keys) -> None:
    """Store the partition count at the first start; refuse a different one later.

    Raises:
        PartitionsChangedError: the stored count (or the data found) says another count.
        redis.exceptions.RedisError: Redis did not answer.
    """
    wanted = keys.partitions
    stored = await redis.get(keys.partitions_key)
    if stored is None:
        # Data written before the count was stored is unpartitioned: P = 1.
        if wanted > 1 and await redis.exists(keys.events):
            _refuse(1, wanted, keys)
        if await redis.set(keys.partitions_key, str(wanted), nx=True):
            return
        stored = await redis.get(keys.partitions_key)
    found = int(stored or 1)
    if found != wanted:
        _refuse(found, wanted, keys)


def _refuse(found: int, wanted: int, keys: Keys) -> None:
    raise PartitionsChangedError(
        f"[redis] partitions = {wanted}, but the data under prefix {keys.prefix!r} was written "
        f"with partitions = {found}; changing the count would move districts between "
        f"partitions. Start with partitions = {found}, or use a new prefix (docs/scaling.md)"
    )
