"""What the relay is doing, read from Redis: the ``/status`` report and scrape-time gauges.

Everything here is read fresh from Redis on each request (bounded by a short timeout), because
``/status`` and ``/metrics`` must tell the truth about the whole deployment, not about what this
replica last happened to write: the poller of a district may run in another pod. When Redis does
not answer, the report still comes back, with ``redis.reachable`` false and the Redis-derived
parts empty, and ``/metrics`` still answers with ``clever_relay_redis_up 0``.

At fleet scale (thousands of districts) the report summarizes: counts of healthy, unhealthy
and unknown districts, the worst :data:`WORST_SHOWN` by health and lag in full, and any single
district in full on request (``/status?district=<id>``). A scrape reads only what the gauges
need (two commands per district, not three).

Tokens never appear here: a district is shown by id only (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import Gauge
from redis.exceptions import RedisError, ResponseError

from relay import __version__
from relay.messages import lag_s_since
from relay.metrics import (
    DISTRICT_LAG,
    DISTRICT_LAG_MAX,
    REGISTRY,
    TRANSLATOR_LAG,
    TRANSLATOR_PENDING,
    per_district,
)
from relay.poller.district_leases import lease_holder
from relay.poller.fleet.registry import describe, discovered_districts
from relay.redis.keys import Keys
from relay.redis.replies import decoded, float_or_none
from relay.translator.group import group_lag

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.health import Health

REDIS_TIMEOUT_S = 1.0
WORST_SHOWN = 20
"""Districts shown in full in ``/status`` (unhealthy first, then by lag)."""

STREAM_LENGTH = Gauge(
    "clever_relay_stream_length",
    "Entries in a relay stream (XLEN), read at scrape time: events, deadletter, legacy:<type>.",
    ["stream"],
    registry=REGISTRY,
)
REDIS_UP = Gauge(
    "clever_relay_redis_up",
    "1 when Redis answered the scrape-time queries, 0 when it did not.",
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "clever_relay_build_info",
    "Always 1; the label carries the running version.",
    ["version"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__).set(1)


class DistrictStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One district as the poller last recorded it (hash ``<p>:pollstate:<d>``) and its cursor."""

    id: str
    cursor: str | None
    healthy: bool | None
    """``None`` until the poller has recorded anything for this district."""
    last_success: float | None
    """Unix seconds of the last successful poll."""
    last_error: str | None
    last_error_at: float | None
    newest_created: str | None
    """Clever's ``created`` of the newest event published for this district."""
    lag_s: float | None
    """Now minus ``newest_created``, in seconds."""
    source: str = "static"
    """``static`` (``[[clever.districts]]``) or ``discovered`` (docs/fleet.md)."""
    phase: str = "polling"
    """``onboarding``, ``polling``, ``unauthorized`` or ``removed``."""
    onboarding: dict[str, Any] | None = None
    """Discovered districts onboarded by sync: v2 objects written and whether it is done."""


class DistrictSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts over every configured district, and how many ``districts`` shows in full."""

    total: int
    healthy: int
    unhealthy: int
    unknown: int
    """No poller has recorded anything for these yet."""
    shown: int
    lag_max_s: float | None
    leases_by_replica: dict[str, int]
    """Replica (instance name) → how many district leases it holds."""


class DistrictDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One district in full (``/status?district=<id>``)."""

    district: DistrictStatus
    lease_holder: str | None
    poller: dict[str, Any] | None
    """This replica's poller for the district (phase, cursor, last error), if it has one."""


class GroupStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The translator's consumer group on the events stream (XINFO GROUPS)."""

    name: str
    exists: bool
    consumers: int
    pending: int
    """Delivered to the group but not yet acknowledged."""
    lag: int | None
    """Not yet delivered; the whole stream while the group does not exist; ``None`` when Redis
    cannot compute it (Redis < 7, or entries deleted from the middle of the stream)."""
    last_delivered_id: str | None


class RedisStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Whether Redis answered, and what the Redis checks found (docs/operations.md)."""

    reachable: bool
    error: str | None
    problems: dict[str, str]
    warnings: dict[str, str]


class LoopStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A heartbeat-watched loop: seconds since it last ticked, and its deadline."""

    age_s: float
    deadline_s: float


class StatusReport(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The ``/status`` document (docs/operations.md)."""

    instance: str
    version: str
    components: list[str]
    """The components configured to run in this process."""
    component_status: dict[str, Any]
    """What each running component of this replica says about itself."""
    time: float
    ready: bool
    draining: bool
    reasons: list[str]
    stuck: list[str]
    loops: dict[str, LoopStatus]
    """Every loop, but of the per-district poller loops only the :data:`WORST_SHOWN` that
    ticked longest ago (``stuck`` still names every stuck one)."""
    redis: RedisStatus
    districts: list[DistrictStatus]
    """The worst :data:`WORST_SHOWN` districts: unhealthy first, then by lag (all of them in a
    small deployment)."""
    streams: dict[str, int]
    """XLEN by full key name, e.g. ``clever:legacy:students``."""
    translator: GroupStatus | None
    leases: dict[str, str] = msgspec.field(default_factory=dict)
    """District id → the replica (instance name) whose lease lets it poll that district now,
    for the districts shown; districts nobody holds are absent, and so is the whole section
    when nobody holds any (scale-out, ``<p>:lease:<district>``)."""
    district_summary: DistrictSummary | None = None


class _Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    districts: list[DistrictStatus]
    streams: dict[str, int]
    group: GroupStatus
    leases: dict[str, str]


def worst(districts: list[DistrictStatus], n: int) -> list[DistrictStatus]:
    """The ``n`` districts most in need of a look: unhealthy, then largest lag, then unknown."""

    def key(d: DistrictStatus) -> tuple[int, float]:
        rank = 0 if d.healthy is False else (2 if d.healthy is None and d.lag_s is None else 1)
        return rank, -(d.lag_s or 0.0)

    return sorted(districts, key=key)[:n]


def summarize(snapshot: _Snapshot, shown: int) -> DistrictSummary:
    """Counts over every district of ``snapshot``."""
    ds = snapshot.districts
    lags = [d.lag_s for d in ds if d.lag_s is not None]
    by_replica: dict[str, int] = {}
    for holder in snapshot.leases.values():
        by_replica[holder] = by_replica.get(holder, 0) + 1
    return DistrictSummary(
        total=len(ds),
        healthy=sum(1 for d in ds if d.healthy is True),
        unhealthy=sum(1 for d in ds if d.healthy is False),
        unknown=sum(1 for d in ds if d.healthy is None),
        shown=shown,
        lag_max_s=max(lags) if lags else None,
        leases_by_replica=dict(sorted(by_replica.items())),
    )


def describe_redis_error(exc: BaseException) -> str:
    """A short, secret-free reason naming the failure class (messages may quote URLs)."""
    return f"redis unreachable: {type(exc).__name__}"


def readiness_reasons(health: Health, redis_error: str | None) -> list[str]:
    """Why this replica should not receive work; empty when ready."""
    reasons = ["draining"] if health.draining else []
    if redis_error is not None:
        reasons.append(redis_error)
    reasons.extend(f"{source}: {reason}" for source, reason in sorted(health.problems.items()))
    return reasons


class StatusSource:
    """Reads districts, streams and the translator group from Redis for ``/status`` and gauges.

    Args:
        cfg: the loaded config (districts, prefix, legacy record types, group name).
        redis: the service's client; every query is bounded by ``timeout_s``.
        health: heartbeats, draining flag, Redis problems and warnings.
        components: what each running component says about itself; none when omitted.
        detail: what this replica's poller says about one district (None: not polled here).
        clock: Unix time source (tests pin it).
        timeout_s: bound on the Redis queries of one report.
    """

    def __init__(
        self,
        *,
        cfg: Config,
        redis: aioredis.Redis,
        health: Health,
        components: Callable[[], Mapping[str, Any]] | None = None,
        detail: Callable[[str], Mapping[str, Any] | None] | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = REDIS_TIMEOUT_S,
    ) -> None:
        self._cfg = cfg
        self._components = components
        self._detail = detail
        self._redis = redis
        self._health = health
        self._clock = clock
        self._timeout_s = timeout_s
        self._keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
        self._streams = [
            name
            for part in self._keys.all_partitions()
            for name in (
                part.events,
                part.deadletter,
                *(part.legacy(t) for t in cfg.legacy.record_types),
            )
        ]
        self.instance = cfg.relay.instance or socket.gethostname()

    async def report(self) -> StatusReport:
        """Build the ``/status`` document and refresh the gauges from the same reading."""
        snapshot, error = await self._read()
        shown = worst(snapshot.districts, WORST_SHOWN) if snapshot else []
        leases = snapshot.leases if snapshot else {}
        health = self._health
        now_mono = time.monotonic()
        reasons = readiness_reasons(health, error)
        return StatusReport(
            instance=self.instance,
            version=__version__,
            components=list(self._cfg.relay.components),
            component_status=dict(self._components()) if self._components else {},
            time=self._clock(),
            ready=not reasons,
            draining=health.draining,
            reasons=reasons,
            stuck=health.stuck(),
            loops=_loops(health, now_mono),
            redis=RedisStatus(
                reachable=error is None,
                error=error,
                problems=dict(sorted(health.problems.items())),
                warnings=dict(sorted(health.warnings.items())),
            ),
            districts=shown,
            streams=snapshot.streams if snapshot else {},
            translator=snapshot.group if snapshot else None,
            leases={d.id: leases[d.id] for d in shown if d.id in leases},
            district_summary=summarize(snapshot, len(shown)) if snapshot else None,
        )

    async def district(self, district: str) -> DistrictDetail | None:
        """One district (configured or discovered) in full; None if the relay does not know it.

        Raises:
            RedisError, OSError, TimeoutError: Redis did not answer.
        """
        keys = self._keys
        static = district in {d.id for d in self._cfg.clever.districts}
        async with asyncio.timeout(self._timeout_s):
            async with self._redis.pipeline(transaction=False) as pipe:
                _ = pipe.get(keys.cursor(district))
                _ = pipe.hgetall(keys.poll_state(district))
                _ = pipe.get(keys.lease(district))
                _ = pipe.hgetall(keys.fleet(district))
                cursor, state, lease, fleet = await pipe.execute()
        if not static and not fleet:
            return None
        poller = self._detail(district) if self._detail else None
        return DistrictDetail(
            district=_district(district, cursor, state, self._clock(), fleet=fleet, static=static),
            lease_holder=lease_holder(lease),
            poller=None if poller is None else dict(poller),
        )

    async def refresh_metrics(self) -> None:
        """Update the Redis-derived gauges; never raises (a scrape must answer)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                streams, group, lags = await self._collect_gauges()
        except (RedisError, OSError, TimeoutError):
            REDIS_UP.set(0)
            return
        self._set_gauges(streams, group, lags)

    async def _read(self) -> tuple[_Snapshot | None, str | None]:
        """One bounded reading of Redis, applied to the gauges; ``(None, reason)`` on failure."""
        try:
            async with asyncio.timeout(self._timeout_s):
                snapshot = await self._collect()
        except (RedisError, OSError, TimeoutError) as exc:
            REDIS_UP.set(0)
            return None, describe_redis_error(exc)
        self._update_gauges(snapshot)
        return snapshot, None

    async def _collect(self) -> _Snapshot:
        keys = self._keys
        static = [d.id for d in self._cfg.clever.districts]
        districts = static + await discovered_districts(self._redis, keys, self._cfg, static)
        pipe = self._redis.pipeline(transaction=False)
        # Pipeline methods queue and return the pipeline; the replies come from execute().
        for district in districts:
            _ = pipe.get(keys.cursor(district))
            _ = pipe.hgetall(keys.poll_state(district))
        for district in districts:
            _ = pipe.hgetall(keys.fleet(district))
        for stream in self._streams:
            _ = pipe.xlen(stream)
        for district in districts:
            _ = pipe.get(keys.lease(district))
        replies = await pipe.execute()
        now = self._clock()
        fleet = replies[2 * len(districts) : 3 * len(districts)]
        statuses = [
            _district(
                district,
                replies[2 * i],
                replies[2 * i + 1],
                now,
                fleet=fleet[i],
                static=i < len(static),
            )
            for i, district in enumerate(districts)
        ]
        del replies[2 * len(districts) : 3 * len(districts)]
        first_lease = 2 * len(districts) + len(self._streams)
        lengths = dict(zip(self._streams, replies[2 * len(districts) : first_lease], strict=True))
        holders = zip(districts, map(lease_holder, replies[first_lease:]), strict=True)
        leases = {district: holder for district, holder in holders if holder is not None}
        group = await self._group(lengths)
        return _Snapshot(districts=statuses, streams=lengths, group=group, leases=leases)

    async def _group(self, lengths: dict[str, int]) -> GroupStatus:
        """The translator group; with partitions, every partition's summed (pending, lag,
        consumers), existing only if it exists in every partition."""
        parts = [
            await self._group_of(part.events, lengths[part.events])
            for part in self._keys.all_partitions()
        ]
        if len(parts) == 1:
            return parts[0]
        return GroupStatus(
            name=parts[0].name,
            exists=all(g.exists for g in parts),
            consumers=sum(g.consumers for g in parts),
            pending=sum(g.pending for g in parts),
            lag=sum(g.lag or 0 for g in parts),
            last_delivered_id=None,
        )

    async def _group_of(self, events: str, events_length: int) -> GroupStatus:
        """The translator group from XINFO GROUPS; absent stream or group means nothing read."""
        name = self._cfg.legacy.group
        missing = GroupStatus(
            name=name,
            exists=False,
            consumers=0,
            pending=0,
            lag=events_length,
            last_delivered_id=None,
        )
        try:
            groups = await self._redis.xinfo_groups(events)
        except ResponseError:  # "no such key": the stream does not exist yet
            return missing
        for group in groups:
            if decoded(group["name"]) == name:
                lag = await group_lag(self._redis, events, group)
                return GroupStatus(
                    name=name,
                    exists=True,
                    consumers=int(group["consumers"]),
                    pending=int(group["pending"]),
                    lag=lag,
                    last_delivered_id=decoded(group["last-delivered-id"]),
                )
        return missing

    async def _collect_gauges(
        self,
    ) -> tuple[dict[str, int], GroupStatus, dict[str, tuple[float | None, str | None]]]:
        """What the gauges need: stream lengths, the group, and per district its lag and lease
        holder (two commands per district: the scrape of a large fleet stays cheap)."""
        keys = self._keys
        static = [d.id for d in self._cfg.clever.districts]
        districts = static + await discovered_districts(self._redis, keys, self._cfg, static)
        pipe = self._redis.pipeline(transaction=False)
        for stream in self._streams:
            _ = pipe.xlen(stream)
        for district in districts:
            _ = pipe.hget(keys.poll_state(district), "newest_created")
            _ = pipe.get(keys.lease(district))
        replies = await pipe.execute()
        now, n = self._clock(), len(self._streams)
        lengths = dict(zip(self._streams, replies[:n], strict=True))
        lags = {
            district: (
                lag_s_since(None if created is None else decoded(created), now),
                lease_holder(lease),
            )
            for district, created, lease in zip(
                districts, replies[n::2], replies[n + 1 :: 2], strict=True
            )
        }
        return lengths, await self._group(lengths), lags

    def _update_gauges(self, snapshot: _Snapshot) -> None:
        lags = {d.id: (d.lag_s, snapshot.leases.get(d.id)) for d in snapshot.districts}
        self._set_gauges(snapshot.streams, snapshot.group, lags)

    def _set_gauges(
        self,
        streams: dict[str, int],
        group: GroupStatus,
        lags: dict[str, tuple[float | None, str | None]],
    ) -> None:
        """Set the gauges. Per-district lag is this replica's to export only for the districts
        it polls (all of them if it runs no poller), so a fleet's series are not multiplied by
        the replicas; the maximum over all districts is always there."""
        REDIS_UP.set(1)
        prefix = f"{self._keys.prefix}:"
        for key, length in streams.items():
            STREAM_LENGTH.labels(key.removeprefix(prefix)).set(length)
        TRANSLATOR_PENDING.set(group.pending)
        TRANSLATOR_LAG.set(math.nan if group.lag is None else group.lag)
        values = [lag for lag, _ in lags.values() if lag is not None]
        DISTRICT_LAG_MAX.set(max(values) if values else math.nan)
        mine = "poller" not in self._cfg.relay.components
        for district, (lag, holder) in lags.items():
            if lag is None or not per_district():
                continue
            if mine or holder == self.instance:
                DISTRICT_LAG.labels(district).set(lag)
            else:
                with contextlib.suppress(KeyError):
                    DISTRICT_LAG.remove(district)


def _loops(health: Health, now_mono: float) -> dict[str, LoopStatus]:
    """The loops for ``/status``: a fleet's thousands of district loops would drown the rest."""
    districts = [(n, loop) for n, loop in health.loops.items() if n.startswith("poller:")]
    shown = sorted(districts, key=lambda item: item[1].last_tick)[:WORST_SHOWN]
    others = [(n, loop) for n, loop in health.loops.items() if not n.startswith("poller:")]
    return {
        name: LoopStatus(age_s=round(now_mono - loop.last_tick, 3), deadline_s=loop.deadline_s)
        for name, loop in sorted(others + shown, key=lambda item: item[0])
    }


def _district(
    district: str, cursor: Any, state: dict[Any, Any], now: float, *, fleet: Any, static: bool
) -> DistrictStatus:
    fields = {decoded(k): decoded(v) for k, v in state.items()}
    newest = fields.get("newest_created") or None
    fleet_fields = {decoded(k): decoded(v) for k, v in fleet.items()}
    source, phase, onboarding = describe(fleet_fields, fields, static=static)
    return DistrictStatus(
        source=source,
        phase=phase,
        onboarding=onboarding,
        id=district,
        cursor=None if cursor is None else decoded(cursor),
        healthy={"1": True, "0": False}.get(fields.get("healthy", "")),
        last_success=float_or_none(fields.get("last_success")),
        last_error=fields.get("last_error") or None,
        last_error_at=float_or_none(fields.get("last_error_at")),
        newest_created=newest,
        lag_s=lag_s_since(newest, now),
    )
