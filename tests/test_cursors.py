"""Tests of the operator cursor commands against a real Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from relay.config import validate
from relay.errors import ConfigError
from relay.poller.cursor_admin import set_cursor, show_cursors

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config

A = "5a0c91b95c7cc000010d4170"
B = "5a0c91b95c7cc000010d4171"


def _cfg(redis_url: str) -> Config:
    return validate(
        {
            "relay": {"components": ["poller"]},
            "redis": {"url": redis_url, "prefix": "p"},
            "clever": {"districts": [{"id": "d1", "token": "t1"}, {"id": "d2", "token": "t2"}]},
        }
    )


class TestCursors:
    """``cursor show`` and ``cursor set``."""

    async def test_cursors_show_all(self, redis_client: aioredis.Redis, redis_url: str) -> None:
        """Every configured district is listed, unset cursors as None."""
        await redis_client.set("p:cursor:d1", A)
        assert await show_cursors(_cfg(redis_url), None) == [("d1", A), ("d2", None)]

    async def test_cursors_show_one(self, redis_client: aioredis.Redis, redis_url: str) -> None:
        """``--district`` restricts the listing to that district."""
        await redis_client.set("p:cursor:d2", B)
        assert await show_cursors(_cfg(redis_url), "d2") == [("d2", B)]

    async def test_cursors_set_returns_previous(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Setting a cursor stores it, clears the lost-cursor marker and returns the old one."""
        await redis_client.set("p:cursor:d1", A)
        await redis_client.hset("p:pollstate:d1", mapping={"lost_cursor": A, "healthy": "0"})
        assert await set_cursor(_cfg(redis_url), "d1", B) == A
        assert await redis_client.get("p:cursor:d1") == B.encode()
        assert await redis_client.hgetall("p:pollstate:d1") == {b"healthy": b"0"}

    async def test_cursors_set_unset_previous(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Setting a cursor where none was stored returns None."""
        assert await set_cursor(_cfg(redis_url), "d2", A) is None
        assert await redis_client.get("p:cursor:d2") == A.encode()

    async def test_cursors_reject_unknown_district(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A district that is not configured is a config error naming the configured ones."""
        with pytest.raises(ConfigError) as info:
            await set_cursor(_cfg(redis_url), "nope", A)
        assert info.value.problems == ["--district: nope is not configured (configured: d1, d2)"]
        with pytest.raises(ConfigError):
            await show_cursors(_cfg(redis_url), "nope")

    async def test_cursors_reject_bad_event_id(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """An event id that is not 24 lowercase hex is refused and nothing is written."""
        with pytest.raises(ConfigError) as info:
            await set_cursor(_cfg(redis_url), "d1", "XYZ")
        assert info.value.problems == [
            "EVENT_ID: 'XYZ' is not a Clever event id (24 lowercase hex)"
        ]
        assert await redis_client.exists("p:cursor:d1") == 0
