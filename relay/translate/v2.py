"""Typed Clever v2.1 objects, as the translator emits them (``v2.1.yml`` definitions).

Each Struct lists exactly the properties of its v2.1 definition, so an encoded object can never
carry a key v2 consumers do not know (the tests validate every output strictly against the spec).
Absent fields are ``UNSET`` and omitted on encode; nulls are kept. The value types both versions
share (``Name``, ``Location``, ...) are the v3 Structs themselves: the specs define them the same.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from relay.translate.v3 import (
    Credentials,
    DistrictState,
    Dob,
    Ext,
    Gender,
    Grade,
    Location,
    Name,
    PhoneType,
    Principal,
    Race,
    Relationship,
    RelationshipType,
    SchoolEnrollment,
    Subject,
    YesNo,
)

__all__ = [
    "AdminName",
    "Contact",
    "Course",
    "District",
    "DistrictAdmin",
    "Name",
    "School",
    "SchoolAdmin",
    "Section",
    "Student",
    "Teacher",
    "Term",
]


class V2Record(msgspec.Struct, frozen=True, omit_defaults=True):
    """Base of every v2 object: frozen, absent (``UNSET``) fields omitted on encode."""


class AdminName(V2Record, frozen=True):
    """An admin's name: v2 admins have no middle name."""

    first: str | UnsetType | None = UNSET
    last: str | UnsetType | None = UNSET


class Student(V2Record, frozen=True):
    """v2.1 ``Student``; ``id`` is the v3 user id (student ids never changed)."""

    id: str
    district: str | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
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


class Teacher(V2Record, frozen=True):
    """v2.1 ``Teacher``; ``id`` is ``roles.teacher.legacy_id``."""

    id: str
    district: str | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    created: str | UnsetType = UNSET
    last_modified: str | UnsetType = UNSET
    credentials: Credentials | UnsetType | None = UNSET
    ext: Ext | UnsetType = UNSET
    school: str | UnsetType = UNSET
    schools: list[str] | UnsetType = UNSET
    sis_id: str | UnsetType = UNSET
    state_id: str | UnsetType | None = UNSET
    teacher_number: str | UnsetType | None = UNSET
    title: str | UnsetType | None = UNSET


class SchoolAdmin(V2Record, frozen=True):
    """v2.1 ``SchoolAdmin`` (v3 ``staff``); ``email`` is not nullable in v2."""

    id: str
    district: str | UnsetType = UNSET
    email: str | UnsetType = UNSET
    name: AdminName | UnsetType = UNSET
    credentials: Credentials | UnsetType = UNSET
    department: str | UnsetType | None = UNSET
    ext: Ext | UnsetType = UNSET
    schools: list[str] | UnsetType = UNSET
    staff_id: str | UnsetType = UNSET
    title: str | UnsetType | None = UNSET


class DistrictAdmin(V2Record, frozen=True):
    """v2.1 ``DistrictAdmin``; also the shape of a v2.1 district's ``district_contact``."""

    id: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    email: str | UnsetType = UNSET
    name: AdminName | UnsetType | None = UNSET
    title: str | UnsetType | None = UNSET


class Contact(V2Record, frozen=True):
    """v2.1 ``Contact``: one string ``name``, one ``type``/``relationship`` for all students."""

    id: str
    district: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    phone: str | UnsetType | None = UNSET
    phone_type: PhoneType | UnsetType | None = UNSET
    sis_id: str | UnsetType | None = UNSET
    students: list[str] | UnsetType = UNSET
    type: RelationshipType | UnsetType | None = UNSET
    relationship: Relationship | UnsetType | None = UNSET


# Section, School, Course and Term list the same fields as their v3 twins today, but they are
# kept as separate types on purpose: these define exactly what v2.1 consumers get, so a field
# Clever adds to a v3 record never leaks into v2 output (tests compare both with the specs).


class Section(V2Record, frozen=True):
    """v2.1 ``Section``; ``teacher``/``teachers`` hold teacher *legacy* ids."""

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


class School(V2Record, frozen=True):
    """v2.1 ``School``."""

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


class District(V2Record, frozen=True):
    """v2.1 ``District``: ``district_contact`` is a ``DistrictAdmin``, ``launch_date`` datetime."""

    id: str | UnsetType = UNSET
    district_contact: DistrictAdmin | UnsetType | None = UNSET
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


class Course(V2Record, frozen=True):
    """v2.1 ``Course``."""

    id: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    number: str | UnsetType | None = UNSET


class Term(V2Record, frozen=True):
    """v2.1 ``Term``."""

    id: str | UnsetType = UNSET
    district: str | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    start_date: str | UnsetType | None = UNSET
    end_date: str | UnsetType | None = UNSET


UserObject = Student | Teacher | SchoolAdmin | DistrictAdmin | Contact
"""A v2 object made from one role of a v3 user."""
Record = Section | School | District | Course | Term
"""A v2 object made from a non-user v3 record."""
