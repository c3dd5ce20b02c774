"""Tests of the atomic publish script against a real Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from relay.errors import FencedError
from relay.poller.publish import Batch, Publisher
from relay.redis.keys import Keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

DISTRICT = "d1"


def _publisher(redis_client: aioredis.Redis, prefix: str = "t") -> Publisher:
    return Publisher(
        redis=redis_client, keys=Keys(prefix), events_maxlen=1000, deadletter_maxlen=1000
    )


def _entries(*ids: str) -> list[bytes | str]:
    out: list[bytes | str] = []
    for event_id in ids:
        out += [event_id, "users.created", f'{{"id":"{event_id}"}}'.encode()]
    return out


async def _stream(redis_client: aioredis.Redis, key: str) -> list[dict[bytes, bytes]]:
    entries: Any = await redis_client.xrange(key)
    return [fields for _, fields in entries]


class TestPublisher:
    """The publish script: all-or-nothing, compare-and-set on the cursor."""

    async def test_publisher_writes_entries_and_cursor(self, redis_client: aioredis.Redis) -> None:
        """A batch appends its entries in order and stores the new cursor."""
        pub = _publisher(redis_client)
        batch = Batch(expected=None, new_cursor="b" * 24, entries=_entries("a" * 24, "b" * 24))
        assert await pub.publish(DISTRICT, batch) is True
        assert await _stream(redis_client, "t:events") == [
            {
                b"id": b"a" * 24,
                b"type": b"users.created",
                b"district": b"d1",
                b"data": b'{"id":"' + b"a" * 24 + b'"}',
            },
            {
                b"id": b"b" * 24,
                b"type": b"users.created",
                b"district": b"d1",
                b"data": b'{"id":"' + b"b" * 24 + b'"}',
            },
        ]
        assert await pub.read_cursor(DISTRICT) == "b" * 24

    async def test_publisher_refuses_wrong_expected_cursor(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A batch whose expected cursor differs from the stored one writes nothing."""
        pub = _publisher(redis_client)
        await redis_client.set("t:cursor:d1", "c" * 24)
        batch = Batch(expected="a" * 24, new_cursor="b" * 24, entries=_entries("b" * 24))
        with pytest.raises(FencedError, match="cursor is " + "c" * 24):
            await pub.publish(DISTRICT, batch)
        assert await redis_client.exists("t:events") == 0
        assert await pub.read_cursor(DISTRICT) == "c" * 24

    async def test_publisher_replay_is_fenced(self, redis_client: aioredis.Redis) -> None:
        """Publishing the same batch twice (a retried call) writes its entries once."""
        pub = _publisher(redis_client)
        batch = Batch(expected=None, new_cursor="a" * 24, entries=_entries("a" * 24))
        await pub.publish(DISTRICT, batch)
        with pytest.raises(FencedError):
            await pub.publish(DISTRICT, batch)
        assert await redis_client.xlen("t:events") == 1

    async def test_publisher_writes_dead_letters(self, redis_client: aioredis.Redis) -> None:
        """Dead letters go to the dead-letter stream with stage, reason, district, raw and id."""
        pub = _publisher(redis_client)
        batch = Batch(
            expected=None,
            new_cursor="a" * 24,
            dead=["a" * 24, "invalid event type 'x'", b'{"raw":1}'],
        )
        await pub.publish(DISTRICT, batch)
        assert await _stream(redis_client, "t:deadletter") == [
            {
                b"stage": b"poller",
                b"reason": b"invalid event type 'x'",
                b"district": b"d1",
                b"raw": b'{"raw":1}',
                b"id": b"a" * 24,
            }
        ]
        assert await redis_client.exists("t:events") == 0
        assert await pub.read_cursor(DISTRICT) == "a" * 24

    async def test_publisher_updates_poll_state(self, redis_client: aioredis.Redis) -> None:
        """A publish marks the district healthy and records the newest created time."""
        pub = _publisher(redis_client)
        await redis_client.hset("t:pollstate:d1", mapping={"healthy": "0", "last_error": "auth"})
        batch = Batch(
            expected=None,
            new_cursor="a" * 24,
            entries=_entries("a" * 24),
            newest_created="2024-01-01T00:00:00.000Z",
        )
        await pub.publish(DISTRICT, batch)
        state = await redis_client.hgetall("t:pollstate:d1")
        assert state[b"healthy"] == b"1"
        assert state[b"newest_created"] == b"2024-01-01T00:00:00.000Z"
        assert state[b"last_error"] == b"auth"
        assert float(state[b"last_success"]) > 0

    async def test_publisher_control_entry_written_once(self, redis_client: aioredis.Redis) -> None:
        """A cursor-lost control entry is appended once per lost cursor, however often retried."""
        pub = _publisher(redis_client)
        await redis_client.set("t:cursor:d1", "a" * 24)
        batch = Batch(
            expected="a" * 24, new_cursor="a" * 24, control=b'{"type":"relay.cursor_lost"}'
        )
        assert await pub.publish(DISTRICT, batch) is True
        assert await pub.publish(DISTRICT, batch) is False
        assert await _stream(redis_client, "t:events") == [
            {
                b"id": b"a" * 24,
                b"type": b"relay.cursor_lost",
                b"district": b"d1",
                b"data": b'{"type":"relay.cursor_lost"}',
            }
        ]

    async def test_publisher_control_already_reported_still_moves_cursor(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A loss reported in "fail" mode, then resumed in "latest" mode, moves the cursor on."""
        pub = _publisher(redis_client)
        await redis_client.set("t:cursor:d1", "a" * 24)
        control = b'{"type":"relay.cursor_lost"}'
        stopped = Batch(expected="a" * 24, new_cursor="a" * 24, control=control)
        assert await pub.publish(DISTRICT, stopped) is True
        resumed = Batch(expected="a" * 24, new_cursor="b" * 24, control=control)
        assert await pub.publish(DISTRICT, resumed) is False
        assert await pub.read_cursor(DISTRICT) == "b" * 24
        assert await redis_client.xlen("t:events") == 1

    async def test_publisher_empty_new_cursor_deletes(self, redis_client: aioredis.Redis) -> None:
        """An empty new cursor deletes the stored one (resume from the feed's beginning)."""
        pub = _publisher(redis_client)
        await redis_client.set("t:cursor:d1", "a" * 24)
        await pub.publish(DISTRICT, Batch(expected="a" * 24, new_cursor=None, control=b"{}"))
        assert await pub.read_cursor(DISTRICT) is None

    async def test_publisher_hash_tagged_prefix(self, redis_client: aioredis.Redis) -> None:
        """Keys under a hash-tagged prefix work the same."""
        pub = _publisher(redis_client, prefix="{clever}")
        await pub.publish(
            DISTRICT, Batch(expected=None, new_cursor="a" * 24, entries=_entries("a" * 24))
        )
        assert await redis_client.xlen("{clever}:events") == 1
        assert await redis_client.get("{clever}:cursor:d1") == b"a" * 24

    async def test_publisher_reloads_flushed_script(self, redis_client: aioredis.Redis) -> None:
        """After SCRIPT FLUSH (a restarted Redis) the script is loaded again transparently."""
        pub = _publisher(redis_client)
        await pub.publish(
            DISTRICT, Batch(expected=None, new_cursor="a" * 24, entries=_entries("a" * 24))
        )
        await redis_client.script_flush()
        await pub.publish(
            DISTRICT, Batch(expected="a" * 24, new_cursor="b" * 24, entries=_entries("b" * 24))
        )
        assert await redis_client.xlen("t:events") == 2
