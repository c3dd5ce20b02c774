"""P = 1 against P = 2, end to end in real processes on the same events, beside the Redis limit
and the translator's cost of the v2 read model (docs/performance.md, "Partitions").

Per figure: events/s (source events over the phase's wall time, start-up included) and CPU
per source event of every process (utime + stime from ``/proc/<pid>/stat``, Redis included),
so the bound is visible when the rate is not. With P = 2 the translator runs as two
processes (one partition each, by the partition leases): one process runs Python on one core.

Run: ``.venv/bin/python -m bench.partitions --events 60000``; prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import limit
from bench.configs import PREFIX, relay_config
from bench.procs import RedisProc, RelayProc, SimProc
from bench.relay_runs import wait_for
from relay.config import ALL_RECORD_TYPES
from relay.redis.keys import Keys

if TYPE_CHECKING:
    import redis

TICKS = os.sysconf("SC_CLK_TCK")
LEASE_TTL_S = 1.5
"""Short, so two translator processes settle on one partition each within half a second."""
CLIENTS = '[{name = "bench", district = "%s", token = "bench-v2-key"}]'


def cpu_s(pid: int) -> float:
    """utime + stime of a process so far, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Bench:
    """One Redis, one simulator, the relay processes of each phase."""

    def __init__(self, events: int, districts: int, seed: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-partitions-"))
        self.redis = RedisProc()
        self.sim = SimProc(seed=seed, districts=districts, events_per_district=events // districts)
        self.events = sum(d.events for d in self.sim.districts())

    def close(self) -> None:
        """Stop the simulator and Redis."""
        self.sim.close()
        self.redis.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, name: str, components: list[str], partitions: int) -> RelayProc:
        """One relay process."""
        path = relay_config(
            self.tmp,
            name=name,
            components=components,
            base_url=self.sim.base_url,
            redis_url=self.redis.url,
            districts=self.sim.districts(),
            partitions=partitions,
            lease_ttl_s=LEASE_TTL_S,
        )
        return RelayProc(path)

    def phase(self, procs: dict[str, RelayProc], done: Any) -> dict[str, Any]:
        """Wait for ``done``; the rate and every process's CPU per source event (µs)."""
        client = self.redis.client()
        started = min(p.started for p in procs.values())
        redis_cpu = cpu_s(self.redis.proc.pid)
        try:
            wait_for(done, list(procs.values()), "the phase")
            seconds = time.time() - started
            cpu = {n: cpu_s(p.proc.pid) for n, p in procs.items()}
        finally:
            for proc in procs.values():
                proc.stop()
        cpu["redis"] = cpu_s(self.redis.proc.pid) - redis_cpu
        del client
        per_event = {n: round(c / self.events * 1e6, 1) for n, c in cpu.items()}
        return {
            "events_per_s": round(self.events / seconds),
            "seconds": round(seconds, 2),
            "cpu_us_per_event": per_event,
            "cpu_us_per_event_total": round(sum(per_event.values()), 1),
            "cores_used": round(sum(cpu.values()) / seconds, 2),
        }

    def end_to_end(self, partitions: int) -> dict[str, Any]:
        """Poller plus ``partitions`` translator processes, from an empty Redis."""
        client = self.redis.client()
        client.flushall()
        procs = {"poller": self.spawn("poller", ["poller"], partitions)}
        for i in range(partitions):
            procs[f"translator{i}"] = self.spawn(f"translator{i}", ["translator"], partitions)
        return self.phase(procs, self.all_done(client, partitions))

    def translator_alone(self, read_model: bool) -> dict[str, Any]:
        """P = 1: the poller fills the events stream, then one translator process alone."""
        client = self.redis.client()
        client.flushall()
        os.environ.pop("RELAY__V2API__CLIENTS", None)
        poller = {"poller": self.spawn("poller", ["poller"], 1)}
        self.phase(poller, self.polled(client, Keys(PREFIX)))
        if read_model:
            os.environ["RELAY__V2API__CLIENTS"] = CLIENTS % self.sim.districts()[0].id
        try:
            translator = {"translator": self.spawn("translator", ["translator"], 1)}
            return self.phase(translator, self.translated(client, Keys(PREFIX)))
        finally:
            os.environ.pop("RELAY__V2API__CLIENTS", None)

    def polled(self, client: redis.Redis, keys: Keys) -> Any:
        districts = self.sim.districts()

        def done() -> bool:
            cursors = client.mget([keys.cursor(d.id) for d in districts])
            return all(c == d.last_event.encode() for c, d in zip(cursors, districts, strict=True))

        return done

    def translated(self, client: redis.Redis, keys: Keys) -> Any:
        def done() -> bool:
            for part in keys.all_partitions():
                last: Any = client.xrevrange(part.events, count=1)
                if last and client.get(part.translator_position) != last[0][0]:
                    return False
            return True

        return done

    def all_done(self, client: redis.Redis, partitions: int) -> Any:
        keys = Keys(PREFIX, partitions)
        polled, translated = self.polled(client, keys), self.translated(client, keys)
        return lambda: polled() and translated()

    def limit(self) -> dict[str, Any]:
        """The same writes as the last P = 1 run (events and legacy), redis-py pipelined."""
        client = self.redis.client()
        keys = Keys(PREFIX)
        entries = limit.capture(client, [keys.events, *map(keys.legacy, ALL_RECORD_TYPES)])
        figures = limit.measure(client, self.redis.port, entries)
        return {
            "entries": figures.entries,
            "redis_py_events_per_s": round(self.events / figures.redis_py_s),
            "raw_events_per_s": round(self.events / figures.raw_s),
        }


def run(events: int, districts: int, seed: int) -> dict[str, Any]:
    """Every figure of the report, in one run on the same events."""
    bench = Bench(events, districts, seed)
    try:
        report: dict[str, Any] = {"events": bench.events, "load_avg": os.getloadavg()}
        report["p1"] = bench.end_to_end(1)
        report["limit"] = bench.limit()
        report["p2"] = bench.end_to_end(2)
        report["translator_plain"] = bench.translator_alone(read_model=False)
        report["translator_read_model"] = bench.translator_alone(read_model=True)
        report["ratios"] = {
            "p2_over_p1": round(report["p2"]["events_per_s"] / report["p1"]["events_per_s"], 2),
            "p1_over_limit": round(
                report["p1"]["events_per_s"] / report["limit"]["redis_py_events_per_s"], 2
            ),
            "p2_over_limit": round(
                report["p2"]["events_per_s"] / report["limit"]["redis_py_events_per_s"], 2
            ),
            "read_model_over_plain": round(
                report["translator_read_model"]["events_per_s"]
                / report["translator_plain"]["events_per_s"],
                2,
            ),
        }
        return report
    finally:
        bench.close()


def main() -> None:
    """Parse the options, measure, print the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench.partitions")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(args.events, args.districts, args.seed), indent=2))


if __name__ == "__main__":
    main()
