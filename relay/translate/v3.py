"""Typed Clever v3.0 records, as the translator decodes them (``v3.0.yml`` definitions).

Decoding a record into these Structs is what "valid object" means for the translator: a value of
the wrong type or outside one of Clever's enums fails here and the event is dead-lettered, so
nothing invalid can reach a v2 consumer. Unknown keys are ignored (Clever adds fields, and the demo
district carries a non-spec ``roles.student.email``), which is also what keeps non-v2 data from
leaking into the v2 objects. Every field Clever may leave out defaults to ``UNSET`` so "absent"
and "null" stay distinct all the way to the v2 JSON.

The value types shared by both API versions (``Name``, ``Location``, ``Credentials``, the enums,
...) live here and are reused as-is by :mod:`relay.translate.v2`: the specs define them
identically, so the v2 objects can hold the very same instances, with no copying.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

# -- enums shared by v2.1 and v3.0 (identical value lists in both specs) ----------------------

Grade = Literal[
    "InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten", "Kindergarten",
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
    "PostGraduate", "Ungraded", "Other", "",
]  # fmt: skip
Gender = Literal["M", "F", "X", ""]
YesNo = Literal["Y", "N", ""]
Race = Literal[
    "Caucasian", "Asian", "Black or African American", "American Indian",
    "Hawaiian or Other Pacific Islander", "Two or More Races", "Unknown", "",
]  # fmt: skip
PhoneType = Literal["Cell", "Home", "Work", "Other", ""]
RelationshipType = Literal[
    "Parent/Guardian", "Emergency", "Primary", "Secondary", "Family", "Other", ""
]
Relationship = Literal["Parent", "Grandparent", "Self", "Aunt/Uncle", "Sibling", "Other", ""]
Subject = Literal[
    "english/language arts", "math", "science", "social studies", "language",
    "homeroom/advisory", "interventions/online learning", "technology and engineering",
    "PE and health", "arts and music", "other", "",
]  # fmt: skip
DistrictState = Literal["running", "pending", "error", "paused", "", "success"]
Dob = Annotated[str, Meta(pattern=r"(?:[0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")]
"""M/D/YYYY; the spec's pattern is unanchored (JSON Schema semantics), and so is msgspec's."""

Ext = dict[str, Any]
"""District extension fields: free-form, passed through."""


class V3Record(msgspec.Struct, frozen=True, omit_defaults=True):
    """Base of every record Struct: frozen, and ``UNSET`` (absent) fields stay absent on encode."""


# -- value types shared by both versions ------------------------------------------------------


class Name(V3Record, frozen=True):
    """A person's name; identical in v2.1 and v3.0."""

    first: str | UnsetType | None = UNSET
    middle: str | UnsetType | None = UNSET
    last: str | UnsetType | None = UNSET


class Location(V3Record, frozen=True):
    """A postal location; identical in v2.1 and v3.0."""

    address: str | UnsetType | None = UNSET
    city: str | UnsetType | None = UNSET
    state: str | UnsetType | None = UNSET
    zip: str | UnsetType | None = UNSET
    lat: str | UnsetType | None = UNSET
    lon: str | UnsetType | None = UNSET


class Credentials(V3Record, frozen=True):
    """Login credentials; identical in v2.1 and v3.0."""

    district_username: str | UnsetType = UNSET


class SchoolEnrollment(V3Record, frozen=True):
    """A student's enrollment in one school; identical in v2.1 and v3.0."""

    school: str | UnsetType = UNSET
    start_date: str | UnsetType = UNSET
    end_date: str | UnsetType = UNSET


class Principal(V3Record, frozen=True):
    """A school's principal; identical in v2.1 and v3.0."""

    name: str | UnsetType | None = UNSET
    email: str | UnsetType | None = UNSET


# -- user roles -------------------------------------------------------------------------------


class StudentRole(V3Record, frozen=True):
    """``roles.student``: everything a v2 student has except the user-level fields."""

    legacy_id: str | UnsetType = UNSET
    created: str | UnsetType = UNSET
    last_modified: str | UnsetType = UNSET
    credentials: Credentials | UnsetType = UNSET
    dob: Dob | UnsetType | None = UNSET
    ell_status: YesNo | UnsetType | None = UNSET
    enrollments: list[SchoolEnrollment] | UnsetType = UNSET
    ext: Ext | UnsetType = UNSET
    gender: Gender | UnsetType | None = UNSET
    grade: Grade | UnsetType | None = UNSET
    graduation_year: str | UnsetType | None = UNSET
    hispanic_ethnicity: YesNo | UnsetType | None = UNSET
    location: Location | UnsetType | None = UNSET
    race: Race | UnsetType | None = UNSET
    school: str | UnsetType = UNSET
    schools: list[str] | UnsetType = UNSET
    sis_id: str | UnsetType = UNSET
    state_id: str | UnsetType | None = UNSET
    student_number: str | UnsetType | None = UNSET


class TeacherRole(V3Record, frozen=True):
    """``roles.teacher``; ``legacy_id`` is the v2 teacher id."""

    legacy_id: str | UnsetType = UNSET
    created: str | UnsetType = UNSET
    last_modified: str | UnsetType = UNSET
    credentials: Credentials | UnsetType | None = UNSET
    district: str | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    ext: Ext | UnsetType = UNSET
    school: str | UnsetType = UNSET
    schools: list[str] | UnsetType = UNSET
    sis_id: str | UnsetType = UNSET
    state_id: str | UnsetType | None = UNSET
    teacher_number: str | UnsetType | None = UNSET
    title: str | UnsetType | None = UNSET


class StaffRole(V3Record, frozen=True):
    """``roles.staff`` (v2's school admin); ``legacy_id`` is the v2 school-admin id."""

    legacy_id: str | UnsetType = UNSET
    credentials: Credentials | UnsetType = UNSET
    department: str | UnsetType | None = UNSET
    ext: Ext | UnsetType = UNSET
    roles: list[str] | UnsetType = UNSET
    schools: list[str] | UnsetType = UNSET
    staff_id: str | UnsetType = UNSET
    title: str | UnsetType | None = UNSET


class StudentRelationship(V3Record, frozen=True):
    """One ``(student, type, relationship)`` triple of a contact."""

    student: str | UnsetType = UNSET
    type: RelationshipType | UnsetType | None = UNSET
    relationship: Relationship | UnsetType | None = UNSET


class ContactRole(V3Record, frozen=True):
    """``roles.contact``; ``legacy_id`` is the v2 contact id (absent in the demo district)."""

    legacy_id: str | UnsetType = UNSET
    phone: str | UnsetType | None = UNSET
    phone_type: PhoneType | UnsetType | None = UNSET
    sis_id: str | UnsetType | None = UNSET
    student_relationships: list[StudentRelationship] | UnsetType = UNSET


class DistrictAdminRole(V3Record, frozen=True):
    """``roles.district_admin``; ``legacy_id`` is the v2 district-admin id."""

    legacy_id: str | UnsetType = UNSET
    title: str | UnsetType | None = UNSET


class Roles(V3Record, frozen=True):
    """A user's roles; a role is present when its key holds an object (null means absent)."""

    student: StudentRole | UnsetType | None = UNSET
    teacher: TeacherRole | UnsetType | None = UNSET
    staff: StaffRole | UnsetType | None = UNSET
    contact: ContactRole | UnsetType | None = UNSET
    district_admin: DistrictAdminRole | UnsetType | None = UNSET


class User(V3Record, frozen=True):
    """A v3 multi-role user (``users.*`` events)."""

    id: str
    district: str | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    name: Name | UnsetType = UNSET
    created: str | UnsetType = UNSET
    last_modified: str | UnsetType = UNSET
    roles: Roles | UnsetType = UNSET


# -- other records ----------------------------------------------------------------------------
# ``id`` is optional on these so that a ``previous_attributes`` object (a partial record) decodes
# into the same type; the mapping insists on ``id`` for the record itself.


class Section(V3Record, frozen=True):
    """A v3 section; ``teacher``/``teachers`` hold v3 *user* ids (v2 wants teacher legacy ids)."""

    id: str | UnsetType = UNSET
    course: str | UnsetType | None = UNSET
    created: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    ext: Ext | UnsetType = UNSET
    grade: Grade | UnsetType | None = UNSET
    last_modified: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    period: str | UnsetType | None = UNSET
    school: str | UnsetType = UNSET
    section_number: str | UnsetType | None = UNSET
    sis_id: str | UnsetType = UNSET
    students: list[str] | UnsetType = UNSET
    subject: Subject | UnsetType | None = UNSET
    teacher: str | UnsetType | None = UNSET
    teachers: list[str] | UnsetType = UNSET
    term_id: str | UnsetType | None = UNSET


class School(V3Record, frozen=True):
    """A v3 school (same fields as v2.1)."""

    id: str | UnsetType = UNSET
    created: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    ext: Ext | UnsetType = UNSET
    high_grade: Grade | UnsetType | None = UNSET
    last_modified: str | UnsetType = UNSET
    location: Location | UnsetType | None = UNSET
    low_grade: Grade | UnsetType | None = UNSET
    mdr_number: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    nces_id: str | UnsetType | None = UNSET
    phone: str | UnsetType | None = UNSET
    principal: Principal | UnsetType = UNSET
    school_number: str | UnsetType = UNSET
    sis_id: str | UnsetType = UNSET
    state_id: str | UnsetType | None = UNSET


class DistrictContact(V3Record, frozen=True):
    """A district's contact person (v3); v2.1 models it as a ``DistrictAdmin``."""

    id: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    name: Name | UnsetType = UNSET
    title: str | UnsetType = UNSET


class District(V3Record, frozen=True):
    """A v3 district; ``launch_date`` is a date here and a datetime in v2.1."""

    id: str | UnsetType = UNSET
    district_contact: DistrictContact | UnsetType | None = UNSET
    """Not nullable in v3.0; null is accepted because v2.1 allows it and passes it on."""
    error: str | UnsetType = UNSET
    last_sync: str | UnsetType | None = UNSET
    launch_date: str | UnsetType = UNSET
    login_methods: list[str] | UnsetType = UNSET
    mdr_number: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    nces_id: str | UnsetType | None = UNSET
    pause_end: str | UnsetType | None = UNSET
    pause_start: str | UnsetType | None = UNSET
    portal_url: str | UnsetType = UNSET
    sis_type: str | UnsetType = UNSET
    state: DistrictState | UnsetType | None = UNSET


class Course(V3Record, frozen=True):
    """A v3 course (same fields as v2.1)."""

    id: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    number: str | UnsetType | None = UNSET


class Term(V3Record, frozen=True):
    """A v3 term (same fields as v2.1)."""

    id: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    start_date: str | UnsetType | None = UNSET
    end_date: str | UnsetType | None = UNSET


Record = Section | School | District | Course | Term
"""The non-user records, each decoded by its own typed decoder."""
