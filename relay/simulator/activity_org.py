"""Activity on the organisation records: sections (rosters, teachers), schools, courses, terms
and the district. ``ActivityBase`` holds what both halves of the generator share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.simulator import _names as names
from relay.simulator import bootstrap as boot
from relay.simulator import records as rec

if TYPE_CHECKING:
    from collections.abc import Callable

    from relay.simulator.bootstrap import EventSpec
    from relay.simulator.state import Record, State


def changed(obj: Record, ctx: rec.Ctx, **fields: Any) -> tuple[Record, Record]:
    """A copy of ``obj`` with ``fields`` replaced, and the previous values of those fields."""
    prev = {k: obj.get(k) for k in fields}
    new = {**obj, **fields}
    if "last_modified" in obj:
        new["last_modified"] = ctx.stamp()
    return new, prev


class ActivityBase:
    """The district's context and state, and random picking of current records."""

    def __init__(self, ctx: rec.Ctx, state: State) -> None:
        self.ctx = ctx
        self.state = state

    def _pick(
        self, record_type: str, test: Callable[[Record], bool] | None = None
    ) -> Record | None:
        store = self.state[record_type]
        for _ in range(40):
            if not store.ids:
                return None
            obj = store.objects[self.ctx.pick(store.ids)]
            if test is None or test(obj):
                return obj
        return None

    def _updated(self, record_type: str, obj: Record, **fields: Any) -> list[EventSpec]:
        new, prev = changed(obj, self.ctx, **fields)
        return [(record_type, "updated", new, prev)]


class OrgActivity(ActivityBase):
    """Actions on sections, schools, courses, terms and the district."""

    def roster_changed(self) -> list[EventSpec]:
        """Students are added to or dropped from a section."""
        section = self._pick("sections")
        student = self._pick("users", lambda u: bool((u.get("roles") or {}).get("student")))
        if section is None or student is None:
            return []
        students = list(section["students"])
        if student["id"] not in students and (len(students) < 2 or self.ctx.rng.random() < 0.6):
            students = sorted([*students, student["id"]])
        else:
            students.pop(int(self.ctx.rng.random() * len(students)))
        return self._updated("sections", section, students=students)

    def section_teacher_changed(self) -> list[EventSpec]:
        """A section gets a new lead teacher (the old one stays as co-teacher sometimes)."""
        section = self._pick("sections")
        teacher = self._pick("users", lambda u: bool((u.get("roles") or {}).get("teacher")))
        if section is None or teacher is None or teacher["id"] == section.get("teacher"):
            return []
        teachers = [teacher["id"]]
        if section.get("teacher") and self.ctx.rng.random() < 0.3:
            teachers.append(section["teacher"])
        return self._updated("sections", section, teacher=teacher["id"], teachers=teachers)

    def section_created(self) -> list[EventSpec]:
        """A new section is rostered."""
        teacher = self._pick("users", lambda u: bool((u.get("roles") or {}).get("teacher")))
        course, term = self._pick("courses"), self._pick("terms")
        if teacher is None or course is None or term is None:
            return []
        school = teacher["roles"]["teacher"]["school"]
        pool = [
            s
            for s in self.state["users"].ids[-400:]
            if (self.state["users"].objects[s]["roles"].get("student") or {}).get("school")
            == school
        ]
        students = sorted(self.ctx.rng.sample(pool, min(len(pool), 20)))
        obj = rec.section(
            self.ctx,
            school=school,
            course=course,
            term_id=term["id"],
            teacher=teacher["id"],
            students=students,
        )
        return [("sections", "created", obj, None)]

    def section_deleted(self) -> list[EventSpec]:
        """A section is removed."""
        section = self._pick("sections")
        return [] if section is None else [("sections", "deleted", section, None)]

    def school_updated(self) -> list[EventSpec]:
        """A school's phone number or principal changes."""
        school = self._pick("schools")
        if school is None:
            return []
        if self.ctx.rng.random() < 0.5:
            phone = f"(555) {self.ctx.rng.randint(100, 999)}-{self.ctx.rng.randint(1000, 9999)}"
            return self._updated("schools", school, phone=phone)
        name = f"{self.ctx.pick(names.FIRST)} {self.ctx.pick(names.LAST)}"
        return self._updated(
            "schools", school, principal={**school.get("principal", {}), "name": name}
        )

    def course_changed(self) -> list[EventSpec]:
        """A course is added or renamed."""
        course = self._pick("courses")
        if course is None or self.ctx.rng.random() < 0.3:
            return [
                (
                    "courses",
                    "created",
                    rec.course(self.ctx, self.ctx.pick(boot.COURSE_TITLES)),
                    None,
                )
            ]
        return self._updated("courses", course, name=f"{course.get('name') or 'Course'} (Honors)")

    def term_updated(self) -> list[EventSpec]:
        """A term's end date moves."""
        term = self._pick("terms")
        if term is None:
            return [
                (
                    "terms",
                    "created",
                    rec.term(self.ctx, "Summer Session", self.ctx.stamp(), self.ctx.stamp()),
                    None,
                )
            ]
        return self._updated("terms", term, end_date=self.ctx.stamp())

    def district_updated(self) -> list[EventSpec]:
        """The district's last SIS sync time moves on."""
        district = self._pick("districts")
        return (
            []
            if district is None
            else self._updated("districts", district, last_sync=self.ctx.stamp())
        )
