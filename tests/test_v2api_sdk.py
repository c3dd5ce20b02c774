"""Clever's own v2.0 SDK (``clever-python`` 3.0.2) against the relay, under /v2.0 and /v2.1.

The promise of the v2 API is that code written for Clever's v2 switches by changing its base URL.
This test holds the relay to it with the client Clever shipped: the demo world's first district
is synced from the simulator, the relay's v2 routes are served on a real port, and the SDK (run
in a thread: it is synchronous, urllib3) pages every collection and reads whole objects and a
student's relations. The SDK is fetched from the package index at test time (see
``tests/clever_sdk.py``); without the index the test is skipped with the reason, and the
``needs_download`` marker lets CI refuse that skip.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from relay.demo import DEMO_DISTRICTS, DEMO_HISTORY
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.readmodel.sync import run_sync
from relay.redis.keys import Keys
from relay.simulator import SimOptions, World, running_simulator
from relay.v2api.server import add_routes
from relay.v2api.v20 import convert
from tests.clever_sdk import Unreachable, sdk_path
from tests.swagger import errors
from tests.test_v2api import DEFINITIONS, PREFIX, Served, expected_model, make_cfg

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import ModuleType

    import redis.asyncio as aioredis

pytestmark = [pytest.mark.needs_download, pytest.mark.spec]

LISTS = {
    "get_students": "students",
    "get_teachers": "teachers",
    "get_contacts": "contacts",
    "get_district_admins": "districtadmins",
    "get_school_admins": "schooladmins",
    "get_schools": "schools",
    "get_sections": "sections",
    "get_districts": "districts",
    "get_courses": "courses",
    "get_terms": "terms",
}
"""The SDK's collection methods → v2 record type."""
ONE = {"students": "get_student", "sections": "get_section", "teachers": "get_teacher"}
STUDENT_RELATIONS = {
    "get_teachers_for_student": "teachers",
    "get_sections_for_student": "sections",
    "get_contacts_for_student": "contacts",
}
PAGE = 100


@pytest.fixture(scope="module")
def clever() -> ModuleType:
    """The ``clever`` package of clever-python 3.0.2, fetched and patched (or a skip)."""
    try:
        path = sdk_path()
    except Unreachable as exc:
        pytest.skip(f"package index unreachable, clever-python not downloaded: {exc}")
    sys.path.insert(0, str(path))
    with warnings.catch_warnings():
        # 2017 code: invalid escape sequences in regex literals warn at compile time.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        return importlib.import_module("clever")


@pytest.fixture(scope="module")
def demo_world() -> World:
    """The world ``clever-relay demo`` serves (seed 1); its first district is synced."""
    return World.generate(1, districts=DEMO_DISTRICTS, events_per_district=DEMO_HISTORY)


@pytest.fixture
async def served(
    demo_world: World, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
) -> AsyncIterator[Served]:
    """The simulator, the first district synced, the v2 routes on a real local port."""
    async with running_simulator(demo_world, SimOptions(rate_limit=0)) as sim:
        cfg = make_cfg(redis_url, sim)
        assert await run_sync(cfg, sim.world.districts[0].id, progress=False) == 0
        health = Health()
        app = build_app(
            cfg=cfg,
            redis=redis_client,
            health=health,
            status=StatusSource(cfg=cfg, redis=redis_client, health=health),
        )
        add_routes(app, cfg=cfg, redis=redis_client, keys=Keys(PREFIX))
        yield Served(await aiohttp_client(app), sim, cfg)


def _without_nulls(value: Any) -> Any:
    """What the SDK gives back of an object: nulls (unset attributes) dropped, recursively."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


class Session:
    """The SDK pointed at one base URL, with plain-dict results for comparison."""

    def __init__(self, clever: ModuleType, host: str, key: str) -> None:
        config = clever.Configuration()
        config.host = host
        config.access_token = key
        self.client = clever.ApiClient(config)
        self.api = clever.DataApi(self.client)

    def plain(self, model: Any) -> Any:
        """A model as the JSON it was read from (without the nulls the SDK cannot tell)."""
        return self.client.sanitize_for_serialization(model)

    def walk(self, method: str, *args: str) -> list[dict[str, Any]]:
        """Every object of a list endpoint, following ``starting_after`` to an empty page."""
        if method == "get_districts":  # the SDK's only list without paging parameters
            return [self.plain(item.data) for item in self.api.get_districts().data]
        out: list[dict[str, Any]] = []
        after: dict[str, str] = {}
        while True:
            page = getattr(self.api, method)(*args, limit=PAGE, **after)
            if not page.data:
                return out
            out += [self.plain(item.data) for item in page.data]
            after = {"starting_after": page.data[-1].data.id}

    def collection(self, method: str) -> list[dict[str, Any]] | str:
        """A whole collection, or the error the SDK raised reading it."""
        try:
            return self.walk(method)
        except ValueError as exc:  # the SDK's enum check of a value its v2.0 models lack
            return f"ValueError: {exc}"

    def run(self, picks: dict[str, list[str]]) -> dict[str, Any]:
        """Every collection, the picked whole objects and the picked student's relations."""
        found: dict[str, Any] = {rt: self.collection(m) for m, rt in LISTS.items()}
        for rt, method in ONE.items():
            for oid in picks[rt]:
                found[f"{rt}/{oid}"] = self.plain(getattr(self.api, method)(oid).data)
        student = picks["students"][0]
        for method, rt in STUDENT_RELATIONS.items():
            found[f"students/{student}/{rt}"] = self.walk(method, student)
        return found


V21_REJECTED = {
    "students": "ValueError: Invalid value for `gender` (X), must be one of ['M', 'F', '']",
    "districts": "ValueError: Invalid value for `state` (success), must be one of "
    "['running', 'pending', 'error', 'paused']",
}
"""The SDK's errors on the demo district's v2.1 collections holding values v2.0 lacks."""


def _readable(model: dict[str, dict[str, Any]], version: str) -> dict[str, list[str]]:
    """Per type, the ids of the objects the SDK's v2.0 models accept as served under ``version``.

    Everything under /v2.0; under /v2.1 the objects valid against the v2.0 client spec (the
    SDK's source): a student with gender ``X`` or a district in ``state`` ``success`` is not.
    """
    return {
        rt: [
            oid
            for oid in sorted(objects)
            if version == "v2.0" or not errors("v2.0-client.yml", DEFINITIONS[rt], objects[oid])
        ]
        for rt, objects in model.items()
    }


def _expected(
    clever: ModuleType, model: dict[str, dict[str, Any]], version: str, picks: dict[str, list[str]]
) -> dict[str, Any]:
    """What the SDK must read: the v2.0 objects under /v2.0, the v2.1 ones under /v2.1, each
    without the fields the SDK's models lack (v2.1's additions; ``district`` of courses and
    terms, absent from the client spec the SDK was generated from)."""

    def shaped(rt: str, obj: dict[str, Any]) -> dict[str, Any]:
        known = set(getattr(clever, DEFINITIONS[rt]).attribute_map.values())
        served = convert(rt, obj) if version == "v2.0" else obj
        kept: dict[str, Any] = _without_nulls({k: v for k, v in served.items() if k in known})
        return kept

    out: dict[str, Any] = {
        rt: [shaped(rt, model[rt][oid]) for oid in sorted(model[rt])] for rt in LISTS.values()
    }
    if version == "v2.1":
        out.update(V21_REJECTED)
    for rt in ONE:
        for oid in picks[rt]:
            out[f"{rt}/{oid}"] = shaped(rt, model[rt][oid])
    student = picks["students"][0]
    sections = sorted(s for s, obj in model["sections"].items() if student in obj["students"])
    teachers: set[str] = set()
    for s in sections:
        teachers |= set(model["sections"][s].get("teachers", []))
    contacts = sorted(c for c, obj in model["contacts"].items() if student in obj["students"])
    related = {"teachers": sorted(teachers & set(model["teachers"])), "sections": sections}
    related["contacts"] = contacts
    for rt, ids in related.items():
        out[f"students/{student}/{rt}"] = [shaped(rt, model[rt][i]) for i in ids]
    return out


@pytest.mark.timeout(600)
async def test_clevers_v20_sdk_reads_the_synced_demo_district_under_both_versions(
    clever: ModuleType, served: Served
) -> None:
    """Under /v2.0 Clever's v2.0 SDK reads every collection whole; under /v2.1 all but the two
    holding values v2.0 lacks, which it refuses with its own enum error."""
    model = expected_model(served.sim, served.district)
    base = str(served.client.make_url("")).rstrip("/")
    counts = {rt: len(model[rt]) for rt in LISTS.values()}
    assert [rt for rt, n in counts.items() if n == 0] == []
    for version in ("v2.0", "v2.1"):
        readable = _readable(model, version)
        rejected = {rt for rt in LISTS.values() if len(readable[rt]) < counts[rt]}
        assert rejected == (set() if version == "v2.0" else set(V21_REJECTED)), version
        picks = {rt: readable[rt][:3] for rt in ONE}
        session = Session(clever, f"{base}/{version}", served.key)
        found = await asyncio.to_thread(session.run, picks)
        got = {rt: len(found[rt]) for rt in LISTS.values() if rt not in rejected}
        assert got == {rt: n for rt, n in counts.items() if rt not in rejected}, version
        assert found == _expected(clever, model, version, picks), version
