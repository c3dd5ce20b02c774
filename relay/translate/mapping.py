"""Field mapping: one typed v3 record in, the v2.1 object(s) Clever v2 would have served out.

The tables in ``docs/translation.md`` are implemented here, one function per v2
object, and nothing else: no event rules (see :mod:`relay.translate.rules`), no I/O. The v2 objects
reuse the v3 value Structs (names, locations, credentials, lists) instead of copying them, which
keeps the mapping of a user to a few attribute reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType

from relay.errors import TeacherLookupNeeded, UntranslatableError
from relay.translate import v2, v3

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

ROLE_RECORD_TYPES: tuple[tuple[str, str], ...] = (
    ("student", "students"),
    ("teacher", "teachers"),
    ("staff", "schooladmins"),
    ("district_admin", "districtadmins"),
    ("contact", "contacts"),
)
"""v3 role name → v2 record type, in the fixed order a multi-role user's events are emitted."""


def _first(primary: Any, fallback: Any) -> Any:
    """``primary`` unless absent, else ``fallback`` (the role's own value, else the user's)."""
    return fallback if primary is UNSET else primary


def _admin_name(name: v3.Name | UnsetType) -> v2.AdminName | UnsetType:
    """v2 admins' ``AdminName`` has no middle name."""
    if isinstance(name, UnsetType):
        return UNSET
    return v2.AdminName(first=name.first, last=name.last)


def _admin_email(email: str | UnsetType | None) -> str | UnsetType:
    """v2 admins' ``email`` is not nullable: a null v3 email is left out rather than broken."""
    return email if isinstance(email, str) else UNSET


def _legacy_id(user: v3.User, role: str, legacy_id: str | UnsetType) -> str:
    """The role's v2 id, or dead-letter: emitting a made-up id would mislead v2 consumers."""
    if isinstance(legacy_id, str) and legacy_id:
        return legacy_id
    raise UntranslatableError("missing_legacy_id", f"user {user.id}: roles.{role} has no legacy_id")


def joined_name(name: v3.Name | UnsetType) -> str | UnsetType:
    """v2 contacts' one-string name: the non-empty first, middle, last parts, space-separated."""
    if isinstance(name, UnsetType):
        return UNSET
    parts = (name.first, name.middle, name.last)
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def student(user: v3.User, role: v3.StudentRole) -> v2.Student:
    """``roles.student`` → v2 ``Student`` (id = user id; docs/translation.md)."""
    return v2.Student(
        id=user.id,
        district=user.district,
        name=user.name,
        email=user.email,
        created=_first(role.created, user.created),
        last_modified=_first(role.last_modified, user.last_modified),
        credentials=role.credentials,
        dob=role.dob,
        ell_status=role.ell_status,
        enrollments=role.enrollments,
        ext=role.ext,
        gender=role.gender,
        grade=role.grade,
        graduation_year=role.graduation_year,
        hispanic_ethnicity=role.hispanic_ethnicity,
        location=role.location,
        race=role.race,
        school=role.school,
        schools=role.schools,
        sis_id=role.sis_id,
        state_id=role.state_id,
        student_number=role.student_number,
    )


def teacher(user: v3.User, role: v3.TeacherRole) -> v2.Teacher:
    """``roles.teacher`` → v2 ``Teacher`` (id = ``legacy_id``; docs/translation.md)."""
    return v2.Teacher(
        id=_legacy_id(user, "teacher", role.legacy_id),
        district=_first(user.district, role.district),
        name=_first(user.name, role.name),
        email=user.email,
        created=_first(role.created, user.created),
        last_modified=_first(role.last_modified, user.last_modified),
        credentials=role.credentials,
        ext=role.ext,
        school=role.school,
        schools=role.schools,
        sis_id=role.sis_id,
        state_id=role.state_id,
        teacher_number=role.teacher_number,
        title=role.title,
    )


def school_admin(user: v3.User, role: v3.StaffRole) -> v2.SchoolAdmin:
    """``roles.staff`` → v2 ``SchoolAdmin``; ``roles.staff.roles`` has no v2 field."""
    return v2.SchoolAdmin(
        id=_legacy_id(user, "staff", role.legacy_id),
        district=user.district,
        email=_admin_email(user.email),
        name=_admin_name(user.name),
        credentials=role.credentials,
        department=role.department,
        ext=role.ext,
        schools=role.schools,
        staff_id=role.staff_id,
        title=role.title,
    )


def district_admin(user: v3.User, role: v3.DistrictAdminRole) -> v2.DistrictAdmin:
    """``roles.district_admin`` → v2 ``DistrictAdmin`` (docs/translation.md)."""
    return v2.DistrictAdmin(
        id=_legacy_id(user, "district_admin", role.legacy_id),
        district=user.district,
        email=_admin_email(user.email),
        name=_admin_name(user.name),
        title=role.title,
    )


def contact(user: v3.User, role: v3.ContactRole) -> v2.Contact:
    """``roles.contact`` → v2 ``Contact`` (docs/translation.md).

    Lossy: v2 has one ``type``/``relationship`` for all of a contact's students, so the first
    ``student_relationships`` entry (array order) provides them; ``students`` lists every related
    student once, in array order. The id falls back to the v3 user id when the role has no
    ``legacy_id`` (every contact of Clever's demo district).
    """
    students: list[str] | UnsetType = UNSET
    kind: Any = UNSET
    relationship: Any = UNSET
    relationships = role.student_relationships
    if not isinstance(relationships, UnsetType):
        seen = dict.fromkeys(r.student for r in relationships if isinstance(r.student, str))
        students = list(seen)
        if relationships:
            kind, relationship = relationships[0].type, relationships[0].relationship
    legacy_id = role.legacy_id
    contact_id = legacy_id if isinstance(legacy_id, str) and legacy_id else user.id
    if contact_id == user.id and _is_student(user):
        raise UntranslatableError(
            "contact_id_conflict",
            f"user {user.id}: roles.contact has no legacy_id of its own and the user is also a "
            "student (the v2 ids would collide)",
        )
    return v2.Contact(
        id=contact_id,
        district=user.district,
        name=joined_name(user.name),
        email=user.email,
        phone=role.phone,
        phone_type=role.phone_type,
        sis_id=role.sis_id,
        students=students,
        type=kind,
        relationship=relationship,
    )


def _is_student(user: v3.User) -> bool:
    roles = user.roles
    return not isinstance(roles, UnsetType) and isinstance(roles.student, v3.StudentRole)


_ROLE_MAPPERS: tuple[
    tuple[str, str, type[msgspec.Struct], Callable[[v3.User, Any], v2.UserObject]], ...
] = (
    ("student", "students", v3.StudentRole, student),
    ("teacher", "teachers", v3.TeacherRole, teacher),
    ("staff", "schooladmins", v3.StaffRole, school_admin),
    ("district_admin", "districtadmins", v3.DistrictAdminRole, district_admin),
    ("contact", "contacts", v3.ContactRole, contact),
)
"""v3 role attribute, v2 record type, role Struct and mapping function, in emission order."""


def role_objects(
    user: v3.User,
) -> tuple[dict[str, v2.UserObject], dict[str, UntranslatableError]]:
    """The v2 objects of every role that translates, and why each other role does not.

    One role that cannot be translated (a teacher without ``legacy_id``) does not take the
    user's other roles with it: the caller emits those and dead-letters only that role.
    Both dicts are keyed by v2 record type, in emission order.
    """
    objects: dict[str, v2.UserObject] = {}
    failed: dict[str, UntranslatableError] = {}
    roles = user.roles
    if isinstance(roles, UnsetType):
        return objects, failed
    for name, record_type, kind, build in _ROLE_MAPPERS:
        role = getattr(roles, name)
        if isinstance(role, kind):
            try:
                objects[record_type] = build(user, role)
            except UntranslatableError as exc:
                failed[record_type] = exc
    return objects, failed


def user_objects(user: v3.User) -> dict[str, v2.UserObject]:
    """Every v2 object of a v3 user, keyed by v2 record type, in emission order.

    Raises:
        UntranslatableError: a role cannot be translated (see :func:`role_objects`).
    """
    objects, failed = role_objects(user)
    for exc in failed.values():
        raise exc
    return objects


# -- non-user records -------------------------------------------------------------------------


def _fields(record: msgspec.Struct) -> dict[str, Any]:
    """A record's fields by name (absent ones as ``UNSET``) for building its same-named v2 twin."""
    return msgspec.structs.asdict(record)


def section_teacher_refs(section: v3.Section) -> list[str]:
    """The v3 user ids a section names as teachers (``teacher`` first), each once."""
    refs: dict[str, None] = {}
    if isinstance(section.teacher, str):
        refs[section.teacher] = None
    if isinstance(section.teachers, list):
        refs.update(dict.fromkeys(section.teachers))
    return list(refs)


def section(record: v3.Section, teacher_ids: Mapping[str, str]) -> v2.Section:
    """v3 ``Section`` → v2: teacher user ids become teacher legacy ids.

    Raises:
        TeacherLookupNeeded: some teacher's legacy id is not in ``teacher_ids``.
    """
    missing = [ref for ref in section_teacher_refs(record) if ref not in teacher_ids]
    if missing:
        raise TeacherLookupNeeded(missing)
    fields = _fields(record)
    if isinstance(record.teacher, str):
        fields["teacher"] = teacher_ids[record.teacher]
    if isinstance(record.teachers, list):
        fields["teachers"] = [teacher_ids[ref] for ref in record.teachers]
    return v2.Section(**fields)


def launch_datetime(launch_date: str | UnsetType) -> str | UnsetType:
    """v3's ``launch_date`` is a date, v2.1's a datetime: a bare date becomes midnight UTC."""
    if isinstance(launch_date, str) and len(launch_date) == 10 and launch_date[4::3] == "--":
        return f"{launch_date}T00:00:00.000Z"
    return launch_date


def district(record: v3.District, teacher_ids: Mapping[str, str]) -> v2.District:
    """v3 ``District`` → v2.1: ``district_contact`` in the ``DistrictAdmin`` shape."""
    del teacher_ids
    fields = _fields(record)
    dc = record.district_contact
    if isinstance(dc, v3.DistrictContact):
        fields["district_contact"] = v2.DistrictAdmin(
            id=dc.id,
            district=dc.district,
            email=_admin_email(dc.email),
            name=_admin_name(dc.name),
            title=dc.title,
        )
    fields["launch_date"] = launch_datetime(record.launch_date)
    return v2.District(**fields)


def school(record: v3.School, teacher_ids: Mapping[str, str]) -> v2.School:
    """v3 ``School`` → v2.1 (the same fields)."""
    del teacher_ids
    return v2.School(**_fields(record))


def course(record: v3.Course, teacher_ids: Mapping[str, str]) -> v2.Course:
    """v3 ``Course`` → v2.1 (the same fields)."""
    del teacher_ids
    return v2.Course(**_fields(record))


def term(record: v3.Term, teacher_ids: Mapping[str, str]) -> v2.Term:
    """v3 ``Term`` → v2.1 (the same fields)."""
    del teacher_ids
    return v2.Term(**_fields(record))


RECORD_MAPPERS: dict[str, tuple[type[v3.Record], Callable[[Any, Mapping[str, str]], v2.Record]]]
RECORD_MAPPERS = {
    "sections": (v3.Section, section),
    "schools": (v3.School, school),
    "districts": (v3.District, district),
    "courses": (v3.Course, course),
    "terms": (v3.Term, term),
}
"""v3 record type (= v2 record type) → (v3 Struct, mapping function)."""
