"""One district's event feed: pre-encoded events in id order, with retention and paging.

Each event is encoded to JSON once, when it is appended; a page is the join of those bytes.
Ids must ascend (Clever's feed is ordered by ObjectId), which keeps every lookup a bisect.
Retention hides events from the *top* of the feed once their arrival time (their ``created``
time for generated history, the moment they were added for exact or live events) falls out of
the window, as Clever does after 30 days (docs/clever-api.md); nothing is physically removed, so a
test can still ask what was lost.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relay.simulator import paging, versions

if TYPE_CHECKING:
    from collections.abc import Callable


class CursorLost(LookupError):
    """``starting_after`` names an event that expired or never existed."""

    def __init__(self, event_id: str, *, expired: bool) -> None:
        super().__init__(event_id)
        self.event_id = event_id
        self.expired = expired


class OutOfOrder(ValueError):
    """An appended event id does not sort after the feed's last id."""


@dataclass(frozen=True, kw_only=True)
class EventFilter:
    """The ``record_type`` (repeatable) and ``school`` filters of ``GET /events``."""

    record_types: frozenset[str] = frozenset()
    school: str | None = None


@dataclass
class _TypeIndex:
    ids: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


class Feed:
    """Ordered, pre-encoded events of one district."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.bodies: list[bytes] = []
        self.record_types: list[str] = []
        self.schools: list[tuple[str, ...]] = []
        self.arrivals: list[float] = []
        self._pos: dict[str, int] = {}
        self._by_type: dict[str, _TypeIndex] = {}
        self._v31: dict[int, bytes] = {}
        """v3.1 encodings, made on first request (:mod:`relay.simulator.versions`)."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def last_id(self) -> str | None:
        """The newest event id, or None for an empty feed."""
        return self.ids[-1] if self.ids else None

    def append(
        self,
        event_id: str,
        record_type: str,
        body: bytes,
        *,
        schools: tuple[str, ...],
        arrival: float,
    ) -> None:
        """Add one encoded event at the end.

        Raises:
            OutOfOrder: ``event_id`` does not sort after the last id.
        """
        if self.ids and event_id <= self.ids[-1]:
            raise OutOfOrder(f"event id {event_id} does not sort after {self.ids[-1]}")
        pos = len(self.ids)
        self.ids.append(event_id)
        self.bodies.append(body)
        self.record_types.append(record_type)
        self.schools.append(schools)
        self.arrivals.append(max(arrival, self.arrivals[-1]) if self.arrivals else arrival)
        self._pos[event_id] = pos
        index = self._by_type.setdefault(record_type, _TypeIndex())
        index.ids.append(event_id)
        index.positions.append(pos)

    def first_visible(self, cutoff: float | None) -> int:
        """Position of the oldest event that arrived at or after ``cutoff`` (None: no retention)."""
        return 0 if cutoff is None else bisect_left(self.arrivals, cutoff)

    def body(self, pos: int, version: str = versions.DEFAULT) -> bytes:
        """The encoded event at ``pos`` as ``version`` serves it."""
        if version == versions.DEFAULT:
            return self.bodies[pos]
        body = self._v31.get(pos)
        if body is None:
            body = self._v31[pos] = versions.upgrade_event(self.bodies[pos])
        return body

    def get(self, event_id: str, *, lo: int = 0, version: str = versions.DEFAULT) -> bytes | None:
        """The encoded event with this id, unless unknown or expired."""
        pos = self._pos.get(event_id)
        return None if pos is None or pos < lo else self.body(pos, version)

    def check_cursor(self, event_id: str, *, lo: int) -> None:
        """Raise ``CursorLost`` unless ``event_id`` is a visible event of this feed."""
        pos = self._pos.get(event_id)
        if pos is None or pos < lo:
            raise CursorLost(event_id, expired=pos is not None)

    def select(self, page: paging.PageRequest, flt: EventFilter, *, lo: int) -> list[int]:
        """Positions of the events on one page (cursor validity is the caller's business)."""
        types = flt.record_types
        if len(types) == 1 and flt.school is None:
            (record_type,) = types
            index = self._by_type.get(record_type)
            if index is None:
                return []
            sub_lo = bisect_left(index.positions, lo)
            return [index.positions[i] for i in paging.select(index.ids, page, lo=sub_lo)]
        return paging.select(self.ids, page, lo=lo, match=self._matcher(flt))

    def _matcher(self, flt: EventFilter) -> Callable[[int], bool] | None:
        types, school = flt.record_types, flt.school
        if not types and school is None:
            return None
        record_types, schools = self.record_types, self.schools
        if school is None:
            return lambda i: record_types[i] in types
        if not types:
            return lambda i: school in schools[i]
        return lambda i: record_types[i] in types and school in schools[i]

    def page_items(self, positions: list[int], version: str = versions.DEFAULT) -> list[bytes]:
        """The encoded ``{"data": event, "uri": ...}`` items for these positions."""
        ids = self.ids
        uri = b',"uri":"/' + version.encode() + b"/events/"
        if version == versions.DEFAULT:
            bodies = self.bodies
            return [b'{"data":' + bodies[i] + uri + ids[i].encode() + b'"}' for i in positions]
        return [
            b'{"data":' + self.body(i, version) + uri + ids[i].encode() + b'"}' for i in positions
        ]
