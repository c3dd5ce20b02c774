"""``/v2.0/...``: the read model's v2.1 objects served in strictly valid v2.0 shapes.

The conversion (``relay.v2api.v20``) is checked against golden v2.1 → v2.0 pairs holding every
value v2.0 cannot express, then over HTTP: objects and events written as the translator writes
them, and a whole synced simulated district, must come back from ``/v2.0`` valid against
``v2.0.yml`` (strict: no key the spec lacks) and equal to the documented conversion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from relay.config import validate
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.readmodel.writer import ReadModelWriter, event_op
from relay.redis.keys import Keys
from relay.simulator import World
from relay.translate.rules import LegacyOut, encode_legacy_event
from relay.v2api.records import PATHS, RELATIONS, URL_OF
from relay.v2api.server import add_routes
from relay.v2api.v20 import FIELDS, convert, convert_event
from tests.swagger import errors, load_spec
from tests.test_v2api import DEFINITIONS, Served, expected_model, serving, v2_key
from tests.test_v2api_events import lid

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis
    from aiohttp.test_utils import TestClient

PREFIX = "t"
D = "5a0c91b95c7cc000010d417c"
KEY = "v2-api-key-for-the-v20-tests-0001"
TS = "2024-05-01T10:00:00.000Z"

# (record type, v2.1 object (valid v2.1), the v2.0 object it must become)
GOLDEN: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "students",
        {
            "id": "s1",
            "district": D,
            "name": {"first": "Ada", "middle": "", "last": "L"},
            "created": TS,
            "enrollments": [{"school": "sc1", "start_date": TS}],
            "ext": {"sis": "x"},
            "gender": "X",
            "grade": "13",
            "school": "sc1",
            "schools": ["sc1"],
        },
        {
            "id": "s1",
            "district": D,
            "name": {"first": "Ada", "middle": "", "last": "L"},
            "created": TS,
            "gender": "",
            "grade": "Other",
            "school": "sc1",
            "schools": ["sc1"],
        },
    ),
    ("students", {"id": "s2", "grade": "InfantToddler"}, {"id": "s2", "grade": "Other"}),
    (
        "students",
        {"id": "s3", "grade": "Ungraded", "gender": "F"},
        {"id": "s3", "grade": "Other", "gender": "F"},
    ),
    ("students", {"id": "s4", "grade": "TransitionalKindergarten"}, {"id": "s4", "grade": "Other"}),
    (
        "students",
        {"id": "s5", "grade": "Preschool", "gender": None},
        {"id": "s5", "grade": "Other", "gender": None},
    ),
    (
        "students",
        {"id": "s6", "grade": "", "gender": ""},
        {"id": "s6", "grade": None, "gender": ""},
    ),
    (
        "students",
        {"id": "s7", "grade": "Kindergarten", "gender": "M"},
        {"id": "s7", "grade": "Kindergarten", "gender": "M"},
    ),
    ("students", {"id": "s8", "grade": None}, {"id": "s8", "grade": None}),
    ("teachers", {"id": "t1", "title": "Dr", "ext": {"a": 1}}, {"id": "t1", "title": "Dr"}),
    (
        "contacts",
        {"id": "c1", "name": "P", "type": None, "relationship": "Parent", "students": ["s1"]},
        {"id": "c1", "name": "P", "type": "", "relationship": "Parent", "students": ["s1"]},
    ),
    ("contacts", {"id": "c2", "type": "Emergency"}, {"id": "c2", "type": "Emergency"}),
    (
        "schooladmins",
        {"id": "a1", "department": "Math", "ext": {}, "staff_id": "9", "schools": ["sc1"]},
        {"id": "a1", "staff_id": "9", "schools": ["sc1"]},
    ),
    (
        "schools",
        {"id": "sc1", "low_grade": "InfantToddler", "high_grade": "13", "ext": {}, "name": "A"},
        {"id": "sc1", "low_grade": "Other", "high_grade": "Other", "name": "A"},
    ),
    (
        "schools",
        {"id": "sc2", "low_grade": "", "high_grade": None},
        {"id": "sc2", "low_grade": None, "high_grade": None},
    ),
    (
        "sections",
        {"id": "x1", "grade": "Ungraded", "subject": "", "ext": {}, "teachers": ["t1"]},
        {"id": "x1", "grade": "Other", "teachers": ["t1"]},
    ),
    ("sections", {"id": "x2", "grade": "12", "subject": None}, {"id": "x2", "grade": "12"}),
    ("sections", {"id": "x3", "subject": "math"}, {"id": "x3", "subject": "math"}),
    (
        "districts",
        {
            "id": D,
            "name": "Demo",
            "state": "",
            "portal_url": "https://x",
            "login_methods": ["Clever Badges"],
            "district_contact": {"email": "a@b.c"},
        },
        {"id": D, "name": "Demo"},
    ),
    ("districts", {"id": D, "state": None}, {"id": D}),
    ("districts", {"id": D, "state": "success"}, {"id": D}),
    ("districts", {"id": D, "state": "paused"}, {"id": D, "state": "paused"}),
    ("districtadmins", {"id": "da1", "title": "Boss"}, {"id": "da1", "title": "Boss"}),
    ("courses", {"id": "co1", "number": "7"}, {"id": "co1", "number": "7"}),
    ("terms", {"id": "te1", "name": "Fall"}, {"id": "te1", "name": "Fall"}),
]


def v20_problems(definition: str, obj: dict[str, Any]) -> list[str]:
    """Why ``obj`` is not a v2.0 object: strict v2.0.yml, and the enums of the v2.0 client spec.

    Clever's v2.0 SDK was generated from the client spec, whose enums are narrower in one place
    (a district ``state`` has no ``"success"``); its objects lack a few fields, hence not strict.
    """
    return errors("v2.0.yml", definition, obj, strict=True) + errors(
        "v2.0-client.yml", definition, obj
    )


pytestmark = pytest.mark.spec  # every object is validated against v2.0.yml


class TestConversion:
    """The pure v2.1 → v2.0 conversion."""

    def test_fields_are_exactly_the_v20_definitions(self) -> None:
        """Each record type keeps exactly the properties its v2.0.yml definition lists."""
        spec = load_spec("v2.0.yml")["definitions"]
        assert {rt: set(fields) for rt, fields in FIELDS.items()} == {
            rt: set(spec[name]["properties"]) for rt, name in DEFINITIONS.items()
        }

    @pytest.mark.parametrize(("record_type", "v21", "v20"), GOLDEN)
    def test_golden_v21_object_becomes_a_valid_v20_object(
        self, record_type: str, v21: dict[str, Any], v20: dict[str, Any]
    ) -> None:
        """A valid v2.1 object maps to the documented v2.0 object, strictly valid v2.0."""
        definition = DEFINITIONS[record_type]
        assert errors("v2.1.yml", definition, v21, strict=True) == []
        assert (v20_problems(definition, v21) == []) == (v21 == v20)
        converted = convert(record_type, v21)
        assert converted == v20
        assert v20_problems(definition, converted) == []

    def test_event_object_and_previous_attributes_are_converted(self) -> None:
        """``data.object`` is converted; previous values mapped, v2.1-only or equal ones dropped."""
        event = {
            "id": "e1",
            "type": "students.updated",
            "created": TS,
            "data": {
                "object": {"id": "s1", "grade": "Ungraded", "gender": "X", "ext": {"a": 1}},
                "previous_attributes": {
                    "grade": "13",
                    "gender": "F",
                    "ext": {"a": 2},
                    "last_modified": TS,
                },
            },
        }
        assert convert_event(event) == {
            "id": "e1",
            "type": "students.updated",
            "created": TS,
            "data": {
                "object": {"id": "s1", "grade": "Other", "gender": ""},
                "previous_attributes": {"gender": "F", "last_modified": TS},
            },
        }
        assert errors("v2.0-events.yml", "students.updated", convert_event(event)) == []


@pytest.fixture
async def client(redis_client: aioredis.Redis, aiohttp_client: Any) -> TestClient[Any, Any]:
    """The ops app with the v2 routes and one client key for district ``D``."""
    cfg = validate(
        {
            "relay": {"components": ["http", "v2api"]},
            "redis": {"prefix": PREFIX},
            "clever": {"districts": [{"id": D, "token": "clever-token"}]},
            "v2api": {"clients": [{"name": "c", "district": D, "token": KEY}]},
        }
    )
    health = Health()
    status = StatusSource(cfg=cfg, redis=redis_client, health=health)
    app = build_app(cfg=cfg, redis=redis_client, health=health, status=status)
    add_routes(app, cfg=cfg, redis=redis_client, keys=Keys(PREFIX))
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


async def _get(client: TestClient[Any, Any], path: str, key: str = KEY) -> tuple[int, Any]:
    async with client.get(path, headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, await resp.json()


async def _write(redis: aioredis.Redis, n: int, record_type: str, obj: dict[str, Any]) -> None:
    """Write ``obj`` as a ``*.created`` legacy event, as the translator does."""
    legacy = LegacyOut(record_type, f"{record_type}.created", msgspec.Raw(msgspec.json.encode(obj)))
    data = encode_legacy_event(legacy, lid(n), TS)
    op = event_op(legacy, prefix=PREFIX, district=D, legacy_id=lid(n), data=data)
    await ReadModelWriter(redis).apply([op])


class TestServedEdgeValues:
    """Edge-value objects written as the translator writes them, read back under both versions."""

    async def test_objects_and_events_are_v20_under_v20_and_unchanged_under_v21(
        self, client: TestClient[Any, Any], redis_client: aioredis.Redis
    ) -> None:
        """Every golden object: ``/v2.0`` answers its v2.0 form, ``/v2.1`` the stored v2.1 form."""
        latest: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        for n, (rt, v21, v20) in enumerate(GOLDEN, start=1):
            await _write(redis_client, n, rt, v21)
            latest[(rt, v21["id"])] = (v21, v20)
        for (rt, oid), (v21, v20) in latest.items():
            path = f"/{URL_OF[rt]}/{oid}"
            assert await _get(client, f"/v2.0{path}") == (
                200,
                {"data": v20, "links": [{"rel": "self", "uri": f"/v2.0{path}"}]},
            )
            assert (await _get(client, f"/v2.1{path}"))[1]["data"] == v21
        status, body = await _get(client, "/v2.0/events?limit=100")
        assert status == 200
        assert [item["uri"] for item in body["data"]] == [
            f"/v2.0/events/{lid(n)}" for n in range(1, len(GOLDEN) + 1)
        ]
        assert [item["data"]["data"]["object"] for item in body["data"]] == [g[2] for g in GOLDEN]
        for item in body["data"]:
            assert errors("v2.0-events.yml", item["data"]["type"], item["data"]) == []
            definition = DEFINITIONS[item["data"]["type"].split(".")[0]]
            assert v20_problems(definition, item["data"]["data"]["object"]) == []
        status, one = await _get(client, f"/v2.0/events/{lid(1)}")
        assert (status, one["data"]) == (200, body["data"][0]["data"])

    async def test_v20_errors_auth_and_lists(
        self, client: TestClient[Any, Any], redis_client: aioredis.Redis
    ) -> None:
        """``/v2.0`` keeps ``/v2.1``'s 401, 404, 413 and list envelope, with v2.0 uris."""
        await _write(redis_client, 1, "students", GOLDEN[0][1])
        assert await _get(client, "/v2.0/students", key="nope") == (
            401,
            {"message": "invalid or missing API key"},
        )
        assert await _get(client, "/v2.0/students/nope") == (
            404,
            {"message": "students nope not found"},
        )
        assert await _get(client, "/v2.0/students?limit=10001") == (
            413,
            {"message": "limit must be at most 10000"},
        )
        assert await _get(client, "/v2.0/students?limit=1") == (
            200,
            {
                "data": [{"data": GOLDEN[0][2], "uri": "/v2.0/students/s1"}],
                "links": [
                    {"rel": "self", "uri": "/v2.0/students?limit=1"},
                    {"rel": "next", "uri": "/v2.0/students?limit=1&starting_after=s1"},
                    {"rel": "prev", "uri": "/v2.0/students?limit=1&ending_before=s1"},
                ],
            },
        )


@pytest.fixture(scope="module")
def world() -> World:
    """A small generated world (two districts), shared: tests only read it."""
    return World.generate(11, districts=2, events_per_district=200)


@pytest.fixture
async def served(
    world: World, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
) -> AsyncIterator[Served]:
    """A synced relay's v2 API for this module's ``world`` (``/v2.0`` and ``/v2.1``)."""
    async with serving(world, redis_client, redis_url, aiohttp_client) as served:
        yield served


class TestSyncedDistrict:
    """A synced simulated district under ``/v2.0``."""

    async def test_every_collection_is_the_v20_conversion_and_strictly_valid(
        self, served: Served
    ) -> None:
        """Each collection walked under /v2.0 is the converted v2.1 data, valid v2.0."""
        expected = expected_model(served.sim, served.district)
        assert [rt for rt in DEFINITIONS if not expected[rt]] == []
        for path, rt in PATHS.items():
            items = await served.walk(f"/v2.0/{path}?limit=50")
            assert items == [convert(rt, expected[rt][oid]) for oid in sorted(expected[rt])], path
            for obj in items:
                assert v20_problems(DEFINITIONS[rt], obj) == []

    async def test_relations_under_v20_are_the_converted_v21_answers(self, served: Served) -> None:
        """Every relation of two objects per type answers /v2.1's objects converted to v2.0."""
        model = expected_model(served.sim, served.district)
        for parent, relations in RELATIONS.items():
            for oid in sorted(model[parent])[:2]:
                for name, relation in relations.items():
                    tail = f"/{URL_OF[parent]}/{oid}/{name}"
                    if relation.single:
                        new = await served.get(f"/v2.0{tail}")
                        old = await served.get(f"/v2.1{tail}")
                        if old[0] == 200:
                            old[1]["data"] = convert(relation.member, old[1]["data"])
                            old[1]["links"][0]["uri"] = f"/v2.0{tail}"
                        assert new == old, tail
                    else:
                        old_items = await served.walk(f"/v2.1{tail}?limit=4")
                        want = [convert(relation.member, o) for o in old_items]
                        assert await served.walk(f"/v2.0{tail}?limit=4") == want, tail

    async def test_district_scoping_and_backward_paging_under_v20(self, served: Served) -> None:
        """Under /v2.0 a key sees only its district, and ``ending_before=last`` pages backwards."""
        other = served.sim.world.districts[1].id
        theirs = sorted(expected_model(served.sim, other)["students"])[0]
        assert (await served.get(f"/v2.0/students/{theirs}"))[0] == 404
        status, body = await served.get(f"/v2.0/students/{theirs}", key=v2_key(other))
        assert (status, body["data"]["id"]) == (200, theirs)
        path = "/v2.0/teachers?limit=5&ending_before=last"
        seen: list[str] = []
        while True:
            status, body = await served.get(path)
            assert status == 200
            if not body["data"]:
                break
            seen = [entry["data"]["id"] for entry in body["data"]] + seen
            path = next(link["uri"] for link in body["links"] if link["rel"] == "prev")
        assert seen == sorted(expected_model(served.sim, served.district)["teachers"])
