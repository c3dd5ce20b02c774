"""Client-side pacing against Clever's per-token rate limit (docs/clever-api.md).

Clever allows 1200 requests a minute per bearer token and reports the window in every
response: ``X-RateLimit-Remaining`` (requests left) and ``X-RateLimit-Reset`` (Unix time the
count resets). The limiter keeps ``reserve`` requests in hand: once the remaining count drops to
the reserve it waits for the reset *before* sending, so the relay slows down instead of
collecting 429s. A 429 still happens (another client of the same token, clock skew); then the
limiter blocks until ``Retry-After`` or the reset, whichever the response gives.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from relay.metrics import RATE_LIMIT_WAIT, district_label

if TYPE_CHECKING:
    from collections.abc import Mapping

MIN_WAIT_S = 0.05
"""Wait at least this long when the window is exhausted but its reset already passed on our
clock (clocks differ): a tight loop of 429s helps nobody."""
RESET_MARGIN_S = 0.02
"""Sleep this much past ``X-RateLimit-Reset``: timers may fire a hair early, and a request that
lands in the old window would be a 429."""
DEFAULT_429_WAIT_S = 1.0
"""Wait after a 429 that says neither Retry-After nor X-RateLimit-Reset."""


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class RateLimiter:
    """The rate-limit window of one token, as the last response described it."""

    def __init__(self, *, district: str, reserve: int) -> None:
        self.district = district
        self.reserve = reserve
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self.blocked_until = 0.0
        self.waited_s = 0.0

    def update(self, headers: Mapping[str, str]) -> None:
        """Record the window a response reported (absent headers leave it unknown)."""
        remaining = _header_float(headers, "X-RateLimit-Remaining")
        if remaining is None:
            return
        self.remaining = remaining
        self.reset_at = _header_float(headers, "X-RateLimit-Reset")

    def on_429(self, headers: Mapping[str, str]) -> float:
        """Block the token until the window resets; returns how long from now."""
        now = time.time()
        retry_after = _header_float(headers, "Retry-After")
        reset = _header_float(headers, "X-RateLimit-Reset")
        if retry_after is not None:
            until = now + retry_after
        elif reset is not None:
            until = reset + RESET_MARGIN_S
        else:
            until = now + DEFAULT_429_WAIT_S
        until = max(until, now + MIN_WAIT_S)
        self.blocked_until = max(self.blocked_until, until)
        self.remaining = None
        return until - now

    def delay(self) -> float:
        """Seconds to wait before the next request may be sent (0 if none)."""
        now = time.time()
        wait = self.blocked_until - now
        if self.remaining is not None and self.remaining <= self.reserve:
            reset = self.reset_at if self.reset_at is not None else now + DEFAULT_429_WAIT_S
            wait = max(wait, reset - now + RESET_MARGIN_S, MIN_WAIT_S)
        return max(wait, 0.0)

    async def acquire(self) -> None:
        """Wait until a request may be sent without exceeding the window, then take one."""
        wait = self.delay()
        if wait > 0:
            RATE_LIMIT_WAIT.labels(district_label(self.district)).inc(wait)
            self.waited_s += wait
            await asyncio.sleep(wait)
            # The window has reset: the next response tells us the new count.
            self.remaining = None
        elif self.remaining is not None:
            # Count the request now so two concurrent callers cannot both spend the last slot.
            self.remaining -= 1
