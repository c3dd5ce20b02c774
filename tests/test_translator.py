"""The translator consumer against a real Redis: entries written straight to the events stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from relay.errors import CleverError, StreamIdError
from relay.errors import TranslatorFencedError as Fenced
from relay.health import Health
from relay.messages import encode, normalize
from relay.metrics import REGISTRY
from relay.translate.ids import legacy_id, stream_id_of
from relay.translator.consumer import Translator
from relay.translator.group import NEW, PENDING, Entry, GroupReader
from relay.translator.lookup import TeacherLookup
from relay.translator.store import FENCED, BatchWrite, Store
from tests.test_translator_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    KEYS,
    drained,
    event,
    eventually,
    expected_streams,
    legacy_streams,
    messages_of,
    object_id,
    publish,
    publish_control,
    raw_range,
    section,
    stream_entries,
    student,
    teacher,
    test_cfg,
    user,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from redis.typing import EncodableT, FieldT

    from relay.config import Config
    from tests.redis_server import RedisServer


class FakeClever:
    """A ``UserFetcher`` serving users from a dict, failing the first ``failures`` calls."""

    def __init__(self, users: dict[str, dict[str, Any]], *, failures: int = 0) -> None:
        self.users = users
        self.failures = failures
        self.calls: list[str] = []

    async def get_user(self, user_id: str) -> bytes:
        """The user's JSON, or a transient CleverError while failures remain."""
        self.calls.append(user_id)
        if self.failures:
            self.failures -= 1
            raise CleverError("5xx", "Clever answered 503")
        return json.dumps(self.users[user_id]).encode()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session the translators share (closed after the test)."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def make(redis_client: aioredis.Redis, session: aiohttp.ClientSession) -> Callable[..., Translator]:
    """Build translators on the test Redis, optionally with a fake Clever for look-ups."""

    def build(cfg: Config, *, name: str = "t1", clever: FakeClever | None = None) -> Translator:
        lookup = TeacherLookup(
            cfg=cfg, session=session, fetcher_factory=(lambda _district: clever) if clever else None
        )
        return Translator(
            cfg=cfg,
            redis=redis_client,
            session=session,
            health=Health(),
            keys=KEYS,
            consumer_name=name,
            retry_base_s=0.05,
            lookup=lookup,
        )

    return build


@contextlib.asynccontextmanager
async def running(translator: Translator) -> AsyncIterator[asyncio.Event]:
    """Run a translator in the background; stop it (and wait) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(translator.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def sample_events(n_users: int, district: str) -> list[dict[str, Any]]:
    """Users created, updated (email change) and some deleted, interleaved."""
    events: list[dict[str, Any]] = []
    for i in range(n_users):
        uid = object_id(0xA000 + i + (0x100000 if district == DISTRICT_B else 0))
        roles: dict[str, Any] = {
            "student": {"sis_id": f"s{i}", "school": "sch1", "schools": ["sch1"]}
        }
        if i % 3 == 0:
            roles["teacher"] = {
                "legacy_id": object_id(0xB000 + i),
                "school": "sch1",
                "schools": ["sch1"],
            }
        events.append(event("users.created", user(uid, district, roles=roles)))
        events.append(
            event("users.updated", user(uid, district, roles=roles, email=f"new{i}@example.com"))
        )
        if i % 4 == 0:
            events.append(
                event(
                    "users.deleted", user(uid, district, roles=roles, email=f"new{i}@example.com")
                )
            )
    return events


class TestLegacyIds:
    """Legacy ids derived from the source stream entry."""

    def test_legacy_id_layout_and_order(self) -> None:
        """Ids are ObjectId-shaped: entry seconds (8), entry ms (3), seq (9), index (4)."""
        ids = [
            legacy_id("1700000000000-0", 0),
            legacy_id("1700000000000-0", 1),
            legacy_id("1700000000000-1", 0),
            legacy_id("1700000000001-0", 0),
        ]
        assert ids == [
            "6553f1000000000000000000",
            "6553f1000000000000000001",
            "6553f1000000000000010000",
            "6553f1000010000000000000",
        ]
        assert stream_id_of(ids[2]) == ("1700000000000-1", 0)

    def test_legacy_ids_sort_above_real_clever_v2_ids(self) -> None:
        """Read as ObjectIds they date from the entry's second, above a 2025 Clever v2 id."""
        clever_2025 = "67d3f65d8e2a4c0012345678"
        relay = legacy_id("1764633600000-0", 0)
        assert (relay, int(relay[:8], 16), relay > clever_2025) == (
            "692e2c000000000000000000",
            1764633600,
            True,
        )

    def test_legacy_id_rejects_overflow(self) -> None:
        """A sequence beyond 36 bits cannot become a legacy id silently colliding with another."""
        with pytest.raises(StreamIdError):
            legacy_id(f"1-{2**36}", 0)


class TestTranslator:
    """Translating entries of the events stream into the legacy streams."""

    async def test_translator_writes_legacy_events_in_order(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """Creates, updates, deletes of two districts become exactly the model's legacy events."""
        cfg = test_cfg(redis_url)
        await publish(redis_client, DISTRICT_A, sample_events(20, DISTRICT_A))
        await publish(redis_client, DISTRICT_B, sample_events(10, DISTRICT_B))
        translator = make(cfg)
        async with running(translator):
            await eventually(lambda: drained(redis_client), what="group drained")
        streams = await legacy_streams(redis_client)
        assert streams == expected_streams(await messages_of(redis_client))
        assert sorted(streams) == ["students", "teachers"]
        top = (await raw_range(redis_client, KEYS.events, reverse=True))[0][0]
        assert await redis_client.get(KEYS.translator_position) == top
        snapshot = await redis_client.hget(KEYS.users(DISTRICT_A), object_id(0xA001))
        assert snapshot is not None
        assert json.loads(snapshot)["email"] == "new1@example.com"
        assert await redis_client.hexists(KEYS.users(DISTRICT_A), object_id(0xA000)) is False
        assert (
            await redis_client.hget(f"t:teachers:{DISTRICT_A}", object_id(0xA003))
            == object_id(0xB003).encode()
        )

    async def test_translator_one_entry_batches_use_the_in_flight_write(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """With batches of one, each update is diffed against the previous batch's snapshot."""
        cfg = test_cfg(redis_url, batch_size=1)
        await publish(redis_client, DISTRICT_A, sample_events(20, DISTRICT_A))
        async with running(make(cfg)):
            await eventually(lambda: drained(redis_client), what="group drained")
        assert await legacy_streams(redis_client) == expected_streams(
            await messages_of(redis_client)
        )

    async def test_translator_forced_redelivery_writes_nothing_twice(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """Rewinding the group to 0 re-delivers every entry; the legacy streams do not change."""
        cfg = test_cfg(redis_url)
        await publish(redis_client, DISTRICT_A, sample_events(12, DISTRICT_A))
        async with running(make(cfg)):
            await eventually(lambda: drained(redis_client), what="first pass")
        before = await legacy_streams(redis_client)
        await redis_client.xgroup_setid(KEYS.events, cfg.legacy.group, "0")
        async with running(make(cfg, name="t2")):
            await eventually(lambda: drained(redis_client), what="re-delivery drained")
        assert await legacy_streams(redis_client) == before
        assert before == expected_streams(await messages_of(redis_client))

    async def test_translator_takes_over_entries_pending_with_a_dead_consumer(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """Entries a crashed consumer never acknowledged are translated once, before newer ones."""
        cfg = test_cfg(redis_url, claim_idle_ms=600_000)
        await publish(redis_client, DISTRICT_A, sample_events(6, DISTRICT_A))
        await redis_client.xgroup_create(KEYS.events, cfg.legacy.group, id="0")
        await redis_client.xreadgroup(cfg.legacy.group, "crashed", {KEYS.events: ">"}, count=5)
        await publish(redis_client, DISTRICT_A, sample_events(3, DISTRICT_A))
        async with running(make(cfg)):
            await eventually(lambda: drained(redis_client), what="drained")
        assert await legacy_streams(redis_client) == expected_streams(
            await messages_of(redis_client)
        )
        assert await redis_client.xpending(KEYS.events, cfg.legacy.group) == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }

    async def test_translator_recreates_a_lost_group_without_duplicates(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """After XGROUP DESTROY (NOGROUP) the group is re-created; nothing is written twice."""
        cfg = test_cfg(redis_url)
        await publish(redis_client, DISTRICT_A, sample_events(8, DISTRICT_A))
        translator = make(cfg)
        async with running(translator):
            await eventually(lambda: drained(redis_client), what="first pass")
            await redis_client.xgroup_destroy(KEYS.events, cfg.legacy.group)
            await publish(redis_client, DISTRICT_B, sample_events(5, DISTRICT_B))
            await eventually(lambda: drained(redis_client), what="after NOGROUP")
        assert await legacy_streams(redis_client) == expected_streams(
            await messages_of(redis_client)
        )

    async def test_translator_rereads_its_pending_entries_after_a_redis_outage(
        self, redis_factory: Callable[..., RedisServer], session: aiohttp.ClientSession
    ) -> None:
        """Entries delivered to the translator but never returned are translated after an outage."""
        server = redis_factory(aof=True)
        client = aioredis.Redis.from_url(server.url)
        writer = aioredis.Redis.from_url(server.url)
        cfg = test_cfg(server.url, lease_ttl_s=30.0, claim_idle_ms=600_000)
        lookup = TeacherLookup(cfg=cfg, session=session)
        translator = Translator(
            cfg=cfg,
            redis=client,
            session=session,
            health=Health(),
            keys=KEYS,
            consumer_name="t1",
            retry_base_s=0.05,
            lookup=lookup,
        )
        try:
            async with running(translator):
                await publish(writer, DISTRICT_A, sample_events(4, DISTRICT_A))
                await eventually(lambda: drained(writer), what="first pass")
                # What a lost XREADGROUP reply (or a dropped read-ahead batch) leaves behind:
                # entries delivered to this consumer that it never got. Atomic, so the
                # translator cannot read them first.
                async with writer.pipeline(transaction=True) as pipe:
                    for raw in sample_events(3, DISTRICT_A):
                        _ = pipe.xadd(KEYS.events, _entry(raw, DISTRICT_A))
                    _ = pipe.xreadgroup(cfg.legacy.group, "t1", {KEYS.events: ">"})
                    await pipe.execute()
                errors = _reconnects()
                server.kill()
                await eventually(lambda: _more(errors), what="translator saw the outage")
                server.start()
                await writer.connection_pool.disconnect()
                await publish(writer, DISTRICT_B, sample_events(2, DISTRICT_B))
                await eventually(lambda: drained(writer), what="drained after the outage")
            assert await legacy_streams(writer) == expected_streams(await messages_of(writer))
        finally:
            await client.aclose()
            await writer.aclose()

    async def test_translator_survives_redis_refusing_writes(
        self, redis_factory: Callable[..., RedisServer], session: aiohttp.ClientSession
    ) -> None:
        """Redis out of memory (noeviction) makes the translator wait, not crash; none is lost."""
        server = redis_factory(extra=["--maxmemory-policy", "noeviction"])
        client = aioredis.Redis.from_url(server.url)
        translator = Translator(
            cfg=test_cfg(server.url),
            redis=client,
            session=session,
            health=Health(),
            keys=KEYS,
            consumer_name="t1",
            retry_base_s=0.05,
        )
        try:
            async with running(translator):
                await eventually(lambda: _is(translator, "active"), what="active")
                async with client.pipeline(transaction=True) as pipe:
                    for raw in sample_events(2, DISTRICT_A):
                        _ = pipe.xadd(KEYS.events, _entry(raw, DISTRICT_A))
                    _ = pipe.config_set("maxmemory", 1)
                    await pipe.execute()
                await eventually(lambda: _refused(client), what="a write refused with OOM")
                await client.config_set("maxmemory", 0)
                await publish(client, DISTRICT_A, sample_events(3, DISTRICT_A))
                await eventually(lambda: drained(client), what="drained")
            assert await legacy_streams(client) == expected_streams(await messages_of(client))
        finally:
            await client.aclose()

    async def test_translator_dead_letters_untranslatable_and_skips_control(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """Unknown record types are dead-lettered; cursor_lost entries and resources are skipped."""
        cfg = test_cfg(redis_url)
        bad = event("widgets.created", {"id": object_id(7), "district": DISTRICT_A})
        skipped = event("resources.created", {"id": object_id(8), "district": DISTRICT_A})
        good = event("users.created", student(object_id(9), DISTRICT_A))
        [bad_id] = await publish(redis_client, DISTRICT_A, [bad])
        await publish_control(redis_client, DISTRICT_A)
        await publish(redis_client, DISTRICT_A, [skipped, good])
        async with running(make(cfg)):
            await eventually(lambda: drained(redis_client), what="drained")
        [letter] = await stream_entries(redis_client, KEYS.deadletter)
        data = (await raw_range(redis_client, KEYS.events, bad_id, bad_id))[0][1][b"data"].decode()
        assert letter == {
            "stage": "translator",
            "reason": "unknown_record_type",
            "detail": "unknown_record_type: no v2 equivalent known for widgets.created",
            "district": DISTRICT_A,
            "source": bad["id"],
            "entry": bad_id,
            "data": data,
        }
        assert [e["type"] for e in (await legacy_streams(redis_client))["students"]] == [
            "students.created"
        ]

    async def test_translator_marks_a_one_role_dead_letter_partial(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A teacher role lacking legacy_id is dead-lettered alone (partial); staff goes out."""
        cfg = test_cfg(redis_url)
        roles = {
            "teacher": {"school": "sch1", "schools": ["sch1"]},
            "staff": {"legacy_id": object_id(0x9999), "schools": ["sch1"]},
        }
        raw = event("users.created", user(object_id(0x9001), DISTRICT_A, roles=roles))
        [sid] = await publish(redis_client, DISTRICT_A, [raw])
        async with running(make(cfg)):
            await eventually(lambda: drained(redis_client), what="drained")
        [letter] = await stream_entries(redis_client, KEYS.deadletter)
        streams = await legacy_streams(redis_client)
        assert (letter["reason"], letter["entry"], letter["partial"]) == (
            "missing_legacy_id",
            sid,
            "1",
        )
        assert {rt: [e["type"] for e in evs] for rt, evs in streams.items()} == {
            "schooladmins": ["schooladmins.created"]
        }

    async def test_translator_section_waits_for_a_failed_teacher_lookup(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A section whose teacher look-up fails waits, then goes out with the right id in order."""
        cfg = test_cfg(redis_url, max_deliveries=5)
        tuid = object_id(0x7001)
        clever = FakeClever({tuid: teacher(tuid, DISTRICT_A, object_id(0x7777))}, failures=2)
        await publish(
            redis_client,
            DISTRICT_A,
            [
                event("sections.created", section(object_id(0x5001), DISTRICT_A, [tuid])),
                event("users.created", student(object_id(0x5002), DISTRICT_A)),
            ],
        )
        async with running(make(cfg, clever=clever)):
            await eventually(lambda: drained(redis_client), what="drained")
        assert clever.calls == [tuid, tuid, tuid]
        streams = await legacy_streams(redis_client)
        assert streams == expected_streams(
            await messages_of(redis_client), teacher_ids={DISTRICT_A: {tuid: object_id(0x7777)}}
        )
        assert json.loads(streams["sections"][0]["data"])["data"]["object"]["teachers"] == [
            object_id(0x7777)
        ]
        assert (
            await redis_client.hget(f"t:teachers:{DISTRICT_A}", tuid) == object_id(0x7777).encode()
        )

    async def test_translator_keeps_its_lease_while_waiting_to_retry(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A retry wait longer than the lease TTL renews the lease: no takeover, one fence."""
        cfg = test_cfg(redis_url, lease_ttl_s=0.6, max_deliveries=5)
        tuid = object_id(0x7005)
        clever = FakeClever({tuid: teacher(tuid, DISTRICT_A, object_id(0x7555))}, failures=2)
        await publish(
            redis_client,
            DISTRICT_A,
            [event("sections.created", section(object_id(0x5008), DISTRICT_A, [tuid]))],
        )
        translator = make(cfg, clever=clever)
        translator.holds.base_s, translator.holds.cap_s = 0.8, 0.9  # each wait > TTL
        async with running(translator):
            await eventually(lambda: drained(redis_client), what="drained")
            assert translator.lease.fence == 1
        assert clever.calls == [tuid] * 3

    async def test_translator_dead_letters_after_max_deliveries(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A section whose look-up keeps failing is dead-lettered after max_deliveries."""
        cfg = test_cfg(redis_url, max_deliveries=2)
        tuid = object_id(0x7002)
        clever = FakeClever({}, failures=1000)
        await publish(
            redis_client,
            DISTRICT_A,
            [
                event("sections.created", section(object_id(0x5003), DISTRICT_A, [tuid])),
                event("users.created", student(object_id(0x5004), DISTRICT_A)),
            ],
        )
        async with running(make(cfg, clever=clever)):
            await eventually(lambda: drained(redis_client), what="drained")
        [letter] = await stream_entries(redis_client, KEYS.deadletter)
        assert (letter["reason"], letter["detail"]) == (
            "max_deliveries",
            "delivered 3 times without success",
        )
        assert list(await legacy_streams(redis_client)) == ["students"]

    async def test_translator_disabled_sections_cost_no_lookup(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """With sections left out of record_types, a section's unknown teacher is not looked up."""
        cfg = test_cfg(redis_url, record_types=["students"])
        tuid = object_id(0x7004)
        clever = FakeClever({tuid: teacher(tuid, DISTRICT_A, object_id(0x7444))})
        await publish(
            redis_client,
            DISTRICT_A,
            [
                event("sections.created", section(object_id(0x5006), DISTRICT_A, [tuid])),
                event("users.created", student(object_id(0x5007), DISTRICT_A)),
            ],
        )
        async with running(make(cfg, clever=clever)):
            await eventually(lambda: drained(redis_client), what="drained")
        assert clever.calls == []
        assert await legacy_streams(redis_client) == expected_streams(
            await messages_of(redis_client), record_types=frozenset({"students"})
        )

    async def test_translator_known_teacher_needs_no_lookup(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """A teacher created earlier in the same batch maps a section without calling Clever."""
        cfg = test_cfg(redis_url)
        tuid = object_id(0x7003)
        clever = FakeClever({})
        await publish(
            redis_client,
            DISTRICT_A,
            [
                event("users.created", teacher(tuid, DISTRICT_A, object_id(0x7333))),
                event("sections.created", section(object_id(0x5005), DISTRICT_A, [tuid])),
            ],
        )
        async with running(make(cfg, clever=clever)):
            await eventually(lambda: drained(redis_client), what="drained")
        assert clever.calls == []
        assert await legacy_streams(redis_client) == expected_streams(
            await messages_of(redis_client)
        )


class TestTranslatorLease:
    """One active translator at a time, and fencing of an ex-holder."""

    async def test_two_translators_produce_what_one_does(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """Two translators: one is active, the output equals the model, the standby takes over."""
        cfg = test_cfg(redis_url, batch_size=7)
        first, second = make(cfg, name="one"), make(cfg, name="two")
        async with running(first) as stop_first, running(second) as stop_second:
            for i in range(4):
                district = DISTRICT_A if i % 2 else DISTRICT_B
                await publish(redis_client, district, sample_events(5, district))
            await eventually(lambda: drained(redis_client), what="drained")
            assert sorted([first.role, second.role]) == ["active", "standby"]
            active, standby = (first, second) if first.role == "active" else (second, first)
            (stop_first if active is first else stop_second).set()
            await eventually(lambda: _is(standby, "active"), what="takeover")
            await publish(redis_client, DISTRICT_A, sample_events(4, DISTRICT_A))
            await eventually(lambda: drained(redis_client), what="drained after takeover")
        assert await legacy_streams(redis_client) == expected_streams(
            await messages_of(redis_client)
        )

    async def test_fenced_ex_holder_writes_nothing(
        self, redis_client: aioredis.Redis, redis_url: str, make: Callable[..., Translator]
    ) -> None:
        """When another process takes the lease, the old holder reads nothing and stands by."""
        cfg = test_cfg(redis_url, lease_ttl_s=30.0)
        translator = make(cfg)
        async with running(translator):
            await eventually(lambda: _is(translator, "active"), what="active")
            await redis_client.set(KEYS.translator_lease, b"99:intruder")
            await publish(redis_client, DISTRICT_A, sample_events(2, DISTRICT_A))
            await eventually(lambda: _is(translator, "standby"), what="standby")
        assert await legacy_streams(redis_client) == {}
        assert await redis_client.get(KEYS.translator_lease) == b"99:intruder"


async def _is(translator: Translator, role: str) -> bool:
    return translator.role == role


def _entry(raw: dict[str, Any], district: str) -> dict[FieldT, EncodableT]:
    """The events-stream fields the poller writes for one raw Clever event."""
    msg = normalize(json.dumps(raw).encode(), district)
    return {"id": msg.id, "type": msg.type, "district": district, "data": encode(msg)}


def _reconnects() -> float:
    return (
        REGISTRY.get_sample_value(
            "clever_relay_redis_reconnects_total", {"component": "translator"}
        )
        or 0.0
    )


async def _more(than: float) -> bool:
    return _reconnects() > than


async def _refused(redis: aioredis.Redis) -> bool:
    stats: dict[str, Any] = await redis.info("errorstats")
    return "errorstat_OOM" in stats


class TestGroupReader:
    """The fenced XREADGROUP of the translator's consumer group."""

    async def test_group_reader_read_is_fenced_and_exact(
        self, redis_client: aioredis.Redis
    ) -> None:
        """A wrong lease value reads nothing; the right one gets exact fields, None if trimmed."""
        reader = GroupReader(
            redis_client,
            stream=KEYS.events,
            lease_key=KEYS.translator_lease,
            group="g",
            consumer="c",
        )
        await reader.ensure_group("0")
        first = _text(await redis_client.xadd(KEYS.events, {"type": "t", "data": b"\xff{}"}))
        second = _text(await redis_client.xadd(KEYS.events, {"type": "u"}))
        await redis_client.set(KEYS.translator_lease, b"1:me")
        with pytest.raises(Fenced):
            await reader.read(b"2:other", NEW, 10)
        assert (await redis_client.xpending(KEYS.events, "g"))["pending"] == 0
        entries = await reader.read(b"1:me", NEW, 10)
        assert entries == [
            Entry(first, {b"type": b"t", b"data": b"\xff{}"}),
            Entry(second, {b"type": b"u"}),
        ]
        await redis_client.xdel(KEYS.events, first)
        assert await reader.read(b"1:me", PENDING, 10) == [
            Entry(first, None),
            Entry(second, {b"type": b"u"}),
        ]

    async def test_group_reader_read_on_a_dead_connection_is_a_connection_error(
        self, redis_factory: Callable[..., RedisServer]
    ) -> None:
        """Redis dying under the WATCH is a connection error (retried), not a fence or a crash."""
        server = redis_factory()
        client, probe = aioredis.Redis.from_url(server.url), aioredis.Redis.from_url(server.url)
        try:
            reader = GroupReader(
                client, stream=KEYS.events, lease_key=KEYS.translator_lease, group="g", consumer="c"
            )
            await reader.ensure_group("0")
            await client.set(KEYS.translator_lease, b"1:me")
            # XREADGROUP is a write: its EXEC waits, with the lease watched, until Redis dies.
            await probe.client_pause(5000, all=False)
            read = asyncio.create_task(reader.read(b"1:me", NEW, 10))
            await eventually(lambda: _in_multi_and_blocked(probe), what="read waiting")
            server.kill()
            with pytest.raises(RedisConnectionError):
                await read
        finally:
            await client.aclose()
            await probe.aclose()


async def _in_multi_and_blocked(redis: aioredis.Redis) -> bool:
    clients: list[dict[str, Any]] = await redis.client_list()
    return any(client["flags"] == "xb" for client in clients)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class TestStore:
    """The translator's atomic batch write."""

    async def test_store_commit_survives_a_flushed_script_cache(
        self, redis_client: aioredis.Redis
    ) -> None:
        """After SCRIPT FLUSH the commit reloads its script and applies the batch once."""
        store = Store(redis_client, KEYS, group="g", legacy_maxlen=100, deadletter_maxlen=100)
        await redis_client.set(KEYS.translator_lease, b"1:me")
        await redis_client.script_flush()
        write = BatchWrite(KEYS)
        write.begin("5-1")
        write.put_teacher(DISTRICT_A, "u1", "t1")
        write.command("HSET", f"{KEYS.prefix}:extra", "f", b"\xffv")
        assert await store.commit(write, b"1:me") == 1
        assert await store.commit(write, b"1:me") == 0
        assert await store.commit(write, b"2:other") == FENCED
        assert await redis_client.hgetall(f"{KEYS.prefix}:teachers:{DISTRICT_A}") == {b"u1": b"t1"}
        assert await redis_client.hgetall(f"{KEYS.prefix}:extra") == {b"f": b"\xffv"}
        assert await redis_client.get(KEYS.translator_position) == b"5-1"
