"""Fault injection: what a flaky Clever does to a client, switchable while serving.

``Faults`` is the set of switches (CLI flags, ``POST /_sim/faults``). Each API request draws one
number from a seeded RNG and gets at most one of: a forced 429, a 5xx, a dropped connection, a
truncated body or a malformed body (in that order of precedence); latency is added on top.
``script`` is a queue of exact faults for the next requests ("500", "502", "503", "429", "drop",
"truncate", "malformed", "ok"), which makes single-request tests deterministic. ``districts``
limits every fault and the latency to those districts' requests (one district's Clever trouble
while the others are fine).
"""

from __future__ import annotations

from collections import deque
from typing import Annotated, Literal

import msgspec

from relay.simulator.records import SeededRandom

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
FaultName = Literal["500", "502", "503", "429", "drop", "truncate", "malformed", "ok"]
FAIL_STATUSES = (500, 502, 503)


class Faults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fault switches; rates are per-request probabilities."""

    fail_rate: Fraction = 0.0
    """Answer 500, 502 or 503 (chosen at random) with a ``{"message"}`` body."""
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Added to every API response."""
    latency_jitter_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Up to this much more, uniformly."""
    malformed_rate: Fraction = 0.0
    """200 with a body that is not valid JSON (right Content-Length)."""
    truncate_rate: Fraction = 0.0
    """200 whose body stops halfway: Content-Length promises more, then the connection closes."""
    drop_rate: Fraction = 0.0
    """Close the connection without any response."""
    force_429_rate: Fraction = 0.0
    """429 with an empty body as if the token's window were used up (counted as forced)."""
    script: list[FaultName] = []
    """Exact faults for the next requests, in order (consumed one per API request)."""
    districts: list[str] = []
    """Only these districts' requests get faults and latency (empty: every district's)."""


class FaultsPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partial update of ``Faults`` (the body of ``POST /_sim/faults``)."""

    fail_rate: Fraction | msgspec.UnsetType = msgspec.UNSET
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
    latency_jitter_ms: Annotated[float, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
    malformed_rate: Fraction | msgspec.UnsetType = msgspec.UNSET
    truncate_rate: Fraction | msgspec.UnsetType = msgspec.UNSET
    drop_rate: Fraction | msgspec.UnsetType = msgspec.UNSET
    force_429_rate: Fraction | msgspec.UnsetType = msgspec.UNSET
    script: list[FaultName] | msgspec.UnsetType = msgspec.UNSET
    districts: list[str] | msgspec.UnsetType = msgspec.UNSET


class FaultInjector:
    """Decides, per request, which fault (if any) to inject; deterministic given the seed."""

    def __init__(self, faults: Faults, *, seed: int) -> None:
        self._rng = SeededRandom(f"faults:{seed}")
        self._script: deque[str] = deque()
        self.faults = Faults()
        self.update(msgspec.convert(msgspec.to_builtins(faults), FaultsPatch))

    def update(self, patch: FaultsPatch) -> Faults:
        """Apply a partial update; a given ``script`` replaces the pending one."""
        changes = {
            f: getattr(patch, f)
            for f in patch.__struct_fields__
            if getattr(patch, f) is not msgspec.UNSET
        }
        self.faults = msgspec.structs.replace(self.faults, **changes)
        if "script" in changes:
            self._script = deque(self.faults.script)
        return self.current()

    def current(self) -> Faults:
        """The switches now in force (``script`` shows what is still pending)."""
        return msgspec.structs.replace(self.faults, script=list(self._script))

    def applies(self, district: str) -> bool:
        """Whether this district's requests are subject to the faults (``districts``)."""
        return not self.faults.districts or district in self.faults.districts

    def delay_s(self) -> float:
        """Seconds to wait before answering this request."""
        f = self.faults
        return (f.latency_ms + self._rng.random() * f.latency_jitter_ms) / 1000.0

    def draw(self) -> str | None:
        """The fault for this request: "429", "500"/"502"/"503", "drop", "truncate", "malformed"."""
        if self._script:
            name = self._script.popleft()
            return None if name == "ok" else name
        f, x = self.faults, self._rng.random()
        for name, rate in (
            ("429", f.force_429_rate),
            ("5xx", f.fail_rate),
            ("drop", f.drop_rate),
            ("truncate", f.truncate_rate),
            ("malformed", f.malformed_rate),
        ):
            if x < rate:
                return str(FAIL_STATUSES[self._rng.randrange(3)]) if name == "5xx" else name
            x -= rate
        return None


def malform(body: bytes) -> bytes:
    """A body that is not JSON: the real page with its middle replaced by garbage."""
    half = len(body) // 2
    return body[:half] + b"\x00<!-- upstream error -->" + body[half + 1 :]
