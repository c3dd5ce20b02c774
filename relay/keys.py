"""Every Redis key the relay uses, built in one place (CONTRACT §4).

With Redis Cluster the prefix carries a hash tag (``{clever}``) so keys written together by
one Lua call land in one slot; nothing here needs to know that, as long as every key starts
with the prefix.
"""

from __future__ import annotations


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.deadletter = f"{prefix}:deadletter"
        self.translator_position = f"{prefix}:translator:position"
        self.translator_lease = f"{prefix}:translator:lease"
        self.translator_held = f"{prefix}:translator:held"
        self.translator_emitted = f"{prefix}:translator:emitted"
        self.replicas = f"{prefix}:replicas"
        """Sorted set of live relay replicas scored by last heartbeat (district lease sharing)."""

    def cursor(self, district: str) -> str:
        """The last Clever event id published for ``district``."""
        return f"{self.prefix}:cursor:{district}"

    def cursor_pattern(self) -> str:
        """A SCAN pattern matching every cursor key."""
        return f"{self.prefix}:cursor:*"

    def legacy(self, record_type: str) -> str:
        """The legacy v2 stream of one record type, e.g. ``clever:legacy:students``."""
        return f"{self.prefix}:legacy:{record_type}"

    def users(self, district: str) -> str:
        """Hash of the last known v3 user JSON by user id, for diffing ``users.updated``."""
        return f"{self.prefix}:users:{district}"

    def poll_state(self, district: str) -> str:
        """Hash of a district's poll health (last success, last error), shown in /status."""
        return f"{self.prefix}:pollstate:{district}"

    def lease(self, district: str) -> str:
        """A district's polling lease (scale-out)."""
        return f"{self.prefix}:lease:{district}"

    def lease_fence(self, district: str) -> str:
        """The counter that numbers acquisitions of a district's lease (its fencing token)."""
        return f"{self.prefix}:lease:{district}:fence"
