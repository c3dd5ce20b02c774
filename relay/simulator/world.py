"""The simulated Clever: districts, each with its event feed and current records.

A ``World`` is either generated (``World.generate``: reproducible from the seed; ids also depend
on ``end_time``, which defaults to now so that the history ends at the wall clock and lag looks
real) or loaded from a scenario file (``World.from_file``, format in docs/simulator.md). Either
way, events can be appended while it is served: exact events (``District.add_event``) or
generated activity (``District.generate``).
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from relay.simulator import _names as names
from relay.simulator._ids import IdMaker, id_time, iso_ms
from relay.simulator.activity import Activity
from relay.simulator.bootstrap import Plan, bootstrap
from relay.simulator.feed import Feed
from relay.simulator.records import LEGACY_EPOCH, Ctx, SeededRandom
from relay.simulator.state import State

if TYPE_CHECKING:
    from relay.simulator.bootstrap import EventSpec
    from relay.simulator.state import Record

DAY_S = 86400.0
_encode = msgspec.json.encode


class BadEvent(ValueError):
    """An exact event that cannot join the feed (bad shape or id out of order)."""


class DistrictSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One district of a scenario file."""

    id: str
    token: str | None = None
    name: str | None = None
    events: list[dict[str, Any]] = []


class EventsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A scenario file: ``{"districts": [{"id", "token", "events": [...]}]}``."""

    districts: list[DistrictSpec]


def token_for(district_id: str) -> str:
    """The default bearer token of a district: ``"sim_" + district_id``."""
    return f"sim_{district_id}"


def _event_schools(record_type: str, obj: Record) -> tuple[str, ...]:
    # What ``GET /events?school=`` matches: the schools an event's record belongs to.
    if record_type == "users":
        found: list[str] = []
        for role in (obj.get("roles") or {}).values():
            if isinstance(role, dict):
                found.extend(role.get("schools") or ())
        return tuple(dict.fromkeys(found))
    if record_type == "sections":
        return (str(obj.get("school", "")),)
    return (str(obj.get("id", "")),) if record_type == "schools" else ()


class District:
    """One district: id, token, feed of events, current records and its activity generator."""

    def __init__(self, district_id: str, token: str, name: str, rng: random.Random) -> None:
        self.id = district_id
        self.token = token
        self.name = name
        self.feed = Feed()
        self.state = State()
        self.ctx = Ctx(district_id, rng, IdMaker(rng.getrandbits(40)), IdMaker(rng.getrandbits(40)))
        self.activity = Activity(self.ctx, self.state)
        self._event_ids = IdMaker(rng.getrandbits(40))
        self.authorized = True
        """False once the district disconnected the app: its token answers 401 (docs/fleet.md)."""
        self.revoked = False
        """True when the listed token answers 401 (Clever revoked it but still lists it)."""
        self.token_created = time.time()
        """When the current token was issued (the tokens endpoint's ``created``)."""
        self.rotations = 0
        """How many times the token was rotated (the next token's suffix)."""

    def _next_event_id(self, ts: float) -> str:
        event_id = self._event_ids.make(ts)
        last = self.feed.last_id
        if last is not None and event_id <= last:
            event_id = f"{int(last, 16) + 1:024x}"
        return event_id

    def add(self, spec: EventSpec, *, ts: float, arrival: float | None = None) -> str:
        """Append one generated event created at ``ts``; returns its id."""
        record_type, action, obj, prev = spec
        event_id = self._next_event_id(ts)
        data: Record = (
            {"object": obj} if prev is None else {"object": obj, "previous_attributes": prev}
        )
        event = {
            "id": event_id,
            "type": f"{record_type}.{action}",
            "created": iso_ms(ts),
            "data": data,
        }
        self.feed.append(
            event_id,
            record_type,
            _encode(event),
            schools=_event_schools(record_type, obj),
            arrival=ts if arrival is None else arrival,
        )
        self.state.apply(record_type, action, obj)
        return event_id

    def add_event(self, event: Record, *, arrival: float | None = None) -> str:
        """Append an exact Clever event (``id``/``created`` are filled in when missing).

        Raises:
            BadEvent: no ``type``/``data.object``, or the id does not sort after the last one.
        """
        now = time.time() if arrival is None else arrival
        record_type, _, action = str(event.get("type", "")).partition(".")
        obj = (
            (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
        )
        if (
            not record_type
            or action not in ("created", "updated", "deleted")
            or not isinstance(obj, dict)
        ):
            raise BadEvent(
                f"not a Clever event (type and data.object required): {str(event)[:200]}"
            )
        event = dict(event)
        event.setdefault("id", self._next_event_id(now))
        event.setdefault("created", iso_ms(id_time(event["id"]) or now))
        last = self.feed.last_id
        if last is not None and str(event["id"]) <= last:
            raise BadEvent(f"event id {event['id']} does not sort after the feed's last id {last}")
        self.feed.append(
            event["id"],
            record_type,
            _encode(event),
            schools=_event_schools(record_type, obj),
            arrival=now,
        )
        self.state.apply(record_type, action, obj)
        return str(event["id"])

    def generate(self, count: int, *, ts: float | None = None) -> list[str]:
        """Append ``count`` generated activity events created at ``ts`` (default: now)."""
        now = time.time() if ts is None else ts
        self.ctx.now = now
        added: list[str] = []
        while len(added) < count:
            for spec in self.activity.step():
                if len(added) < count:
                    added.append(self.add(spec, ts=now))
        return added

    def events(self) -> list[Record]:
        """Every event of the feed, decoded (for tests; hidden/expired ones included)."""
        return [msgspec.json.decode(body) for body in self.feed.bodies]


@dataclass
class World:
    """Every simulated district."""

    districts: list[District]
    seed: int = 1

    def district(self, district_id: str) -> District:
        """The district with this id (KeyError if unknown)."""
        for district in self.districts:
            if district.id == district_id:
                return district
        raise KeyError(district_id)

    def by_token(self, token: str) -> District | None:
        """The authorized district a bearer token belongs to, if any."""
        return next(
            (d for d in self.districts if d.token == token and d.authorized and not d.revoked),
            None,
        )

    def add_generated(self, events: int, *, history_days: float = 1.0) -> District:
        """A new generated district (the next of this seed) with ``events`` of history."""
        district = _new_district(self.seed, len(self.districts))
        end = time.time()
        _fill(district, events, end - history_days * DAY_S, end)
        self.districts.append(district)
        return district

    @classmethod
    def generate(
        cls,
        seed: int,
        *,
        districts: int = 3,
        events_per_district: int = 1000,
        history_days: float = 7.0,
        end_time: float | None = None,
    ) -> World:
        """A generated world: ``events_per_district`` events each, ending at ``end_time``."""
        end = time.time() if end_time is None else end_time
        world = cls([], seed)
        # Hundreds of thousands of small dicts: cyclic GC passes would dominate generation time
        # and later every collection would rescan them, so collect nothing while generating and
        # then move the world to the permanent generation.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for k in range(districts):
                district = _new_district(seed, k)
                _fill(district, events_per_district, end - history_days * DAY_S, end)
                world.districts.append(district)
        finally:
            if was_enabled:
                gc.enable()
        gc.freeze()
        return world

    @classmethod
    def from_file(cls, path: str | Path, *, seed: int = 1) -> World:
        """A world loaded from a scenario file (every event arrives now, so none has expired)."""
        return cls.from_bytes(Path(path).read_bytes(), seed=seed)

    @classmethod
    def from_bytes(cls, data: bytes, *, seed: int = 1) -> World:
        """A world from a scenario file's contents."""
        spec = msgspec.json.decode(data, type=EventsFile)
        world = cls([], seed)
        for k, item in enumerate(spec.districts):
            rng = SeededRandom(f"{seed}:{k}")
            district = District(
                item.id, item.token or token_for(item.id), item.name or item.id, rng
            )
            for event in item.events:
                district.add_event(event)
            world.districts.append(district)
        return world

    def to_bytes(self) -> bytes:
        """This world as a scenario file (every event exactly as served)."""
        spec = EventsFile([DistrictSpec(d.id, d.token, d.name, d.events()) for d in self.districts])
        return _encode(spec)


def _new_district(seed: int, k: int) -> District:
    rng = SeededRandom(f"{seed}:{k}")
    district_id = f"{int(LEGACY_EPOCH) + k * 7919:08x}{rng.getrandbits(64):016x}"
    name = names.DISTRICT_WORDS[rng.randrange(len(names.DISTRICT_WORDS))]
    return District(district_id, token_for(district_id), name, rng)


def _fill(district: District, count: int, start: float, end: float) -> None:
    step = (end - start) / max(count, 1)
    opening = bootstrap(district.ctx, Plan.for_events(count), district.name)
    rng = district.ctx.rng
    i = 0
    while i < count:
        ts = start + i * step + rng.random() * step * 0.9
        district.ctx.now = ts
        spec = next(opening, None)
        for item in [spec] if spec is not None else district.activity.step():
            if i < count:
                district.add(item, ts=max(ts, start + i * step))
                i += 1
