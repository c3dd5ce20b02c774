"""Redis key names of one webhook endpoint, all under the relay's prefix (hash-tag friendly).

``deadletter`` is documented for operators; the rest are this component's own layout; both are
described in ``docs/webhooks.md``.
"""

from __future__ import annotations


class EndpointKeys:
    """Key names for endpoint ``name`` under ``prefix``."""

    def __init__(self, prefix: str, name: str) -> None:
        base = f"{prefix}:webhooks"
        self.name = name
        self.group = f"webhooks:{name}"
        """Consumer group on each source stream; its last-delivered-id is the read position."""
        self.deadletter = f"{base}:deadletter:{name}"
        self.due = f"{base}:due:{name}"
        """Sorted set: district -> when its queue head is due (ms); present iff queue non-empty."""
        self.attempts = f"{base}:attempts:{name}"
        """Hash: district -> failed attempts of its current queue head."""
        self.state = f"{base}:state:{name}"
        """Hash: ``disabled`` (reason) and ``disabled_at`` after a 410 Gone."""
        self._queue = f"{base}:queue:{name}:"

    def queue(self, district: str) -> str:
        """List of the district's undelivered events, oldest (the one being tried) first."""
        return f"{self._queue}{district}"
