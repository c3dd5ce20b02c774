"""Every Redis key the relay uses, built in one place (docs/messages.md lists them).

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
        self.fleet_known = f"{prefix}:fleet:districts"
        """Set of every district discovery has ever seen (docs/fleet.md)."""

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

    def idmap_v3(self, district: str) -> str:
        """ID crosswalk: hash v3 user id → its roles' v2 ids (:mod:`relay.crosswalk`)."""
        return f"{self.prefix}:idmap:{district}:v3"

    def idmap_v2(self, district: str) -> str:
        """ID crosswalk: hash v2 id → (v3 user id, role) (:mod:`relay.crosswalk`)."""
        return f"{self.prefix}:idmap:{district}:v2"

    def idmap_expiry(self, district: str) -> str:
        """ID crosswalk: deleted mappings by deletion time, ms (:mod:`relay.crosswalk`)."""
        return f"{self.prefix}:idmap:{district}:expiry"

    def fleet(self, district: str) -> str:
        """Hash of a discovered district's fleet state: phase, onboarding progress, removal."""
        return f"{self.prefix}:fleet:{district}"
