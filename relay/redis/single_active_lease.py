"""A single-active lease: one process does a job, the others stand by.

The translator uses it so that one process translates the events stream in order (consumer
groups hand entries to whichever consumer asks first, so two active translators would race on
one district; see docs/architecture-translator.md), and webhook delivery so that one replica
sends. Standbys take over when the lease lapses, or at once when the holder releases it.

The lease value is ``"<fence>:<owner>"``. ``fence`` comes from a counter incremented on every
acquisition, ``owner`` is random per process start, so a value is never reused: every Lua
script that reads or writes for the holder first checks that the lease still holds *this*
value and refuses otherwise. A paused ex-holder (GC, SIGSTOP, network partition) that wakes up
after a takeover therefore can neither take deliveries nor write a legacy event.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from relay.redis.keys import fence

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local value = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class SingleActiveLease:
    """A fenced, renewable Redis lease held by at most one process at a time."""

    def __init__(self, redis: aioredis.Redis, *, key: str, owner: str, ttl_s: float) -> None:
        self.redis = redis
        self.key = key
        self.owner = f"{owner}:{secrets.token_hex(6)}"
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.value: bytes | None = None
        """The held value (``b"<fence>:<owner>"``), or None while not holding the lease."""
        self.renewed_at = 0.0
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        """Whether this process believes it holds the lease (scripts verify it on every use)."""
        return self.value is not None

    @property
    def fence(self) -> int:
        """The fencing number of the held lease (0 when not held)."""
        return int(self.value.split(b":", 1)[0]) if self.value is not None else 0

    def renew_due(self) -> bool:
        """True once a third of the TTL has passed since the last renewal."""
        return time.monotonic() - self.renewed_at >= self.ttl_ms / 3000

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; returns whether this process now holds it."""
        value = await self._acquire(
            keys=[self.key, fence(self.key)], args=[self.owner, self.ttl_ms]
        )
        if value is None:
            return False
        self.value = bytes(value)
        self.renewed_at = time.monotonic()
        return True

    async def renew(self) -> bool:
        """Extend the lease; returns False (and forgets it) if someone else holds it now."""
        if self.value is None:
            return False
        ok = await self._renew(keys=[self.key], args=[self.value, self.ttl_ms])
        if ok != 1:
            self.value = None
            return False
        self.renewed_at = time.monotonic()
        return True

    async def release(self) -> None:
        """Give the lease up so a standby takes over at once instead of after the TTL."""
        if self.value is not None:
            value, self.value = self.value, None
            await self._release(keys=[self.key], args=[value])

    def lost(self) -> None:
        """Forget the lease after a script refused this process's value."""
        self.value = None
