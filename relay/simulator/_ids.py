"""ObjectId-style ids and Clever's timestamp format, shared by every part of the simulator.

Clever ids are MongoDB ObjectIds: 4 bytes of seconds since the epoch, then 8 bytes that make
them unique. Because the time comes first, sorting ids sorts by creation time, which is what
Clever's ``starting_after`` paging relies on; the simulator keeps that property so that
retention and cursor-age checks can read the time back out of an id.
"""

from __future__ import annotations

import time

_TIME_FMT = "%Y-%m-%dT%H:%M:%S"
_last_second: list[int | str] = [-1, ""]
"""Cache of the last formatted second: generation formats ~2 timestamps per event."""


class IdMaker:
    """Makes strictly ascending ObjectId-style ids for one namespace (a district's events, say).

    The 5 middle bytes are fixed per maker (derived from the seed), the last 3 are a counter,
    so ids made in the same second still ascend in creation order.
    """

    def __init__(self, machine: int, counter: int = 0) -> None:
        self._middle = f"{machine & 0xFFFFFFFFFF:010x}"
        self._counter = counter & 0xFFFFFF
        self._last_ts = 0

    def make(self, ts: float) -> str:
        """A new id for an object created at unix time ``ts`` (never below the last one's)."""
        sec = max(int(ts), self._last_ts)
        self._last_ts = sec
        self._counter = (self._counter + 1) & 0xFFFFFF
        return f"{sec:08x}{self._middle}{self._counter:06x}"


def id_time(object_id: str) -> int:
    """The unix seconds encoded in an ObjectId (0 when it is not one)."""
    try:
        return int(object_id[:8], 16)
    except ValueError:
        return 0


def lowest_id_at(ts: float) -> str:
    """The smallest possible id created at or after unix time ``ts`` (for bisecting)."""
    return f"{max(int(ts), 0):08x}" + "0" * 16


def is_object_id(value: str) -> bool:
    """Whether ``value`` looks like an ObjectId: 24 lowercase hex characters."""
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)


def iso_ms(ts: float) -> str:
    """Clever's timestamp format: ISO 8601 UTC with ms, e.g. ``2026-11-28T17:34:24.123Z``."""
    sec = int(ts)
    ms = min(round((ts - sec) * 1000), 999)
    if sec != _last_second[0]:
        _last_second[:] = [sec, time.strftime(_TIME_FMT, time.gmtime(sec))]
    return f"{_last_second[1]}.{ms:03d}Z"
