"""Clever's rate limit: a fixed window of N requests per bearer token (docs/clever-api.md).

"These limits are not averages; rather, the allowed count of requests resets every minute."
Windows are aligned to multiples of the window length on the wall clock, and
``X-RateLimit-Reset`` is the unix second when the current window ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Window:
    """One token's current window."""

    index: int
    used: int = 0


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request, and the headers that go with it."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    bucket: str

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers Clever sends; none when the limit is off (0).

        Sending ``Remaining: 0`` for an unlimited simulator would make a well-behaved client
        wait for every window to reset.
        """
        if self.limit <= 0:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-RateLimit-Bucket": self.bucket,
        }


class FixedWindowLimiter:
    """Counts requests per bucket (one per district token) in fixed windows."""

    def __init__(self, *, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, Window] = {}

    def _window(self, bucket: str, now: float) -> Window:
        index = int(now // self.window_s)
        window = self._windows.get(bucket)
        if window is None or window.index != index:
            window = self._windows[bucket] = Window(index)
        return window

    def hit(self, bucket: str, *, now: float | None = None) -> Verdict:
        """Count one request; ``allowed`` is False once the window's budget is spent."""
        now = time.time() if now is None else now
        window = self._window(bucket, now)
        reset = math.ceil((window.index + 1) * self.window_s)
        if self.limit > 0 and window.used >= self.limit:
            return Verdict(False, self.limit, 0, reset, bucket)
        window.used += 1
        remaining = max(self.limit - window.used, 0)
        return Verdict(True, self.limit, remaining, reset, bucket)
