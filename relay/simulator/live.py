"""Live activity: while serving, each district gains generated events at ``live_rate``/s,
created at the current time, so a relay sees a feed that keeps moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import structlog

from relay.simulator.context import SIM_KEY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiohttp import web

log = structlog.get_logger(__name__)
TICK_S = 0.1


async def _run(app: web.Application) -> None:
    sim = app[SIM_KEY]
    due = 0.0
    last = time.monotonic()
    while True:
        await asyncio.sleep(
            max(TICK_S, 1.0 / sim.options.live_rate) if sim.options.live_rate > 0 else TICK_S
        )
        now = time.monotonic()
        due += (now - last) * sim.options.live_rate
        last = now
        count = int(due)
        if count:
            due -= count
            for district in sim.world.districts:
                district.generate(count)


async def live_activity(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: run the live generator while the app serves."""
    task = asyncio.create_task(_run(app), name="sim-live-activity")
    log.info("sim_live_activity_started", rate_per_district=app[SIM_KEY].options.live_rate)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
