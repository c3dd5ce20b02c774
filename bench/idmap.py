"""Benchmark of the ID crosswalk: filling it as ``sync`` does, and ``clever-relay idmap export``.

Starts a private Redis, writes ``--users`` users' mappings through the crosswalk script in pages
of 10,000 (what ``sync`` sends per Data API page; 90% students, 9% teachers, 1% teacher+staff),
then runs the real CLI (``python -m relay idmap export``) to ``/dev/null`` in both formats. The
baseline, measured in the same run, is a bare HSCAN of the same hash (the floor for any export
that reads Redis): the ratio says what the decoding and formatting add. Also times the
translator's batch script for the same users' events with and without the crosswalk's op.

Run: ``.venv/bin/python -m bench.idmap [--users 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis

from bench.procs import RedisProc
from relay.readmodel import crosswalk
from relay.readmodel.crosswalk import CrosswalkWriter
from relay.redis.keys import Keys
from relay.translate import v3
from relay.translator.store import BatchWrite, Store

PREFIX = "bench"
DISTRICT = "5a0c91b95c7cc000010d417c"
PAGE = 10_000


def user(n: int) -> bytes:
    """One v3 user: mostly students, some teachers, a few teacher+staff."""
    uid = f"6{n:023x}"
    if n % 100 < 90:
        roles: dict[str, Any] = {"student": {"sis_id": str(n)}}
    elif n % 100 < 99:
        roles = {"teacher": {"legacy_id": f"5{n:023x}"}}
    else:
        roles = {"teacher": {"legacy_id": f"5{n:023x}"}, "staff": {"legacy_id": f"4{n:023x}"}}
    return msgspec.json.encode({"id": uid, "district": DISTRICT, "roles": roles})


async def fill(url: str, users: int) -> dict[str, float]:
    """Write every user's mappings in sync-sized pages; seconds and users per second."""
    redis = aioredis.Redis.from_url(url)
    writer = CrosswalkWriter(redis, Keys(PREFIX), keep_s=86400.0)
    started = time.perf_counter()
    for first in range(0, users, PAGE):
        await writer.put(DISTRICT, [user(n) for n in range(first, min(users, first + PAGE))])
    seconds = time.perf_counter() - started
    await redis.aclose()
    return {"seconds": round(seconds, 3), "users_per_s": round(users / seconds)}


async def bare_hscan(url: str) -> float:
    """Seconds to HSCAN the whole v2 hash without decoding anything (the baseline)."""
    redis = aioredis.Redis.from_url(url)
    started = time.perf_counter()
    cursor = 0
    while True:
        cursor, _ = await redis.hscan(Keys(PREFIX).idmap_v2(DISTRICT), cursor, count=5000)
        if cursor == 0:
            break
    seconds = time.perf_counter() - started
    await redis.aclose()
    return seconds


def export(config: Path, fmt: str) -> tuple[float, int]:
    """Wall seconds of the real CLI export (process start included) and rows written."""
    command = [sys.executable, "-m", "relay", "idmap", "export", "--config", str(config)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--district", DISTRICT, "--format", fmt],
        check=True,
        capture_output=True,
    )
    rows = done.stdout.count(b"\n") - (1 if fmt == "csv" else 0)
    return time.perf_counter() - started, rows


async def _batch_run(
    store: Store, users: list[tuple[v3.User, bytes]], *, idmap: bool, batch: int = 500
) -> float:
    """Seconds to commit one snapshot write (and the crosswalk's op) per user event."""
    keys = store.keys
    await store.redis.delete(keys.translator_position)
    started = time.perf_counter()
    for first in range(0, len(users), batch):
        write = BatchWrite(keys)
        for n in range(first, min(len(users), first + batch)):
            decoded, body = users[n]
            write.begin(f"{n + 1}-0")
            write.put_user(DISTRICT, decoded.id, body, n + 1)
            if idmap:
                crosswalk.record(write, keys, DISTRICT, decoded, deleted=False, keep_s=86400)
        await store.commit(write, b"lease")
    return time.perf_counter() - started


async def translator_cost(url: str, count: int) -> dict[str, float]:
    """The translator's batch script for ``count`` user events without and with the crosswalk
    (new users, then the same users again: an update that changes no ``legacy_id``)."""
    redis = aioredis.Redis.from_url(url)
    keys = Keys("bench-tr")
    await redis.set(keys.translator_lease, b"lease")
    store = Store(redis, keys, group="g", legacy_maxlen=10**6, deadletter_maxlen=10**6)
    decoder = msgspec.json.Decoder(v3.User)
    users = [(decoder.decode(body), body) for body in (user(n) for n in range(count))]
    plain = await _batch_run(store, users, idmap=False)
    new = await _batch_run(store, users, idmap=True)
    unchanged = await _batch_run(store, users, idmap=True)
    await redis.aclose()
    return {
        "snapshots_only_s": round(plain, 3),
        "with_crosswalk_new_users_s": round(new, 3),
        "with_crosswalk_unchanged_s": round(unchanged, 3),
        "added_us_per_new_user": round((new - plain) / count * 1e6, 1),
        "added_us_per_unchanged_update": round((unchanged - plain) / count * 1e6, 1),
    }


def main() -> None:
    """Fill, export in both formats, print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    redis_proc = RedisProc()
    try:
        config = Path(tempfile.mkdtemp(prefix="bench-idmap-")) / "relay.toml"
        config.write_text(
            f'[redis]\nurl = "{redis_proc.url}"\nprefix = "{PREFIX}"\n'
            f'[[clever.districts]]\nid = "{DISTRICT}"\ntoken = "t"\n'
        )
        report: dict[str, Any] = {"users": args.users, "redis": redis_proc.version()}
        report["fill"] = asyncio.run(fill(redis_proc.url, args.users))
        report["translator_batch"] = asyncio.run(translator_cost(redis_proc.url, args.users))
        baseline = asyncio.run(bare_hscan(redis_proc.url))
        report["bare_hscan_s"] = round(baseline, 3)
        for fmt in ("csv", "jsonl"):
            seconds, rows = export(config, fmt)
            report[f"export_{fmt}"] = {
                "seconds": round(seconds, 3),
                "rows": rows,
                "rows_per_s": round(rows / seconds),
                "ratio_to_bare_hscan": round(seconds / baseline, 1),
            }
        print(json.dumps(report, indent=2))
    finally:
        redis_proc.close()


if __name__ == "__main__":
    main()
