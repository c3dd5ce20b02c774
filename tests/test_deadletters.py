"""Tests of ``clever-relay deadletter list|replay|purge`` and the functions it shares with the
console, against a real Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import redis

from relay import deadletters
from relay.redis.keys import EndpointKeys
from relay.webhooks import admin
from tests.test_cli import run_cli
from tests.test_console import make_config

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis

    from tests.redis_server import RedisServer

DATA = '{"id":"65f1a2b3c4d5e6f7a8b9c0d1","type":"users.created"}'
TRANSLATOR = {
    "stage": "translator",
    "reason": "unknown_roles",
    "detail": "roles {}",
    "district": "d1",
    "source": "65f1a2b3c4d5e6f7a8b9c0d1",
    "entry": "1-0",
    "data": DATA,
}
POLLER = {"stage": "poller", "reason": "invalid_event", "district": "d1", "raw": "{}", "id": ""}


def config(tmp_path: Path, url: str) -> str:
    """A translator-only config on ``url`` under prefix ``dl``."""
    path = tmp_path / "dl.toml"
    path.write_text(
        f'[relay]\ncomponents = ["translator"]\n[redis]\nurl = "{url}"\nprefix = "dl"\n'
    )
    return str(path)


class TestDeadletterCli:
    def test_list_replay_purge(self, tmp_path: Path, redis_server: RedisServer) -> None:
        """List shows both kinds; replay moves only the translator one; purge --all the rest."""
        sync = redis.Redis.from_url(redis_server.url)
        sync.delete("dl:deadletter", "dl:events")
        added: list[Any] = [sync.xadd("dl:deadletter", f) for f in (TRANSLATOR, POLLER)]  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        translator, poller = (entry.decode() for entry in added)
        path = config(tmp_path, redis_server.url)
        listed = run_cli("deadletter", "list", "--config", path)
        assert listed.returncode == 0
        assert [line.split(" ")[:3] for line in listed.stdout.splitlines()] == [
            [translator, "stage=translator", "reason='unknown_roles'"],
            [poller, "stage=poller", "reason='invalid_event'"],
        ]
        replayed = run_cli("deadletter", "replay", "--config", path)
        assert (replayed.returncode, replayed.stdout) == (
            0,
            "1 dead letter(s) appended to the events stream again\n",
        )
        events: Any = sync.xrange("dl:events")
        assert [fields for _, fields in events] == [
            {
                b"id": b"65f1a2b3c4d5e6f7a8b9c0d1",
                b"type": b"users.created",
                b"district": b"d1",
                b"data": DATA.encode(),
            }
        ]
        refused = run_cli("deadletter", "purge", "--config", path)
        assert refused.returncode == 2
        purged = run_cli("deadletter", "purge", "--all", "--config", path)
        assert (purged.returncode, purged.stdout) == (0, "1 dead letter(s) deleted\n")
        assert sync.xlen("dl:deadletter") == 0
        sync.close()


class TestDeadletterFunctions:
    async def test_replay_named_entries_skips_poller_and_unknown(
        self, redis_client: aioredis.Redis
    ) -> None:
        """Replaying named entries moves translator ones only; unknown ids count for nothing."""
        first: Any = await redis_client.xadd("dl:deadletter", TRANSLATOR)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        poller: Any = await redis_client.xadd("dl:deadletter", POLLER)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        moved = await deadletters.replay(
            redis_client, "dl", [first.decode(), poller.decode(), "1-1"]
        )
        assert moved == 1
        left = await deadletters.list_all(redis_client, "dl")
        assert [(d.entry, d.stage, d.payload) for d in left] == [(poller.decode(), "poller", "{}")]

    async def test_partial_dead_letter_is_refused_and_left_for_sync(
        self, redis_client: aioredis.Redis
    ) -> None:
        """One role's dead letter: a named replay is refused (names sync); replay-all skips it."""
        fields: Any = {**TRANSLATOR, "partial": "1"}
        partial: Any = await redis_client.xadd("dl:deadletter", fields)
        entry = partial.decode()
        with pytest.raises(deadletters.PartialDeadLetterError) as refused:
            await deadletters.replay(redis_client, "dl", [entry])
        assert str(refused.value) == (
            f"dead letter {entry} is one role of a user event whose other roles went out: "
            "replaying it would re-translate the whole event; run "
            "`clever-relay sync --district d1` instead, then purge it"
        )
        assert await deadletters.replay(redis_client, "dl") == 0
        [left] = await deadletters.list_all(redis_client, "dl")
        assert (left.entry, left.partial, left.replayable) == (entry, True, False)
        assert await redis_client.xlen("dl:events") == 0

    async def test_purge_named_entries(self, redis_client: aioredis.Redis) -> None:
        """Purging named entries deletes exactly those."""
        ids: list[Any] = [await redis_client.xadd("dl:deadletter", POLLER) for _ in range(3)]  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        assert await deadletters.purge(redis_client, "dl", [ids[0].decode(), ids[2].decode()]) == 2
        assert [d.entry for d in await deadletters.list_all(redis_client, "dl")] == [
            ids[1].decode()
        ]


class TestWebhookEntries:
    async def test_webhook_replay_of_one_entry_requeues_only_it(
        self, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Replaying one webhook dead letter queues it for its district and leaves the other."""
        monkeypatch.setenv("CONSOLE_TEST_TOKEN", "x")
        cfg = make_config("redis://127.0.0.1:6379/0")
        keys = EndpointKeys("cons", "hook")
        fields = {
            "id": "e1",
            "type": "students.updated",
            "district": "d1",
            "attempts": "7",
            "reason": "HTTP 500",
            "failed_at": "1718000000",
            "data": "{}",
            "stream": "cons:legacy:students",
            "entry": "1-0",
            "ms": "1",
        }
        first: Any = await redis_client.xadd(keys.deadletter, fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        second: Any = await redis_client.xadd(keys.deadletter, fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        moved = await admin.replay(cfg, "hook", [first.decode()], redis=redis_client)
        assert moved == 1
        assert await redis_client.llen(keys.queue("d1")) == 1
        left: Any = await redis_client.xrange(keys.deadletter)
        assert [entry for entry, _ in left] == [second]
