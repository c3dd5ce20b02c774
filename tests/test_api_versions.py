"""``[clever] api_version``: the simulator serves v3.0 and v3.1, the relay reads either alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import pytest

from relay.clever import CleverClient
from relay.config import validate
from relay.errors import CursorLostError
from relay.health import Health
from relay.messages import EventMessage, normalize
from relay.poller import Poller
from relay.simulator import SimOptions, World, running_simulator
from relay.simulator.versions import upgrade
from relay.translate.rules import TeacherLookupNeeded, translate
from relay.translator.consumer import Translator
from tests.swagger import errors
from tests.test_translator_e2e import component, pipeline_cfg, total_events
from tests.test_translator_helpers import KEYS, drained, eventually, legacy_streams, messages_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis

    from relay.simulator import RunningSimulator

RECORD_DEFINITIONS = {
    "users": "User",
    "sections": "Section",
    "schools": "School",
    "courses": "Course",
    "terms": "Term",
    "districts": "District",
}
V31_STUDENT_FIELDS = {
    "preferred_name",
    "disability",
    "iep_status",
    "frl_status",
    "gifted_status",
    "home_language",
    "home_language_code",
    "section_504_status",
}
ALL_TYPES = frozenset(
    (
        "students",
        "teachers",
        "contacts",
        "districtadmins",
        "schooladmins",
        "sections",
        "schools",
        "districts",
        "courses",
        "terms",
    )
)


@pytest.fixture(scope="module")
def world() -> World:
    """One generated district with every kind of activity."""
    return World.generate(21, districts=1, events_per_district=600, end_time=1_795_000_000.0)


@pytest.fixture
async def sim(world: World) -> AsyncIterator[RunningSimulator]:
    """The simulator serving that world."""
    async with running_simulator(world, SimOptions()) as s:
        yield s


def _events(world: World, version: str) -> list[dict[str, Any]]:
    feed = world.districts[0].feed
    return [msgspec.json.decode(feed.body(i, version)) for i in range(len(feed))]


def _without_student_email(event: dict[str, Any]) -> dict[str, Any]:
    """The event's object minus ``roles.student.email``: Clever's demo data has it, no spec does."""
    obj = event["data"]["object"]
    student = (obj.get("roles") or {}).get("student")
    if not isinstance(student, dict):
        return dict(obj)
    rest = {k: v for k, v in student.items() if k != "email"}
    return {**obj, "roles": {**obj["roles"], "student": rest}}


class TestSimulatorVersions:
    @pytest.mark.spec
    def test_v31_records_in_events_validate_strictly(self, world: World) -> None:
        """Every event object under /v3.1 validates strictly against v3.1-events.yml."""
        problems = {}
        for event in _events(world, "v3.1"):
            definition = RECORD_DEFINITIONS.get(event["type"].partition(".")[0])
            if definition is None:
                continue
            found = errors(
                "v3.1-events.yml", definition, _without_student_email(event), strict=True
            )
            if found:
                problems[event["id"]] = found
        assert problems == {}

    @pytest.mark.spec
    def test_v31_data_api_records_validate(self, world: World) -> None:
        """Every record the v3.1 Data API serves validates against v3.1.yml."""
        state, problems = world.districts[0].state, {}
        for name, definition in RECORD_DEFINITIONS.items():
            for record_id in state[name].ids:
                record = msgspec.json.decode(state[name].encoded(record_id, "v3.1") or b"")
                if found := errors("v3.1.yml", definition, record):
                    problems[record_id] = found
        assert problems == {}

    def test_v31_adds_exactly_the_v31_fields(self, world: World) -> None:
        """A v3.1 user and student role carry the v3.1 fields; v3.0 ones carry none of them."""
        v30 = {e["id"]: e for e in _events(world, "v3.0")}
        student_events = [
            e
            for e in _events(world, "v3.1")
            if e["type"] == "users.created" and (e["data"]["object"]["roles"].get("student"))
        ]
        assert student_events
        for event in student_events:
            new, old = event["data"]["object"], v30[event["id"]]["data"]["object"]
            assert set(new) - set(old) == {"lms_status"}
            added = set(new["roles"]["student"]) - set(old["roles"]["student"])
            assert added == V31_STUDENT_FIELDS

    def test_v31_values_stable_per_record(self, world: World) -> None:
        """The same record gets the same v3.1 values every time (Data API and events agree)."""
        users = world.districts[0].state["users"]
        record_id = users.ids[0]
        served = msgspec.json.decode(users.encoded(record_id, "v3.1") or b"")
        assert served == upgrade("users", users.objects[record_id])


async def _all_events(client: CleverClient, after: str | None = None) -> list[bytes]:
    out: list[bytes] = []
    while True:
        page = await client.events_page(starting_after=after, limit=250)
        if not page.data:
            return out
        out += [bytes(item.data) for item in page.data]
        after = msgspec.json.decode(out[-1])["id"]


def _client(sim: RunningSimulator, session: aiohttp.ClientSession, version: str) -> CleverClient:
    district = sim.world.districts[0]
    return CleverClient(
        session=session,
        base_url=sim.base_url,
        district=district.id,
        token=district.token,
        timeout_s=30.0,
        api_version=version,
    )


def _translated(raw_events: list[bytes], district: str, version: str) -> list[tuple[str, Any]]:
    """Every legacy event the v3 events become, carrying snapshots and teacher ids along."""
    snapshots: dict[str, bytes] = {}
    teachers: dict[str, str] = {}
    out: list[tuple[str, Any]] = []
    for raw in raw_events:
        msg = normalize(raw, district, version)
        assert msg.api_version == version
        user_id = msgspec.json.decode(msg.object)["id"] if msg.record_type == "users" else None
        try:
            tr = translate(
                msg,
                previous_user=snapshots.get(user_id) if user_id else None,
                teacher_legacy_ids=teachers,
                record_types=ALL_TYPES,
            )
        except TeacherLookupNeeded:
            out.append(("lookup", msg.id))
            continue
        if user_id and tr.user_snapshot is not None:
            snapshots[user_id] = bytes(tr.user_snapshot)
        teachers.update(tr.teacher_ids)
        out += [(e.type, msgspec.json.decode(e.object)) for e in tr.events]
    return out


class TestRelayVersions:
    async def test_v31_feed_has_the_v30_ids_and_translates_the_same(
        self, sim: RunningSimulator
    ) -> None:
        """The v3.1 feed has v3.0's ids, and its events translate to the same v2 objects."""
        district = sim.world.districts[0].id
        async with aiohttp.ClientSession() as session:
            v30 = await _all_events(_client(sim, session, "v3.0"))
            v31 = await _all_events(_client(sim, session, "v3.1"))
        ids = [msgspec.json.decode(raw)["id"] for raw in v30]
        assert [msgspec.json.decode(raw)["id"] for raw in v31] == ids
        assert v30 != v31
        legacy_30 = _translated(v30, district, "v3.0")
        assert legacy_30 == _translated(v31, district, "v3.1")
        assert len(legacy_30) > len(ids) // 2

    async def test_switching_versions_keeps_the_cursor(self, sim: RunningSimulator) -> None:
        """A cursor read from v3.0 continues on v3.1 with exactly the following events."""
        async with aiohttp.ClientSession() as session:
            v30 = await _all_events(_client(sim, session, "v3.0"))
            cursor = msgspec.json.decode(v30[99])["id"]
            rest = await _all_events(_client(sim, session, "v3.1"), after=cursor)
        expected = [msgspec.json.decode(raw)["id"] for raw in v30[100:]]
        assert [msgspec.json.decode(raw)["id"] for raw in rest] == expected

    async def test_unknown_cursor_on_the_new_version_is_cursor_lost(
        self, sim: RunningSimulator
    ) -> None:
        """An id the new version does not know is the usual cursor-lost case."""
        async with aiohttp.ClientSession() as session:
            client = _client(sim, session, "v3.1")
            with pytest.raises(CursorLostError) as caught:
                await client.events_page(starting_after="5f0000000000000000000000", limit=10)
        assert (caught.value.cursor, caught.value.status) == ("5f0000000000000000000000", 404)


async def _pipeline_run(
    redis: aioredis.Redis, redis_url: str, sim: RunningSimulator, version: str
) -> tuple[dict[str, list[Any]], list[EventMessage]]:
    """Poller and translator on a fresh Redis: legacy events (without ids) and the messages."""
    await redis.flushall()
    tree = pipeline_cfg(redis_url, sim, batch_size=200)
    cfg = validate({**tree, "clever": {**tree["clever"], "api_version": version}})  # type: ignore[dict-item]  # a config tree
    total = sum(len(d.feed) for d in sim.world.districts)
    async with aiohttp.ClientSession() as session:
        common: dict[str, Any] = {"cfg": cfg, "redis": redis, "session": session, "keys": KEYS}
        async with component(Poller(health=Health(), **common)):
            await eventually(lambda: total_events(redis, total), timeout_s=60)
        async with component(Translator(health=Health(), consumer_name="one", **common)):
            await eventually(lambda: drained(redis), timeout_s=60, what="drained")
    legacy = {
        rt: [(e["type"], e["source"], msgspec.json.decode(e["data"])["data"]) for e in entries]
        for rt, entries in (await legacy_streams(redis)).items()
    }
    return legacy, [msg for _, msg in await messages_of(redis)]


class TestPipelineVersions:
    async def test_v31_pipeline_gives_the_v30_legacy_events(
        self, sim: RunningSimulator, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Simulator → poller → translator on v3.1 writes exactly v3.0's legacy events."""
        legacy_31, messages_31 = await _pipeline_run(redis_client, redis_url, sim, "v3.1")
        users = [m for m in messages_31 if m.record_type == "users" and m.action == "created"]
        assert {m.api_version for m in messages_31} == {"v3.1"}
        assert all(b'"lms_status"' in bytes(m.object) for m in users)
        legacy_30, messages_30 = await _pipeline_run(redis_client, redis_url, sim, "v3.0")
        assert [m.id for m in messages_30] == [m.id for m in messages_31]
        assert legacy_31 == legacy_30
        assert sum(len(v) for v in legacy_30.values()) > len(messages_30) // 2
