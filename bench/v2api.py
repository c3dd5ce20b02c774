"""Benchmark of the v2 API: pages of 1,000 events / 1,000 students under concurrent clients.

Fills a private Redis with one district's read model (``--students`` v2 students with realistic
fields, ``--events`` legacy events written through the translator's read-model Lua), serves the
v2 routes from a separate process (``python -m bench.v2api serve``), and measures request
latency from ``--clients`` concurrent aiohttp clients, each asking pages at random cursors.
Also times the read-model Lua cost per event (what the translator's batch pays).

Run: ``.venv/bin/python -m bench.v2api [--clients 100] [--requests 2000]``; the translator's
cost of keeping the read model: ``.venv/bin/python -m bench.v2api translator --events 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis

from bench.procs import RedisProc, free_port, stop_process
from relay.readmodel.writer import ReadModelWriter, event_op, put_op
from relay.translate.rules import LegacyOut, encode_legacy_event

PREFIX = "bench"
DISTRICT = "5a0c91b95c7cc000010d417c"
KEY = "bench-v2-key-0123456789abcdefghijklmnop"
SCHOOLS = [f"5a25ff950a5f6211090000{i:02x}" for i in range(10)]


def student(n: int) -> dict[str, Any]:
    """A v2.1 student of realistic size (~700 bytes)."""
    school = SCHOOLS[n % len(SCHOOLS)]
    return {
        "id": f"5a25ffb0c1bc2a0036{n:06x}",
        "district": DISTRICT,
        "name": {"first": f"First{n}", "middle": "Q", "last": f"Last{n}"},
        "email": f"student{n}@example.net",
        "created": "2017-12-05T00:00:00.000Z",
        "last_modified": "2021-03-02T22:24:53.347Z",
        "credentials": {"district_username": f"student{n}"},
        "dob": "2/11/2007",
        "enrollments": [],
        "gender": "M",
        "grade": "7",
        "graduation_year": "2031",
        "hispanic_ethnicity": "N",
        "location": {"address": "1 Main St", "city": "Town", "state": "NY", "zip": "10459"},
        "race": "Asian",
        "school": school,
        "schools": [school],
        "sis_id": str(100000 + n),
        "state_id": str(200000 + n),
        "student_number": str(100000 + n),
    }


def legacy_id(n: int) -> str:
    """The n-th legacy event id."""
    return f"{1_700_000_000_000 + n:012x}{0:08x}{0:04x}"


async def fill(redis_url: str, *, students: int, events: int) -> dict[str, float]:
    """Write the read model; returns the read-model Lua cost per object and per event (µs)."""
    redis = aioredis.Redis.from_url(redis_url)
    writer = ReadModelWriter(redis)
    started = time.perf_counter()
    for lo in range(0, students, 1000):
        ops = [
            put_op(
                prefix=PREFIX,
                district=DISTRICT,
                record_type="students",
                obj=msgspec.json.encode(student(n)),
            )
            for n in range(lo, min(students, lo + 1000))
        ]
        await writer.apply(ops)
    per_object = (time.perf_counter() - started) / students * 1e6
    started = time.perf_counter()
    for lo in range(0, events, 1000):
        ops = []
        for n in range(lo, min(events, lo + 1000)):
            obj = student(n % students)
            obj["grade"] = str(1 + n % 12)
            out = LegacyOut(
                "students", "students.updated", msgspec.Raw(msgspec.json.encode(obj)), None
            )
            data = encode_legacy_event(out, legacy_id(n), "2026-01-01T00:00:00.000Z")
            ops.append(
                event_op(out, prefix=PREFIX, district=DISTRICT, legacy_id=legacy_id(n), data=data)
            )
        await writer.apply(ops)
    per_event = (time.perf_counter() - started) / events * 1e6
    await redis.aclose()
    return {"put_object_us": round(per_object, 1), "event_us": round(per_event, 1)}


def serve(redis_url: str, port: int) -> None:
    """Serve the v2 routes (the process the clients measure)."""
    from aiohttp import web

    from relay.config import validate
    from relay.redis.keys import Keys
    from relay.v2api.server import add_routes

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    cfg = validate(
        {
            "relay": {"components": ["http", "v2api"]},
            "redis": {"url": redis_url, "prefix": PREFIX},
            "clever": {"districts": [{"id": DISTRICT, "token": "clever-token"}]},
            "v2api": {"clients": [{"name": "bench", "district": DISTRICT, "token": KEY}]},
        }
    )

    async def make() -> web.Application:
        app = web.Application()
        redis = aioredis.Redis.from_url(redis_url, max_connections=200)
        add_routes(app, cfg=cfg, redis=redis, keys=Keys(PREFIX))
        return app

    web.run_app(make(), host="127.0.0.1", port=port, access_log=None, print=None)


async def load(base: str, paths: list[str], *, clients: int, requests: int) -> dict[str, float]:
    """``requests`` GETs spread over ``clients`` concurrent clients; latency percentiles (ms)."""
    latencies: list[float] = []
    per_client = max(1, requests // clients)
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one_client(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(per_client):
                started = time.perf_counter()
                async with session.get(base + rng.choice(paths)) as resp:
                    body = await resp.read()
                    assert resp.status == 200, body[:200]
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "max_ms": round(latencies[-1], 1),
        "pages_per_s": round(len(latencies) / elapsed, 1),
    }


def wait_ready(base: str) -> None:
    """Poll until the server answers."""
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/v2.1/events", timeout=1)  # answers 401
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def translator_overhead(*, events: int, districts: int, runs: int) -> dict[str, list[float]]:
    """The translator alone (real processes, ``bench.relay_runs``) without and with the read
    model (v2 clients configured through the environment): events/s and Redis busy time per
    source event (all commands, from ``INFO commandstats``) per run."""
    import os
    import tempfile
    from pathlib import Path

    from bench.procs import SimProc
    from bench.relay_runs import RelayBench

    tmp = Path(tempfile.mkdtemp(prefix="bench-v2-"))
    redis_proc = RedisProc()
    sim = SimProc(seed=1, districts=districts, events_per_district=events // districts)
    rates: dict[str, list[float]] = {"without_read_model": [], "with_read_model": []}
    redis_us: dict[str, list[float]] = {mode: [] for mode in rates}
    clients = '[{name = "bench", district = "%s", token = "bench-v2-key"}]'
    try:
        bench = RelayBench(redis_proc, sim, tmp)
        for _ in range(runs):
            for mode, found in rates.items():
                os.environ.pop("RELAY__V2API__CLIENTS", None)
                if mode == "with_read_model":
                    os.environ["RELAY__V2API__CLIENTS"] = clients % sim.districts()[0].id
                bench.poller_alone()
                client = redis_proc.client()
                client.config_resetstat()
                phase = bench.translator_alone()
                found.append(round(phase.rate, 1))
                stats: dict[str, Any] = client.info("commandstats")
                busy_us = sum(v["usec"] for v in stats.values())
                redis_us[mode].append(round(busy_us / phase.events, 1))
    finally:
        os.environ.pop("RELAY__V2API__CLIENTS", None)
        sim.close()
        redis_proc.close()
    return {
        **{f"{mode}_events_per_s": found for mode, found in rates.items()},
        **{f"{mode}_redis_us_per_event": found for mode, found in redis_us.items()},
    }


def main() -> None:
    """Fill, serve, measure; print one JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench.v2api")
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "translator"])
    parser.add_argument("--redis-url")
    parser.add_argument("--port", type=int)
    parser.add_argument("--students", type=int, default=20000)
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.redis_url, args.port)
        return
    if args.mode == "translator":
        rates = translator_overhead(events=args.events, districts=4, runs=2)
        print(json.dumps(rates, indent=2))
        return
    redis_proc = RedisProc()
    port = free_port()
    server = None
    try:
        report: dict[str, Any] = {
            "fill": asyncio.run(fill(redis_proc.url, students=args.students, events=args.events))
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.v2api",
                "serve",
                "--redis-url",
                redis_proc.url,
                "--port",
                str(port),
            ]
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        students = [student(n)["id"] for n in range(0, args.students - 1000, 97)]
        events = [legacy_id(n) for n in range(0, args.events - 1000, 97)]
        cases = {
            "students_1000": [f"/v2.1/students?limit=1000&starting_after={s}" for s in students],
            "events_1000": [f"/v2.1/events?limit=1000&starting_after={e}" for e in events],
        }
        for name, paths in cases.items():
            report[name] = [
                asyncio.run(load(base, paths, clients=c, requests=max(args.requests, c)))
                for c in args.clients
            ]
        print(json.dumps(report, indent=2))
    finally:
        if server is not None:
            stop_process(server)
        redis_proc.close()


if __name__ == "__main__":
    main()
