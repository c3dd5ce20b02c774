"""The read-model writes of legacy events and the ``/v2.x/events`` endpoints that read them.

Legacy events are written exactly as the translator writes them (``event_op`` through the
read-model Lua), then read back over HTTP with Clever's paging, filters and envelope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from relay.config import validate
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.readmodel.entry_ids import legacy_id_of, stream_id
from relay.readmodel.writer import ReadModelWriter, event_op
from relay.redis.keys import Keys, ReadModelKeys
from relay.translate.ids import legacy_id
from relay.translate.rules import LegacyOut, encode_legacy_event
from relay.v2api.server import add_routes

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from aiohttp.test_utils import TestClient

PREFIX = "t"
DISTRICT = "d1"
KEY = "v2key-for-the-events-tests-0123456789"
SCHOOL_A, SCHOOL_B = "school_a", "school_b"
CREATED = "2026-01-01T00:00:00.000Z"


def lid(n: int, index: int = 0) -> str:
    """The legacy id of the n-th source entry's ``index``-th event (entries of 2026-01-01)."""
    return legacy_id(f"{1_767_225_600_000 + n}-0", index)


STUDENT = {"id": "s1", "district": DISTRICT, "school": SCHOOL_A, "schools": [SCHOOL_A]}
EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("schools", "schools.created", {"id": SCHOOL_A, "district": DISTRICT, "name": "A"}),
    ("students", "students.created", STUDENT),
    ("teachers", "teachers.created", {"id": "t1", "district": DISTRICT, "schools": [SCHOOL_B]}),
    ("contacts", "contacts.created", {"id": "c1", "district": DISTRICT, "students": ["s1"]}),
    ("schooladmins", "schooladmins.created", {"id": "a1", "district": DISTRICT, "schools": []}),
    ("districtadmins", "districtadmins.created", {"id": "da1", "district": DISTRICT}),
    (
        "sections",
        "sections.created",
        {"id": "sec1", "school": SCHOOL_B, "students": ["s1"], "teachers": ["t1"]},
    ),
    ("students", "students.updated", {**STUDENT, "school": SCHOOL_B, "schools": [SCHOOL_B]}),
]


async def write_events(
    redis: aioredis.Redis, events: list[tuple[str, str, dict[str, Any]]], *, first: int = 1
) -> list[dict[str, Any]]:
    """Write each event as the translator does (one Lua call each); the v2 event JSONs."""
    writer = ReadModelWriter(redis)
    out: list[dict[str, Any]] = []
    for n, (rt, etype, obj) in enumerate(events, start=first):
        legacy = LegacyOut(rt, etype, msgspec.Raw(msgspec.json.encode(obj)))
        data = encode_legacy_event(legacy, lid(n), CREATED)
        op = event_op(legacy, prefix=PREFIX, district=DISTRICT, legacy_id=lid(n), data=data)
        await writer.apply([op])
        out.append(msgspec.json.decode(data))
    return out


@pytest.fixture
async def client(redis_client: aioredis.Redis, aiohttp_client: Any) -> TestClient[Any, Any]:
    """The ops app with the v2 routes, one client key for ``DISTRICT``."""
    cfg = validate(
        {
            "relay": {"components": ["http", "v2api"]},
            "redis": {"prefix": PREFIX},
            "clever": {"districts": [{"id": DISTRICT, "token": "clever-token"}]},
            "v2api": {"clients": [{"name": "c", "district": DISTRICT, "token": KEY}]},
        }
    )
    health = Health()
    status = StatusSource(cfg=cfg, redis=redis_client, health=health)
    app = build_app(cfg=cfg, redis=redis_client, health=health, status=status)
    add_routes(app, cfg=cfg, redis=redis_client, keys=Keys(PREFIX))
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


async def get(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    """GET with the district's key."""
    async with client.get(path, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        return resp.status, await resp.json()


async def walk(client: TestClient[Any, Any], path: str) -> list[dict[str, Any]]:
    """Follow ``next`` links to the first empty page (at most 100 pages); the events in order."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        status, body = await get(client, path)
        assert status == 200, body
        if not body["data"]:
            return found
        found += [item["data"] for item in body["data"]]
        path = next(link["uri"] for link in body["links"] if link["rel"] == "next")
    raise AssertionError(f"paging did not end: {found[:3]} ...")


class TestStreamIds:
    """Legacy id ↔ index stream entry id."""

    def test_stream_id_round_trips_and_keeps_order(self) -> None:
        """The mapping is reversible and ascending like the legacy ids."""
        ids = [lid(1), lid(1, 1), lid(1, 0xFFFF), lid(2)]
        assert [legacy_id_of(stream_id(i)) for i in ids] == ids
        entries = [stream_id(i) for i in ids]
        assert sorted(entries, key=lambda e: tuple(map(int, e.split("-")))) == entries


class TestEventsEndpoint:
    """``GET /v2.x/events`` and ``/v2.1/events/{id}``."""

    async def test_events_list_in_emission_order_with_clevers_envelope(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """Every event once, in order, each ``{"data": event, "uri"}``, relative links."""
        events = await write_events(redis_client, EVENTS)
        status, body = await get(client, "/v2.1/events?limit=2")
        assert status == 200
        assert body == {
            "data": [
                {"data": events[0], "uri": f"/v2.1/events/{lid(1)}"},
                {"data": events[1], "uri": f"/v2.1/events/{lid(2)}"},
            ],
            "links": [
                {"rel": "self", "uri": "/v2.1/events?limit=2"},
                {"rel": "next", "uri": f"/v2.1/events?limit=2&starting_after={lid(2)}"},
                {"rel": "prev", "uri": f"/v2.1/events?limit=2&ending_before={lid(1)}"},
            ],
        }
        assert await walk(client, "/v2.1/events?limit=3") == events
        assert await walk(client, "/v2.0/events") == events

    async def test_ending_before_last_gives_the_newest_event(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """``ending_before=last&limit=1`` answers the newest event (Clever's recipe)."""
        events = await write_events(redis_client, EVENTS)
        status, body = await get(client, "/v2.1/events?ending_before=last&limit=1")
        assert (status, [item["data"] for item in body["data"]]) == (200, [events[-1]])
        status, body = await get(client, f"/v2.1/events?ending_before={lid(3)}&limit=5")
        assert [item["data"] for item in body["data"]] == events[:2]

    async def test_record_type_filters_with_aliases(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """Repeated ``record_type`` merges types in order; ``school_admins`` is an alias."""
        events = await write_events(redis_client, EVENTS)
        by_type = "/v2.1/events?record_type=students&record_type=teachers&limit=1"
        assert await walk(client, by_type) == [events[1], events[2], events[7]]
        assert await walk(client, "/v2.1/events?record_type=school_admins") == [events[4]]
        assert await walk(client, "/v2.1/events?record_type=schooladmins") == [events[4]]
        status, body = await get(client, "/v2.1/events?record_type=resources")
        assert (status, body) == (400, {"message": "unknown record_type: resources"})

    async def test_school_filter(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """``school`` keeps the events of that school's records (contacts via their students)."""
        events = await write_events(redis_client, EVENTS)
        school_a = f"/v2.1/events?school={SCHOOL_A}&limit=1"
        assert await walk(client, school_a) == [events[0], events[1], events[3]]
        school_b = f"/v2.1/events?school={SCHOOL_B}&record_type=students"
        assert await walk(client, school_b) == [events[7]]

    async def test_one_event_and_errors(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """``/events/{id}`` answers the event; unknown ids 404; limit above 10000 is 413."""
        events = await write_events(redis_client, EVENTS)
        status, body = await get(client, f"/v2.1/events/{lid(4)}")
        assert (status, body) == (
            200,
            {"data": events[3], "links": [{"rel": "self", "uri": f"/v2.1/events/{lid(4)}"}]},
        )
        assert (await get(client, f"/v2.1/events/{lid(99)}"))[0] == 404
        assert (await get(client, "/v2.1/events/nope"))[0] == 404
        assert await get(client, "/v2.1/events?limit=10001") == (
            413,
            {"message": "limit must be at most 10000"},
        )
        assert await get(client, "/v2.1/events?starting_after=nope") == (
            400,
            {"message": "starting_after and ending_before must be event ids"},
        )

    async def test_ids_with_sign_or_prefix_are_refused_not_failed(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """24 characters that ``int`` parses but are not hex digits answer 400/404, never 500."""
        await write_events(redis_client, EVENTS)
        refused = (400, {"message": "starting_after and ending_before must be event ids"})
        for bad in ("-00000000001000000000000", "0x0000000001000000000000", lid(1).upper()):
            assert await get(client, f"/v2.1/events?starting_after={bad}") == refused
            assert await get(client, f"/v2.1/events?ending_before={bad}") == refused
            typed = f"/v2.1/events?record_type=students&starting_after={bad}"
            assert await get(client, typed) == refused
            assert await get(client, f"/v2.1/events/{bad}") == (
                404,
                {"message": f"event {bad} not found"},
            )

    async def test_filtered_pages_start_at_the_oldest_event_still_held(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """Index entries of events trimmed from the district stream do not make an empty page."""
        events = await write_events(redis_client, EVENTS)
        rk = ReadModelKeys(PREFIX, DISTRICT)
        await redis_client.xtrim(rk.events, minid=stream_id(lid(5)), approximate=False)
        typed = "/v2.1/events?record_type=students&limit=1"
        assert await walk(client, typed) == [events[7]]
        assert await walk(client, f"{typed}&starting_after={lid(1)}") == [events[7]]
        school_b = f"/v2.1/events?school={SCHOOL_B}&limit=1"
        assert await walk(client, school_b) == [events[6], events[7]]
        status, body = await get(client, "/v2.1/events?record_type=students&ending_before=last")
        assert (status, [item["data"] for item in body["data"]]) == (200, [events[7]])


class TestReadModelWrites:
    """What the events do to the objects and relations."""

    async def test_update_moves_relations_and_delete_forgets(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """An update moves the student between schools; a delete removes it and its links."""
        await write_events(redis_client, EVENTS)
        rk = ReadModelKeys(PREFIX, DISTRICT)
        assert await redis_client.zrange(rk.rel("schools", SCHOOL_A, "students"), 0, -1) == []
        assert await redis_client.zrange(rk.rel("schools", SCHOOL_B, "students"), 0, -1) == [b"s1"]
        status, body = await get(client, "/v2.1/students/s1/contacts")
        assert [item["data"]["id"] for item in body["data"]] == ["c1"]
        status, body = await get(client, "/v2.1/students/s1/teachers")
        assert [item["data"]["id"] for item in body["data"]] == ["t1"]
        moved = {**STUDENT, "school": SCHOOL_B, "schools": [SCHOOL_B]}
        await write_events(redis_client, [("students", "students.deleted", moved)], first=20)
        assert await get(client, "/v2.1/students/s1") == (404, {"message": "students s1 not found"})
        assert await redis_client.exists(rk.rel("schools", SCHOOL_B, "students")) == 0
        status, body = await get(client, "/v2.1/teachers/t1/students")
        assert (status, body["data"]) == (200, [])

    async def test_replayed_event_is_not_indexed_twice(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """Writing the same legacy event again leaves one entry in every index."""
        events = await write_events(redis_client, EVENTS[:2])
        await write_events(redis_client, EVENTS[1:2], first=2)
        assert await walk(client, "/v2.1/events") == events
        assert await walk(client, f"/v2.1/events?school={SCHOOL_A}") == events


class TestMigratingConsumer:
    """A v2 consumer switching from Clever with its stored Clever cursor."""

    CLEVER_2025 = "67d3f65d8e2a4c0012345678"
    """A real-shaped Clever v2 event id (an ObjectId of 2025-03-14) the consumer still holds."""

    async def test_clever_cursor_older_than_the_relay_starts_at_the_oldest_event(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """starting_after an older Clever id pages from the relay's oldest held event."""
        events = await write_events(redis_client, EVENTS)
        assert await walk(client, f"/v2.1/events?limit=3&starting_after={self.CLEVER_2025}") == (
            events
        )
        filtered = f"/v2.1/events?record_type=students&starting_after={self.CLEVER_2025}"
        assert await walk(client, filtered) == [events[1], events[7]]

    async def test_pages_walk_forward_over_ids_of_the_old_layout(
        self, redis_client: aioredis.Redis, client: TestClient[Any, Any]
    ) -> None:
        """Events written before the id layout changed (ms, seq, index) page forward to new ones."""
        writer = ReadModelWriter(redis_client)
        old: list[dict[str, Any]] = []
        for k, (rt, etype, obj) in enumerate(EVENTS[:2]):
            old_id = f"{1_733_000_000_000:012x}{0:08x}{k:04x}"  # as the old writer named them
            legacy = LegacyOut(rt, etype, msgspec.Raw(msgspec.json.encode(obj)))
            data = encode_legacy_event(legacy, old_id, CREATED)
            op = event_op(legacy, prefix=PREFIX, district=DISTRICT, legacy_id=old_id, data=data)
            op[8] = f"1733000000000-{k}"  # the old writer's entry id
            await writer.apply([op])
            old.append(msgspec.json.decode(data))
        new = await write_events(redis_client, EVENTS[2:4])
        assert await walk(client, "/v2.1/events?limit=1") == old + new
        first = old[0]["id"]
        assert await walk(client, f"/v2.1/events?starting_after={first}") == old[1:] + new
        status, body = await get(client, f"/v2.1/events/{old[1]['id']}")
        assert (status, body["data"]) == (200, old[1])
