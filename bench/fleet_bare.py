"""``python -m bench.fleet_bare``: the floor for polling many quiet districts in Python.

One task per district on one keep-alive aiohttp session (uvloop, like the relay):
``GET /v3.0/events?starting_after=<cursor>``, move the cursor past a non-empty page, sleep the
poll interval (counted from the request, as the relay does) after an empty one. Nothing is
published anywhere: whatever the relay spends above this loop is the cost of what it does
besides polling (:mod:`bench.fleet` compares the two).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path

import aiohttp
import msgspec
import uvloop


class _Id(msgspec.Struct):
    id: str


class _Item(msgspec.Struct):
    data: _Id


class _Page(msgspec.Struct):
    data: list[_Item]


_decoder = msgspec.json.Decoder(_Page)


async def _poll(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    cursor: str,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    loop_time = asyncio.get_running_loop().time
    while not stop.is_set():
        started = loop_time()
        params = {"starting_after": cursor, "limit": "1000"}
        async with session.get(url, params=params, headers=headers) as resp:
            body = await resp.read()
        page = _decoder.decode(body) if resp.status == 200 else _Page([])
        if page.data:
            cursor = page.data[-1].data.id
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s - (loop_time() - started))


async def _main(base_url: str, districts: list[dict[str, str]], interval_s: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = f"{base_url}/v3.0/events"
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [
            asyncio.create_task(_poll(session, url, d["token"], d["cursor"], interval_s, stop))
            for d in districts
        ]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    """Poll the districts listed in a JSON file until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_bare")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--districts", type=Path, required=True, help="[{id, token, cursor}]")
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    districts = json.loads(args.districts.read_text())
    uvloop.run(_main(args.base_url, districts, args.interval))


if __name__ == "__main__":
    main()
