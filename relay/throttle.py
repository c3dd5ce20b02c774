"""One log line per repeated failure per interval, so an outage is reported, not flooded.

When Redis is unreachable every component fails every second or so; the central Redis watch
(``relay/redis/checks.py``) names the outage and its URL, and each component says its own
failure at most once per interval, with how many it kept quiet (docs/operations.md).
"""

from __future__ import annotations

import time

OUTAGE_LOG_INTERVAL_S = 30.0


class Throttle:
    """Lets a repeated event through at most once per ``interval_s``, counting the rest."""

    def __init__(self, interval_s: float = OUTAGE_LOG_INTERVAL_S) -> None:
        """Start with nothing suppressed: the first occurrence always goes through."""
        self.interval_s = interval_s
        self._last: float | None = None
        self.suppressed = 0

    def allow(self) -> int | None:
        """``None`` to keep quiet now, else how many occurrences were kept quiet since the last."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            return None
        self._last = now
        quiet, self.suppressed = self.suppressed, 0
        return quiet

    def reset(self) -> None:
        """The failure ended: the next one is news and goes through at once."""
        self._last = None
        self.suppressed = 0
