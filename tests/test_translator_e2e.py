"""End to end: simulator → poller → translator(s) → legacy streams, checked against the model.

The in-process test runs two translators on one group; the process test runs ``python -m relay
run`` with only the translator, SIGKILLs it mid-run and restarts it. Both compare every legacy
stream with the reference model of ``tests/test_translator_helpers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import aiohttp
import msgspec

from relay.config import validate
from relay.health import Health
from relay.poller import Poller
from relay.simulator import SimOptions, World, running_simulator
from relay.translator.consumer import Translator
from tests.test_translator_helpers import (
    KEYS,
    drained,
    eventually,
    expected_streams,
    legacy_streams,
    messages_of,
    publish_raw,
    teacher_ids_from_clever,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import redis.asyncio as aioredis

    from relay.config import Config
    from relay.simulator import RunningSimulator

EVENTS_PER_DISTRICT = 1000
DISTRICTS = 2
PROCESS_EVENTS = 1000


def pipeline_cfg(redis_url: str, sim: RunningSimulator, **legacy: object) -> dict[str, object]:
    """A config tree for the simulator's districts (prefix ``t``)."""
    return {
        "relay": {"components": ["poller", "translator"]},
        "redis": {"url": redis_url, "prefix": "t"},
        "clever": {
            "base_url": sim.base_url,
            "page_limit": 500,
            "poll_interval_s": 0.1,
            "max_backoff_s": 0.2,
            "request_timeout_s": 2.0,
            "auth_retry_s": 0.5,
            "districts": [
                {"id": d.id, "token": d.token, "start": "earliest"} for d in sim.world.districts
            ],
        },
        "legacy": {"block_ms": 50, "lease_ttl_s": 1.0, **legacy},
        "log": {"level": "warning"},
    }


async def total_events(redis: aioredis.Redis, n: int) -> bool:
    """True once the events stream holds ``n`` entries."""
    return int(await redis.xlen(KEYS.events)) >= n


@contextlib.asynccontextmanager
async def component(comp: Poller | Translator) -> AsyncIterator[asyncio.Event]:
    """Run a component in the background until the block exits."""
    stop = asyncio.Event()
    task = asyncio.create_task(comp.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class TestTranslatorPipeline:
    """Simulator → poller → translator → legacy streams."""

    async def test_pipeline_legacy_streams_match_the_model(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """Seeded districts: every legacy event is the model's, once, in order (2 translators)."""
        world = World.generate(12, districts=DISTRICTS, events_per_district=EVENTS_PER_DISTRICT)
        total = DISTRICTS * EVENTS_PER_DISTRICT
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            cfg: Config = validate(pipeline_cfg(redis_url, sim, batch_size=200))

            common = {"cfg": cfg, "redis": redis_client, "session": session, "keys": KEYS}
            poller = Poller(health=Health(), **common)  # type: ignore[arg-type]  # typed kwargs
            one = Translator(health=Health(), consumer_name="one", **common)  # type: ignore[arg-type]  # typed kwargs
            two = Translator(health=Health(), consumer_name="two", **common)  # type: ignore[arg-type]  # typed kwargs
            async with component(poller):
                await eventually(lambda: total_events(redis_client, total), timeout_s=60)
            async with (
                component(one),
                component(two),
            ):
                await eventually(lambda: drained(redis_client), timeout_s=60, what="drained")
            teachers = await teacher_ids_from_clever(await messages_of(redis_client), sim, session)
        streams = await legacy_streams(redis_client)
        assert streams == expected_streams(await messages_of(redis_client), teacher_ids=teachers)
        assert sum(len(v) for v in streams.values()) > total


async def publish_world(redis: aioredis.Redis, world: World) -> None:
    """Put every event of ``world`` on the events stream as the poller would, districts interleaved.

    The SIGKILL test is about the translator, so it does not wait for a poller.
    """
    feeds = [[(d.id, msgspec.json.encode(e)) for e in d.events()] for d in world.districts]
    for batch in itertools.zip_longest(*feeds):
        await publish_raw(redis, [item for item in batch if item is not None])


def _run_translator(config: Path) -> subprocess.Popen[bytes]:
    """``python -m relay run`` with only the translator component."""
    env = {**os.environ, "RELAY__RELAY__COMPONENTS": '["translator"]'}
    return subprocess.Popen(
        [sys.executable, "-m", "relay", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _toml(tree: dict[str, object]) -> str:
    """A tiny TOML writer for the config trees these tests build (tables, arrays of tables)."""
    import json

    lines: list[str] = []
    for section, body in tree.items():
        assert isinstance(body, dict)
        scalars = {
            k: v
            for k, v in body.items()
            if not isinstance(v, list) or not v or not isinstance(v[0], dict)
        }
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]
        for key, items in body.items():
            if key in scalars:
                continue
            for item in items:
                lines.append(f"[[{section}.{key}]]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


class TestTranslatorProcess:
    """The translator as a real process, killed without warning."""

    async def test_sigkill_mid_run_leaves_legacy_streams_exact(
        self, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
    ) -> None:
        """SIGKILL while translating, restart: the legacy streams still equal the model exactly."""
        world = World.generate(12, districts=2, events_per_district=PROCESS_EVENTS)
        async with (
            running_simulator(world, SimOptions(rate_limit=0)) as sim,
            aiohttp.ClientSession() as session,
        ):
            tree = pipeline_cfg(redis_url, sim, batch_size=5)
            config = tmp_path / "relay.toml"
            config.write_text(_toml(tree))
            await publish_world(redis_client, world)
            for kill_after in (300, 1500):
                proc = _run_translator(config)
                try:
                    await eventually(
                        functools.partial(_legacy_at_least, redis_client, kill_after), timeout_s=60
                    )
                finally:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
            proc = _run_translator(config)
            try:
                await eventually(lambda: drained(redis_client), timeout_s=60, what="drained")
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
            teachers = await teacher_ids_from_clever(await messages_of(redis_client), sim, session)
        streams = await legacy_streams(redis_client)
        assert streams == expected_streams(await messages_of(redis_client), teacher_ids=teachers)


async def _legacy_at_least(redis: aioredis.Redis, n: int) -> bool:
    lengths = [
        int(await redis.xlen(KEYS.legacy(t)))
        for t in ("students", "teachers", "sections", "contacts")
    ]
    return sum(lengths) >= n
