"""Factories for realistic Clever v3.0 records (docs/clever-api.md, the demo district's shapes).

Shapes follow ``v3.0-events.yml`` and Clever's demo data: teachers, staff and district admins
always carry a ``legacy_id`` (their v2 id, never equal to the user id), contacts carry the whole
name in ``name.last`` like the demo contacts and have a ``legacy_id`` only sometimes, students
carry enrollments and an ``ext`` so that a user is about 1 KB of JSON.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from relay.simulator import _names as names
from relay.simulator._ids import IdMaker, iso_ms
from relay.simulator.state import Record

GRADE_BANDS: dict[str, tuple[str, ...]] = {
    "elementary": ("Kindergarten", "1", "2", "3", "4", "5"),
    "middle": ("6", "7", "8"),
    "high": ("9", "10", "11", "12"),
}
T = TypeVar("T")
LEGACY_EPOCH = 1510000000.0
"""Nov 2017: when v2 ids of the demo district were made, long before the v3 user ids."""


class SeededRandom(random.Random):
    """A reproducible RNG for simulated data and fault draws (never for anything secret)."""


@dataclass
class Ctx:
    """What every factory needs: the district, a seeded RNG, id makers and the simulated clock."""

    district: str
    rng: random.Random
    ids: IdMaker
    legacy_ids: IdMaker
    now: float = 0.0
    serial: int = 0
    term_dates: tuple[str, str] = ("2025-08-25T00:00:00.000Z", "2026-06-20T00:00:00.000Z")
    school_band: dict[str, str] = field(default_factory=dict)

    def next_serial(self) -> int:
        """A district-unique number for usernames, SIS ids and section numbers."""
        self.serial += 1
        return self.serial

    def new_id(self) -> str:
        """A new record id created at the current simulated time."""
        return self.ids.make(self.now)

    def stamp(self) -> str:
        """The current simulated time in Clever's format."""
        return iso_ms(self.now)

    def pick(self, seq: Sequence[T]) -> T:
        """A random element (cheaper than ``rng.choice`` in the hot path)."""
        return seq[int(self.rng.random() * len(seq))]


def person_name(ctx: Ctx) -> dict[str, str]:
    """A ``Name`` with first, middle initial and last."""
    return {
        "first": ctx.pick(names.FIRST),
        "last": ctx.pick(names.LAST),
        "middle": ctx.pick(names.INITIALS),
    }


def email_for(name: dict[str, str], serial: int, domain: str = "example.net") -> str:
    """A plausible, unique e-mail address for a name."""
    first, last = name.get("first") or "x", (name.get("last") or "x").split()[-1]
    return f"{first[0].lower()}.{last.lower()}{serial}@{domain}"


def user(ctx: Ctx, name: dict[str, str], email: str | None, roles: dict[str, Record]) -> Record:
    """A v3 ``User`` around the given role objects."""
    stamp = ctx.stamp()
    return {
        "created": stamp,
        "district": ctx.district,
        "email": email,
        "last_modified": stamp,
        "name": name,
        "id": ctx.new_id(),
        "roles": roles,
    }


def student_role(ctx: Ctx, school: str, name: dict[str, str], email: str) -> Record:
    """A ``roles.student`` object at one school."""
    rng, serial = ctx.rng, ctx.next_serial()
    band = GRADE_BANDS[ctx.school_band.get(school, "high")]
    grade = ctx.pick(band)
    year = 2026 + (12 - (int(grade) if grade.isdigit() else 0))
    start, end = ctx.term_dates
    return {
        "credentials": {
            "district_username": f"{name['first'].lower()}{name['last'][0].lower()}{serial}"
        },
        "dob": f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{year - 18}",
        "ell_status": ctx.pick(("N", "N", "N", "Y", "")),
        "enrollments": [{"school": school, "start_date": start, "end_date": end}],
        "ext": {
            "homeroom": f"{ctx.pick(names.INITIALS)}{rng.randint(100, 399)}",
            "bus_route": str(rng.randint(1, 40)),
        },
        "gender": ctx.pick(("M", "F", "M", "F", "X")),
        "grade": grade,
        "graduation_year": str(year),
        "hispanic_ethnicity": ctx.pick(("Y", "N", "N")),
        "location": {
            "address": f"{rng.randint(1, 999)} {ctx.pick(names.STREETS)}",
            "city": ctx.pick(names.CITIES),
            "state": "NY",
            "zip": f"{rng.randint(10001, 14999)}",
        },
        "race": ctx.pick(names.RACES),
        "school": school,
        "schools": [school],
        "sis_id": str(100000000 + serial),
        "state_id": str(rng.randint(100000000, 999999999)),
        "student_number": str(100000000 + serial),
        "email": email,
    }


def teacher_role(ctx: Ctx, schools: list[str], name: dict[str, str]) -> Record:
    """A ``roles.teacher`` object (with its v2 ``legacy_id``)."""
    serial = ctx.next_serial()
    return {
        "credentials": {
            "district_username": f"{name['first'].lower()}.{name['last'].lower()}{serial}"
        },
        "legacy_id": ctx.legacy_ids.make(LEGACY_EPOCH),
        "school": schools[0],
        "schools": schools,
        "sis_id": f"T{serial}",
        "state_id": str(ctx.rng.randint(100000000, 999999999)),
        "teacher_number": str(200000 + serial),
        "title": ctx.pick(names.TEACHER_TITLES),
        "ext": {},
    }


def staff_role(ctx: Ctx, schools: list[str], name: dict[str, str]) -> Record:
    """A ``roles.staff`` (school admin) object."""
    serial = ctx.next_serial()
    return {
        "credentials": {"district_username": f"{name['first'].lower()}{serial}"},
        "department": ctx.pick(names.DEPARTMENTS),
        "legacy_id": ctx.legacy_ids.make(LEGACY_EPOCH),
        "roles": [ctx.pick(("SchoolTechLead", "PortalOnly"))] if ctx.rng.random() < 0.3 else [],
        "schools": schools,
        "staff_id": f"S{serial}",
        "title": ctx.pick(names.STAFF_TITLES),
        "ext": {},
    }


def district_admin_role(ctx: Ctx) -> Record:
    """A ``roles.district_admin`` object."""
    return {"legacy_id": ctx.legacy_ids.make(LEGACY_EPOCH), "title": ctx.pick(names.ADMIN_TITLES)}


def relationship(ctx: Ctx, student: str) -> Record:
    """One ``StudentRelationship`` entry."""
    return {
        "relationship": ctx.pick(names.RELATIONSHIPS),
        "student": student,
        "type": ctx.pick(names.REL_TYPES),
    }


def contact_user(ctx: Ctx, students: list[str], last: str | None = None) -> Record:
    """A contact user related to ``students``; whole name in ``name.last``, as in the demo."""
    full = f"{ctx.pick(names.FIRST)} {last or ctx.pick(names.LAST)}"
    serial = ctx.next_serial()
    role: Record = {
        "phone": f"555-{ctx.rng.randint(1000000, 9999999)}",
        "phone_type": ctx.pick(names.PHONE_TYPES),
        "sis_id": f"C{serial}" if ctx.rng.random() < 0.5 else "",
        "student_relationships": [relationship(ctx, s) for s in students],
    }
    if ctx.rng.random() < 0.5:
        role = {"legacy_id": ctx.legacy_ids.make(LEGACY_EPOCH), **role}
    email = (
        email_for({"first": full, "last": full}, serial, "example.org")
        if ctx.rng.random() < 0.7
        else None
    )
    return user(ctx, {"last": full}, email, {"contact": role})


def school(ctx: Ctx, band: str) -> Record:
    """A ``School`` of a grade band (elementary, middle or high)."""
    rng, serial, grades, stamp = ctx.rng, ctx.next_serial(), GRADE_BANDS[band], ctx.stamp()
    word = ctx.pick(names.SCHOOL_WORDS)
    school_id = ctx.new_id()
    ctx.school_band[school_id] = band
    return {
        "created": stamp,
        "district": ctx.district,
        "ext": {},
        "high_grade": grades[-1],
        "id": school_id,
        "last_modified": stamp,
        "location": {
            "address": f"{rng.randint(1, 999)} {ctx.pick(names.STREETS)}",
            "city": ctx.pick(names.CITIES),
            "state": "NY",
            "zip": f"{rng.randint(10001, 14999)}",
        },
        "low_grade": grades[0],
        "mdr_number": str(rng.randint(1000000, 9999999)),
        "name": f"{word} {band.title()} School",
        "nces_id": str(rng.randint(10**11, 10**12 - 1)),
        "phone": f"(555) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        "principal": {
            "email": f"principal{serial}@example.edu",
            "name": f"{ctx.pick(names.FIRST)} {ctx.pick(names.LAST)}",
        },
        "school_number": str(serial),
        "sis_id": f"SCH{serial}",
        "state_id": str(rng.randint(10**5, 10**6 - 1)),
    }


def term(ctx: Ctx, name: str, start: str, end: str) -> Record:
    """A ``Term``."""
    return {
        "district": ctx.district,
        "end_date": end,
        "id": ctx.new_id(),
        "name": name,
        "start_date": start,
    }


def course(ctx: Ctx, subject_name: str) -> Record:
    """A ``Course``."""
    return {
        "district": ctx.district,
        "id": ctx.new_id(),
        "name": subject_name,
        "number": str(ctx.next_serial()),
    }


def section(
    ctx: Ctx, *, school: str, course: Record, term_id: str, teacher: str, students: list[str]
) -> Record:
    """A ``Section``; ``teacher``/``teachers`` hold v3 user ids, as in the demo district."""
    serial, stamp = ctx.next_serial(), ctx.stamp()
    subject = next((s for s, titles in names.SUBJECTS.items() if course["name"] in titles), "other")
    band = GRADE_BANDS[ctx.school_band.get(school, "high")]
    period = str(ctx.rng.randint(1, 8))
    return {
        "course": course["id"],
        "created": stamp,
        "district": ctx.district,
        "ext": {},
        "grade": ctx.pick(band),
        "id": ctx.new_id(),
        "last_modified": stamp,
        "name": f"{course['name']} - Period {period}",
        "period": period,
        "school": school,
        "section_number": str(serial),
        "sis_id": f"SEC{serial}",
        "students": students,
        "subject": subject,
        "teacher": teacher,
        "teachers": [teacher],
        "term_id": term_id,
    }


def district(ctx: Ctx, name: str, contact_id: str) -> Record:
    """The ``District`` record itself."""
    first, last = ctx.pick(names.FIRST), ctx.pick(names.LAST)
    return {
        "district_contact": {
            "district": ctx.district,
            "email": f"{first[0].lower()}.{last.lower()}@example.edu",
            "id": contact_id,
            "name": {"first": first, "last": last},
            "title": "Superintendent",
        },
        "error": "",
        "id": ctx.district,
        "last_sync": ctx.stamp(),
        "launch_date": "2017-11-15",
        "login_methods": ["Clever Badges", "Google"],
        "mdr_number": str(ctx.rng.randint(1000000, 9999999)),
        "name": f"{name} School District",
        "nces_id": str(ctx.rng.randint(1000000, 9999999)),
        "pause_end": None,
        "pause_start": None,
        "portal_url": f"https://clever.com/in/{name.lower()}",
        "sis_type": "sftp",
        "state": "success",
    }
