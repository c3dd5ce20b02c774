"""Capped exponential backoff with full jitter, and a sleep that a stop event cuts short.

Full jitter (a uniform draw in ``[0, min(cap, base * 2**attempt)]``) spreads retries of many
districts or replicas hitting the same outage, instead of having them return in lockstep
(AWS Architecture Blog, "Exponential Backoff And Jitter"). Every loop that retries something
uses these two helpers, so "how long do we wait" has one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

DEFAULT_BASE_S = 0.05


class Backoff:
    """Delays for consecutive failures of one thing; :meth:`reset` after a success."""

    def __init__(
        self,
        *,
        cap_s: float,
        base_s: float = DEFAULT_BASE_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.cap_s = cap_s
        self.base_s = min(base_s, cap_s)
        self.attempt = 0
        self._rng = rng

    def ceiling(self) -> float:
        """The upper bound of the next delay (before jitter)."""
        # Cap the exponent so 2**attempt cannot overflow after days of failures.
        exponent: float = 2.0 ** min(self.attempt, 60)
        return min(self.cap_s, self.base_s * exponent)

    def next_delay(self) -> float:
        """The next delay in seconds: uniform in ``[0, ceiling]``; counts one more failure."""
        delay = self._rng() * self.ceiling()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (the thing succeeded)."""
        self.attempt = 0


async def sleep_or_stop(delay_s: float, stop: asyncio.Event | None) -> bool:
    """Sleep ``delay_s`` seconds, waking early when ``stop`` is set.

    Returns:
        True when ``stop`` is set (the caller should wind down), else False.
    """
    if stop is None:
        await asyncio.sleep(delay_s)
        return False
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(delay_s, 0.0)):
            await stop.wait()
    return stop.is_set()
