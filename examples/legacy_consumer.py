"""A legacy v2 consumer reading the relay's legacy streams with a Redis consumer group.

Run it beside a relay (or ``clever-relay demo``)::

    python examples/legacy_consumer.py --redis-url redis://127.0.0.1:6379/0 --prefix clever \\
        --group my-app --consumer worker-1 students teachers

It reads each topic with ``relay.consume.TopicReader``: with ``--partitions P`` (the relay's
``[redis] partitions``) a topic is P streams, one per partition, and the reader takes each
district's events from its one stream, in order. It creates the groups if needed, first
re-reads its own unacknowledged entries (after a crash), then blocks for new ones, handles
each v2 event, and acknowledges it. A quiet stream is normal:
each block that returns nothing prints one ``idle`` line, and the socket timeout is set above
the block time, so the client never mistakes a long block for a dead connection. Handling is
idempotent on the legacy ``id`` (each is unique and stable), which turns the group's
at-least-once delivery into effectively-once processing. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

import msgspec
import redis.asyncio as aioredis

from relay.consume import TopicReader


class V2Data(msgspec.Struct, frozen=True):
    """``data`` of a v2 event: the object and, on updates, the previous values."""

    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class V2Event(msgspec.Struct, frozen=True):
    """One v2 event as Clever's v2.1 Events API served it."""

    id: str
    type: str
    created: str
    data: V2Data


_decoder = msgspec.json.Decoder(V2Event)


def handle(event: V2Event, seen: set[str]) -> None:
    """Apply one v2 event (here: print it); skipping ids already applied makes replays harmless."""
    if event.id in seen:
        return
    seen.add(event.id)
    name = event.data.object.get("name")
    changed = sorted(event.data.previous_attributes or {})
    line = f"{event.id} {event.type:<24} {event.data.object.get('id')} {name!r} changed={changed}"
    print(line, flush=True)


async def consume(args: argparse.Namespace) -> None:
    """Read the chosen legacy streams until Ctrl-C or SIGTERM."""
    # redis-py's default 5 s socket timeout would end a 5 s XREADGROUP BLOCK with a TimeoutError.
    redis = aioredis.Redis.from_url(args.redis_url, socket_timeout=args.block_ms / 1000 + 10)
    readers = [
        TopicReader(
            redis,
            prefix=args.prefix,
            partitions=args.partitions,
            topic=record_type,
            group=args.group,
            consumer=args.consumer,
        )
        for record_type in args.record_types
    ]
    seen: set[str] = set()  # a real consumer keeps this in its own database
    # Ctrl-C / SIGTERM end the loop after the current read (at most --block-ms): cancelling a
    # blocked read instead can leave the connection waiting on a reply that never comes.
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        for reader in readers:
            await reader.ensure_groups()
        # Blocking is split between the topics, so one round waits at most --block-ms.
        block_ms = max(1, args.block_ms // len(readers))
        while not stop.is_set() and not (args.max_events and len(seen) >= args.max_events):
            handled = 0
            for reader in readers:
                for entry in await reader.read(block_ms=block_ms):
                    if entry.fields is not None:
                        handle(_decoder.decode(entry.fields[b"data"]), seen)
                    await reader.ack(entry)
                    handled += 1
            if not handled:
                print(f"idle: no new entries in {args.block_ms} ms", flush=True)
    finally:
        await redis.aclose()


def main() -> None:
    """Parse the command line and consume until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", "--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="clever", help="the relay's [redis] prefix")
    parser.add_argument("--partitions", type=int, default=1, help="the relay's [redis] partitions")
    parser.add_argument("--block-ms", type=int, default=5000, help="longest wait per read")
    parser.add_argument(
        "--max-events", type=int, default=0, help="exit after handling this many (0: never)"
    )
    parser.add_argument("--group", default="legacy-example")
    parser.add_argument("--consumer", default="worker-1")
    parser.add_argument("record_types", nargs="*", default=["students", "teachers", "contacts"])
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the loop runs
        asyncio.run(consume(parser.parse_args()))


if __name__ == "__main__":
    main()
