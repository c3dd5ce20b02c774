"""One benchmark run: every figure of issue 7, each the median of ``runs`` repetitions.

Order per repetition (all on the same simulator, so on the same data): relay end to end at
``page_limit``, the Redis limit on the entries that run wrote, poller alone, translator alone
(on the poller's output), relay end to end at page_limit 10,000 (for its RSS), the naive
baseline. Then latency under live activity, in fresh processes against a live simulator.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import latency, limit, naive
from bench.procs import RedisProc, SimProc
from bench.relay_runs import KEYS, LEGACY_KEYS, Phase, RelayBench, legacy_count

BIG_PAGE = 10_000


@dataclass
class Options:
    """What to measure (the CLI flags)."""

    events: int = 200_000
    districts: int = 4
    runs: int = 3
    seed: int = 7
    page_limit: int = 1000
    poll_interval_s: float = 1.0
    latency_rate: float = 2000.0
    latency_seconds: float = 20.0
    latency_runs: int = 3
    baseline: bool = True


@dataclass
class Results:
    """Every repetition's figures; :mod:`bench.report` takes the medians."""

    options: Options
    events: int = 0
    redis_version: str = ""
    phases: dict[str, list[Phase]] = field(default_factory=dict)
    limits: dict[str, list[float]] = field(default_factory=dict)
    naive: list[tuple[int, int, float]] = field(default_factory=list)
    latency: list[latency.Latency] = field(default_factory=list)
    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, name: str, phase: Phase) -> None:
        """Record one phase."""
        self.phases.setdefault(name, []).append(phase)

    def count(self, name: str, value: int) -> None:
        """Record one count (checked for exactness by the smoke test)."""
        self.counts.setdefault(name, []).append(value)

    def median_rate(self, name: str) -> float:
        """Median events/s of a phase."""
        return statistics.median(p.rate for p in self.phases[name])


def _limits(results: Results, redis_proc: RedisProc) -> None:
    client = redis_proc.client()
    events = limit.capture(client, [KEYS.events])
    legacy = limit.capture(client, LEGACY_KEYS)
    results.count("limit_entries", len(events) + len(legacy))
    poller = limit.measure(client, redis_proc.port, events)
    both = limit.measure(client, redis_proc.port, events + legacy)
    for name, seconds in (
        ("poller_redis_py", poller.redis_py_s),
        ("poller_raw", poller.raw_s),
        ("e2e_redis_py", both.redis_py_s),
        ("e2e_raw", both.raw_s),
    ):
        results.limits.setdefault(name, []).append(results.events / seconds)


def _repetition(results: Results, bench: RelayBench, redis_proc: RedisProc) -> None:
    client = redis_proc.client()
    e2e = bench.end_to_end()
    results.add("e2e", e2e)
    results.count("e2e_events", int(client.xlen(KEYS.events)))
    results.count("e2e_legacy", e2e.legacy)
    results.count("e2e_deadletter", int(client.xlen(KEYS.deadletter)))
    _limits(results, redis_proc)
    results.add("poller", bench.poller_alone())
    results.count("poller_events", int(client.xlen(KEYS.events)))
    translator = bench.translator_alone()
    results.add("translator", translator)
    results.count("translator_legacy", translator.legacy)
    big = RelayBench(redis_proc, bench.sim, bench.tmp, page_limit=BIG_PAGE)
    e2e_big = big.end_to_end()
    results.add("e2e_page10k", e2e_big)
    results.count("e2e_page10k_legacy", e2e_big.legacy)
    if results.options.baseline:
        client.flushall()
        outcome = naive.run(client, bench.sim.base_url, bench.sim.districts(), bench.page_limit)
        results.naive.append(outcome)
        results.count("naive_events", int(client.xlen(KEYS.events)))
        results.count("naive_legacy", legacy_count(client))


def run(options: Options) -> Results:
    """Measure everything ``options`` asks for."""
    results = Results(options)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    redis_proc = RedisProc()
    try:
        results.redis_version = redis_proc.version()
        per_district = options.events // options.districts
        sim = SimProc(
            seed=options.seed, districts=options.districts, events_per_district=per_district
        )
        try:
            results.events = sum(d.events for d in sim.districts())
            bench = RelayBench(
                redis_proc,
                sim,
                tmp,
                page_limit=options.page_limit,
                poll_interval_s=options.poll_interval_s,
            )
            for _ in range(options.runs):
                _repetition(results, bench, redis_proc)
        finally:
            sim.close()
        for _ in range(options.latency_runs):
            results.latency.append(
                latency.measure(
                    redis_proc,
                    tmp,
                    rate=options.latency_rate,
                    districts=options.districts,
                    seconds=options.latency_seconds,
                    poll_interval_s=options.poll_interval_s,
                    seed=options.seed,
                )
            )
    finally:
        redis_proc.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return results
