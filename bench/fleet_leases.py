"""The lease part of ``python -m bench.fleet``: N districts shared by R poller replicas.

Measures how long R replicas started together take to settle (every lease held, nobody above its
fair share), what the lease loop costs in Redis once settled (script calls per tick per
replica), and how many districts change hands when one replica leaves and when one joins (the
minimum is the leaver's districts, resp. the joiner's share: anything above is churn).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.configs import PREFIX
from bench.procs import RedisProc, RelayProc, SimProc, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

SETTLE_TIMEOUT_S = 180.0
LEASE_TTL_S = 15.0
COST_WINDOW_S = 30.0


@dataclass
class LeaseResult:
    """What the lease phase measured."""

    districts: int
    replicas: int
    lease_ttl_s: float
    settle_s: float
    scripts_per_tick: float
    """Lease script calls (EVALSHA) per lease tick per replica, once settled."""
    redis_commands_per_s: float
    leave_settle_s: float
    leave_moved: int
    leave_minimum: int
    join_settle_s: float
    join_moved: int
    join_minimum: int


def holders(r: redis.Redis, districts: list[str]) -> dict[str, str]:
    """District → holding instance (districts nobody holds are absent)."""
    with r.pipeline(transaction=False) as pipe:
        for d in districts:
            pipe.get(f"{PREFIX}:lease:{d}")
        values = pipe.execute()
    out = {}
    for d, value in zip(districts, values, strict=True):
        if value is not None:
            out[d] = value.decode().split("|")[1]
    return out


def _settled(r: redis.Redis, districts: list[str], replicas: int) -> dict[str, str] | None:
    held = holders(r, districts)
    share = math.ceil(len(districts) / replicas)
    counts = Counter(held.values())
    if len(held) == len(districts) and len(counts) == replicas and max(counts.values()) <= share:
        return held
    return None


def _wait_settled(
    r: redis.Redis, districts: list[str], replicas: int, procs: list[RelayProc]
) -> tuple[float, dict[str, str]]:
    start = time.monotonic()
    while time.monotonic() - start < SETTLE_TIMEOUT_S:
        for proc in procs:
            proc.check_alive()
        held = _settled(r, districts, replicas)
        if held is not None:
            return time.monotonic() - start, held
        time.sleep(0.5)
    raise RuntimeError("leases did not settle in time")


def _evalsha(r: redis.Redis) -> int:
    stats: dict[str, Any] = r.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def measure_leases(
    n: int, replicas: int, seed: int, fleet_config: Callable[..., Path]
) -> LeaseResult:
    """Run the lease phase (see the module docstring)."""
    redis_proc = RedisProc()
    sim = SimProc(seed=seed, districts=n, events_per_district=1)
    procs: list[RelayProc] = []
    r = redis_proc.client()
    try:
        sim_districts = sim.districts()
        ids = [d.id for d in sim_districts]
        with r.pipeline(transaction=False) as pipe:
            for d in sim_districts:
                pipe.set(f"{PREFIX}:cursor:{d.id}", d.last_event)
            pipe.execute()
        with tempfile.TemporaryDirectory(prefix="bench-leases-") as tmp:

            def spawn(name: str) -> RelayProc:
                config = fleet_config(
                    Path(tmp),
                    name=name,
                    components=["poller"],
                    base_url=sim.base_url,
                    redis_url=redis_proc.url,
                    districts=sim_districts,
                    interval_s=5.0,
                    http_port=free_port(),
                    lease_ttl_s=LEASE_TTL_S,
                )
                return RelayProc(config)

            procs = [spawn(f"r{i}") for i in range(replicas)]
            settle_s, before = _wait_settled(r, ids, replicas, procs)
            calls0, cmds0, t0 = (
                _evalsha(r),
                int(r.info("stats")["total_commands_processed"]),
                time.monotonic(),
            )
            time.sleep(COST_WINDOW_S)
            calls1, cmds1, t1 = (
                _evalsha(r),
                int(r.info("stats")["total_commands_processed"]),
                time.monotonic(),
            )
            ticks = (t1 - t0) / (LEASE_TTL_S / 3) * replicas
            scripts_per_tick = (calls1 - calls0) / ticks
            commands_per_s = (cmds1 - cmds0) / (t1 - t0)
            leaver = procs.pop()
            gone = {d for d, h in before.items() if h == leaver_name(replicas)}
            leaver.stop()
            leave_s, after_leave = _wait_settled(r, ids, replicas - 1, procs)
            leave_moved = sum(1 for d in ids if before[d] != after_leave[d])
            procs.append(spawn(f"r{replicas}"))
            join_s, after_join = _wait_settled(r, ids, replicas, procs)
            join_moved = sum(1 for d in ids if after_leave[d] != after_join[d])
            joined = sum(1 for h in after_join.values() if h == f"r{replicas}")
    finally:
        for proc in procs:
            proc.stop()
        sim.close()
        redis_proc.close()
    return LeaseResult(
        districts=n,
        replicas=replicas,
        lease_ttl_s=LEASE_TTL_S,
        settle_s=round(settle_s, 1),
        scripts_per_tick=round(scripts_per_tick, 2),
        redis_commands_per_s=round(commands_per_s, 1),
        leave_settle_s=round(leave_s, 1),
        leave_moved=leave_moved,
        leave_minimum=len(gone),
        join_settle_s=round(join_s, 1),
        join_moved=join_moved,
        join_minimum=joined,
    )


def leaver_name(replicas: int) -> str:
    """The instance name of the replica that leaves (the last one started)."""
    return f"r{replicas - 1}"
