"""Serve the simulator in-process: ``running_simulator`` for tests, the demo and benchmarks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from relay.simulator.context import SIM_KEY, Simulator, Stats
from relay.simulator.server import build_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from relay.simulator.faults import Faults, FaultsPatch
    from relay.simulator.options import SimOptions
    from relay.simulator.world import World


@dataclass
class RunningSimulator:
    """A simulator serving on ``base_url`` (e.g. ``http://127.0.0.1:54321``)."""

    base_url: str
    app: web.Application

    @property
    def sim(self) -> Simulator:
        """The shared state behind the app."""
        return self.app[SIM_KEY]

    @property
    def world(self) -> World:
        """The world being served (append to it directly, it is the same object)."""
        return self.sim.world

    @property
    def options(self) -> SimOptions:
        """The options it was started with."""
        return self.sim.options

    @property
    def stats(self) -> Stats:
        """Live counters (the same object ``GET /_sim/stats`` encodes)."""
        return self.sim.stats

    def set_faults(self, patch: FaultsPatch) -> Faults:
        """Change fault switches, like ``POST /_sim/faults``."""
        return self.sim.injector.update(patch)


@contextlib.asynccontextmanager
async def running_simulator(
    world: World, options: SimOptions, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve ``world`` until the block exits; ``port=0`` picks a free port."""
    app = build_app(world, options)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        netloc = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        yield RunningSimulator(f"http://{netloc}:{bound_port}", app)
    finally:
        await runner.cleanup()
