"""Latency under live activity: from an event becoming visible at the simulator to its legacy
entry being readable in Redis.

The simulator's live generator stamps each event's ``created`` with the wall clock at the
moment it appends the event to the feed (so ``created`` is when it becomes visible, to the
millisecond), and the translator copies ``created`` into the legacy event. This process reads
every legacy stream with a blocking ``XREAD`` and, for each entry, takes ``now - created``.
All processes share one clock (one machine). Entries from before the window (the preloaded
history, the warm-up) are ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from bench.procs import SimProc
from bench.relay_runs import LEGACY_KEYS, RelayBench

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from bench.procs import RedisProc


class _Created(msgspec.Struct):
    created: str


_decode = msgspec.json.Decoder(_Created).decode


@dataclass
class Latency:
    """Latencies (seconds) of the legacy entries seen in the window, and peak RSS."""

    samples: list[float]
    rss_mb: dict[str, float] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (nearest rank)."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def collect(client: redis.Redis, *, since: float, until: float) -> list[float]:
    """Latencies of legacy entries created at or after ``since``, read until ``until``."""
    ids: dict[str, str] = dict.fromkeys(LEGACY_KEYS, "$")
    samples: list[float] = []
    while time.time() < until:
        replies: Any = client.xread(ids, block=200)  # type: ignore[arg-type]  # str ids work
        now = time.time()
        for key, entries in replies or []:
            for _entry_id, fields in entries:
                created = datetime.fromisoformat(_decode(fields[b"data"]).created).timestamp()
                if created >= since:
                    samples.append(now - created)
            ids[key.decode()] = entries[-1][0].decode()
    return samples


def measure(
    redis_proc: RedisProc,
    tmp: Path,
    *,
    rate: float,
    districts: int,
    seconds: float,
    poll_interval_s: float,
    seed: int,
) -> Latency:
    """Run poller + translator against a simulator generating ``rate`` events/s in total."""
    sim = SimProc(
        seed=seed,
        districts=districts,
        events_per_district=1000,
        live_rate=rate / districts,
        rate_limit=1200,
    )
    try:
        bench = RelayBench(redis_proc, sim, tmp, poll_interval_s=poll_interval_s)
        client = redis_proc.client()
        client.flushall()
        procs = {
            "poller": bench.spawn("poller", ["poller"]),
            "translator": bench.spawn("translator", ["translator"]),
        }
        try:
            warm_up_s = 3.0 + poll_interval_s
            collect(client, since=time.time(), until=time.time() + warm_up_s)
            start = time.time()
            samples = collect(client, since=start, until=start + seconds)
            for proc in procs.values():
                proc.check_alive()
            rss = {name: p.peak_rss_mb() for name, p in procs.items()}
        finally:
            for proc in procs.values():
                proc.stop()
        return Latency(samples, rss)
    finally:
        sim.close()
