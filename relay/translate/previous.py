"""Reading Clever's ``previous_attributes``: the state before an update, when no snapshot says.

The v3 shape of ``previous_attributes`` is unconfirmed. Clever's v1.1 events documented
"top-level keys with their complete previous values"; the other shapes seen in the wild (a
role given as null, nested per-field values, dotted keys) are accepted too. The rules, in
``docs/translation.md`` ("Reading previous_attributes"):

- a top-level key is the **complete previous value** of that field (it replaces the current
  value), unless it is an object that repeats no unchanged field: then it lists changed fields
  only and is merged in key by key (Clever never repeats an unchanged field in a patch);
- ``roles`` is read role by role: a role that repeats an unchanged field is a whole previous
  role, and then ``roles`` is the whole previous roles (a role it leaves out was gained); so is
  a previous ``student`` or ``contact`` role the user no longer has, since Clever never combines
  those with other roles. Otherwise ``roles`` lists changed roles only. Both at once cannot be
  read with confidence: :data:`UNREADABLE`;
- a dotted key (``"roles.student.grade"``) sets that one nested field;
- a result that does not decode into a v3 user, or equals the current user (the keys said
  nothing this version understands), is :data:`UNREADABLE` as well.

Non-user records have no snapshot: :func:`record_previous` keeps every key that translates and
drops (and reports) only the keys that do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from relay.translate import v3

if TYPE_CHECKING:
    from collections.abc import Collection

    from relay.messages import EventMessage


class _Unreadable:
    """Marks ``previous_attributes`` present but in a shape that cannot be read with confidence."""


UNREADABLE: Final = _Unreadable()
NOTE_UNREADABLE = "previous_attributes_unreadable"
NOTE_KEY_DROPPED = "previous_attribute_dropped"
NOTE_TEACHER_NOT_FOUND = "previous_teacher_not_found"
"""Notes: Clever's ``previous_attributes`` were (partly) unreadable; counted by the consumer."""


class _AmbiguousError(Exception):
    """The shape cannot be read with confidence (caught here, never leaves the module)."""


EXCLUSIVE_ROLES: frozenset[str] = frozenset(("student", "contact"))
"""Roles Clever never combines with another role (a teacher who is a parent has two users)."""


def _repeats_unchanged(previous: dict[str, Any], current: Any) -> bool:
    """True when ``previous`` holds a field with the current value: a whole previous value."""
    if not isinstance(current, dict):
        return False
    return any(key in current and current[key] == value for key, value in previous.items())


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` applied: objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in patch.items():
        old = out.get(key)
        out[key] = merge(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
    return out


def _value(current: Any, previous: Any) -> Any:
    """One top-level field's previous value (see the module docstring)."""
    whole = not isinstance(previous, dict) or _repeats_unchanged(previous, current)
    return previous if whole or not isinstance(current, dict) else merge(current, previous)


def _roles(current: Any, previous: Any) -> Any:
    """The previous ``roles`` object.

    Raises:
        _AmbiguousError: it cannot be read with confidence.
    """
    if not isinstance(previous, dict):
        return previous
    now = current if isinstance(current, dict) else {}
    whole = patched = False
    for name, role in previous.items():
        held = now.get(name)
        if isinstance(role, dict) and isinstance(held, dict):
            if _repeats_unchanged(role, held):
                whole = True
            else:
                patched = True
        elif role is not None and held is None and name in EXCLUSIVE_ROLES:
            whole = True
    if whole and patched:
        raise _AmbiguousError("whole and per-field roles mixed")
    if whole:
        return {name: role for name, role in previous.items() if role is not None}
    out = dict(now)
    for name, role in previous.items():
        held = now.get(name)
        out[name] = merge(held, role) if isinstance(role, dict) and isinstance(held, dict) else role
    return out


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``target[p0][p1]...`` to ``value``, copying the objects on the way."""
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise _AmbiguousError(f"no object at {part!r}")
        node[part] = node = dict(child)
    node[path[-1]] = value


def rebuilt_user(msg: EventMessage, user: v3.User) -> v3.User | _Unreadable | None:
    """The user before ``msg`` from its ``previous_attributes``; None when they say nothing."""
    try:
        patch = msgspec.json.decode(msg.previous_attributes)
    except msgspec.DecodeError:
        return UNREADABLE
    if patch is None or patch == {}:
        return None
    if not isinstance(patch, dict):
        return UNREADABLE
    try:
        current = msgspec.json.decode(msg.object)
        before = dict(current)
        for key, value in patch.items():
            if "." not in key:
                read = _roles if key == "roles" else _value
                before[key] = read(current.get(key), value)
        for key, value in patch.items():
            if "." in key:
                _set_path(before, key.split("."), value)
        rebuilt = msgspec.convert(before, v3.User)
    except (_AmbiguousError, msgspec.DecodeError):
        return UNREADABLE
    return UNREADABLE if rebuilt == user else rebuilt


def _without_gone(section: v3.Section, gone: Collection[str]) -> tuple[v3.Section, bool]:
    """``section`` (previous values) without the teachers Clever no longer knows."""
    changes: dict[str, Any] = {}
    if isinstance(section.teacher, str) and section.teacher in gone:
        changes["teacher"] = msgspec.UNSET
    if isinstance(section.teachers, list) and any(t in gone for t in section.teachers):
        changes["teachers"] = [t for t in section.teachers if t not in gone]
    if not changes:
        return section, False
    return msgspec.structs.replace(section, **changes), True


def _decodable(patch: dict[str, Any], kind: type[v3.Record]) -> tuple[v3.Record, bool]:
    """``patch`` as a partial record; keys whose value does not decode are left out (True)."""
    try:
        return msgspec.convert(patch, kind), False
    except msgspec.ValidationError:
        pass
    kept: dict[str, Any] = {}
    for key, value in patch.items():
        try:
            msgspec.convert({key: value}, kind)
        except msgspec.ValidationError:
            continue
        kept[key] = value
    return msgspec.convert(kept, kind), True


def record_previous(
    raw: msgspec.Raw, kind: type[v3.Record], gone_teachers: Collection[str]
) -> tuple[v3.Record | None, list[str]]:
    """Clever's ``previous_attributes`` of a non-user record as a partial v3 record.

    Returns the partial record (None when Clever sent none or not an object) and the notes
    of what was left out: a key whose value does not decode (e.g. a null for a non-nullable
    field; the other keys are kept), a section teacher named only here whom Clever no longer
    knows (``gone_teachers``: a teacher who left cannot hold up the change).
    """
    try:
        patch = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None, []
    if not isinstance(patch, dict) or not patch:
        return None, []
    partial, dropped = _decodable(patch, kind)
    notes = [NOTE_KEY_DROPPED] if dropped else []
    if gone_teachers and isinstance(partial, v3.Section):
        partial, left_out = _without_gone(partial, gone_teachers)
        if left_out:
            notes.append(NOTE_TEACHER_NOT_FOUND)
    return partial, notes
