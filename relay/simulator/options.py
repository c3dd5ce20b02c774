"""Every switch of a simulator run (the CLI flags map one to one onto these fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from relay.simulator.faults import Faults

CursorLostMode = Literal["404", "empty", "resume"]
DEMO_APP = ("sim_client_id", "sim_client_secret")
"""The simulated app's client id and secret (public demo values, printed at start)."""


@dataclass(kw_only=True)
class SimOptions:
    """How the simulated Clever behaves; ``faults`` can also change while it serves."""

    seed: int = 1
    """Seeds fault injection and live activity (the world has its own seed)."""
    retention_days: float = 30.0
    """Events that arrived longer ago disappear from the top of the feed; 0 keeps everything."""
    rate_limit: int = 1200
    """Requests per token per window (0: unlimited)."""
    rate_window_s: float = 60.0
    """Length of the fixed rate-limit window."""
    cursor_lost: CursorLostMode = "404"
    """``starting_after`` an expired or unknown event: 404 ``{"message"}``, an empty page, or
    ``resume`` (a plain range query: continue at the oldest retained event, silently)."""
    live_rate: float = 0.0
    """Generated activity events per second per district while serving (0: off)."""
    default_limit: int = 100
    """Page size when ``limit`` is not given."""
    faults: Faults = field(default_factory=Faults)
    """Initial fault switches."""
    client_id: str = DEMO_APP[0]
    """The app's client id for ``GET /oauth/tokens`` (HTTP Basic)."""
    client_secret: str = DEMO_APP[1]
    """The app's client secret for ``GET /oauth/tokens`` (HTTP Basic)."""
    tokens_page_size: int = 100
    """Most district tokens per ``/oauth/tokens`` page; more come through a ``next`` link."""
