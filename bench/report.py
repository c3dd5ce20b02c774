"""Turn :class:`bench.run.Results` into the Markdown tables of docs/performance.md."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Results

PACKAGES = ("aiohttp", "redis", "hiredis", "msgspec", "uvloop")


def machine() -> list[str]:
    """Lines describing this machine and the software measured."""
    cpu = "unknown CPU"
    try:
        with Path("/proc/cpuinfo").open() as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    packages = ", ".join(f"{name} {version(name)}" for name in PACKAGES)
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; kernel {platform.release()}",
        f"- Python {platform.python_version()}; {packages}",
        f"- relay commit {commit or 'unknown'}",
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _med(values: list[float]) -> float:
    return statistics.median(values)


def throughput_table(results: Results) -> list[str]:
    """Events/s of every phase (medians), with peak RSS."""
    rows = [
        "| figure | events/s (median) | runs | peak RSS (MiB, max over runs) |",
        "|---|---|---|---|",
    ]
    names = {
        "e2e": f"relay end to end (page_limit {results.options.page_limit})",
        "e2e_page10k": "relay end to end (page_limit 10,000)",
        "poller": "poller alone",
        "translator": "translator alone",
    }
    for key, label in names.items():
        phases = results.phases.get(key, [])
        if not phases:
            continue
        rates = ", ".join(f"{p.rate:,.0f}" for p in phases)
        rss_names = sorted({n for p in phases for n in p.rss_mb})
        rss = ", ".join(f"{n} {max(p.rss_mb[n] for p in phases):.0f}" for n in rss_names)
        rows.append(f"| {label} | **{results.median_rate(key):,.0f}** | {rates} | {rss} |")
    if results.naive:
        naive = [events / seconds for events, _, seconds in results.naive]
        rows.append(
            f"| naive baseline end to end | **{_med(naive):,.0f}** | "
            f"{', '.join(f'{r:,.0f}' for r in naive)} | (in the bench process) |"
        )
    labels = {
        "poller_redis_py": "Redis limit, events stream, redis-py pipelines",
        "poller_raw": "Redis limit, events stream, raw RESP",
        "e2e_redis_py": "Redis limit, events + legacy, redis-py pipelines",
        "e2e_raw": "Redis limit, events + legacy, raw RESP",
    }
    for key, label in labels.items():
        values = results.limits.get(key, [])
        if values:
            rates = ", ".join(f"{v:,.0f}" for v in values)
            rows.append(f"| {label} | **{_med(values):,.0f}** | {rates} | |")
    return rows


def ratios(results: Results) -> list[str]:
    """relay/baseline and relay/limit."""
    e2e = results.median_rate("e2e")
    poller = results.median_rate("poller")
    lines = []
    if results.naive:
        naive = _med([events / seconds for events, _, seconds in results.naive])
        lines.append(f"- relay / naive baseline (end to end): **{e2e / naive:.1f}x**")
    for key, label, value in (
        ("e2e_redis_py", "relay end to end / Redis limit (redis-py)", e2e),
        ("e2e_raw", "relay end to end / Redis limit (raw RESP)", e2e),
        ("poller_redis_py", "poller alone / Redis limit (redis-py)", poller),
        ("poller_raw", "poller alone / Redis limit (raw RESP)", poller),
    ):
        if results.limits.get(key):
            lines.append(f"- {label}: **{value / _med(results.limits[key]):.0%}**")
    return lines


def latency_lines(results: Results) -> list[str]:
    """p50/p99/max of each latency run and their medians."""
    if not results.latency:
        return []
    runs = results.latency
    p50 = _med([r.percentile(50) for r in runs])
    p99 = _med([r.percentile(99) for r in runs])
    top = _med([max(r.samples) for r in runs])
    rss = {n: max(r.rss_mb[n] for r in runs) for n in runs[0].rss_mb}
    opts = results.options
    return [
        f"- live activity {opts.latency_rate:,.0f} events/s over {opts.districts} districts, "
        f"poll_interval_s {opts.poll_interval_s}, {opts.latency_seconds:.0f} s windows, "
        f"{len(runs)} runs, {sum(len(r.samples) for r in runs):,} legacy entries timed",
        f"- p50 **{_ms(p50)}**, p99 **{_ms(p99)}**, max **{_ms(top)}** (medians over runs); "
        "per run p99: " + ", ".join(_ms(r.percentile(99)) for r in runs),
        "- peak RSS during the latency runs: "
        + ", ".join(f"{n} {v:.0f} MiB" for n, v in rss.items()),
    ]


def counts(results: Results) -> list[str]:
    """Every count recorded, per run (they must be equal across runs)."""
    return [f"- {name}: {values}" for name, values in results.counts.items()]


def render(results: Results) -> str:
    """The whole report as Markdown."""
    opts = results.options
    parts = [
        f"N = {results.events:,} events ({opts.districts} districts, seed {opts.seed}); "
        f"Redis {results.redis_version}",
        "",
        *machine(),
        "",
        *throughput_table(results),
        "",
        *ratios(results),
        "",
        *latency_lines(results),
        "",
        "Counts per run:",
        *counts(results),
    ]
    return "\n".join(parts) + "\n"
