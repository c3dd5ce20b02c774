"""``clever-relay sync``: fill a district's v2 read model from Clever's v3 Data API.

Clever's recommended initial sync (docs/clever-api.md, docs/v2-api.md): record the newest event id
(``ending_before=last&limit=1``), page through ``/v3.0/districts``, ``/schools``, ``/courses``,
``/terms``, ``/users`` and ``/sections`` (users before sections: sections need teacher legacy ids),
translate each record with :mod:`relay.translate.mapping`, and finally give the poller that event id
as its cursor if it has none, so every change after the sync's start reaches the read model as
events.

Resumable: each page is written together with its progress (``<base>:sync``: the recorded event
id, the next ``starting_after`` per record type, which types are done) in one MULTI, so a rerun
after a crash continues where it stopped. Idempotent: writes are puts by v2 id; objects the read
model holds that the sync did not see (deleted while the relay was away) are removed at the end.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from relay.clever.client import call_with_retries
from relay.clever.dataclient import DataClient
from relay.errors import ConfigError, PageTooLarge, RelayError, UntranslatableError
from relay.logs import get_logger
from relay.readmodel.crosswalk import CrosswalkWriter
from relay.readmodel.snapshots import seed_snapshots
from relay.readmodel.writer import Arg, ReadModelWriter, put_op, remove_op
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.translate import v2, v3
from relay.translate.ids import time_ms
from relay.translate.mapping import RECORD_MAPPERS, role_objects, section_teacher_refs

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from relay.config import Config, District

log = get_logger("sync")

ORDER = ("districts", "schools", "courses", "terms", "users", "sections")
"""Data API lists in sync order: users before sections (teacher ids)."""
V2_TYPES = ("districts", "schools", "courses", "terms", "sections", "students", "teachers")
V2_TYPES_ALL = (*V2_TYPES, "contacts", "districtadmins", "schooladmins")
PAGE_LIMIT = 10000
"""Clever's maximum page size: fewest requests against the 1200/min rate limit."""
REMOVE_CHUNK = 1000
NO_EVENTS = "-"
"""Recorded instead of an event id when the district's feed was empty at the start."""

_encoder = msgspec.json.Encoder()
_user_decoder = msgspec.json.Decoder(v3.User)
_section_decoder = msgspec.json.Decoder(v3.Section)


class SyncOutput(msgspec.Struct, frozen=True):
    """The v2 objects of one v3 record: ``(record type, JSON, v3 user id or None)``."""

    objects: list[tuple[str, bytes, str | None]]
    teacher_ids: dict[str, str]
    snapshot: tuple[str, int] | None = None
    """For users: the user id and the time the record reflects (``last_modified``, epoch ms;
    0 when absent), to seed the translator's snapshot with the raw record."""
    skipped_roles: list[str] = []
    """For users: why each role that cannot be translated was left out."""


def translate_record(record_type: str, raw: bytes, teacher_ids: dict[str, str]) -> SyncOutput:
    """The v2 objects of one Data API record (pure; raises msgspec/mapping errors).

    Section teachers missing from ``teacher_ids`` (not shared with the app) are left out rather
    than guessed.
    """
    if record_type == "users":
        user = _user_decoder.decode(raw)
        objects, failed = role_objects(user)
        teacher = objects.get("teachers")
        learned = {user.id: teacher.id} if isinstance(teacher, v2.Teacher) else {}
        encoded: list[tuple[str, bytes, str | None]] = [
            (rt, _encoder.encode(obj), user.id) for rt, obj in objects.items()
        ]
        modified = user.last_modified
        at = (time_ms(modified) if isinstance(modified, str) else None) or 0
        skipped = [str(exc) for exc in failed.values()]
        return SyncOutput(encoded, learned, (user.id, at), skipped)
    kind, mapper = RECORD_MAPPERS[record_type]
    record = msgspec.json.decode(raw, type=kind)
    if isinstance(record, v3.Section):
        record = _known_teachers(record, teacher_ids)
    return SyncOutput([(record_type, _encoder.encode(mapper(record, teacher_ids)), None)], {})


def _known_teachers(section: v3.Section, teacher_ids: dict[str, str]) -> v3.Section:
    changes: dict[str, Any] = {}
    if isinstance(section.teacher, str) and section.teacher not in teacher_ids:
        changes["teacher"] = None
    if isinstance(section.teachers, list):
        changes["teachers"] = [t for t in section.teachers if t in teacher_ids]
    return msgspec.structs.replace(section, **changes) if changes else section


class DistrictSync:
    """One district's sync: state in ``<base>:sync``, writes through :class:`ReadModelWriter`."""

    def __init__(
        self, *, cfg: Config, redis: aioredis.Redis, client: DataClient, district: str
    ) -> None:
        self.cfg = cfg
        self.redis = redis
        self.client = client
        self.district = district
        self.keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
        self.rk = self.keys.read_model(district)
        self.writer = ReadModelWriter(redis, maxlen=cfg.redis.legacy_maxlen)
        self.crosswalk = CrosswalkWriter(
            redis, self.keys, keep_s=cfg.v2api.idmap_deleted_retention_s
        )
        self.record_types = frozenset(cfg.legacy.record_types)
        self.counts: dict[str, int] = {}

    async def _retry(self, fn: Any) -> Any:
        return await call_with_retries(
            fn, district=self.district, max_backoff_s=self.cfg.clever.max_backoff_s
        )

    async def run(self, progress: Any = None) -> str | None:
        """Sync the district; returns the recorded event id (None if the feed was empty)."""
        stored: Any = await self.redis.hgetall(self.rk.sync)
        state = {k.decode(): v.decode() for k, v in stored.items()}
        event = state.get("event")
        if event is None:
            event = await self._retry(self.client.latest_event_id) or NO_EVENTS
            await self.redis.hset(self.rk.sync, "event", event)
        for record_type in ORDER:
            if state.get(f"done:{record_type}") is None:
                await self._sync_type(record_type, state.get(f"after:{record_type}"), progress)
        await self._remove_unseen()
        recorded = None if event == NO_EVENTS else event
        async with self.redis.pipeline(transaction=True) as pipe:
            if recorded is not None:
                _ = pipe.set(self.keys.cursor(self.district), recorded, nx=True)
            _ = pipe.delete(self.rk.sync, *(self.rk.sync_seen(rt) for rt in V2_TYPES_ALL))
            await pipe.execute()
        log.info("sync_done", district=self.district, event_id=recorded, objects=self.counts)
        return recorded

    async def _sync_type(self, record_type: str, after: str | None, progress: Any) -> None:
        params = {"limit": str(PAGE_LIMIT)}
        if after:
            params["starting_after"] = after
        task = progress.add_task(f"{self.district} {record_type}", total=None) if progress else None
        while True:
            query = dict(params)
            try:
                page = await self._retry(partial(self.client.list_page, record_type, query))
            except PageTooLarge:
                params["limit"] = str(max(1, int(params["limit"]) // 2))
                continue
            await self._write_page(record_type, page.records, page.next_params)
            if progress is not None:
                progress.update(task, advance=len(page.records))
            if not page.records or page.next_params is None:
                return
            params = {**page.next_params, "limit": params["limit"]}

    async def _teacher_ids(self, records: list[bytes]) -> dict[str, str]:
        refs: set[str] = set()
        for raw in records:
            try:
                refs.update(section_teacher_refs(_section_decoder.decode(raw)))
            except msgspec.DecodeError:
                continue
        if not refs:
            return {}
        wanted = sorted(refs)
        values: Any = await self.redis.hmget(self.keys.teachers(self.district), wanted)
        return {uid: v.decode() for uid, v in zip(wanted, values, strict=True) if v is not None}

    async def _write_page(
        self, record_type: str, records: list[bytes], next_params: dict[str, str] | None
    ) -> None:
        teacher_ids = await self._teacher_ids(records) if record_type == "sections" else {}
        ops: list[list[Arg]] = []
        seen: dict[str, list[str]] = {}
        learned: dict[str, str] = {}
        snapshots: list[tuple[str, bytes, int]] = []
        for raw in records:
            try:
                out = translate_record(record_type, raw, teacher_ids)
            except (msgspec.DecodeError, msgspec.ValidationError, UntranslatableError) as exc:
                log.warning(
                    "sync_record_skipped", district=self.district, type=record_type, error=str(exc)
                )
                continue
            learned.update(out.teacher_ids)
            if out.snapshot is not None:
                snapshots.append((out.snapshot[0], raw, out.snapshot[1]))
            for reason in out.skipped_roles:
                log.warning("sync_role_skipped", district=self.district, error=reason)
            for rt, obj, v3_id in out.objects:
                if rt not in self.record_types:
                    continue
                op = put_op(
                    prefix=self.keys.of(self.district).prefix,
                    district=self.district,
                    record_type=rt,
                    obj=obj,
                    v3_id=v3_id,
                )
                ops.append(op)
                seen.setdefault(rt, []).append(str(op[3]))
                self.counts[rt] = self.counts.get(rt, 0) + 1
        users = records if record_type == "users" else []
        await self._commit(
            record_type, ops, seen, learned, next_params, snapshots=snapshots, users=users
        )

    async def _commit(
        self,
        record_type: str,
        ops: list[list[Arg]],
        seen: dict[str, list[str]],
        learned: dict[str, str],
        next_params: dict[str, str] | None,
        *,
        snapshots: list[tuple[str, bytes, int]],
        users: list[bytes],
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            await seed_snapshots(pipe, self.keys.users(self.district), snapshots)
            await self.crosswalk.put(self.district, users, client=pipe)
            if ops:
                args: list[Arg] = [self.writer.maxlen]
                for op in ops:
                    args += op
                await self.writer.script(keys=[], args=args, client=pipe)
            for rt, ids in seen.items():
                _ = pipe.zadd(self.rk.sync_seen(rt), dict.fromkeys(ids, 0))
            if learned:
                _ = pipe.hset(
                    self.keys.teachers(self.district),
                    items=[x for kv in learned.items() for x in kv],
                )
            after = (next_params or {}).get("starting_after")
            if after and next_params is not None:
                _ = pipe.hset(self.rk.sync, f"after:{record_type}", after)
            else:
                _ = pipe.hset(self.rk.sync, f"done:{record_type}", "1")
            await pipe.execute()

    async def _remove_unseen(self) -> None:
        """Drop objects the read model holds but the Data API no longer lists."""
        for rt in V2_TYPES_ALL:
            if rt not in self.record_types:
                continue
            gone: Any = await self.redis.zdiff([self.rk.ids(rt), self.rk.sync_seen(rt)])
            for i in range(0, len(gone), REMOVE_CHUNK):
                chunk = gone[i : i + REMOVE_CHUNK]
                await self.writer.apply(
                    [
                        remove_op(
                            prefix=self.keys.of(self.district).prefix,
                            district=self.district,
                            record_type=rt,
                            v2_id=x.decode(),
                        )
                        for x in chunk
                    ]
                )
            if gone:
                log.info("sync_removed", district=self.district, type=rt, count=len(gone))


def _districts(cfg: Config, district: str | None) -> list[District]:
    chosen = [d for d in cfg.clever.districts if district is None or d.id == district]
    if district is not None and not chosen:
        known = ", ".join(d.id for d in cfg.clever.districts) or "none"
        raise ConfigError([f"--district: {district} is not configured (configured: {known})"])
    return chosen


def _progress(enabled: bool) -> AbstractContextManager[Any]:
    if not enabled or not sys.stderr.isatty():
        return nullcontext(None)
    from rich.progress import Progress

    return Progress(transient=False)


async def run_sync(cfg: Config, district: str | None, *, progress: bool) -> int:
    """Sync every configured district (or just ``district``); 0 when all succeeded, else 1.

    Raises:
        ConfigError: ``district`` is not configured, or a token cannot be read.
    """
    districts = _districts(cfg, district)
    tokens = {d.id: d.resolve_token() for d in districts}
    redis = create_redis(cfg.redis)
    failed = 0
    timeout = aiohttp.ClientTimeout(total=cfg.clever.request_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with _progress(progress) as bar:
                for d in districts:
                    client = DataClient(
                        session=session,
                        base_url=cfg.clever.base_url,
                        district=d.id,
                        token=tokens[d.id],
                        timeout_s=cfg.clever.request_timeout_s,
                        rate_limit_reserve=cfg.clever.rate_limit_reserve,
                        api_version=cfg.clever.api_version,
                    )
                    try:
                        await DistrictSync(cfg=cfg, redis=redis, client=client, district=d.id).run(
                            bar
                        )
                    except RelayError as exc:
                        failed += 1
                        log.warning("sync_failed", district=d.id, error=str(exc))
                        print(f"sync failed for district {d.id}: {exc}", file=sys.stderr)
    finally:
        await redis.aclose()
    return 1 if failed else 0
