"""Liveness and readiness state shared by the components and the ops server.

Each long-running loop calls :meth:`Health.tick` once per iteration; ``/healthz`` fails when a
loop has not ticked within its deadline (it is stuck, not merely idle: an idle loop still ticks
after each ``block_ms``/``poll_interval_s`` wait). Readiness is the other question: can this
replica do useful work right now (Redis reachable, not draining, Redis safe to write to)?
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Loop:
    deadline_s: float
    last_tick: float


@dataclass
class Health:
    """Heartbeats of every loop, the draining flag, and reasons readiness is withheld."""

    loops: dict[str, _Loop] = field(default_factory=dict)
    draining: bool = False
    problems: dict[str, str] = field(default_factory=dict)
    """Readiness blockers by source, e.g. ``{"redis": "maxmemory-policy is allkeys-lru"}``."""
    warnings: dict[str, str] = field(default_factory=dict)
    """Conditions shown in /status that do not block readiness (e.g. persistence off)."""

    def register(self, name: str, deadline_s: float) -> None:
        """Start watching loop ``name``, which must tick at least every ``deadline_s``."""
        self.loops[name] = _Loop(deadline_s, time.monotonic())

    def unregister(self, name: str) -> None:
        """Stop watching a loop that ended on purpose."""
        self.loops.pop(name, None)

    def tick(self, name: str) -> None:
        """Record that loop ``name`` made progress (or finished an idle wait)."""
        loop = self.loops.get(name)
        if loop is not None:
            loop.last_tick = time.monotonic()

    def stuck(self) -> list[str]:
        """Names of loops past their deadline, sorted."""
        now = time.monotonic()
        return sorted(
            name for name, loop in self.loops.items() if now - loop.last_tick > loop.deadline_s
        )

    def set_problem(self, source: str, reason: str | None) -> None:
        """Set (or with ``None`` clear) a readiness blocker."""
        if reason is None:
            self.problems.pop(source, None)
        else:
            self.problems[source] = reason

    def set_warning(self, source: str, reason: str | None) -> None:
        """Set (or with ``None`` clear) a non-blocking warning."""
        if reason is None:
            self.warnings.pop(source, None)
        else:
            self.warnings[source] = reason
