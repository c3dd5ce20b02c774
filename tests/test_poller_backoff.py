"""Unit tests of the backoff and the client-side rate limiter (no I/O)."""

from __future__ import annotations

import asyncio
import time

from relay.backoff import Backoff, sleep_or_stop
from relay.clever.ratelimit import RESET_MARGIN_S, RateLimiter


class TestBackoff:
    """Capped exponential backoff with full jitter."""

    def test_backoff_ceiling_doubles_up_to_cap(self) -> None:
        """The ceiling doubles per failure from the base and stops at the cap."""
        backoff = Backoff(cap_s=1.0, base_s=0.1, rng=lambda: 1.0)
        delays = [round(backoff.next_delay(), 6) for _ in range(6)]
        assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]

    def test_backoff_full_jitter_scales_draw(self) -> None:
        """The delay is the random draw times the ceiling (full jitter)."""
        backoff = Backoff(cap_s=10.0, base_s=1.0, rng=lambda: 0.25)
        assert [backoff.next_delay() for _ in range(3)] == [0.25, 0.5, 1.0]

    def test_backoff_reset_starts_over(self) -> None:
        """After a reset the next delay uses the base again."""
        backoff = Backoff(cap_s=10.0, base_s=1.0, rng=lambda: 1.0)
        backoff.next_delay()
        backoff.next_delay()
        backoff.reset()
        assert backoff.next_delay() == 1.0

    def test_backoff_survives_many_failures(self) -> None:
        """Thousands of failures do not overflow the exponent."""
        backoff = Backoff(cap_s=5.0, rng=lambda: 1.0)
        for _ in range(5000):
            backoff.next_delay()
        assert backoff.next_delay() == 5.0

    async def test_backoff_sleep_wakes_on_stop(self) -> None:
        """A long sleep returns True as soon as the stop event is set."""
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, stop.set)
        started = time.monotonic()
        assert await sleep_or_stop(30.0, stop) is True
        assert time.monotonic() - started < 1.0

    async def test_backoff_sleep_runs_out(self) -> None:
        """A sleep without stop returns False after the delay."""
        assert await sleep_or_stop(0.001, asyncio.Event()) is False


class TestRateLimiter:
    """Pacing from X-RateLimit headers."""

    def test_ratelimit_no_wait_above_reserve(self) -> None:
        """With requests in hand above the reserve, nothing waits."""
        limiter = RateLimiter(district="d", reserve=5)
        limiter.update({"X-RateLimit-Remaining": "6", "X-RateLimit-Reset": str(time.time() + 30)})
        assert limiter.delay() == 0.0

    def test_ratelimit_waits_for_reset_at_reserve(self) -> None:
        """At the reserve, the next request waits until just past the reset."""
        limiter = RateLimiter(district="d", reserve=5)
        reset = time.time() + 30
        limiter.update({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": str(reset)})
        assert 29.0 < limiter.delay() <= 30 + RESET_MARGIN_S

    def test_ratelimit_429_uses_retry_after(self) -> None:
        """A 429 with Retry-After blocks for that long."""
        limiter = RateLimiter(district="d", reserve=0)
        assert 1.9 < limiter.on_429({"Retry-After": "2"}) <= 2.0
        assert 1.9 < limiter.delay() <= 2.0

    def test_ratelimit_429_without_headers_waits_default(self) -> None:
        """A bare 429 still waits a moment instead of retrying at once."""
        limiter = RateLimiter(district="d", reserve=0)
        assert 0.9 < limiter.on_429({}) <= 1.0

    def test_ratelimit_ignores_garbage_headers(self) -> None:
        """Unparsable headers leave the window unknown (no wait)."""
        limiter = RateLimiter(district="d", reserve=5)
        limiter.update({"X-RateLimit-Remaining": "many"})
        assert limiter.remaining is None
        assert limiter.delay() == 0.0

    async def test_ratelimit_acquire_counts_down(self) -> None:
        """Each acquire spends one request of the known window."""
        limiter = RateLimiter(district="d", reserve=0)
        limiter.update({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(time.time() + 30)})
        await limiter.acquire()
        await limiter.acquire()
        assert limiter.remaining == 1
