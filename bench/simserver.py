"""``python -m bench.simserver``: the simulator in its own process, on uvloop, for benchmarks.

Same world and options as ``clever-relay simulate``, but no rate limit by default and uvloop as
the event loop, so the fake Clever costs as little CPU as it can on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop

from relay.simulator import SimOptions, World, running_simulator

UNLIMITED = 1_000_000_000


async def _serve(world: World, options: SimOptions, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_simulator(world, options, "127.0.0.1", port) as sim:
        print(f"simserver: {sim.base_url}", flush=True)
        await stop.wait()


def main() -> None:
    """Generate the world, then serve it until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.simserver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--events", type=int, default=50_000, help="events per district")
    parser.add_argument("--live-rate", type=float, default=0.0, help="events/s per district")
    # 0 would mean "unlimited" to the simulator, but it then answers X-RateLimit-Remaining: 0,
    # which makes the relay wait for the reset: a huge budget is the unlimited that works.
    parser.add_argument("--rate-limit", type=int, default=UNLIMITED, help="requests/min per token")
    args = parser.parse_args()
    world = World.generate(args.seed, districts=args.districts, events_per_district=args.events)
    options = SimOptions(
        seed=args.seed,
        retention_days=0,
        rate_limit=args.rate_limit,
        live_rate=args.live_rate,
        default_limit=1000,
    )
    uvloop.run(_serve(world, options, args.port))


if __name__ == "__main__":
    main()
