"""``clever-relay simulate``: flags and the serve-until-signal loop.

``relay/cli.py`` calls ``add_arguments(parser)`` and ``run(args)``. ``run`` prints one line,
``simulate: <url> district=<id> token=<token> ... client_id=<id> client_secret=<secret>``, once
the port answers, then serves until SIGINT/SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import structlog

from relay.simulator.faults import Faults
from relay.simulator.options import SimOptions
from relay.simulator.runner import running_simulator
from relay.simulator.world import World

log = structlog.get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every simulator flag to ``parser``."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8099, help="port to bind (default 8099; 0 picks one)")
    add("--seed", type=int, default=1, help="seed of the generated world and of fault injection")
    add("--districts", type=int, default=3, help="number of generated districts")
    add("--events", type=int, default=1000, help="events of initial history per district")
    add("--history-days", type=float, default=7.0, help="span of the generated history, ending now")
    add("--events-file", help="serve this JSON scenario instead of generating (docs/simulator.md)")
    add(
        "--live-rate", type=float, default=0.0, help="generated events/s per district while serving"
    )
    add(
        "--retention-days",
        type=float,
        default=30.0,
        help="events older than this vanish (0: never)",
    )
    add("--rate-limit", type=int, default=1200, help="requests per token per window (0: unlimited)")
    add("--rate-window-s", type=float, default=60.0, help="rate-limit window length")
    add(
        "--cursor-lost",
        choices=["404", "empty", "resume"],
        default="404",
        help="answer to starting_after an expired/unknown event",
    )
    add("--default-limit", type=int, default=100, help="page size when limit is not given")
    add("--fail-rate", type=float, default=0.0, help="fraction of 500/502/503 answers")
    add("--latency-ms", type=float, default=0.0, help="added latency per API request")
    add("--latency-jitter-ms", type=float, default=0.0, help="extra random latency, up to this")
    add("--malformed-rate", type=float, default=0.0, help="fraction of invalid-JSON bodies")
    add("--truncate-rate", type=float, default=0.0, help="fraction of bodies cut off halfway")
    add("--drop-rate", type=float, default=0.0, help="fraction of connections closed unanswered")
    add("--force-429-rate", type=float, default=0.0, help="fraction of forced 429 answers")
    add(
        "--print-config",
        action="store_true",
        help="print a relay config (TOML) for this simulator's districts and tokens, and exit",
    )
    add(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="the Redis the printed config names (with --print-config)",
    )
    add("--client-id", default="sim_client_id", help="the app's client id for /oauth/tokens")
    add(
        "--client-secret",
        default="sim_client_secret",
        help="the app's client secret for /oauth/tokens (a demo value: printed at start)",
    )
    add("--tokens-page-size", type=int, default=100, help="district tokens per /oauth/tokens page")


def options_from(args: argparse.Namespace) -> SimOptions:
    """The ``SimOptions`` the flags describe."""
    faults = Faults(
        fail_rate=args.fail_rate,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        malformed_rate=args.malformed_rate,
        truncate_rate=args.truncate_rate,
        drop_rate=args.drop_rate,
        force_429_rate=args.force_429_rate,
    )
    return SimOptions(
        seed=args.seed,
        retention_days=args.retention_days,
        rate_limit=args.rate_limit,
        rate_window_s=args.rate_window_s,
        cursor_lost=args.cursor_lost,
        live_rate=args.live_rate,
        default_limit=args.default_limit,
        faults=faults,
        client_id=args.client_id,
        client_secret=args.client_secret,
        tokens_page_size=args.tokens_page_size,
    )


def world_from(args: argparse.Namespace) -> World:
    """The world the flags describe (loaded or generated)."""
    if args.events_file:
        return World.from_file(args.events_file, seed=args.seed)
    return World.generate(
        args.seed,
        districts=args.districts,
        events_per_district=args.events,
        history_days=args.history_days,
    )


async def serve(world: World, options: SimOptions, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_simulator(world, options, host, port) as sim:
            districts = " ".join(f"district={d.id} token={d.token}" for d in world.districts)
            app = f"client_id={options.client_id} client_secret={options.client_secret}"
            print(f"simulate: {sim.base_url} {districts} {app}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def relay_config(world: World, args: argparse.Namespace) -> str:
    """A ready ``clever-relay run`` config (TOML) that polls this simulator's districts.

    The same flags generate the same world, so the ids and tokens printed here are the ones a
    ``clever-relay simulate`` with those flags serves (docs/simulator.md).
    """
    districts = "".join(
        f'\n[[clever.districts]]\nid = "{d.id}"\ntoken = "{d.token}"\nstart = "earliest"\n'
        for d in world.districts
    )
    return (
        "# A relay config for `clever-relay simulate` (written by its --print-config).\n"
        '[relay]\ncomponents = ["poller", "translator"]\n\n'
        f'[redis]\nurl = "{args.redis_url}"\nprefix = "sim"\n\n'
        f'[clever]\nbase_url = "http://{args.host}:{args.port}"\npoll_interval_s = 1.0\n'
        f"{districts}"
    )


def run(args: argparse.Namespace) -> int:
    """Build the world, serve it until a signal, return the exit code."""
    started = time.monotonic()
    world = world_from(args)
    if args.print_config:
        if args.port == 0:
            print("clever-relay simulate: --print-config needs a fixed --port", file=sys.stderr)
            return 2
        print(relay_config(world, args), end="")
        return 0
    log.info(
        "sim_world_ready",
        districts=len(world.districts),
        events=sum(len(d.feed) for d in world.districts),
        seconds=round(time.monotonic() - started, 3),
    )
    try:
        asyncio.run(serve(world, options_from(args), args.host, args.port))
    except OSError as exc:
        print(
            f"clever-relay simulate: cannot serve on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0
