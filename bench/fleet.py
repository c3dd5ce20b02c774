"""``python -m bench.fleet``: what N quiet districts cost one replica, beside the floor.

For each N: the simulator serves N districts with one event each (cursors start at it, so every
district is quiet); first the bare polling loop (:mod:`bench.fleet_bare`) runs alone, then one
relay (poller + translator + http) does the same work, while a trickle of events arrives spread
across the districts. Both poll every ``poll_interval_s``. Reported per subject: process CPU in
cores (``/proc/<pid>/stat``, over a window after every district was polled once), RSS, Clever
requests/s, the time from start until every district was polled, and the simulator's own CPU;
for the relay also Redis commands/s, the p99 lag of the trickle events (simulator append →
events stream entry) and the ``/metrics`` and ``/status`` size and time. ``--replicas R``
also starts R poller replicas on the largest N and measures how leases settle, what a tick
costs in Redis, and how many districts move when a replica leaves and one joins.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.configs import PREFIX
from bench.fleet_leases import LeaseResult, measure_leases
from bench.fleet_report import plot_png, render
from bench.procs import RedisProc, RelayProc, SimProc, free_port, stop_process

if TYPE_CHECKING:
    import redis

    from bench.procs import SimDistrict

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_POLLED_TIMEOUT_S = 300.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Current resident set size, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _get(url: str, timeout_s: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        body: bytes = resp.read()
        return body


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@dataclass
class Subject:
    """One measured process (the bare loop or the relay) at one N."""

    cpu_cores: float = 0.0
    rss_mb: float = 0.0
    requests_per_s: float = 0.0
    all_polled_s: float = 0.0
    sim_cpu_cores: float = 0.0
    redis_commands_per_s: float = 0.0
    lag_p99_s: float | None = None
    lag_events: int = 0
    redis_top: dict[str, float] = field(default_factory=dict)
    """Redis commands/s by command, the most frequent first."""
    metrics_kb: float = 0.0
    metrics_ms: float = 0.0
    status_kb: float = 0.0
    status_ms: float = 0.0


@dataclass
class Row:
    """Both subjects at one N."""

    districts: int
    bare: Subject
    relay: Subject
    window_s: float

    @property
    def ratio(self) -> float:
        """Relay CPU over the bare loop's."""
        return self.relay.cpu_cores / self.bare.cpu_cores if self.bare.cpu_cores else 0.0


@dataclass
class Options:
    """What to run."""

    sizes: list[int]
    window_s: float = 60.0
    interval_s: float = 5.0
    trickle_per_s: float = 2.0
    replicas: int = 0
    seed: int = 7
    profile: Path | None = None


@dataclass
class Result:
    """Everything measured."""

    rows: list[Row] = field(default_factory=list)
    leases: LeaseResult | None = None


class Trickle:
    """Appends one generated event to a random district every 1/rate s; remembers when."""

    def __init__(self, base_url: str, districts: list[str], rate: float) -> None:
        self.base_url, self.districts, self.rate = base_url, districts, rate
        self.sent: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = random.Random(1)

    def start(self) -> None:
        """Begin appending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop appending (and wait for the thread)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(1.0 / self.rate):
            district = self._rng.choice(self.districts)
            at = time.time()
            reply = _post(f"{self.base_url}/_sim/events", {"district": district, "generate": 1})
            for event_id in reply["ids"]:
                self.sent[event_id] = at


def _all_polled(sim: SimProc, n: int, proc_check: Any) -> float:
    """Seconds until the simulator has seen a request from every district's token."""
    start = time.monotonic()
    while time.monotonic() - start < ALL_POLLED_TIMEOUT_S:
        proc_check()
        stats = json.loads(_get(f"{sim.base_url}/_sim/stats"))
        if sum(1 for t in stats["per_token"].values() if t["requests"] > 0) >= n:
            return time.monotonic() - start
        time.sleep(1.0)
    raise RuntimeError(f"not every district was polled within {ALL_POLLED_TIMEOUT_S} s")


def _window(sim: SimProc, pid: int, window_s: float, subject: Subject, r: redis.Redis) -> None:
    """Measure CPU, requests and Redis commands of ``pid`` over ``window_s``."""
    req0 = json.loads(_get(f"{sim.base_url}/_sim/stats"))["requests"]
    by0 = _commandstats(r)
    cmd0 = int(r.info("stats")["total_commands_processed"])
    cpu0, sim0, t0 = cpu_s(pid), cpu_s(sim.proc.pid), time.monotonic()
    time.sleep(window_s)
    cpu1, sim1, t1 = cpu_s(pid), cpu_s(sim.proc.pid), time.monotonic()
    cmd1 = int(r.info("stats")["total_commands_processed"])
    by1 = _commandstats(r)
    req1 = json.loads(_get(f"{sim.base_url}/_sim/stats"))["requests"]
    wall = t1 - t0
    subject.cpu_cores = (cpu1 - cpu0) / wall
    subject.sim_cpu_cores = (sim1 - sim0) / wall
    subject.requests_per_s = (req1 - req0 - 2) / wall  # minus the two stats reads
    subject.redis_commands_per_s = (cmd1 - cmd0 - 2) / wall
    subject.rss_mb = rss_mb(pid)
    rates = {k: round((by1[k] - by0.get(k, 0)) / wall, 1) for k in by1}
    top = sorted(((v, k) for k, v in rates.items() if v >= 0.1), reverse=True)[:8]
    subject.redis_top = {k: v for v, k in top}


def _commandstats(r: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _bare(sim: SimProc, districts: list[SimDistrict], opts: Options, r: redis.Redis) -> Subject:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        listing = Path(tmp) / "districts.json"
        listing.write_text(
            json.dumps([{"id": d.id, "token": d.token, "cursor": d.last_event} for d in districts])
        )
        _post(f"{sim.base_url}/_sim/stats/reset", {})
        args = ["--base-url", sim.base_url, "--districts", str(listing)]
        args += ["--interval", str(opts.interval_s)]
        proc = _spawn_module("bench.fleet_bare", args)
        try:
            subject = Subject()
            subject.all_polled_s = _all_polled(sim, len(districts), lambda: _alive(proc))
            profiler = _profile(proc.pid, opts, f"bare-{len(districts)}")
            _window(sim, proc.pid, opts.window_s, subject, r)
            if profiler is not None:
                profiler.wait()
        finally:
            stop_process(proc)
    return subject


def _spawn_module(module: str, args: list[str]) -> Any:
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL)


def _alive(proc: Any) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"process exited with {proc.returncode}")


def fleet_config(
    directory: Path,
    *,
    name: str,
    components: list[str],
    base_url: str,
    redis_url: str,
    districts: list[SimDistrict],
    interval_s: float,
    http_port: int,
    lease_ttl_s: float = 15.0,
) -> Path:
    """One relay process's config for the fleet bench (districts start at their stored cursor)."""
    q = json.dumps
    lines = [
        "[relay]",
        f"components = {q(components)}",
        f"instance = {q(name)}",
        "shutdown_grace_s = 5.0",
        f"lease_ttl_s = {lease_ttl_s}",
        "[clever]",
        f"base_url = {q(base_url)}",
        f"poll_interval_s = {interval_s}",
        "[redis]",
        f"url = {q(redis_url)}",
        f"prefix = {q(PREFIX)}",
        "[http]",
        'host = "127.0.0.1"',
        f"port = {http_port}",
        "[log]",
        'level = "warning"',
    ]
    for district in districts:
        lines += ["[[clever.districts]]", f"id = {q(district.id)}", f"token = {q(district.token)}"]
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def seed_cursors(r: redis.Redis, districts: list[SimDistrict]) -> None:
    """Store every district's cursor at its newest event: the relay starts quiet."""
    with r.pipeline(transaction=False) as pipe:
        for d in districts:
            pipe.set(f"{PREFIX}:cursor:{d.id}", d.last_event)
        pipe.execute()


def _timed_get(url: str) -> tuple[float, float]:
    """(KiB, ms) of one GET: the median of three."""
    samples = []
    size = 0
    for _ in range(3):
        t0 = time.perf_counter()
        size = len(_get(url))
        samples.append((time.perf_counter() - t0) * 1000)
    return size / 1024, statistics.median(samples)


def _lags(r: redis.Redis, sent: dict[str, float]) -> list[float]:
    """Seconds from each trickle event's append to its events-stream entry."""
    lags = []
    entries: Any = r.xrange(f"{PREFIX}:events")
    for sid, fields in entries:
        event_id = fields.get(b"id", b"").decode()
        if event_id in sent:
            ms = int(sid.decode().split("-")[0])
            lags.append(ms / 1000 - sent[event_id])
    return lags


def _relay(
    sim: SimProc, districts: list[SimDistrict], opts: Options, redis_proc: RedisProc
) -> Subject:
    r = redis_proc.client()
    r.flushdb()
    seed_cursors(r, sim.districts())
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        config = fleet_config(
            Path(tmp),
            name="fleet",
            components=["poller", "translator", "http"],
            base_url=sim.base_url,
            redis_url=redis_proc.url,
            districts=districts,
            interval_s=opts.interval_s,
            http_port=port,
        )
        _post(f"{sim.base_url}/_sim/stats/reset", {})
        relay = RelayProc(config)
        try:
            subject = Subject()
            subject.all_polled_s = _all_polled(sim, len(districts), relay.check_alive)
            trickle = Trickle(sim.base_url, [d.id for d in districts], opts.trickle_per_s)
            trickle.start()
            profiler = _profile(relay.proc.pid, opts, f"relay-{len(districts)}")
            _window(sim, relay.proc.pid, opts.window_s, subject, r)
            trickle.stop()
            if profiler is not None:
                profiler.wait()
            time.sleep(opts.interval_s + 2)
            lags = sorted(_lags(r, trickle.sent))
            subject.lag_events = len(lags)
            if lags:
                subject.lag_p99_s = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
            base = f"http://127.0.0.1:{port}"
            subject.metrics_kb, subject.metrics_ms = _timed_get(f"{base}/metrics")
            subject.status_kb, subject.status_ms = _timed_get(f"{base}/status")
            relay.check_alive()
        finally:
            relay.stop()
    return subject


def _profile(pid: int, opts: Options, name: str) -> Any:
    """``py-spy record`` on the relay for half the window (``--profile DIR``), or None."""
    if opts.profile is None:
        return None
    opts.profile.mkdir(parents=True, exist_ok=True)
    out = opts.profile / f"{name}.txt"
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    args = [py_spy, "record", "--pid", str(pid), "-d", str(int(opts.window_s))]
    args += ["-r", "100", "-f", "raw", "-o", str(out)]
    import subprocess

    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(opts: Options) -> Result:
    """Measure every N (and the leases, if asked)."""
    result = Result()
    for n in opts.sizes:
        redis_proc = RedisProc()
        sim = SimProc(seed=opts.seed, districts=n, events_per_district=1)
        try:
            districts = sim.districts()
            bare = _bare(sim, districts, opts, redis_proc.client())
            relay = _relay(sim, districts, opts, redis_proc)
            result.rows.append(Row(n, bare, relay, opts.window_s))
            print(json.dumps(asdict(result.rows[-1])), flush=True)
        finally:
            sim.close()
            redis_proc.close()
    if opts.replicas:
        result.leases = measure_leases(max(opts.sizes), opts.replicas, opts.seed, fleet_config)
        print(json.dumps(asdict(result.leases)), flush=True)
    return result


def main() -> None:
    """Parse flags, measure, print the Markdown table (and optionally save JSON and a plot)."""
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    add = parser.add_argument
    add("--sizes", default="500,2000,5000", help="comma-separated district counts")
    add("--window", type=float, default=60.0, help="seconds measured per subject and N")
    add("--interval", type=float, default=5.0, help="poll_interval_s")
    add("--trickle", type=float, default=2.0, help="trickle events/s across all districts")
    add("--replicas", type=int, default=0, help="also measure leases with this many replicas")
    add("--profile", type=Path, help="py-spy the relay into this directory")
    add("--json", type=Path, help="write the raw figures here")
    add("--plot", type=Path, help="write the CPU/RSS plot (PNG) here")
    args = parser.parse_args()
    opts = Options(
        sizes=[int(x) for x in args.sizes.split(",")],
        window_s=args.window,
        interval_s=args.interval,
        trickle_per_s=args.trickle,
        replicas=args.replicas,
        profile=args.profile,
    )
    result = run(opts)
    print(render(result, opts))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    if args.plot:
        plot_png(result.rows, args.plot)


if __name__ == "__main__":
    main()
