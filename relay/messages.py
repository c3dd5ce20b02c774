"""Wire messages: Clever's events envelope and the relay's normalized event (docs/messages.md).

Clever's pages are decoded with typed decoders in two steps: the envelope keeps each event as
``msgspec.Raw`` so one malformed event can be dead-lettered with its exact bytes while the rest
of the page flows, and the record inside an event stays ``Raw`` all the way to the stream, so the
relay never re-encodes a 1 KB user it only passes along.

Wire Structs allow unknown fields (schema evolution: Clever may add keys); they are frozen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from relay.errors import InvalidEvent

Action = Literal["created", "updated", "deleted"]
ACTIONS: frozenset[str] = frozenset(("created", "updated", "deleted"))
NULL = msgspec.Raw(b"null")
ROLE_NAMES: tuple[str, ...] = ("contact", "district_admin", "staff", "student", "teacher")

CURSOR_LOST = "relay.cursor_lost"
"""Type of the control entry appended when Clever no longer knows a district's cursor."""
DISTRICT_ONBOARDED = "relay.district_onboarded"
"""Control entry: a discovered district was synced and its events follow from here."""
DISTRICT_REMOVED = "relay.district_removed"
"""Control entry: a discovered district left the token list; its polling stopped."""
CONTROL_PREFIX = "relay."
"""Every relay-generated control entry's type starts with this; Clever's types never do."""


class Link(msgspec.Struct, frozen=True):
    """One entry of an envelope's ``links``."""

    rel: str
    uri: str


class EventItem(msgspec.Struct, frozen=True):
    """One ``data[]`` item of Clever's ``EventsResponse``: the event, kept raw."""

    data: msgspec.Raw
    uri: str | None = None


class EventsPage(msgspec.Struct, frozen=True):
    """Clever's ``EventsResponse`` envelope."""

    data: list[EventItem]
    links: list[Link] = []


class EventData(msgspec.Struct, frozen=True):
    """An event's ``data``: the record and, on updates, what changed (docs/clever-api.md)."""

    object: msgspec.Raw
    previous_attributes: msgspec.Raw = NULL


class CleverEvent(msgspec.Struct, frozen=True):
    """One Clever v3 event as it arrives on the wire."""

    id: str
    type: str
    data: EventData
    created: str = ""
    previous_attributes: msgspec.Raw = NULL
    """Where spec-generated clients read it; the wire puts it in ``data`` (docs/clever-api.md)."""


class RecordRef(msgspec.Struct, frozen=True):
    """The two fields of an event's record the relay itself needs."""

    id: str
    district: str = ""
    roles: msgspec.Raw = NULL
    """Kept raw: a user's roles are an object, a resource's an array of strings."""


class EventMessage(msgspec.Struct, frozen=True):
    """The normalized message: ``data`` of one ``<p>:events`` entry.

    ``object`` is the v3 record exactly as Clever sent it; ``previous_attributes`` is taken from
    ``data.previous_attributes`` or, failing that, the event's top level; ``roles`` lists the
    role names present on a user, sorted, and is null for other record types.
    """

    id: str
    """The Clever event id (24 hex)."""
    type: str
    """The Clever event type, e.g. ``users.updated``."""
    record_type: str
    """The part of ``type`` before the dot, e.g. ``users``."""
    action: Action
    """The part of ``type`` after the dot."""
    district: str
    """The district the event was polled for."""
    created: str
    """Clever's timestamp of the event (ISO 8601, UTC)."""
    object: msgspec.Raw
    """The v3 record after the change (before it, for deletions), as Clever sent it."""
    previous_attributes: msgspec.Raw = NULL
    """On updates, the prior values of the changed fields as Clever sent them; else null."""
    roles: list[str] | None = None
    """For ``users.*``: the sorted role names present on the user."""
    api_version: str = "v3.0"
    """The Clever API version the event was polled from (``v3.0`` or ``v3.1``); a ``v3.1``
    ``object`` may carry fields a ``v3.0`` one lacks. Absent in messages older than the field."""


class ControlMessage(msgspec.Struct, frozen=True):
    """A relay-generated entry on the events stream, e.g. ``relay.cursor_lost``.

    Consumers that see ``relay.cursor_lost`` must resync the district from the Data API: the
    events between the lost cursor and the new position are gone.
    """

    type: str
    district: str
    created: str
    reason: str
    cursor: str
    """The cursor Clever rejected."""
    resumed_from: str | None = None
    """Where polling continues (``on_cursor_lost = "latest"``), or null if the district stopped."""


class FleetMessage(msgspec.Struct, frozen=True):
    """``relay.district_onboarded`` / ``relay.district_removed`` on the events stream.

    Consumers do not need to act on either to stay correct (docs/fleet.md): the onboarding sync
    already seeded the relay's own state, and a removed district simply has no more events.
    They tell a consumer when to load a district's roster (onboarded: the Data API state as of
    ``cursor``, ``counts`` objects of each v2 type) or to stop serving it (removed).
    """

    type: str
    district: str
    created: str
    source: str = "discovered"
    cursor: str | None = None
    """Onboarded: the newest event id before the sync (events after it follow on the stream);
    removed: the district's cursor, kept for a return within Clever's retention."""
    counts: dict[str, int] = {}
    """Onboarded: v2 objects written by the sync, by v2 record type."""
    reason: str = ""


_event_decoder = msgspec.json.Decoder(CleverEvent)
_ref_decoder = msgspec.json.Decoder(RecordRef)
_page_decoder = msgspec.json.Decoder(EventsPage)
_encoder = msgspec.json.Encoder()


_roles_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw] | None)


def _role_names(raw: msgspec.Raw) -> list[str]:
    """Sorted names of a user's non-null roles.

    Raises:
        InvalidEvent: ``roles`` is not an object.
    """
    try:
        roles = _roles_decoder.decode(raw) or {}
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"invalid object: roles: {exc}") from None
    return sorted(name for name, value in roles.items() if bytes(value) != b"null")


def decode_page(body: bytes) -> EventsPage:
    """Decode one events page; raises ``msgspec.DecodeError`` on malformed bodies."""
    return _page_decoder.decode(body)


def normalize(raw: bytes, district: str, api_version: str = "v3.0") -> EventMessage:
    """Turn one raw Clever event into the normalized message.

    Raises:
        InvalidEvent: the event is not a valid Clever event (the reason says why).
    """
    try:
        event = _event_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"invalid event: {exc}") from None
    try:
        record = _ref_decoder.decode(event.data.object)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"invalid object: {exc}") from None
    record_type, dot, action = event.type.partition(".")
    if not dot or not record_type or action not in ACTIONS:
        raise InvalidEvent(f"invalid event type {event.type!r}")
    previous = event.data.previous_attributes
    if bytes(previous) == b"null":
        previous = event.previous_attributes
    roles = None
    if record_type == "users":
        roles = _role_names(record.roles)
    return EventMessage(
        id=event.id,
        type=event.type,
        record_type=record_type,
        action=action,  # type: ignore[arg-type]  # checked against ACTIONS above
        district=district,
        created=event.created,
        object=event.data.object,
        previous_attributes=previous,
        roles=roles,
        api_version=api_version,
    )


def encode(message: msgspec.Struct) -> bytes:
    """Encode a message to JSON bytes with the shared encoder."""
    return _encoder.encode(message)


class _EventMessageSchema(msgspec.Struct, frozen=True):
    """:class:`EventMessage` with its raw fields typed, for schema generation only.

    msgspec cannot describe ``Raw`` fields; a test keeps this twin's fields in step.
    """

    id: str
    type: str
    record_type: str
    action: Action
    district: str
    created: str
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None
    roles: list[str] | None
    api_version: str = "v3.0"


_EventMessageSchema.__doc__ = EventMessage.__doc__


def event_schema() -> dict[str, Any]:
    """The JSON Schema of the normalized message (``clever-relay schema events``)."""
    schema = msgspec.json.schema(_EventMessageSchema)
    defs = schema.get("$defs", {})
    if "_EventMessageSchema" in defs:
        defs["EventMessage"] = defs.pop("_EventMessageSchema")
        defs["EventMessage"]["title"] = "EventMessage"
        schema["$ref"] = "#/$defs/EventMessage"
    return schema


def lag_s_since(newest_created: str | None, now: float) -> float | None:
    """Seconds between Clever's ``created`` of the newest event and now (never negative)."""
    if not newest_created:
        return None
    try:
        created = datetime.fromisoformat(newest_created).timestamp()
    except ValueError:
        return None
    return round(max(0.0, now - created), 3)
