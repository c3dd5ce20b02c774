"""The relay's own figures: end to end, poller alone, translator alone, each in real processes.

Timing: a phase starts when its first relay process is spawned (interpreter start-up included,
which is conservative) and ends at the Redis timestamp of the last entry written (the id of the
last events-stream or legacy entry), so polling for "done" adds nothing to the figure. "Done"
is detected by polling Redis: every district's cursor equals the simulator's last event id, and
the translator's stored position equals the last events-stream entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.configs import PREFIX, relay_config
from bench.procs import RelayProc
from relay.config import ALL_RECORD_TYPES
from relay.redis.keys import Keys

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import redis

    from bench.procs import RedisProc, SimDistrict, SimProc

KEYS = Keys(PREFIX)
LEGACY_KEYS = [KEYS.legacy(record_type) for record_type in ALL_RECORD_TYPES]
DONE_TIMEOUT_S = 1800.0


@dataclass
class Phase:
    """One measured phase: events in, seconds, and each process's peak RSS (MiB)."""

    events: int
    seconds: float
    rss_mb: dict[str, float] = field(default_factory=dict)
    legacy: int = 0

    @property
    def rate(self) -> float:
        """Source events per second."""
        return self.events / self.seconds


def stream_last_ms(client: redis.Redis, keys: list[str]) -> float:
    """The newest entry time (ms since the epoch, from its id) across ``keys``; 0 if empty."""
    newest = 0.0
    for key in keys:
        last: Any = client.xrevrange(key, count=1)
        if last:
            newest = max(newest, float(last[0][0].split(b"-")[0]))
    return newest


def legacy_count(client: redis.Redis) -> int:
    """Entries in every legacy stream."""
    return sum(int(client.xlen(key)) for key in LEGACY_KEYS)


def wait_for(cond: Callable[[], bool], procs: list[RelayProc], what: str) -> None:
    """Poll ``cond`` every 10 ms until true; fail if a relay process dies or time runs out."""
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while not cond():
        for proc in procs:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def poller_done(client: redis.Redis, districts: list[SimDistrict]) -> Callable[[], bool]:
    """True once every district's cursor is the simulator's last event id."""

    def done() -> bool:
        cursors = client.mget([KEYS.cursor(d.id) for d in districts])
        return all(c == d.last_event.encode() for c, d in zip(cursors, districts, strict=True))

    return done


def translator_done(client: redis.Redis) -> Callable[[], bool]:
    """True once the translator's position is the last events-stream entry."""

    def done() -> bool:
        last: Any = client.xrevrange(KEYS.events, count=1)
        return bool(last) and client.get(KEYS.translator_position) == last[0][0]

    return done


@dataclass
class RelayBench:
    """What every relay phase needs: Redis, the simulator, a temp dir and the settings."""

    redis: RedisProc
    sim: SimProc
    tmp: Path
    page_limit: int = 1000
    poll_interval_s: float = 1.0
    batch_size: int = 500

    def spawn(self, name: str, components: list[str]) -> RelayProc:
        """Start one relay process running ``components``."""
        path = relay_config(
            self.tmp,
            name=name,
            components=components,
            base_url=self.sim.base_url,
            redis_url=self.redis.url,
            districts=self.sim.districts(),
            page_limit=self.page_limit,
            poll_interval_s=self.poll_interval_s,
            batch_size=self.batch_size,
        )
        return RelayProc(path)

    def end_to_end(self) -> Phase:
        """Poller and translator processes together, from an empty Redis to the last legacy
        entry."""
        client = self.redis.client()
        client.flushall()
        districts = self.sim.districts()
        procs = {
            "poller": self.spawn("poller", ["poller"]),
            "translator": self.spawn("translator", ["translator"]),
        }
        started = min(p.started for p in procs.values())
        try:
            wait_for(poller_done(client, districts), list(procs.values()), "the poller")
            wait_for(translator_done(client), list(procs.values()), "the translator")
            rss = {name: p.peak_rss_mb() for name, p in procs.items()}
        finally:
            for proc in procs.values():
                proc.stop()
        end = stream_last_ms(client, LEGACY_KEYS) / 1000
        events = sum(d.events for d in districts)
        return Phase(events, end - started, rss, legacy_count(client))

    def poller_alone(self) -> Phase:
        """The poller process alone, from an empty Redis to the last events-stream entry."""
        client = self.redis.client()
        client.flushall()
        districts = self.sim.districts()
        proc = self.spawn("poller", ["poller"])
        try:
            wait_for(poller_done(client, districts), [proc], "the poller")
            rss = {"poller": proc.peak_rss_mb()}
        finally:
            proc.stop()
        end = stream_last_ms(client, [KEYS.events]) / 1000
        return Phase(sum(d.events for d in districts), end - proc.started, rss)

    def translator_alone(self) -> Phase:
        """The translator process alone on a full events stream (run after :meth:`poller_alone`)."""
        client = self.redis.client()
        events = int(client.xlen(KEYS.events))
        proc = self.spawn("translator", ["translator"])
        try:
            wait_for(translator_done(client), [proc], "the translator")
            rss = {"translator": proc.peak_rss_mb()}
        finally:
            proc.stop()
        end = stream_last_ms(client, LEGACY_KEYS) / 1000
        return Phase(events, end - proc.started, rss, legacy_count(client))
