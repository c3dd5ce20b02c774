"""Helpers shared by the translator tests: events on the stream, a reference model, waits.

The reference model (:func:`expected_streams`) replays the events-stream entries through the
pure rules (``relay.translate.rules``) in stream order, keeping the last user per id in a dict
and deriving legacy ids from the source entries; a translator is right when the legacy streams
equal what this model says, exactly once and in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import TYPE_CHECKING, Any, cast

from relay.config import Config, load_config
from relay.messages import CURSOR_LOST, EventMessage, encode, normalize
from relay.redis.keys import Keys
from relay.translate.ids import legacy_ids
from relay.translate.rules import (
    LEGACY_RECORD_TYPES,
    TeacherLookupNeeded,
    UntranslatableError,
    encode_legacy_event,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp
    import redis.asyncio as aioredis

    from relay.simulator import RunningSimulator

DISTRICT_A = "5a0c91b95c7cc000010d417c"
DISTRICT_B = "5a0c91b95c7cc000010d4200"
KEYS = Keys("t")
_ids = itertools.count(1)


def test_cfg(redis_url: str, **legacy: Any) -> Config:
    """A translator-only config on the test Redis (prefix ``t``), with ``[legacy]`` overrides."""
    return load_config(
        None,
        defaults={
            "relay": {"components": ["translator"]},
            "redis": {"url": redis_url, "prefix": "t"},
            "legacy": {"block_ms": 50, "lease_ttl_s": 1.0, **legacy},
            "clever": {
                "districts": [
                    {"id": DISTRICT_A, "token": "tok-a"},
                    {"id": DISTRICT_B, "token": "tok-b"},
                ]
            },
        },
        environ={},
    )


test_cfg.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def object_id(n: int) -> str:
    """A 24-hex id built from a number (readable in failures)."""
    return f"{n:024x}"


def user(
    uid: str, district: str, *, roles: dict[str, Any], email: str = "a@example.com"
) -> dict[str, Any]:
    """A v3 user with the given roles."""
    return {
        "id": uid,
        "district": district,
        "email": email,
        "name": {"first": "Ada", "last": "Lovelace"},
        "created": "2024-01-01T00:00:00.000Z",
        "last_modified": "2024-01-01T00:00:00.000Z",
        "roles": roles,
    }


def student(uid: str, district: str, **kw: Any) -> dict[str, Any]:
    """A student-only user."""
    return user(
        uid,
        district,
        roles={"student": {"sis_id": "s-" + uid[-4:], "school": "sch1", "schools": ["sch1"]}},
        **kw,
    )


def teacher(uid: str, district: str, legacy: str, **kw: Any) -> dict[str, Any]:
    """A teacher-only user with a legacy id."""
    roles = {"teacher": {"legacy_id": legacy, "school": "sch1", "schools": ["sch1"]}}
    return user(uid, district, roles=roles, **kw)


def section(sid: str, district: str, teachers: list[str]) -> dict[str, Any]:
    """A v3 section naming v3 teacher user ids."""
    return {
        "id": sid,
        "district": district,
        "name": "Algebra",
        "school": "sch1",
        "teacher": teachers[0],
        "teachers": teachers,
        "students": [],
    }


def event(
    type_: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A raw Clever event with a fresh id."""
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": object_id(0xE0000000 + next(_ids)),
        "type": type_,
        "created": "2024-05-01T10:00:00.000Z",
        "data": data,
    }


async def publish(redis: aioredis.Redis, district: str, events: list[dict[str, Any]]) -> list[str]:
    """XADD events the way the poller does (fields id/type/district/data); returns stream ids."""
    ids: list[str] = []
    async with redis.pipeline(transaction=False) as pipe:
        for raw in events:
            msg = normalize(json.dumps(raw).encode(), district)
            _ = pipe.xadd(
                KEYS.events,
                {"id": msg.id, "type": msg.type, "district": district, "data": encode(msg)},
            )
        ids.extend(reply.decode() for reply in await pipe.execute())
    return ids


async def publish_raw(redis: aioredis.Redis, items: list[tuple[str, bytes]]) -> None:
    """XADD raw Clever events (district, JSON) normalized the way the poller does."""
    async with redis.pipeline(transaction=False) as pipe:
        for district, raw in items:
            msg = normalize(raw, district)
            _ = pipe.xadd(
                KEYS.events,
                {"id": msg.id, "type": msg.type, "district": district, "data": encode(msg)},
            )
        await pipe.execute()


async def publish_control(redis: aioredis.Redis, district: str) -> str:
    """XADD a ``relay.cursor_lost`` control entry."""
    data = json.dumps(
        {"type": CURSOR_LOST, "district": district, "created": "", "reason": "gone", "cursor": "x"}
    )
    reply = await redis.xadd(KEYS.events, {"type": CURSOR_LOST, "district": district, "data": data})
    return str(reply.decode() if isinstance(reply, bytes) else reply)


def expected_streams(
    entries: list[tuple[str, EventMessage]],
    *,
    teacher_ids: dict[str, dict[str, str]] | None = None,
    record_types: frozenset[str] = frozenset(LEGACY_RECORD_TYPES),
    partition: int = 0,
) -> dict[str, list[dict[str, str]]]:
    """What every legacy stream must hold after translating ``entries`` (the reference model)
    of partition ``partition``."""
    snapshots: dict[tuple[str, str], bytes | None] = {}
    teachers = {d: dict(m) for d, m in (teacher_ids or {}).items()}
    streams: dict[str, list[dict[str, str]]] = {}
    for stream_id, msg in entries:
        uid = json.loads(bytes(msg.object))["id"] if msg.record_type == "users" else None
        try:
            tr = translate(
                msg,
                previous_user=snapshots.get((msg.district, uid)) if uid else None,
                teacher_legacy_ids=teachers.setdefault(msg.district, {}),
                record_types=record_types,
            )
        except (UntranslatableError, TeacherLookupNeeded):
            continue
        for k, out in enumerate(tr.events):
            lid = legacy_ids(stream_id, k + 1, partition)[k]
            streams.setdefault(out.record_type, []).append(
                {
                    "id": lid,
                    "type": out.type,
                    "district": msg.district,
                    "source": msg.id,
                    "data": encode_legacy_event(out, lid, msg.created).decode(),
                }
            )
        if uid and tr.delete_snapshot:
            snapshots[(msg.district, uid)] = None
        elif uid and tr.user_snapshot is not None:
            snapshots[(msg.district, uid)] = bytes(tr.user_snapshot)
        teachers[msg.district].update(tr.teacher_ids)
    return streams


async def raw_range(
    redis: aioredis.Redis,
    key: str,
    start: str = "-",
    end: str = "+",
    *,
    reverse: bool = False,
    count: int | None = None,
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XRANGE (or XREVRANGE) with the byte types the relay's clients return."""
    if reverse:
        reply: Any = await redis.xrevrange(key, end, start, count=count)
    else:
        reply = await redis.xrange(key, start, end, count=count)
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", reply)


async def stream_entries(redis: aioredis.Redis, key: str) -> list[dict[str, str]]:
    """Every entry's fields of a stream, decoded, in order."""
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in await raw_range(redis, key)
    ]


async def legacy_streams(
    redis: aioredis.Redis, keys: Keys = KEYS
) -> dict[str, list[dict[str, str]]]:
    """Every non-empty legacy stream's entries (of one partition's ``keys``)."""
    result: dict[str, list[dict[str, str]]] = {}
    for record_type in LEGACY_RECORD_TYPES:
        entries = await stream_entries(redis, keys.legacy(record_type))
        if entries:
            result[record_type] = entries
    return result


async def messages_of(redis: aioredis.Redis, keys: Keys = KEYS) -> list[tuple[str, EventMessage]]:
    """The events stream's (stream id, message) pairs, control entries left out."""
    import msgspec

    decoder = msgspec.json.Decoder(EventMessage)
    out = []
    for sid, fields in await raw_range(redis, keys.events):
        if fields.get(b"type") != CURSOR_LOST.encode():
            out.append((sid.decode(), decoder.decode(fields[b"data"])))
    return out


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def drained(
    redis: aioredis.Redis, group: str = "legacy-translator", keys: Keys = KEYS
) -> bool:
    """True once the group has delivered and acknowledged every entry of the events stream and
    no entry is held back."""
    try:
        groups = await redis.xinfo_groups(keys.events)
    except Exception:
        return False
    for info in groups:
        if info["name"].decode() == group:
            last = await raw_range(redis, keys.events, reverse=True, count=1)
            top = last[0][0] if last else b"0-0"
            if info["pending"] != 0 or info["last-delivered-id"] != top:
                return False
            return not await redis.exists(keys.translator_held)
    return False


async def teacher_ids_from_clever(
    messages: list[tuple[str, EventMessage]],
    sim: RunningSimulator,
    session: aiohttp.ClientSession,
) -> dict[str, dict[str, str]]:
    """The teacher legacy id of every user a section names, asked of the simulator's Data API."""
    from relay.clever.client import CleverClient
    from relay.errors import CleverNotFound
    from relay.translate.rules import section_teacher_user_ids
    from relay.translator.lookup import teacher_legacy_id

    result: dict[str, dict[str, str]] = {}
    for _, msg in messages:
        for uid in section_teacher_user_ids(msg):
            known = result.setdefault(msg.district, {})
            if uid in known:
                continue
            client = CleverClient(
                session=session,
                base_url=sim.base_url,
                district=msg.district,
                token=sim.world.district(msg.district).token,
                timeout_s=10,
            )
            try:
                legacy = teacher_legacy_id(await client.get_user(uid))
            except CleverNotFound:
                continue
            if legacy is not None:
                known[uid] = legacy
    return result
