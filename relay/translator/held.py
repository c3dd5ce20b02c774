"""Districts the translator holds back while every other district's events keep flowing.

A district is *held* when one of its entries cannot be translated now (a teacher look-up failed,
an unexpected error): that entry and every later entry of the same district are set aside, in
stream order, while the batch goes on with the other districts. Set aside means acknowledged in
the group and recorded in ``<p>:translator:held`` (entry id → district) by the same atomic write
that advances the stored position past them, so the position keeps meaning "everything at or
below it is written, except the held entries" (docs/architecture-translator.md).

The held entries of a district are retried alone, oldest first, after 1 s, 2 s, 4 s … (cap 60 s)
of the district's own back-off; the district is released once none is left. Memory mirrors the
Redis hash, which only the lease holder writes: it is reloaded from Redis on activation and after
any error that leaves a write unconfirmed.

Legacy ids must ascend in emission order within every legacy stream, and a released entry may be
emitted after entries newer than itself. The batch script keeps the highest legacy id written
(``<p>:translator:emitted``). A released entry whose own ids are above it keeps them (a district
that waited while nothing else was emitted gets the usual ids). Otherwise its legacy events take
ids from the stored position ``P`` (the newest entry written) with the index part from ``0x8000``
up: ``P``'s own legacy events use small indexes and the next entry's ids start above ``P``, so
the released ids fall in between, in release order, and continue after the last one handed out
at ``P``. Each id is still written once (the held hash says the entry is not written yet).

When no ids are left at ``P``, or after a partial release, the district is *deferred*: its retry
waits a moment without counting a failed attempt, so normal reads run in between and move ``P``
(retrying at once would retry at the same ``P`` forever and stall every district).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from relay.backoff import Backoff
from relay.translate.ids import MAX_INDEX, legacy_ids, legacy_prefix, parse_stream_id

RETRY_BASE_S = 1.0
RETRY_CAP_S = 60.0
RELEASE_FIRST_INDEX = 0x8000
"""Released entries' legacy ids use indexes from here up (an entry's own stay far below)."""
RELEASE_MARGIN = 64
"""Free indexes needed before releasing one more entry (more than one event ever makes)."""
RELEASE_PAUSE_S = 0.05
"""Pause between two release batches of one district, so normal reads can move the position."""


@dataclass
class Held:
    """One held district: its set-aside entries (stream order) and when to retry them."""

    ids: list[str]
    backoff: Backoff
    retry_at: float = 0.0
    reason: str = ""

    @property
    def deliveries(self) -> int:
        """Attempts of the head entry so far, counting the next one (for ``max_deliveries``)."""
        return self.backoff.attempt + 1


@dataclass
class Holds:
    """Every held district of the active translator."""

    base_s: float = RETRY_BASE_S
    cap_s: float = RETRY_CAP_S
    districts: dict[str, Held] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    """Every held entry id (to tell them from written entries at or below the position)."""
    emitted: str = ""
    """The highest legacy id written (``<p>:translator:emitted``; "" before any)."""
    partition: int = 0
    """The partition translated (it is part of every legacy id: relay.translate.ids)."""

    def _next_index(self, prefix: str) -> int:
        """The first free released index at the position with legacy id prefix ``prefix``."""
        if self.emitted[:20] == prefix and int(self.emitted[20:], 16) >= RELEASE_FIRST_INDEX:
            return int(self.emitted[20:], 16) + 1
        return RELEASE_FIRST_INDEX

    def can_release(self, position: str) -> bool:
        """Whether ids are left at ``position`` for one more released entry."""
        return (
            self._next_index(legacy_prefix(position, self.partition)) + RELEASE_MARGIN
            <= MAX_INDEX + 1
        )

    def release_ids(self, stream_id: str, position: str, count: int) -> list[str]:
        """Legacy ids for ``count`` events of released entry ``stream_id`` (module docstring)."""
        own = legacy_ids(stream_id, count, self.partition)
        if not own or own[0] > self.emitted:
            ids = own
        else:
            prefix = legacy_prefix(position, self.partition)
            first = self._next_index(prefix)
            ids = [f"{prefix}{k:04x}" for k in range(first, first + count)]
        self.note(ids)
        return ids

    def note(self, ids: list[str]) -> None:
        """Legacy ids ``ids`` (ascending) are being written: remember the highest."""
        if ids and ids[-1] > self.emitted:
            self.emitted = ids[-1]

    def load(self, stored: dict[str, str]) -> None:
        """Replace memory with the stored hash (entry id → district); all due for a retry."""
        self.clear()
        for sid in sorted(stored, key=parse_stream_id):
            self.add(stored[sid], sid)

    def clear(self) -> None:
        """Forget everything (the stored hash is the truth and is reloaded)."""
        self.districts.clear()
        self.ids.clear()

    def add(self, district: str, sid: str) -> None:
        """Set ``sid`` aside behind the district's other held entries."""
        held = self.districts.get(district)
        if held is None:
            held = self.districts[district] = Held(
                [], Backoff(cap_s=self.cap_s, base_s=self.base_s, rng=lambda: 1.0)
            )
        if sid not in self.ids:
            held.ids.append(sid)
            self.ids.add(sid)

    def failed(self, district: str, reason: str) -> float:
        """The district's head entry failed again: back off; returns the delay in seconds."""
        held = self.districts[district]
        delay = held.backoff.next_delay()
        held.retry_at = time.monotonic() + delay
        held.reason = reason
        return delay

    def written(self, district: str, ids: list[str]) -> None:
        """``ids`` of the district went out: drop them, release the district if none is left."""
        held = self.districts.get(district)
        if not ids or held is None:
            return
        done = set(ids)
        held.ids = [sid for sid in held.ids if sid not in done]
        self.ids -= done
        held.reason = ""
        held.backoff.reset()
        if not held.ids:
            del self.districts[district]
        else:
            self.defer(district, RELEASE_PAUSE_S)

    def defer(self, district: str, delay_s: float) -> None:
        """Retry the district after ``delay_s`` without counting an attempt (nothing failed)."""
        held = self.districts.get(district)
        if held is not None:
            held.retry_at = max(held.retry_at, time.monotonic() + delay_s)

    def due(self) -> str | None:
        """A held district whose retry time has come (the one waiting longest), or None."""
        now = time.monotonic()
        ready = [(h.retry_at, d) for d, h in self.districts.items() if h.retry_at <= now]
        return min(ready)[1] if ready else None

    def summary(self, limit: int = 20) -> dict[str, object]:
        """Held districts for ``/status``: counts, and the first ``limit`` with their reason."""
        now = time.monotonic()
        shown = sorted(self.districts.items(), key=lambda kv: -len(kv[1].ids))[:limit]
        return {
            "districts": len(self.districts),
            "entries": len(self.ids),
            "worst": {
                d: {
                    "entries": len(h.ids),
                    "reason": h.reason,
                    "retry_in_s": round(max(0.0, h.retry_at - now), 3),
                }
                for d, h in shown
            },
        }
