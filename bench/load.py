"""Load test: the pipeline moves live events while a crowd of v2 clients pages the API.

One ``clever-relay run`` process with every component (poller, translator, http, v2api,
webhooks) against a private Redis, the simulator (its own process) as Clever, and a webhook
receiver in this process. After the backlog is through, ``--clients`` concurrent v2 clients
page ``/v2.1/students`` and ``/v2.1/events`` for ``--seconds`` (honouring ``Retry-After`` on a
503, as a well-behaved client does) while new events are appended to the simulator every
second and ``/readyz`` is sampled. Then the appends stop, the pipeline catches up and the run
is judged: v2 requests/s, p50/p99 latency, the share answered 503, the count of 500s, warning
or error lines in the relay's log, the events stream against the simulator's feed (each event
once, in order), the legacy streams (each legacy id once, each from an event of the stream),
and the webhooks (each matching legacy event delivered exactly once).

Run: ``.venv/bin/python -m bench.load [--clients 200] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.configs import PREFIX, relay_config
from bench.procs import RedisProc, SimProc, free_port, stop_process
from bench.relay_runs import LEGACY_KEYS, poller_done, translator_done
from relay.redis.keys import Keys

KEY = "bench-load-v2-key-0123456789abcdefghijklmnop"
SECRET = "whsec_YmVuY2gtbG9hZC13ZWJob29rLXNlY3JldC0wMDAx"
TOPICS = ["students.*", "teachers.*", "sections.*"]
CATCH_UP_TIMEOUT_S = 600.0


@dataclass
class Tally:
    """What the v2 clients saw."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    readyz: Counter[int] = field(default_factory=Counter)


class Receiver:
    """A webhook endpoint counting deliveries per ``webhook-id``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen[request.headers["webhook-id"]] += 1
        return web.Response(status=200)

    async def start(self) -> None:
        """Serve on loopback."""
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()


def write_config(directory: Path, sim: SimProc, redis: RedisProc, http: int, hook: int) -> Path:
    """The relay's config: every component, one v2 key (first district), one endpoint."""
    districts = sim.districts()
    path = relay_config(
        directory,
        name="load",
        components=["poller", "translator", "http", "v2api", "webhooks"],
        base_url=sim.base_url,
        redis_url=redis.url,
        districts=districts,
        poll_interval_s=0.5,
    )
    path.write_text(
        path.read_text()
        + f'[http]\nhost = "127.0.0.1"\nport = {http}\n'
        + f'[[v2api.clients]]\nname = "load"\ndistrict = "{districts[0].id}"\n'
        + f'token = "{KEY}"\n'
        + f'[[webhooks.endpoints]]\nname = "load"\nurl = "http://127.0.0.1:{hook}/hook"\n'
        + f"topics = {json.dumps(TOPICS)}\nsecret = {json.dumps(SECRET)}\n"
    )
    return path


def legacy_entries(redis: RedisProc) -> list[dict[bytes, bytes]]:
    """Every entry of every legacy stream."""
    client = redis.client()
    out: list[dict[bytes, bytes]] = []
    for key in LEGACY_KEYS:
        entries: Any = client.xrange(key)
        out += [fields for _, fields in entries]
    return out


def expected_webhooks(redis: RedisProc) -> Counter[str]:
    """The legacy events the endpoint subscribes to, each once."""
    prefixes = tuple(topic.removesuffix("*") for topic in TOPICS)
    return Counter(
        fields[b"id"].decode()
        for fields in legacy_entries(redis)
        if fields[b"type"].decode().startswith(prefixes)
    )


async def wait_caught_up(
    redis: RedisProc, sim: SimProc, receiver: Receiver, relay: subprocess.Popen[bytes], what: str
) -> None:
    """Until the poller is at the simulator's end, the translator at the stream's and every
    subscribed legacy event is delivered; fails if the relay dies or it takes too long."""
    client = redis.client()
    polled = poller_done(client, sim.districts())
    translated = translator_done(client)

    def pipeline_done() -> Counter[str] | None:
        return expected_webhooks(redis) if polled() and translated() else None

    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        expected = await asyncio.to_thread(pipeline_done)
        if expected is not None and receiver.seen == expected:
            return
        if relay.poll() is not None:
            raise RuntimeError(f"relay exited with {relay.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def client_loop(session: aiohttp.ClientSession, base: str, tally: Tally, end: float) -> None:
    """One v2 client: walk a collection page by page, restart at the end, until ``end``."""
    rng = random.Random()
    path = ""
    headers = {"Authorization": f"Bearer {KEY}"}
    while time.monotonic() < end:
        if not path:
            path = rng.choice(["/v2.1/students?limit=100", "/v2.1/events?limit=100"])
        started = time.perf_counter()
        async with session.get(base + path, headers=headers) as resp:
            body = await resp.read()
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            tally.statuses[resp.status] += 1
            if resp.status == 503:
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
        page = json.loads(body) if resp.status == 200 else {"data": []}
        nexts = [link["uri"] for link in page.get("links", []) if link["rel"] == "next"]
        path = nexts[0] if page["data"] and nexts else ""


async def feed(sim: SimProc, per_second: int, end: float) -> int:
    """Append ``per_second`` generated events to each district every second until ``end``."""
    appended = 0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            for district in sim.districts():
                body = {"district": district.id, "generate": per_second}
                async with session.post(f"{sim.base_url}/_sim/events", json=body) as resp:
                    resp.raise_for_status()
                appended += per_second
            await asyncio.sleep(1.0)
    return appended


async def sample_readyz(base: str, tally: Tally, end: float) -> None:
    """Ask /readyz every 2 s until ``end``."""
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            async with session.get(f"{base}/readyz") as resp:
                tally.readyz[resp.status] += 1
            await asyncio.sleep(2.0)


async def load(base: str, sim: SimProc, clients: int, seconds: float, per_second: int) -> Any:
    """Run the crowd, the feed and the readiness probe together; ``(tally, appended)``."""
    tally = Tally()
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        crowd = [client_loop(session, base, tally, end) for _ in range(clients)]
        results = await asyncio.gather(
            feed(sim, per_second, end), sample_readyz(base, tally, end), *crowd
        )
    return tally, results[0]


def sim_feed(sim: SimProc) -> dict[str, list[str]]:
    """Every event id the simulator serves, per district, in Clever order (paged over HTTP)."""
    import urllib.request

    feeds: dict[str, list[str]] = {}
    for district in sim.districts():
        ids: list[str] = []
        while True:
            after = f"&starting_after={ids[-1]}" if ids else ""
            request = urllib.request.Request(
                f"{sim.base_url}/v3.0/events?limit=1000{after}",
                headers={"Authorization": f"Bearer {district.token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as resp:
                items = json.loads(resp.read())["data"]
            if not items:
                break
            ids += [item["data"]["id"] for item in items]
        feeds[district.id] = ids
    return feeds


def stream_feed(redis: RedisProc) -> dict[str, list[str]]:
    """Event ids on the events stream, per district, in stream order."""
    feeds: dict[str, list[str]] = {}
    entries: Any = redis.client().xrange(Keys(PREFIX).events)
    for _, fields in entries:
        feeds.setdefault(fields[b"district"].decode(), []).append(fields[b"id"].decode())
    return feeds


def log_problems(log_path: Path) -> Counter[str]:
    """Warning and error lines of the relay's log, counted by event name."""
    found: Counter[str] = Counter()
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            found["(not JSON)"] += 1
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            found[str(entry.get("event"))] += 1
    return found


def judge(redis: RedisProc, sim: SimProc, receiver: Receiver, log_path: Path) -> dict[str, Any]:
    """The exactness checks, once the pipeline has caught up."""
    events: Any = redis.client().xrange(Keys(PREFIX).events)
    sources = {fields[b"id"] for _, fields in events}
    legacy = legacy_entries(redis)
    legacy_ids = Counter(fields[b"id"] for fields in legacy)
    expected = expected_webhooks(redis)
    return {
        "events_exact": stream_feed(redis) == sim_feed(sim),
        "events": len(events),
        "legacy_events": len(legacy),
        "legacy_each_once": max(legacy_ids.values(), default=1) == 1,
        "legacy_from_stream": all(fields[b"source"] in sources for fields in legacy),
        "webhooks_expected": sum(expected.values()),
        "webhooks_exact": receiver.seen == expected,
        "log_problems": dict(log_problems(log_path)),
    }


def summarize(tally: Tally, seconds: float) -> dict[str, Any]:
    """v2 throughput and latency figures of the load window."""
    total = sum(tally.statuses.values())
    latencies = sorted(tally.latencies_ms)
    served = [ms for ms in latencies if ms > 0]
    return {
        "requests": total,
        "requests_per_s": round(total / seconds, 1),
        "status_200_per_s": round(tally.statuses[200] / seconds, 1),
        "p50_ms": round(statistics.median(served), 1) if served else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "share_503": round(tally.statuses[503] / total, 4) if total else None,
        "status_500": tally.statuses[500],
        "statuses": dict(sorted(tally.statuses.items())),
        "readyz": dict(sorted(tally.readyz.items())),
    }


def start_relay(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``clever-relay run`` with its JSON log lines going to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--config", str(config)], stdout=log
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, let the backlog through, load, catch up, judge, stop."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    redis = RedisProc()
    redis.client().config_set("appendonly", "yes")  # as in production (everysec)
    sim = SimProc(seed=args.seed, districts=args.districts, events_per_district=args.events)
    receiver = Receiver()
    await receiver.start()
    http = free_port()
    log_path = workdir / "relay.log"
    config = write_config(workdir, sim, redis, http, receiver.port)
    relay = start_relay(config, log_path)
    try:
        await wait_caught_up(redis, sim, receiver, relay, "the backlog")
        base = f"http://127.0.0.1:{http}"
        tally, appended = await load(base, sim, args.clients, args.seconds, args.live)
        await wait_caught_up(redis, sim, receiver, relay, "the catch-up after the load")
        verdict = judge(redis, sim, receiver, log_path)
    finally:
        exit_code = stop_process(relay)
        await receiver.stop()
        sim.close()
        redis.close()
    return {
        "conditions": {
            "clients": args.clients,
            "seconds": args.seconds,
            "districts": args.districts,
            "backlog_events_per_district": args.events,
            "live_events_per_s_per_district": args.live,
            "live_events_appended": appended,
            "redis": "private redis-server, AOF on (appendfsync everysec)",
        },
        "v2": summarize(tally, args.seconds),
        "pipeline": verdict,
        "relay_exit_code": exit_code,
    }


def main() -> None:
    """Parse flags, run once, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    add = parser.add_argument
    add("--clients", type=int, default=200)
    add("--seconds", type=float, default=60.0)
    add("--districts", type=int, default=2)
    add("--events", type=int, default=5000, help="backlog events per district")
    add("--live", type=int, default=20, help="events appended per second per district")
    add("--seed", type=int, default=7)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
