"""The retry schedule: when a failed delivery is tried again, and when it is given up.

An event gets one first attempt plus one retry per entry of ``retry_schedule_s``: after the
``n``-th failed attempt it waits ``retry_schedule_s[n-1]`` (times a random factor in
``[1 - JITTER, 1 + JITTER]``, so endpoints that failed together do not retry in lockstep), and
after the failure that exhausts the schedule it goes to the dead-letter stream. The due time
is stored in Redis (see :mod:`relay.webhooks.store`), so a restart keeps it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

JITTER = 0.2


@dataclass(frozen=True)
class Decision:
    """What to do with an event after a failed attempt: retry after ``delay_s``, or dead-letter."""

    dead: bool
    delay_s: float = 0.0


def after_failure(schedule_s: list[float], failed_attempts: int, rng: random.Random) -> Decision:
    """Decide the fate of an event that has now failed ``failed_attempts`` times (>= 1)."""
    if failed_attempts > len(schedule_s):
        return Decision(dead=True)
    base = schedule_s[failed_attempts - 1]
    return Decision(dead=False, delay_s=base * rng.uniform(1 - JITTER, 1 + JITTER))
