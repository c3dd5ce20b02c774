"""Event rules: which legacy v2 events one normalized v3 event becomes (docs/translation.md).

Pure functions, no I/O: the consumer (``relay.translator.consumer``) passes in what it remembers
(the user's last snapshot, the teacher legacy ids it has learned) and stores what comes back.

Users: one v2 object per role, one legacy event per role, in the order of
:data:`relay.translate.mapping.ROLE_RECORD_TYPES` (students, teachers, schooladmins,
districtadmins, contacts). On ``users.updated`` the previous state comes from the caller's
snapshot; without one it is rebuilt from Clever's ``previous_attributes``; when neither says
anything, every current role gets ``<t>.updated`` with ``previous_attributes: {}``. See
``docs/translation.md`` for the full rules and their reasons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType

from relay.errors import TeacherLookupNeeded, UntranslatableError
from relay.translate import v3
from relay.translate.mapping import (
    RECORD_MAPPERS,
    ROLE_RECORD_TYPES,
    role_objects,
    section_teacher_refs,
)
from relay.translate.previous import NOTE_UNREADABLE, UNREADABLE, rebuilt_user, record_previous

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from relay.messages import EventMessage
    from relay.translate import v2

__all__ = [
    "LEGACY_RECORD_TYPES",
    "LegacyOut",
    "TeacherLookupNeeded",
    "Translation",
    "UntranslatableError",
    "decode_user",
    "encode_legacy_event",
    "section_teacher_user_ids",
    "translate",
]

LEGACY_RECORD_TYPES: tuple[str, ...] = (
    *(record_type for _, record_type in ROLE_RECORD_TYPES),
    *RECORD_MAPPERS,
)
"""Every v2 record type (= legacy stream name) the translator can emit."""
NO_V2_EQUIVALENT: frozenset[str] = frozenset({"resources"})
"""v3 record types v2 never had: skipped on purpose, not dead-lettered."""

SKIP_NO_V2_EQUIVALENT = "no_v2_equivalent"
SKIP_NO_VISIBLE_CHANGE = "no_visible_change"
SKIP_RECORD_TYPE_DISABLED = "record_type_disabled"

EMPTY = msgspec.Raw(b"{}")
TIMESTAMP_FIELDS: frozenset[str] = frozenset({"created", "last_modified"})
"""v2 fields whose change alone is not a visible change (see :func:`_changed`)."""


class LegacyOut(msgspec.Struct, frozen=True):
    """One legacy v2 event to append, before the consumer gives it an id."""

    record_type: str
    """The v2 record type and legacy stream name, e.g. ``teachers``."""
    type: str
    """The v2 event type, e.g. ``teachers.updated``."""
    object: msgspec.Raw
    """The v2.1 object, JSON."""
    previous_attributes: msgspec.Raw | None = None
    """On ``*.updated``: the previous v2 values of the changed v2 fields (JSON object)."""


class Translation(msgspec.Struct, frozen=True):
    """Everything one v3 event turns into, and what the consumer must remember afterwards."""

    events: list[LegacyOut] = []
    """Legacy events in emission order (already filtered by ``record_types``)."""
    user_snapshot: msgspec.Raw | None = None
    """For ``users.created|updated``: the v3 user to store for ``object.id``; None: keep as is."""
    delete_snapshot: bool = False
    """For ``users.deleted``: forget the stored snapshot."""
    teacher_ids: dict[str, str] = {}
    """v3 user id → teacher legacy id learned from this event, to remember for sections."""
    skipped: str | None = None
    """Why nothing is emitted, when on purpose: ``no_v2_equivalent``, ``no_visible_change``,
    ``record_type_disabled``; None otherwise."""
    dead: list[tuple[str, str]] = []
    """``(reason, detail)`` of each role that cannot be translated: dead-lettered on its own
    while the user's other roles are emitted."""
    notes: list[str] = []
    """What was read around (``NOTE_*``): parts of ``previous_attributes`` left out or unread."""


_encoder = msgspec.json.Encoder()
_user_decoder = msgspec.json.Decoder(v3.User)
_record_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    record_type: msgspec.json.Decoder(kind) for record_type, (kind, _) in RECORD_MAPPERS.items()
}


def translate(
    msg: EventMessage,
    *,
    previous_user: msgspec.Raw | bytes | None,
    teacher_legacy_ids: Mapping[str, str],
    record_types: frozenset[str],
    user: v3.User | None = None,
    gone_teachers: Collection[str] = frozenset(),
) -> Translation:
    """Translate one normalized v3 event into legacy v2 events.

    Args:
        msg: the normalized event.
        previous_user: the last stored v3 user JSON for ``msg.object``'s id, if any.
        teacher_legacy_ids: v3 user id → teacher legacy id, for sections.
        record_types: the enabled v2 record types (``legacy.record_types``).
        user: ``msg.object`` already decoded (:func:`decode_user`) by a caller that needed it
            first; decoded here when None. Saves decoding every user twice.
        gone_teachers: v3 user ids Clever no longer knows (404): left out of a section's
            previous values instead of waiting for them.

    Raises:
        UntranslatableError: unknown record type or invalid object (dead-letter it).
        TeacherLookupNeeded: a section names teachers missing from ``teacher_legacy_ids``.
    """
    if msg.record_type == "users":
        return _translate_user(msg, user or _decode_user(msg.object), previous_user, record_types)
    if msg.record_type in NO_V2_EQUIVALENT:
        return Translation(skipped=SKIP_NO_V2_EQUIVALENT)
    if msg.record_type not in RECORD_MAPPERS:
        raise UntranslatableError("unknown_record_type", f"no v2 equivalent known for {msg.type}")
    return _translate_record(msg, teacher_legacy_ids, record_types, gone_teachers)


def section_teacher_user_ids(msg: EventMessage) -> list[str]:
    """The v3 user ids a ``sections.*`` event names as teachers (object and previous values).

    Lets the consumer prefetch teacher legacy ids; empty for other events and invalid objects.
    """
    if msg.record_type != "sections":
        return []
    refs: dict[str, None] = {}
    for raw in (msg.object, msg.previous_attributes):
        try:
            section = _record_decoders["sections"].decode(raw)
        except msgspec.DecodeError:
            continue
        if isinstance(section, v3.Section):
            refs.update(dict.fromkeys(section_teacher_refs(section)))
    return list(refs)


class _LegacyData(msgspec.Struct, frozen=True, omit_defaults=True):
    object: msgspec.Raw
    previous_attributes: msgspec.Raw | UnsetType = UNSET


class _LegacyEvent(msgspec.Struct, frozen=True):
    id: str
    type: str
    created: str
    data: _LegacyData


def encode_legacy_event(out: LegacyOut, legacy_id: str, created: str) -> bytes:
    """The v2 event JSON exactly as Clever's v2.1 Events API put it in ``data[].data``.

    ``previous_attributes`` is present on ``*.updated`` only (``{}`` when unknown).
    """
    previous: msgspec.Raw | UnsetType = UNSET
    if out.type.endswith(".updated"):
        previous = EMPTY if out.previous_attributes is None else out.previous_attributes
    return _encoder.encode(
        _LegacyEvent(legacy_id, out.type, created, _LegacyData(out.object, previous))
    )


# -- users ------------------------------------------------------------------------------------


def decode_user(msg: EventMessage) -> v3.User | None:
    """``msg.object`` as a v3 user for ``users.*`` events; None for others or if invalid."""
    if msg.record_type != "users":
        return None
    try:
        return _user_decoder.decode(msg.object)
    except msgspec.DecodeError:
        return None


def _decode_user(raw: bytes) -> v3.User:
    try:
        return _user_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise UntranslatableError("invalid_object", f"user: {exc}") from None


def _decode_snapshot(raw: msgspec.Raw | bytes | None) -> v3.User | None:
    """The caller's snapshot, or None when it has none (or one this version cannot read)."""
    if raw is None:
        return None
    try:
        return _user_decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def _objects(user: v3.User | None) -> dict[str, v2.UserObject] | None:
    """A previous user's v2 objects (roles that cannot be mapped left out); None if unknown."""
    if user is None:
        return None
    return role_objects(user)[0]


def _out(record_type: str, action: str, obj: v2.UserObject, previous: Any = None) -> LegacyOut:
    return LegacyOut(
        record_type, f"{record_type}.{action}", msgspec.Raw(_encoder.encode(obj)), previous
    )


class _UserEvents(msgspec.Struct):
    """What one user event becomes before the ``record_types`` filter."""

    events: list[LegacyOut]
    quiet: str
    """The skip reason if there are no events."""
    failed: dict[str, UntranslatableError]
    """Roles of the user that cannot be translated, by v2 record type."""
    teacher_id: str | None = None
    notes: list[str] = []


def _translate_user(
    msg: EventMessage,
    user: v3.User,
    previous_user: msgspec.Raw | bytes | None,
    record_types: frozenset[str],
) -> Translation:
    unchanged = previous_user is not None and bytes(previous_user) == bytes(msg.object)
    out = _user_events(msg, user, previous_user, unchanged=unchanged)
    deleted = msg.action == "deleted"
    tr = _finish(
        out.events,
        record_types,
        quiet=out.quiet,
        user_snapshot=None if deleted or unchanged else msg.object,
        delete_snapshot=deleted,
        teacher_ids={user.id: out.teacher_id} if out.teacher_id else {},
    )
    if not out.failed and not out.notes:
        return tr
    dead = [(exc.reason, exc.detail) for exc in out.failed.values()]
    skipped = None if dead and not out.events else tr.skipped
    return msgspec.structs.replace(tr, dead=dead, notes=out.notes, skipped=skipped)


def _user_events(
    msg: EventMessage, user: v3.User, previous_user: msgspec.Raw | bytes | None, *, unchanged: bool
) -> _UserEvents:
    """The user's legacy events, the skip reason if there are none, and its unmappable roles.

    The snapshot is decoded only when needed: an update whose user equals the snapshot byte
    for byte maps to the same v2 objects, so it has no visible change.
    """
    current, failed = role_objects(user)
    if msg.action == "deleted" and not current and not failed:
        current = _objects(_decode_snapshot(previous_user)) or {}
        if not current:
            raise UntranslatableError("unknown_roles", f"deleted user {user.id} has no known roles")
    teacher = current.get("teachers")
    teacher_id = teacher.id if teacher is not None and isinstance(teacher.id, str) else None
    if msg.action == "deleted":
        events = [_out(rt, "deleted", obj) for rt, obj in current.items()]
        return _UserEvents(events, SKIP_NO_V2_EQUIVALENT, failed, teacher_id)
    if msg.action == "created":
        events = [_out(rt, "created", obj) for rt, obj in current.items()]
        return _UserEvents(events, SKIP_NO_V2_EQUIVALENT, failed, teacher_id)
    if unchanged:
        return _UserEvents([], SKIP_NO_VISIBLE_CHANGE, failed, teacher_id)
    notes: list[str] = []
    snapshot: v3.User | None = _decode_snapshot(previous_user)
    if snapshot is None:
        rebuilt = rebuilt_user(msg, user)
        if rebuilt is UNREADABLE:
            notes.append(NOTE_UNREADABLE)
        snapshot = rebuilt if isinstance(rebuilt, v3.User) else None
    events = _user_updates(_objects(snapshot), current, failed)
    return _UserEvents(events, SKIP_NO_VISIBLE_CHANGE, failed, teacher_id, notes)


def _finish(
    events: list[LegacyOut],
    record_types: frozenset[str],
    *,
    quiet: str,
    user_snapshot: msgspec.Raw | None,
    delete_snapshot: bool,
    teacher_ids: dict[str, str],
) -> Translation:
    kept = [event for event in events if event.record_type in record_types]
    skipped = None
    if not events:
        skipped = quiet
    elif not kept:
        skipped = SKIP_RECORD_TYPE_DISABLED
    return Translation(kept, user_snapshot, delete_snapshot, teacher_ids, skipped)


def _user_updates(
    previous: dict[str, v2.UserObject] | None,
    current: dict[str, v2.UserObject],
    failed: Collection[str],
) -> list[LegacyOut]:
    """Per role: gained → created, lost → deleted, kept with visible changes → updated.

    A role that cannot be mapped now (``failed``) is dead-lettered by the caller, never
    reported as lost.
    """
    if previous is None:
        return [_out(rt, "updated", obj, EMPTY) for rt, obj in current.items()]
    events: list[LegacyOut] = []
    for _, record_type in ROLE_RECORD_TYPES:
        if record_type in failed:
            continue
        events.extend(
            _role_events(record_type, previous.get(record_type), current.get(record_type))
        )
    return events


def _role_events(
    record_type: str, before: v2.UserObject | None, after: v2.UserObject | None
) -> list[LegacyOut]:
    if before is None:
        return [] if after is None else [_out(record_type, "created", after)]
    if after is None:
        return [_out(record_type, "deleted", before)]
    if before.id != after.id:
        # A new v2 id is a different v2 object: v2 consumers key on it.
        return [_out(record_type, "deleted", before), _out(record_type, "created", after)]
    changed = _changed(before, after)
    return [] if changed is None else [_out(record_type, "updated", after, changed)]


def _changed(before: msgspec.Struct, after: msgspec.Struct) -> msgspec.Raw | None:
    """The previous values of the top-level fields that differ (null for newly present ones).

    None when nothing differs but timestamps: Clever bumps ``last_modified`` on every change of
    the v3 user, including changes v2 cannot see (another role, a v3-only field).
    """
    diff: dict[str, Any] = {}
    for name in after.__struct_fields__:
        old = getattr(before, name)
        if old != getattr(after, name):
            diff[name] = None if old is UNSET else old
    if diff.keys() <= TIMESTAMP_FIELDS:
        return None
    return msgspec.Raw(_encoder.encode(diff))


# -- other records ----------------------------------------------------------------------------


def _decode_record(msg: EventMessage) -> v3.Record:
    try:
        record: v3.Record = _record_decoders[msg.record_type].decode(msg.object)
    except msgspec.DecodeError as exc:
        raise UntranslatableError("invalid_object", f"{msg.record_type}: {exc}") from None
    if not isinstance(record.id, str):
        raise UntranslatableError("invalid_object", f"{msg.record_type}: object has no id")
    return record


def _translate_record(
    msg: EventMessage,
    teacher_ids: Mapping[str, str],
    record_types: frozenset[str],
    gone_teachers: Collection[str],
) -> Translation:
    record = _decode_record(msg)
    if msg.record_type not in record_types:
        return Translation(skipped=SKIP_RECORD_TYPE_DISABLED)
    _, mapper = RECORD_MAPPERS[msg.record_type]
    obj = mapper(record, teacher_ids)
    previous = None
    notes: list[str] = []
    if msg.action == "updated":
        previous = _record_previous(msg, teacher_ids, gone_teachers, notes)
        if previous is None:
            return Translation(skipped=SKIP_NO_VISIBLE_CHANGE, notes=notes)
    out = LegacyOut(msg.record_type, msg.type, msgspec.Raw(_encoder.encode(obj)), previous)
    return Translation(events=[out], notes=notes)


def _record_previous(
    msg: EventMessage,
    teacher_ids: Mapping[str, str],
    gone_teachers: Collection[str],
    notes: list[str],
) -> msgspec.Raw | None:
    """Clever's ``previous_attributes`` in v2 terms: ``{}`` when unknown, None when only v3-only
    fields changed. Non-user records have no snapshot: Clever's word is all there is.

    A key whose value does not decode is left out (the others are kept), and so is a teacher
    named only here that Clever no longer knows; ``notes`` records both.
    """
    kind, mapper = RECORD_MAPPERS[msg.record_type]
    partial, read_around = record_previous(msg.previous_attributes, kind, gone_teachers)
    notes += read_around
    if partial is None:
        return EMPTY
    encoded = _encoder.encode(mapper(partial, teacher_ids))
    return None if encoded == b"{}" else msgspec.Raw(encoded)
