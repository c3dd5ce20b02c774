"""The simulator's fixed-window rate limiter."""

from __future__ import annotations

from relay.simulator.ratelimit import FixedWindowLimiter


class TestFixedWindowLimiter:
    def test_limiter_counts_down_then_refuses_until_the_window_ends(self) -> None:
        """Two requests per 60 s window: the third is refused, the next window allows again."""
        limiter = FixedWindowLimiter(limit=2, window_s=60.0)
        first = limiter.hit("d", now=120.5)
        second = limiter.hit("d", now=130.0)
        third = limiter.hit("d", now=179.9)
        fourth = limiter.hit("d", now=180.0)
        assert [(v.allowed, v.remaining, v.reset) for v in (first, second, third, fourth)] == [
            (True, 1, 180),
            (True, 0, 180),
            (False, 0, 180),
            (True, 1, 240),
        ]
        assert first.headers() == {
            "X-RateLimit-Limit": "2",
            "X-RateLimit-Remaining": "1",
            "X-RateLimit-Reset": "180",
            "X-RateLimit-Bucket": "d",
        }

    def test_limiter_off_sends_no_headers(self) -> None:
        """With limit 0 every request is allowed and no X-RateLimit-* header is sent."""
        limiter = FixedWindowLimiter(limit=0, window_s=60.0)
        verdicts = [limiter.hit("d", now=1.0) for _ in range(5)]
        assert [v.allowed for v in verdicts] == [True] * 5
        assert verdicts[-1].headers() == {}
