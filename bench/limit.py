"""The Redis limit: the relay's own output entries written as fast as this machine allows.

The entries are read back from a relay run (XRANGE), so the limit writes exactly what the relay
wrote, then Redis is flushed and they are written again, two ways:

- ``redis_py``: redis-py (hiredis) pipelines, ``transaction=False``, 10,000 XADDs per
  round trip, no MAXLEN: the fastest a Python client gets;
- ``raw``: the commands pre-encoded as RESP outside the clock and streamed down one socket
  while the replies are read: what the Redis server itself can absorb, the true ceiling.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

PIPELINE = 10_000
CHUNK_BYTES = 1 << 20

Entry = tuple[bytes, dict[bytes, bytes]]
"""(stream key, fields) of one XADD."""


@dataclass
class LimitFigures:
    """Seconds to write the entries each way."""

    entries: int
    redis_py_s: float
    raw_s: float


def capture(client: redis.Redis, keys: list[str]) -> list[Entry]:
    """Every entry of ``keys`` (streams), in key order then stream order."""
    entries: list[Entry] = []
    for key in keys:
        name = key.encode()
        start = "-"
        while True:
            batch: Any = client.xrange(key, min=start, count=50_000)
            if not batch:
                break
            entries.extend((name, fields) for _, fields in batch)
            start = "(" + batch[-1][0].decode()
    return entries


def write_redis_py(client: redis.Redis, entries: list[Entry]) -> float:
    """Pipelined, non-transactional XADDs; returns seconds."""
    started = time.perf_counter()
    for i in range(0, len(entries), PIPELINE):
        pipe = client.pipeline(transaction=False)
        for key, fields in entries[i : i + PIPELINE]:
            pipe.xadd(key, fields)  # type: ignore[arg-type]  # bytes keys are fine for redis-py
        pipe.execute()
    return time.perf_counter() - started


def _resp(key: bytes, fields: dict[bytes, bytes]) -> bytes:
    parts = [b"XADD", key, b"*"]
    for name, value in fields.items():
        parts += [name, value]
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def write_raw(port: int, entries: list[Entry]) -> float:
    """Pre-encoded RESP streamed down one socket; returns seconds (encoding not counted).

    A thread sends while this one counts replies: each XADD reply is one bulk string,
    ``$<len>\\r\\n<id>\\r\\n``, so the replies are the CRLFs received divided by two.
    """
    payload = b"".join(_resp(key, fields) for key, fields in entries)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        crlfs = 0
        last = b""
        while crlfs < 2 * len(entries):
            data = sock.recv(CHUNK_BYTES)
            if not data:
                raise RuntimeError("redis closed the connection")
            if data.startswith(b"-"):
                raise RuntimeError(data[:200].decode(errors="replace"))
            crlfs += (last + data).count(b"\r\n")
            last = data[-1:] if data.endswith(b"\r") else b""
        sender.join()
        return time.perf_counter() - started


def measure(client: redis.Redis, port: int, entries: list[Entry]) -> LimitFigures:
    """Write ``entries`` both ways into a flushed Redis."""
    client.flushall()
    redis_py_s = write_redis_py(client, entries)
    client.flushall()
    raw_s = write_raw(port, entries)
    client.flushall()
    return LimitFigures(len(entries), redis_py_s, raw_s)
