"""The v2 API's Data endpoints and the sync, over real HTTP, against the simulator's world.

``clever-relay sync``'s logic fills the read model from the simulator's v3 Data API; the ops app
with the v2 routes is served by pytest-aiohttp's client; every answer is compared with the v2
objects the project's pure mapping makes of the simulator's current v3 records.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from relay.config import validate
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.readmodel.sync import ORDER, run_sync, translate_record
from relay.readmodel.writer import ReadModelWriter, put_op
from relay.redis.keys import Keys, ReadModelKeys
from relay.simulator import SimOptions, World, running_simulator
from relay.v2api.records import PATHS, RELATIONS, URL_OF
from relay.v2api.server import add_routes
from tests.swagger import errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio as aioredis
    from aiohttp.test_utils import TestClient

    from relay.config import Config
    from relay.simulator import RunningSimulator

PREFIX = "t"
DEFINITIONS = {
    "students": "Student",
    "teachers": "Teacher",
    "contacts": "Contact",
    "districtadmins": "DistrictAdmin",
    "schooladmins": "SchoolAdmin",
    "schools": "School",
    "sections": "Section",
    "districts": "District",
    "courses": "Course",
    "terms": "Term",
}


def v2_key(district: str) -> str:
    """The relay-issued v2 key of a district in these tests."""
    return f"v2key-{district}-0123456789abcdefghijklmnopqrstuv"


def make_cfg(redis_url: str, sim: RunningSimulator) -> Config:
    """A config for the simulator's districts with one v2 client each."""
    return validate(
        {
            "relay": {"components": ["http", "v2api"]},
            "redis": {"url": redis_url, "prefix": PREFIX},
            "clever": {
                "base_url": sim.base_url,
                "max_backoff_s": 0.2,
                "poll_interval_s": 0.1,
                "districts": [{"id": d.id, "token": d.token} for d in sim.world.districts],
            },
            "v2api": {
                "clients": [
                    {"name": f"c{i}", "district": d.id, "token": v2_key(d.id)}
                    for i, d in enumerate(sim.world.districts)
                ]
            },
            "legacy": {"block_ms": 50, "lease_ttl_s": 1.0},
            "log": {"level": "warning"},
        }
    )


def expected_model(sim: RunningSimulator, district: str) -> dict[str, dict[str, Any]]:
    """v2 record type → v2 id → v2 object, from the simulator's current v3 records."""
    state = sim.world.district(district).state
    out: dict[str, dict[str, Any]] = {rt: {} for rt in DEFINITIONS}
    teachers: dict[str, str] = {}
    for record_type in ORDER:
        for record_id in state[record_type].ids:
            raw = state[record_type].encoded(record_id)
            assert raw is not None
            result = translate_record(record_type, raw, teachers)
            teachers.update(result.teacher_ids)
            for rt, obj, _ in result.objects:
                decoded = msgspec.json.decode(obj)
                out[rt][decoded["id"]] = decoded
    return out


class Served:
    """A synced relay's v2 API for one simulated world."""

    def __init__(self, client: TestClient[Any, Any], sim: RunningSimulator, cfg: Config) -> None:
        self.client = client
        self.sim = sim
        self.cfg = cfg
        self.district = sim.world.districts[0].id
        self.key = v2_key(self.district)

    async def get(self, path: str, *, key: str | None = None) -> tuple[int, Any]:
        """GET ``path`` with the district's key; (status, decoded JSON)."""
        headers = {"Authorization": f"Bearer {key or self.key}"}
        async with self.client.get(path, headers=headers) as resp:
            return resp.status, await resp.json()

    async def walk(self, path: str) -> list[dict[str, Any]]:
        """Follow ``next`` links from ``path`` until an empty page; every item's ``data``."""
        items: list[dict[str, Any]] = []
        while True:
            status, body = await self.get(path)
            assert status == 200, body
            if not body["data"]:
                return items
            items.extend(entry["data"] for entry in body["data"])
            path = next(link["uri"] for link in body["links"] if link["rel"] == "next")


@pytest.fixture(scope="module")
def world() -> World:
    """A small generated world (two districts), shared: tests only read it."""
    return World.generate(7, districts=2, events_per_district=300)


@contextlib.asynccontextmanager
async def serving(
    world: World, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
) -> AsyncIterator[Served]:
    """The simulator serving ``world``, a completed sync, and the v2 routes on the ops app
    (the ``served`` fixture of this module and of the ``/v2.0`` tests)."""
    async with running_simulator(world, SimOptions(rate_limit=0)) as sim:
        cfg = make_cfg(redis_url, sim)
        assert await run_sync(cfg, None, progress=False) == 0
        health = Health()
        app = build_app(
            cfg=cfg,
            redis=redis_client,
            health=health,
            status=StatusSource(cfg=cfg, redis=redis_client, health=health),
        )
        add_routes(app, cfg=cfg, redis=redis_client, keys=Keys(PREFIX))
        yield Served(await aiohttp_client(app), sim, cfg)


@pytest.fixture
async def served(
    world: World, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
) -> AsyncIterator[Served]:
    """A synced relay's v2 API for this module's ``world``."""
    async with serving(world, redis_client, redis_url, aiohttp_client) as served:
        yield served


class TestV2Collections:
    """``/v2.1/<collection>`` and ``/{id}`` after a sync."""

    @pytest.mark.spec
    async def test_collections_walk_every_object_once_and_validate_strictly(
        self, served: Served
    ) -> None:
        """Paging by 7 walks each collection once, in id order, equal to the mapped v3 data."""
        expected = expected_model(served.sim, served.district)
        for path, rt in PATHS.items():
            items = await served.walk(f"/v2.1/{path}?limit=7")
            assert [o["id"] for o in items] == sorted(expected[rt]), path
            assert {o["id"]: o for o in items} == expected[rt]
            for obj in items:
                assert errors("v2.1.yml", DEFINITIONS[rt], obj, strict=True) == []
        assert {rt: len(objs) > 0 for rt, objs in expected.items()} == dict.fromkeys(
            DEFINITIONS, True
        )

    async def test_collections_page_backwards_from_last(self, served: Served) -> None:
        """``ending_before=last`` then ``prev`` links walk the students backwards, all of them."""
        expected = sorted(expected_model(served.sim, served.district)["students"])
        path = "/v2.1/students?limit=5&ending_before=last"
        seen: list[str] = []
        while True:
            status, body = await served.get(path)
            assert status == 200
            if not body["data"]:
                break
            seen = [entry["data"]["id"] for entry in body["data"]] + seen
            path = next(link["uri"] for link in body["links"] if link["rel"] == "prev")
        assert seen == expected

    async def test_collection_envelope_is_clevers(self, served: Served) -> None:
        """Items carry ``uri``; links are relative and keep ``limit``."""
        status, body = await served.get("/v2.1/schools?limit=1")
        first = sorted(expected_model(served.sim, served.district)["schools"])[0]
        assert status == 200
        assert body["data"][0]["uri"] == f"/v2.1/schools/{first}"
        assert body["links"] == [
            {"rel": "self", "uri": "/v2.1/schools?limit=1"},
            {"rel": "next", "uri": f"/v2.1/schools?limit=1&starting_after={first}"},
            {"rel": "prev", "uri": f"/v2.1/schools?limit=1&ending_before={first}"},
        ]

    async def test_object_by_id_and_unknown_id(self, served: Served) -> None:
        """``/{id}`` answers the object with a self link; an unknown id is 404 ``{"message"}``."""
        teachers = expected_model(served.sim, served.district)["teachers"]
        tid = sorted(teachers)[0]
        status, body = await served.get(f"/v2.1/teachers/{tid}")
        assert (status, body) == (
            200,
            {"data": teachers[tid], "links": [{"rel": "self", "uri": f"/v2.1/teachers/{tid}"}]},
        )
        status, body = await served.get("/v2.1/teachers/000000000000000000000000")
        assert (status, body) == (404, {"message": "teachers 000000000000000000000000 not found"})

    async def test_auth_and_limits(self, served: Served) -> None:
        """Bad, missing or Clever keys get 401; limit above 10000 gets 413."""
        clever_token = served.sim.world.districts[0].token
        for key in ("nope", clever_token):
            assert await served.get("/v2.1/students", key=key) == (
                401,
                {"message": "invalid or missing API key"},
            )
        async with served.client.get("/v2.1/students") as resp:
            assert resp.status == 401
        status, body = await served.get("/v2.1/students?limit=10001")
        assert (status, body) == (413, {"message": "limit must be at most 10000"})

    async def test_districts_are_isolated(self, served: Served) -> None:
        """A key sees its own district only: another district's student is 404."""
        other = served.sim.world.districts[1].id
        theirs = sorted(expected_model(served.sim, other)["students"])[0]
        status, _ = await served.get(f"/v2.1/students/{theirs}")
        assert status == 404
        status, body = await served.get(f"/v2.1/students/{theirs}", key=v2_key(other))
        assert (status, body["data"]["id"]) == (200, theirs)


def _relation_expected(model: dict[str, dict[str, Any]], parent: str, oid: str, name: str) -> Any:
    """What ``/<parent>/{oid}/<name>`` must answer, derived from the mapped v3 data."""
    obj = model[parent][oid]
    relation = RELATIONS[parent][name]
    members = model[relation.member]

    def refs(o: dict[str, Any], fields: tuple[str, ...]) -> set[str]:
        out: set[str] = set()
        for f in fields:
            v = o.get(f)
            out |= {v} if isinstance(v, str) else set(v or ())
        return out

    if relation.kind == "district":
        ids = {obj["district"]}
    elif relation.kind == "field":
        ids = refs(obj, relation.fields[:1] if relation.single else relation.fields)
    elif relation.kind == "sections":
        mine = [s for s in model["sections"].values() if oid in refs(s, _SECTION_REF[parent])]
        ids = set().union(*(refs(s, relation.fields) for s in mine)) if mine else set()
    else:
        back = _BACK_REF[(parent, relation.member)]
        ids = {m for m, o in members.items() if oid in refs(o, back)}
    present = sorted(i for i in ids if i in members)
    if relation.single:
        return members[present[0]] if present else None
    return [members[i] for i in present]


_SECTION_REF = {"students": ("students",), "teachers": ("teacher", "teachers")}
_BACK_REF = {
    ("students", "contacts"): ("students",),
    ("students", "sections"): ("students",),
    ("teachers", "sections"): ("teacher", "teachers"),
    ("schools", "students"): ("school", "schools"),
    ("schools", "teachers"): ("school", "schools"),
    ("schools", "sections"): ("school",),
    ("courses", "sections"): ("course",),
    ("terms", "sections"): ("term_id",),
}


class TestV2Relations:
    """``/v2.1/<collection>/{id}/<relation>`` agrees with the v3 data."""

    async def test_every_relation_of_every_object_matches_the_v3_data(self, served: Served) -> None:
        """Each relation of up to 5 objects per type equals what the v3 records imply."""
        model = expected_model(served.sim, served.district)
        checked = 0
        for parent, relations in RELATIONS.items():
            for oid in sorted(model[parent])[:5]:
                for name, relation in relations.items():
                    want = _relation_expected(model, parent, oid, name)
                    path = f"/v2.1/{URL_OF[parent]}/{oid}/{name}"
                    if relation.single:
                        status, body = await served.get(path)
                        got = body.get("data") if status == 200 else None
                        assert got == want, path
                    else:
                        assert await served.walk(f"{path}?limit=3") == want, path
                    checked += 1
        assert checked > 100

    async def test_student_teachers_are_the_teachers_of_its_sections(self, served: Served) -> None:
        """A student's teachers are its sections' teachers, in v2 (legacy) ids."""
        model = expected_model(served.sim, served.district)
        section = next(s for s in model["sections"].values() if s.get("students"))
        student = section["students"][0]
        teachers = await served.walk(f"/v2.1/students/{student}/teachers")
        assert set(section.get("teachers", [])) <= {t["id"] for t in teachers}
        assert {t["id"] for t in teachers} <= set(model["teachers"])

    async def test_relation_of_unknown_parent_is_404(self, served: Served) -> None:
        """An unknown parent id answers 404 ``{"message"}``."""
        status, body = await served.get("/v2.1/schools/nope/students")
        assert (status, body) == (404, {"message": "schools nope not found"})


class TestSync:
    """``run_sync``: cursor, idempotence, resumption, removal of vanished objects."""

    async def test_sync_sets_cursor_to_the_newest_event_once(
        self, served: Served, redis_client: aioredis.Redis
    ) -> None:
        """The cursor is the newest event at the sync's start, and a stored cursor is kept."""
        district = served.sim.world.district(served.district)
        newest = district.feed.last_id
        assert await redis_client.get(f"{PREFIX}:cursor:{served.district}") == str(newest).encode()
        await redis_client.set(f"{PREFIX}:cursor:{served.district}", "0" * 24)
        assert await run_sync(served.cfg, served.district, progress=False) == 0
        assert await redis_client.get(f"{PREFIX}:cursor:{served.district}") == b"0" * 24

    async def test_sync_records_the_v2_to_v3_id_mapping(
        self, served: Served, redis_client: aioredis.Redis
    ) -> None:
        """Every teacher's legacy id maps to its v3 user id, and back."""
        users = served.sim.world.district(served.district).state["users"].objects
        teachers = {
            u["roles"]["teacher"]["legacy_id"]: uid
            for uid, u in users.items()
            if "teacher" in (u.get("roles") or {})
        }
        rk = ReadModelKeys(PREFIX, served.district)
        fields = [f"teachers:{legacy}" for legacy in teachers]
        assert await redis_client.hmget(rk.idmap, fields) == [v.encode() for v in teachers.values()]
        back = [f"v3:teachers:{uid}" for uid in teachers.values()]
        assert await redis_client.hmget(rk.idmap, back) == [k.encode() for k in teachers]

    async def test_sync_is_idempotent(self, served: Served, redis_client: aioredis.Redis) -> None:
        """A second sync leaves every read-model key exactly as it was."""
        before = await _dump(redis_client)
        assert await run_sync(served.cfg, None, progress=False) == 0
        assert await _dump(redis_client) == before

    async def test_sync_resumes_with_the_recorded_event_and_drops_vanished_objects(
        self, served: Served, redis_client: aioredis.Redis
    ) -> None:
        """A crashed sync's state is continued; objects Clever no longer lists are removed."""
        rk = ReadModelKeys(PREFIX, served.district)
        await redis_client.delete(f"{PREFIX}:cursor:{served.district}")
        await redis_client.hset(rk.sync, mapping={"event": "1" * 24, "done:districts": "1"})
        ghost = b'{"id":"ghost","district":"x","school":"s1","schools":["s1"]}'
        await ReadModelWriter(redis_client).apply(
            [put_op(prefix=PREFIX, district=served.district, record_type="students", obj=ghost)]
        )
        assert await run_sync(served.cfg, served.district, progress=False) == 0
        assert await redis_client.get(f"{PREFIX}:cursor:{served.district}") == b"1" * 24
        assert await redis_client.hget(rk.objects("students"), "ghost") is None
        assert await redis_client.zscore(rk.rel("schools", "s1", "students"), "ghost") is None
        assert await redis_client.exists(rk.sync) == 0


async def _dump(redis: aioredis.Redis) -> dict[bytes, Any]:
    """Every read-model key's content (hashes, sorted sets, strings)."""
    out: dict[bytes, Any] = {}
    async for key in redis.scan_iter(match=f"{PREFIX}:*"):
        kind = await redis.type(key)
        if kind == b"hash":
            out[key] = await redis.hgetall(key)
        elif kind == b"zset":
            out[key] = await redis.zrange(key, 0, -1)
        elif kind == b"string":
            out[key] = await redis.get(key)
    return out
