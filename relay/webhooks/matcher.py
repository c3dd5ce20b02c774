"""Which events an endpoint wants: topic patterns and districts (docs/webhooks.md).

A topic is an event type pattern where ``*`` matches any run of characters (``students.*``,
``*.deleted``, ``*``). Legacy v2 types and v3 types share some names (``sections.updated`` is
both), so an unprefixed pattern means the *legacy* event whenever the record type is one v2
had (students, teachers, contacts, districtadmins, schooladmins, sections, schools, districts,
courses, terms), and the v3 event otherwise (``users.*``, ``resources.*``). ``v3:`` forces the
v3 meaning (``v3:sections.*``, or ``v3:relay.*`` for the relay's control entries, which no
unprefixed pattern matches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.config import ALL_RECORD_TYPES

if TYPE_CHECKING:
    from relay.config import WebhookEndpoint
    from relay.redis.keys import Keys

V3_PREFIX = "v3:"
CONTROL_RECORD_TYPE = "relay"
_LEGACY_NAMES = frozenset(ALL_RECORD_TYPES)
_ACTIONS = ("created", "updated", "deleted")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A topic pattern as a full-match regex (only ``*`` is special)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _record_type(event_type: str) -> str:
    return event_type.split(".", 1)[0]


@dataclass(frozen=True)
class Source:
    """A stream an endpoint reads; ``v3`` is True for ``<p>:events``."""

    key: str
    v3: bool


class Matcher:
    """Decides, per stream entry, whether an endpoint receives it."""

    def __init__(self, endpoint: WebhookEndpoint) -> None:
        plain = [t for t in endpoint.topics if not t.startswith(V3_PREFIX)]
        forced = [t.removeprefix(V3_PREFIX) for t in endpoint.topics if t.startswith(V3_PREFIX)]
        self._plain = [compile_pattern(t) for t in plain]
        self._v3 = [compile_pattern(t) for t in forced]
        self._districts = frozenset(endpoint.districts)
        # The events stream is read only when a pattern can mean a v3 type.
        self.reads_v3 = bool(forced) or any(_record_type(t) not in _LEGACY_NAMES for t in plain)

    def sources(self, keys: Keys, record_types: list[str]) -> list[Source]:
        """The streams to read: legacy streams some pattern can match, and maybe the events."""
        out = [
            Source(keys.legacy(rt), v3=False)
            for rt in record_types
            if any(self._plain_match(f"{rt}.{action}") for action in _ACTIONS)
        ]
        if self.reads_v3:
            out.append(Source(keys.events, v3=True))
        return out

    def _plain_match(self, event_type: str) -> bool:
        return any(p.fullmatch(event_type) for p in self._plain)

    def wants_district(self, district: str) -> bool:
        """True when the endpoint lists no districts or lists this one."""
        return not self._districts or district in self._districts

    def matches(self, *, v3: bool, event_type: str, district: str) -> bool:
        """Whether an entry of a legacy stream (``v3=False``) or the events stream matches."""
        if not self.wants_district(district):
            return False
        if not v3:
            return self._plain_match(event_type)
        if any(p.fullmatch(event_type) for p in self._v3):
            return True
        record_type = _record_type(event_type)
        if record_type in _LEGACY_NAMES or record_type == CONTROL_RECORD_TYPE:
            return False
        return self._plain_match(event_type)
