"""Runs the webhooks component alone in a process, for the SIGKILL restart test.

``python -m tests.webhook_runner CONFIG`` builds the component as the service will and runs it
until SIGTERM, without the rest of the service, so the test exercises this component alone.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from relay import logs
from relay.config import load_config
from relay.health import Health
from relay.redis.client import create_redis
from relay.redis.keys import Keys
from relay.webhooks.delivery import WebhookDelivery


async def main(path: str) -> None:
    """Run until SIGTERM."""
    cfg = load_config(path)
    logs.configure(level="info", fmt="json", stream=sys.stderr, cache=False)
    redis = create_redis(cfg.redis)
    session = aiohttp.ClientSession()
    component = WebhookDelivery(
        cfg=cfg, redis=redis, session=session, health=Health(), keys=Keys(cfg.redis.prefix)
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await component.run(stop)
    finally:
        await session.close()
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
