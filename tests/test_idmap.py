"""The ID crosswalk: filled by sync and the translator, served over HTTP, exported by the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
import pytest

from relay.config import validate
from relay.health import Health
from relay.idmap_export import export
from relay.messages import EventMessage, encode
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.readmodel.crosswalk import CrosswalkReader
from relay.readmodel.sync import run_sync
from relay.redis.keys import Keys
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.batch import BatchTranslator
from relay.translator.group import Entry
from relay.translator.lookup import TeacherLookup
from relay.translator.store import BatchWrite, Store
from relay.v2api.server import add_routes
from tests.swagger import SPEC_DIR
from tests.test_cli import run_cli

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio as aioredis
    from aiohttp.test_utils import TestClient

    from relay.config import Config

PREFIX = "x"
DEMO_USERS = SPEC_DIR / "samples" / "v3.0-demo-users.json"
OTHER = "60000000000000000000aaaa"
DAY_MS = 86_400_000


def demo_users() -> list[dict[str, Any]]:
    """Clever's demo-district users (2,098)."""
    return [item["data"] for item in json.loads(DEMO_USERS.read_bytes())["data"]]


def expected_roles(user: dict[str, Any]) -> dict[str, str]:
    """A demo user's v2 id per role: ``legacy_id``; the user id for a student, and for a
    contact without one (every demo contact), as the translator's v2 objects have it."""
    roles = {name: role for name, role in user["roles"].items() if role}
    return {
        name: user["id"] if name == "student" else role.get("legacy_id", user["id"])
        for name, role in roles.items()
    }


@pytest.fixture(scope="module")
def demo_world() -> World:
    """A one-district simulated world holding every demo user (plus an empty second district)."""
    users = demo_users()
    district = users[0]["district"]
    events = [{"type": "users.created", "data": {"object": u}} for u in users]
    body = {
        "districts": [
            {"id": district, "token": f"sim_{district}", "events": events},
            {"id": OTHER, "token": f"sim_{OTHER}", "events": []},
        ]
    }
    return World.from_bytes(msgspec.json.encode(body))


def make_cfg(redis_url: str, base_url: str, world: World) -> Config:
    """A config with one v2 client key per district."""
    return validate(
        {
            "redis": {"url": redis_url, "prefix": PREFIX},
            "clever": {
                "base_url": base_url,
                "max_backoff_s": 0.2,
                "districts": [{"id": d.id, "token": d.token} for d in world.districts],
            },
            "v2api": {
                "clients": [
                    {"name": f"c{i}", "district": d.id, "token": f"v2-api-key-{d.id}"}
                    for i, d in enumerate(world.districts)
                ]
            },
            "log": {"level": "warning"},
        }
    )


class Synced:
    """A relay whose crosswalk was filled by ``sync`` from the demo world."""

    def __init__(self, cfg: Config, redis: aioredis.Redis, client: TestClient[Any, Any]) -> None:
        self.cfg = cfg
        self.redis = redis
        self.client = client
        self.district = cfg.clever.districts[0].id
        self.reader = CrosswalkReader(redis, Keys(PREFIX), keep_s=90 * 86400.0)

    async def get(self, path: str, district: str | None = None) -> tuple[int, Any]:
        """GET ``path`` with a district's v2 key; (status, JSON)."""
        headers = {"Authorization": f"Bearer v2-api-key-{district or self.district}"}
        async with self.client.get(path, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def synced(
    demo_world: World, redis_client: aioredis.Redis, redis_url: str, aiohttp_client: Any
) -> Synced:
    """The simulator serving the demo users, a completed sync, and the v2 routes."""
    async with running_simulator(demo_world, SimOptions(rate_limit=0)) as sim:
        cfg = make_cfg(redis_url, sim.base_url, demo_world)
        assert await run_sync(cfg, None, progress=False) == 0
    health = Health()
    app = build_app(
        cfg=cfg,
        redis=redis_client,
        health=health,
        status=StatusSource(cfg=cfg, redis=redis_client, health=health),
    )
    add_routes(app, cfg=cfg, redis=redis_client, keys=Keys(PREFIX))
    return Synced(cfg, redis_client, await aiohttp_client(app))


@pytest.mark.spec  # Clever's demo-district users (samples/v3.0-demo-users.json)
class TestSyncFillsTheCrosswalk:
    async def test_demo_users_map_to_their_legacy_ids(self, synced: Synced) -> None:
        """Every demo user's roles map to their legacy_id, students to their user id, both ways."""
        users = demo_users()
        raw: Any = await synced.redis.hgetall(Keys(PREFIX).idmap_v3(synced.district))
        by_v3 = {k.decode(): msgspec.json.decode(v)["roles"] for k, v in raw.items()}
        assert len(users) == 2098
        assert by_v3 == {u["id"]: expected_roles(u) for u in users}
        rows = [r async for batch in synced.reader.scan(synced.district) for r in batch]
        wanted = {(u["id"], role, v2) for u in users for role, v2 in expected_roles(u).items()}
        assert (sorted(rows), len(rows)) == (sorted(wanted), len(wanted))

    async def test_http_lookups_both_ways(self, synced: Synced) -> None:
        """GET /idmap/v3 and /idmap/v2 answer a teacher's mapping; unknown ids are 404."""
        teacher = next(u for u in demo_users() if u["roles"].get("teacher"))
        legacy = teacher["roles"]["teacher"]["legacy_id"]
        assert await synced.get(f"/idmap/v3/{teacher['id']}") == (
            200,
            {
                "district": synced.district,
                "v3_user_id": teacher["id"],
                "roles": {"teacher": legacy},
                "deleted": False,
            },
        )
        assert await synced.get(f"/idmap/v2/{legacy}") == (
            200,
            {
                "district": synced.district,
                "v2_id": legacy,
                "v3_user_id": teacher["id"],
                "role": "teacher",
                "deleted": False,
            },
        )
        assert await synced.get("/idmap/v2/nope") == (404, {"message": "no mapping for v2 id nope"})

    async def test_http_is_scoped_and_authenticated(self, synced: Synced) -> None:
        """Another district's key sees nothing of this district; no key is 401."""
        student = next(u for u in demo_users() if u["roles"].get("student"))
        assert await synced.get(f"/idmap/v3/{student['id']}", district=OTHER) == (
            404,
            {"message": f"no mapping for v3 user {student['id']}"},
        )
        async with synced.client.get(f"/idmap/v3/{student['id']}") as resp:
            assert (resp.status, await resp.json()) == (
                401,
                {"message": "invalid or missing API key"},
            )

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    async def test_export_round_trips(self, synced: Synced, fmt: str) -> None:
        """The export lists every mapping once, in the four documented columns."""
        out = io.StringIO()
        count = await export(synced.cfg, synced.district, fmt=fmt, out=out, progress=False)
        text = out.getvalue()
        if fmt == "csv":
            reader = csv.reader(io.StringIO(text))
            assert next(reader) == ["district", "v3_user_id", "role", "v2_id"]
            rows = [tuple(row) for row in reader]
        else:
            rows = [
                tuple(json.loads(line)[k] for k in ("district", "v3_user_id", "role", "v2_id"))
                for line in text.splitlines()
            ]
        d = synced.district
        wanted = {(d, u["id"], r, v2) for u in demo_users() for r, v2 in expected_roles(u).items()}
        assert (sorted(rows), count) == (sorted(wanted), len(wanted))


@pytest.mark.spec  # Clever's demo-district users (samples/v3.0-demo-users.json)
class TestExportCommand:
    async def test_cli_export_streams_csv_and_counts_on_stderr(
        self, synced: Synced, tmp_path: Path
    ) -> None:
        """``clever-relay idmap export`` prints the CSV to stdout and the count to stderr."""
        config = tmp_path / "relay.toml"
        config.write_text(
            f'[redis]\nurl = "{synced.cfg.redis.url}"\nprefix = "{PREFIX}"\n'
            f'[[clever.districts]]\nid = "{synced.district}"\ntoken = "t"\n'
        )
        args = ("idmap", "export", "--config", str(config), "--district", synced.district)
        result = await asyncio.to_thread(run_cli, *args)
        lines = result.stdout.splitlines()
        count = sum(len(expected_roles(u)) for u in demo_users())
        assert (result.returncode, lines[0], len(lines) - 1) == (
            0,
            "district,v3_user_id,role,v2_id",
            count,
        )
        assert result.stderr == f"{synced.district}: {count} mapping(s) exported\n"

    def test_cli_export_unknown_district_is_a_usage_error(self, tmp_path: Path) -> None:
        """An unconfigured district exits 2 naming the configured ones."""
        config = tmp_path / "relay.toml"
        config.write_text('[[clever.districts]]\nid = "d1"\ntoken = "t"\n')
        result = run_cli("idmap", "export", "--config", str(config), "--district", "d2")
        assert (result.returncode, result.stdout, result.stderr) == (
            2,
            "",
            "--district: d2 is not configured (configured: d1)\n",
        )


def _user(uid: str, roles: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {"id": uid, "district": "d1", "name": {"first": "A"}, "roles": roles}
    )


def _entry(n: int, action: str, user: bytes) -> Entry:
    msg = EventMessage(
        id=f"{n:024x}",
        type=f"users.{action}",
        record_type="users",
        action=action,  # type: ignore[arg-type]  # a literal action
        district="d1",
        created="2026-01-01T00:00:00.000Z",
        object=msgspec.Raw(user),
        roles=sorted(msgspec.json.decode(user)["roles"]),
    )
    fields = {b"id": msg.id.encode(), b"type": msg.type.encode(), b"district": b"d1"}
    return Entry(f"1-{n}", {**fields, b"data": encode(msg)})


class TestTranslatorKeepsTheCrosswalk:
    async def _translate(self, redis: aioredis.Redis, cfg: Config, entries: list[Entry]) -> None:
        keys = Keys(PREFIX)
        store = Store(redis, keys, group="g", legacy_maxlen=1000, deadletter_maxlen=1000)
        async with aiohttp.ClientSession() as session:
            batches = BatchTranslator(
                keys=keys,
                store=store,
                lookup=TeacherLookup(cfg=cfg, session=session),
                record_types=frozenset(("teachers", "schooladmins", "students")),
                max_deliveries=5,
            )
            outcome = await batches.build(entries, deliveries={}, position=None)
            assert await store.commit(outcome.write, b"lease") == len(entries)

    async def test_legacy_id_change_and_deletion(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """A changed legacy_id flags the old v2 id deleted; a deletion flags every mapping."""
        cfg = make_cfg(redis_url, "http://127.0.0.1:9", World.generate(1, districts=1))
        await redis_client.set(Keys(PREFIX).translator_lease, b"lease")
        reader = CrosswalkReader(redis_client, Keys(PREFIX), keep_s=86400.0)
        both = {"teacher": {"legacy_id": "T1"}, "staff": {"legacy_id": "S1"}}
        moved = {"teacher": {"legacy_id": "T2"}, "staff": {"legacy_id": "S1"}}
        await self._translate(
            redis_client,
            cfg,
            [_entry(1, "created", _user("u1", both)), _entry(2, "updated", _user("u1", moved))],
        )
        assert await reader.by_v3("d1", "u1") == {"roles": {"teacher": "T2", "staff": "S1"}}
        assert await reader.by_v2("d1", "T2") == {"v3_user_id": "u1", "role": "teacher"}
        old = await reader.by_v2("d1", "T1")
        assert old is not None
        assert (old["v3_user_id"], old["role"], isinstance(old["deleted_at"], int)) == (
            "u1",
            "teacher",
            True,
        )
        await self._translate(redis_client, cfg, [_entry(3, "deleted", _user("u1", moved))])
        gone = await reader.by_v3("d1", "u1")
        assert gone is not None
        assert (gone["roles"], "deleted_at" in gone) == ({"teacher": "T2", "staff": "S1"}, True)
        flagged = [await reader.by_v2("d1", v2) for v2 in ("T1", "T2", "S1")]
        assert ["deleted_at" in (e or {}) for e in flagged] == [True, True, True]
        assert [r async for batch in reader.scan("d1") for r in batch] == []
        deleted = [r async for batch in reader.scan("d1", deleted=True) for r in batch]
        assert sorted(deleted) == [
            ("u1", "staff", "S1"),
            ("u1", "teacher", "T1"),
            ("u1", "teacher", "T2"),
        ]

    async def test_deletions_expire_after_the_retention(self, redis_client: aioredis.Redis) -> None:
        """A deletion older than the retention is hidden from reads and swept by the next change."""
        keys = Keys(PREFIX)
        await redis_client.set(keys.translator_lease, b"lease")
        store = Store(redis_client, keys, group="g", legacy_maxlen=1000, deadletter_maxlen=1000)
        names = (keys.idmap_v3("d1"), keys.idmap_v2("d1"), keys.idmap_expiry("d1"))
        write = BatchWrite(keys)
        write.begin("1-1")
        write.crosswalk(
            names,
            uid="old",
            entry='{"roles":{"student":"old"}}',
            deleted=True,
            now=1000,
            keep=DAY_MS,
        )
        write.begin("1-2")
        write.crosswalk(
            names,
            uid="new",
            entry='{"roles":{"student":"new"}}',
            deleted=False,
            now=2000,
            keep=DAY_MS,
        )
        assert await store.commit(write, b"lease") == 2
        reader = CrosswalkReader(redis_client, keys, keep_s=86400.0)
        assert (await reader.by_v3("d1", "old"), await reader.by_v2("d1", "old")) == (None, None)
        later = BatchWrite(keys)
        later.begin("1-3")
        now = 1000 + DAY_MS + 1
        later.crosswalk(
            names,
            uid="newer",
            entry='{"roles":{"student":"newer"}}',
            deleted=False,
            now=now,
            keep=DAY_MS,
        )
        assert await store.commit(later, b"lease") == 1
        held: Any = await redis_client.hkeys(names[0])
        assert (sorted(held), await redis_client.zcard(names[2])) == ([b"new", b"newer"], 0)
