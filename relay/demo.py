"""``clever-relay demo``: the whole pipeline on this machine, in one command (docs/simulator.md).

It starts the simulator (seeded, three districts, live activity; a fourth joins after a few
seconds and is discovered and onboarded, docs/fleet.md), uses the Redis named by ``--redis-url``
or ``RELAY__REDIS__URL`` (exit 2 with one line when it does not answer); with none named, the
default ``redis.url`` (127.0.0.1:6379) when it answers, else a private ``redis-server`` on a
free port that it stops on exit, after the relay. It runs poller, translator and ops server in
this process, and shows what flows: per district the cursor and lag, per legacy topic the
created/updated/deleted counts, the latest translations, dead letters, and the ``redis-cli``
command that reads what it wrote. Its keys live under the ``clever-demo`` prefix, which it
clears at start, so a demo never touches a real relay's keys. Ctrl-C stops it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay import logs
from relay.config import Config, RedisSection, load_config
from relay.errors import DemoError, RedisUnreachable
from relay.redis.keys import Keys
from relay.service import Service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

DEMO_PREFIX = "clever-demo"
DEMO_DISTRICTS = 3
DEMO_HISTORY = 2000
"""Events per district already in the feed when the demo starts."""
DEMO_LIVE_RATE = 20.0
"""New simulated events per second while the demo runs."""
RECENT = 8
JOIN_AFTER_S = 4.0
"""When a fourth district authorizes the app: discovery finds it and onboards it by sync."""
DEMO_APP = ("sim_client_id", "sim_client_secret")
"""The simulator's default client id and secret (its tokens endpoint prints them too)."""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be bound (so the ops server can use it)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


async def redis_answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url`` within a second."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[str]:
    """Start a throw-away ``redis-server`` on a free port; yields its URL, stops it after."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise DemoError(
            "redis-server is not installed: install Redis (e.g. apt-get install redis-server) "
            "or name a running one with --redis-url"
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="clever-relay-demo-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    # A session of its own: Ctrl-C signals the terminal's whole process group, and the relay
    # must stop (and flush) before its Redis does.
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10.0
        while not await redis_answers(url):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise DemoError(f"the private redis-server on port {port} did not start")
            await asyncio.sleep(0.05)
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


def demo_config(
    *, base_url: str, districts: list[tuple[str, str]], redis_url: str | None
) -> Config:
    """The demo's built-in config; ``RELAY__...`` variables override it like a file."""
    http_port = 8080 if port_free("127.0.0.1", 8080) else free_port()
    defaults: dict[str, Any] = {
        "relay": {"components": ["poller", "translator", "http"], "shutdown_grace_s": 5.0},
        "clever": {
            "base_url": base_url,
            "poll_interval_s": 0.5,
            "page_limit": 1000,
            "districts": [{"id": d, "token": t, "start": "earliest"} for d, t in districts],
            "discovery": {  # the district that joins mid-run is discovered (docs/fleet.md)
                "client_id": DEMO_APP[0],
                "client_secret": DEMO_APP[1],
                "oauth_base_url": base_url,
                "interval_s": 1.0,
            },
        },
        "redis": {"prefix": DEMO_PREFIX},
        "legacy": {"block_ms": 200},
        "http": {"host": "127.0.0.1", "port": http_port},
        "log": {"level": "warning"},
    }
    if redis_url is not None:
        defaults["redis"]["url"] = redis_url
    return load_config(None, defaults=defaults)


async def clear_prefix(redis: aioredis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix:`` so the demo starts from an empty relay."""
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=Keys(prefix).all_pattern(), count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


class _Entry(msgspec.Struct):
    """The few fields of a stream entry's ``data`` the view needs."""

    type: str = ""
    roles: list[str] | None = None


_entry_decoder = msgspec.json.Decoder(_Entry)


@dataclass
class View:
    """What the demo shows, fed incrementally from the streams (XREAD from the last id seen)."""

    keys: Keys
    record_types: list[str]
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    last_ids: dict[str, bytes] = field(default_factory=dict)
    sources: OrderedDict[str, str] = field(default_factory=OrderedDict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    """Latest ``users.*`` translations: the interesting ones (one v3 event, several v2)."""
    recent_other: deque[str] = field(default_factory=lambda: deque(maxlen=2))
    pending: OrderedDict[str, list[str]] = field(default_factory=OrderedDict)
    v3_events: int = 0
    dead_letters: int = 0
    cursors: dict[str, str] = field(default_factory=dict)
    lags: dict[str, str] = field(default_factory=dict)
    read_command: str = ""
    """The ``redis-cli`` command that reads what the demo wrote (shown on screen and summary)."""

    async def refresh(self, redis: aioredis.Redis, districts: list[str]) -> None:
        """Read what is new on every stream and the per-district state."""
        streams = [self.keys.events] + [self.keys.legacy(rt) for rt in self.record_types]
        last = {s: self.last_ids.get(s, b"0-0") for s in streams}
        replies = cast(
            "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]",
            await redis.xread(last, count=5000),  # type: ignore[arg-type]  # str values are fine
        )
        for stream, entries in replies:
            name = stream.decode()
            for entry_id, fields in entries:
                self.last_ids[name] = entry_id
                self._take(name, fields)
        self._flush_recent()
        self.dead_letters = int(await redis.xlen(self.keys.deadletter))
        for district in districts:
            cursor = cast("bytes | None", await redis.get(self.keys.cursor(district)))
            self.cursors[district] = cursor.decode() if cursor else "-"
            state_key = self.keys.poll_state(district)
            newest = cast("bytes | None", await redis.hget(state_key, "newest_created"))
            self.lags[district] = _lag(newest.decode() if newest else None)

    def _take(self, stream: str, fields: dict[bytes, bytes]) -> None:
        data = _entry_decoder.decode(fields.get(b"data", b"{}"))
        if stream == self.keys.events:
            self.v3_events += 1
            roles = f" ({'+'.join(data.roles)})" if data.roles else ""
            self.sources[fields.get(b"id", b"").decode()] = f"{data.type}{roles}"
            while len(self.sources) > 10_000:
                self.sources.popitem(last=False)
            return
        record_type = stream.rsplit(":", 1)[1]
        legacy_type = fields.get(b"type", b"").decode()
        self.counts.setdefault(record_type, Counter())[legacy_type.rsplit(".", 1)[-1]] += 1
        source = fields.get(b"source", b"").decode()
        self.pending.setdefault(source, []).append(legacy_type)

    def _flush_recent(self) -> None:
        for source, legacy in self.pending.items():
            origin = self.sources.get(source, source)
            target = self.recent if origin.startswith("users.") else self.recent_other
            target.append(f"{origin} -> {', '.join(legacy)}")
        self.pending.clear()

    def summary_lines(self) -> list[str]:
        """Plain-text summary: one line per district, topic counts, dead letters."""
        out = [
            f"district {d}: cursor {c} lag {self.lags.get(d, '-')}" for d, c in self.cursors.items()
        ]
        for record_type in self.record_types:
            c = self.counts.get(record_type, Counter())
            total = sum(c.values())
            out.append(
                f"legacy:{record_type} {total} (created {c['created']}, "
                f"updated {c['updated']}, deleted {c['deleted']})"
            )
        out.append(f"v3 events {self.v3_events}, dead letters {self.dead_letters}")
        out.append(f"read what it wrote: {self.read_command}")
        return out


def _lag(newest_created: str | None) -> str:
    if not newest_created:
        return "-"
    from datetime import datetime

    try:
        created = datetime.fromisoformat(newest_created.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    return f"{max(0.0, time.time() - created.timestamp()):.1f}s"


def render(view: View, ops_url: str) -> Any:
    """A rich renderable of the view (imported lazily: only a tty needs rich)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    districts = Table(title="Clever districts (v3 events polled)")
    for col in ("district", "cursor", "lag"):
        districts.add_column(col)
    for district, cursor in view.cursors.items():
        districts.add_row(district, cursor, view.lags.get(district, "-"))
    topics = Table(title="legacy v2 topics")
    for col in ("stream", "created", "updated", "deleted"):
        topics.add_column(col, justify="right" if col != "stream" else "left")
    for record_type in view.record_types:
        c = view.counts.get(record_type, Counter())
        topics.add_row(
            f"{DEMO_PREFIX}:legacy:{record_type}",
            *(str(c[a]) for a in ("created", "updated", "deleted")),
        )
    recent = "\n".join([*view.recent_other, *view.recent]) or "(waiting for events)"
    footer = (
        f"v3 events: {view.v3_events}   dead letters: {view.dead_letters}   "
        f"ops: {ops_url}/status   Ctrl-C to stop\nread what it wrote: {view.read_command}"
    )
    return Group(districts, topics, Panel(recent, title="latest translations"), footer)


async def _show(
    view: View, redis: aioredis.Redis, districts: list[str], ops_url: str, stop: asyncio.Event
) -> None:
    """Refresh the view until ``stop``: a live table on a tty, summary lines otherwise."""
    tty = sys.stdout.isatty()
    live = None
    if tty:
        from rich.live import Live

        live = Live(render(view, ops_url), refresh_per_second=4)
        live.start()
    last_print = 0.0
    try:
        while not stop.is_set():
            with contextlib.suppress(RedisError):
                await view.refresh(redis, districts)
            if live is not None:
                live.update(render(view, ops_url))
            elif time.monotonic() - last_print >= 5.0:
                last_print = time.monotonic()
                print(
                    " | ".join(view.summary_lines()[-len(view.record_types) - 2 :][:3]), flush=True
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        if live is not None:
            live.stop()


async def _demo(args: argparse.Namespace) -> int:
    from relay.simulator import SimOptions, World, running_simulator

    logs.configure(level=os.environ.get("RELAY__LOG__LEVEL", "warning"), fmt="console")
    world = World.generate(args.seed, districts=DEMO_DISTRICTS, events_per_district=DEMO_HISTORY)
    options = SimOptions(seed=args.seed, live_rate=DEMO_LIVE_RATE)
    named = args.redis_url or os.environ.get("RELAY__REDIS__URL")
    if named and not await redis_answers(named):
        raise RedisUnreachable(
            f"no Redis answers at {logs.scrub(named)} (named by "
            f"{'--redis-url' if args.redis_url else 'RELAY__REDIS__URL'}); start it, or name "
            "none and the demo starts a private one"
        )
    # Exit order matters: the stack (a private Redis) closes after the relay has stopped.
    async with contextlib.AsyncExitStack() as stack, running_simulator(world, options) as sim:
        pairs = [(d.id, d.token) for d in sim.world.districts]
        redis_url = named or await _default_or_private(stack)
        cfg = demo_config(base_url=sim.base_url, districts=pairs, redis_url=redis_url)
        districts = [d for d, _ in pairs]

        def join() -> None:
            joined = sim.world.add_generated(200).id
            districts.append(joined)
            print(f"district joined: {joined} (discovered, onboarded by sync)", flush=True)

        asyncio.get_running_loop().call_later(JOIN_AFTER_S, join)
        return await _run_pipeline(cfg, districts, args.duration)


async def _default_or_private(stack: contextlib.AsyncExitStack) -> str:
    """The default ``redis.url`` when a Redis answers there, else a private one for this demo."""
    default = RedisSection().url
    if await redis_answers(default):
        return default
    url = await stack.enter_async_context(private_redis())
    print(f"no Redis at {default}; started a private one at {url}; it stops with the demo")
    return url


async def _run_pipeline(cfg: Config, districts: list[str], duration: float | None) -> int:
    keys = Keys(cfg.redis.prefix, cfg.redis.partitions)
    redis = aioredis.Redis.from_url(cfg.redis.url)
    try:
        await clear_prefix(redis, cfg.redis.prefix)
        service = Service(cfg)
        ops_url = f"http://{cfg.http.host}:{cfg.http.port}"
        where = f"{logs.scrub(cfg.redis.url)} (prefix {cfg.redis.prefix})"
        print(f"clever-relay demo: simulator -> {where}, ops at {ops_url}", flush=True)
        view = View(
            keys=keys,
            record_types=list(cfg.legacy.record_types),
            read_command=read_command(cfg.redis.url, cfg.redis.prefix),
        )
        print(f"read what it wrote: {view.read_command}", flush=True)
        runner = asyncio.create_task(service.run(), name="service")
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, service.request_stop)
        await _show(view, redis, districts, ops_url, service.stop)
        code = await runner
        await view.refresh(redis, districts)
        print("\n".join(["final summary:", *view.summary_lines()]), flush=True)
        return code
    finally:
        await redis.aclose()


def read_command(redis_url: str, prefix: str) -> str:
    """The ``redis-cli`` command that reads what the demo wrote to the teachers topic."""
    parts = urlsplit(redis_url)
    host = "" if parts.hostname in (None, "127.0.0.1", "localhost") else f"-h {parts.hostname} "
    db = parts.path.strip("/")
    database = f" -n {db}" if db not in ("", "0") else ""
    return (
        f"redis-cli {host}-p {parts.port or 6379}{database} "
        f"XREAD COUNT 10 STREAMS {Keys(prefix).legacy('teachers')} 0"
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``clever-relay demo``; returns the exit code."""
    try:
        return asyncio.run(_demo(args))
    except RedisUnreachable as exc:
        print(f"clever-relay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
