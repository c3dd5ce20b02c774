"""Fidelity rules end to end: the translator against a real Redis, entries on the events stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from relay.errors import CleverNotFound
from relay.health import Health
from relay.metrics import REGISTRY
from relay.translator.consumer import Translator
from relay.translator.lookup import TeacherLookup
from tests.test_translator_helpers import (
    DISTRICT_A,
    KEYS,
    drained,
    event,
    eventually,
    legacy_streams,
    object_id,
    publish,
    section,
    stream_entries,
    teacher,
    test_cfg,
    user,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import redis.asyncio as aioredis

    from relay.config import Config


class GoneClever:
    """A ``UserFetcher`` that knows no user: Clever answers 404 for every look-up."""

    async def get_user(self, user_id: str) -> bytes:
        """Always 404."""
        raise CleverNotFound(f"/v3.0/users/{user_id}")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session for the translator (closed after the test)."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def make(redis_client: aioredis.Redis, session: aiohttp.ClientSession) -> Callable[..., Translator]:
    """Build a translator on the test Redis whose teacher look-ups all answer 404."""

    def build(cfg: Config) -> Translator:
        lookup = TeacherLookup(cfg=cfg, session=session, fetcher_factory=lambda _d: GoneClever())
        return Translator(
            cfg=cfg,
            redis=redis_client,
            session=session,
            health=Health(),
            keys=KEYS,
            consumer_name="t1",
            retry_base_s=0.05,
            lookup=lookup,
        )

    return build


@contextlib.asynccontextmanager
async def running(translator: Translator) -> AsyncIterator[None]:
    """Run a translator in the background; stop it (and wait) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(translator.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def note_count(note: str) -> float:
    """The current value of the previous_attributes counter for one note."""
    sample = REGISTRY.get_sample_value(
        "clever_relay_previous_attributes_unreadable_total", {"note": note}
    )
    return sample or 0.0


def summary(streams: dict[str, list[dict[str, str]]]) -> dict[str, list[tuple[str, Any]]]:
    """Each legacy stream's events as (type, v2 object id)."""
    return {
        name: [(e["type"], json.loads(e["data"])["data"]["object"]["id"]) for e in entries]
        for name, entries in streams.items()
    }


class TestFidelity:
    """What reaches the legacy streams and the dead-letter stream."""

    async def test_one_role_without_legacy_id_dead_letters_only_that_role(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """The staff role is emitted; one dead letter names the teacher role."""
        uid = object_id(0x9001)
        roles = {
            "teacher": {"school": "sch1", "schools": ["sch1"]},
            "staff": {"legacy_id": object_id(0x9002), "schools": ["sch1"]},
        }
        created = event("users.created", user(uid, DISTRICT_A, roles=roles))
        [entry] = await publish(redis_client, DISTRICT_A, [created])
        async with running(make(test_cfg(redis_url))):
            await eventually(lambda: drained(redis_client), what="drained")
        assert summary(await legacy_streams(redis_client)) == {
            "schooladmins": [("schooladmins.created", object_id(0x9002))]
        }
        letters = await stream_entries(redis_client, KEYS.deadletter)
        assert [(x["reason"], x["detail"], x["entry"], x["source"]) for x in letters] == [
            (
                "missing_legacy_id",
                f"user {uid}: roles.teacher has no legacy_id",
                entry,
                created["id"],
            )
        ]

    async def test_unreadable_previous_attributes_are_counted(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A shape that says nothing readable gives .updated with {} and counts once."""
        uid = object_id(0x9101)
        obj = teacher(uid, DISTRICT_A, object_id(0x9102))
        before = note_count("previous_attributes_unreadable")
        await publish(redis_client, DISTRICT_A, [event("users.updated", obj, {"grade": "3"})])
        async with running(make(test_cfg(redis_url))):
            await eventually(lambda: drained(redis_client), what="drained")
        [legacy] = (await legacy_streams(redis_client))["teachers"]
        assert json.loads(legacy["data"])["data"]["previous_attributes"] == {}
        assert note_count("previous_attributes_unreadable") - before == 1

    async def test_gone_teacher_only_in_previous_values_is_left_out(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A section change whose previous teacher is gone (404) is emitted without it."""
        tuid, gone = object_id(0x9201), object_id(0x9202)
        before = note_count("previous_teacher_not_found")
        await publish(
            redis_client,
            DISTRICT_A,
            [
                event("users.created", teacher(tuid, DISTRICT_A, object_id(0x9203))),
                event(
                    "sections.updated",
                    section(object_id(0x9204), DISTRICT_A, [tuid]),
                    {"teacher": gone, "teachers": [gone, tuid]},
                ),
            ],
        )
        async with running(make(test_cfg(redis_url))):
            await eventually(lambda: drained(redis_client), what="drained")
        [legacy] = (await legacy_streams(redis_client))["sections"]
        assert json.loads(legacy["data"])["data"]["previous_attributes"] == {
            "teachers": [object_id(0x9203)]
        }
        assert await stream_entries(redis_client, KEYS.deadletter) == []
        assert note_count("previous_teacher_not_found") - before == 1

    async def test_event_without_created_gets_the_time_the_relay_read_it(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A legacy event's created is the events-stream entry's time when Clever sent none."""
        raw = event("users.created", teacher(object_id(0x9301), DISTRICT_A, object_id(0x9302)))
        del raw["created"]
        [entry] = await publish(redis_client, DISTRICT_A, [raw])
        async with running(make(test_cfg(redis_url))):
            await eventually(lambda: drained(redis_client), what="drained")
        [legacy] = (await legacy_streams(redis_client))["teachers"]
        ms = int(entry.split("-")[0])
        expected = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert json.loads(legacy["data"])["created"] == f"{expected}.{ms % 1000:03d}Z"
