"""The opening history of a generated district: the district, its schools, terms and courses,
then staff, teachers, students with their contacts, and finally rostered sections.

Sizes scale with the number of events asked for, so that roughly half of a district's history
is this bootstrap and the rest is day-to-day activity (``activity.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.simulator import _names as names
from relay.simulator import records as rec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from relay.simulator.state import Record

EventSpec = tuple[str, str, "Record", "Record | None"]
"""(record_type, action, record, previous_attributes) of one event to append."""

BANDS = ("elementary", "middle", "high")
COURSE_TITLES = tuple(t for titles in names.SUBJECTS.values() for t in titles)


@dataclass(frozen=True)
class Plan:
    """How many of each record the bootstrap creates."""

    schools: int
    courses: int
    teachers: int
    staff: int
    students: int
    sections_per_teacher: int = 3

    @classmethod
    def for_events(cls, events: int) -> Plan:
        """A plan whose bootstrap is about half of ``events``."""
        return cls(
            schools=min(max(events // 1500, 2), 12),
            courses=min(max(events // 400, 3), len(COURSE_TITLES)),
            teachers=max(events // 45, 2),
            staff=max(events // 400, 1),
            students=max(int(events * 0.22), 4),
        )


def bootstrap(ctx: rec.Ctx, plan: Plan, district_name: str) -> Iterator[EventSpec]:
    """Yield the creation events of a new district, in dependency order."""
    contact_id = ctx.new_id()
    yield "districts", "created", rec.district(ctx, district_name, contact_id), None
    schools = [rec.school(ctx, BANDS[i % 3]) for i in range(plan.schools)]
    for obj in schools:
        yield "schools", "created", obj, None
    terms = [
        rec.term(ctx, "Fall Semester", "2025-08-25T00:00:00.000Z", "2026-01-16T00:00:00.000Z"),
        rec.term(ctx, "Spring Semester", "2026-01-20T00:00:00.000Z", "2026-06-20T00:00:00.000Z"),
    ]
    for obj in terms:
        yield "terms", "created", obj, None
    courses = [rec.course(ctx, COURSE_TITLES[i]) for i in range(plan.courses)]
    for obj in courses:
        yield "courses", "created", obj, None
    school_ids = [s["id"] for s in schools]
    teachers: dict[str, list[str]] = {s: [] for s in school_ids}
    yield from _adults(ctx, plan, school_ids, teachers)
    by_school: dict[str, list[str]] = {s: [] for s in school_ids}
    yield from _students(ctx, plan, school_ids, by_school)
    for school_id, teacher_ids in teachers.items():
        for teacher in teacher_ids:
            for _ in range(plan.sections_per_teacher):
                obj = _section(
                    ctx,
                    school=school_id,
                    courses=courses,
                    terms=terms,
                    teacher=teacher,
                    pool=by_school[school_id],
                )
                yield "sections", "created", obj, None


def _section(
    ctx: rec.Ctx,
    *,
    school: str,
    courses: list[Record],
    terms: list[Record],
    teacher: str,
    pool: list[str],
) -> Record:
    size = min(len(pool), ctx.rng.randint(18, 30))
    students = sorted(ctx.rng.sample(pool, size))
    return rec.section(
        ctx,
        school=school,
        course=courses[int(ctx.rng.random() * len(courses))],
        term_id=terms[int(ctx.rng.random() * len(terms))]["id"],
        teacher=teacher,
        students=students,
    )


def _adults(
    ctx: rec.Ctx, plan: Plan, schools: list[str], teachers: dict[str, list[str]]
) -> Iterator[EventSpec]:
    # Two district admins, one of whom also teaches; a fifth of teachers are also staff.
    name = rec.person_name(ctx)
    yield (
        "users",
        "created",
        rec.user(
            ctx,
            name,
            rec.email_for(name, ctx.next_serial(), "example.edu"),
            {"district_admin": rec.district_admin_role(ctx)},
        ),
        None,
    )
    for i in range(plan.teachers):
        name = rec.person_name(ctx)
        home = schools[i % len(schools)]
        roles: dict[str, Record] = {"teacher": rec.teacher_role(ctx, [home], name)}
        if i == 0:
            roles["district_admin"] = rec.district_admin_role(ctx)
        elif ctx.rng.random() < 0.2:
            roles["staff"] = rec.staff_role(ctx, [home], name)
        obj = rec.user(ctx, name, rec.email_for(name, ctx.next_serial(), "example.edu"), roles)
        teachers[home].append(obj["id"])
        yield "users", "created", obj, None
    for i in range(plan.staff):
        name = rec.person_name(ctx)
        roles = {"staff": rec.staff_role(ctx, [schools[i % len(schools)]], name)}
        yield (
            "users",
            "created",
            rec.user(ctx, name, rec.email_for(name, ctx.next_serial(), "example.edu"), roles),
            None,
        )


def new_student(ctx: rec.Ctx, school: str, last: str | None = None) -> Record:
    """A new student user at ``school`` (siblings share ``last``)."""
    name = rec.person_name(ctx)
    if last is not None:
        name["last"] = last
    email = rec.email_for(name, ctx.next_serial())
    return rec.user(ctx, name, email, {"student": rec.student_role(ctx, school, name, email)})


def family(ctx: rec.Ctx, school: str, size: int) -> Iterator[EventSpec]:
    """``size`` sibling students and one or two contacts related to all of them."""
    last = ctx.pick(names.LAST)
    kids = [new_student(ctx, school, last) for _ in range(size)]
    for kid in kids:
        yield "users", "created", kid, None
    ids = [k["id"] for k in kids]
    for _ in range(1 + (ctx.rng.random() < 0.4)):
        yield "users", "created", rec.contact_user(ctx, ids, last), None


def _students(
    ctx: rec.Ctx, plan: Plan, schools: list[str], by_school: dict[str, list[str]]
) -> Iterator[EventSpec]:
    made = 0
    while made < plan.students:
        school = schools[int(ctx.rng.random() * len(schools))]
        size = min(plan.students - made, ctx.pick((1, 1, 1, 2, 2, 3, 4)))
        for spec in family(ctx, school, size):
            if spec[2]["roles"].get("student") is not None:
                by_school[school].append(spec[2]["id"])
            yield spec
        made += size
