"""Day-to-day district activity: the updates, role changes, roster changes and deletions
that follow the bootstrap, one action at a time, read from and consistent with ``State``.

Each action returns the events it causes (a withdrawn student also leaves their sections and
their contacts' relationships). Updates carry ``previous_attributes`` with the complete prior
value of every changed top-level field, as in Clever's recorded v1.1 events (docs/clever-api.md).
Actions whose preconditions fail (no such user yet) fall back to enrolling a new family, so the
generator also works on a world loaded from a small scenario file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.simulator import _names as names
from relay.simulator import bootstrap as boot
from relay.simulator import records as rec
from relay.simulator.activity_org import OrgActivity, changed

if TYPE_CHECKING:
    from collections.abc import Callable

    from relay.simulator.bootstrap import EventSpec
    from relay.simulator.state import Record, State

ROLE_KEYS = ("student", "teacher", "staff", "district_admin", "contact")


class Activity(OrgActivity):
    """Generates realistic activity events for one district."""

    def __init__(self, ctx: rec.Ctx, state: State) -> None:
        super().__init__(ctx, state)
        self._actions: list[tuple[float, Callable[[], list[EventSpec]]]] = [
            (25, self.student_updated),
            (10, self.contact_relationships_changed),
            (5, self.contact_details_changed),
            (8, self.adult_updated),
            (4, self.role_gained),
            (3, self.role_lost),
            (15, self.roster_changed),
            (3, self.section_teacher_changed),
            (1, self.section_created),
            (1, self.section_deleted),
            (6, self.family_enrolled),
            (1, self.teacher_hired),
            (4, self.student_withdrawn),
            (1, self.contact_deleted),
            (1, self.school_updated),
            (1, self.course_changed),
            (0.5, self.term_updated),
            (0.2, self.district_updated),
        ]
        self._total = sum(w for w, _ in self._actions)

    def step(self) -> list[EventSpec]:
        """Events of one randomly chosen action (at least one event)."""
        x = self.ctx.rng.random() * self._total
        for weight, action in self._actions:
            x -= weight
            if x < 0:
                return action() or self.family_enrolled()
        return self.family_enrolled()

    def _user_with(self, *roles: str) -> Record | None:
        return self._pick("users", lambda u: all((u.get("roles") or {}).get(r) for r in roles))

    def _update_roles(self, user: Record, roles: dict[str, Any], **more: Any) -> list[EventSpec]:
        new, prev = changed(user, self.ctx, roles=roles, **more)
        return [("users", "updated", new, prev)]

    # -- users ---------------------------------------------------------------------------------

    def student_updated(self) -> list[EventSpec]:
        """A grade change, school move, surname change or ELL status change."""
        user = self._user_with("student")
        if user is None:
            return []
        role = dict(user["roles"]["student"])
        kind = self.ctx.pick(("grade", "school", "name", "ell"))
        if kind == "name":
            name = {**user["name"], "last": self.ctx.pick(names.LAST)}
            new, prev = changed(user, self.ctx, name=name)
            return [("users", "updated", new, prev)]
        if kind == "school":
            school = self._pick("schools")
            if school is not None:
                role.update(
                    school=school["id"],
                    schools=[school["id"]],
                    enrollments=[
                        *role.get("enrollments", []),
                        {
                            "school": school["id"],
                            "start_date": self.ctx.stamp(),
                            "end_date": self.ctx.term_dates[1],
                        },
                    ],
                )
        elif kind == "grade":
            role["grade"] = self.ctx.pick(rec.GRADE_BANDS[self.ctx.pick(boot.BANDS)])
        else:
            role["ell_status"] = "Y" if role.get("ell_status") != "Y" else "N"
        return self._update_roles(user, {**user["roles"], "student": role})

    def contact_relationships_changed(self) -> list[EventSpec]:
        """A contact gains a student, loses one (keeping at least one) or changes a type."""
        user = self._user_with("contact")
        student = self._user_with("student")
        if user is None or student is None:
            return []
        role = dict(user["roles"]["contact"])
        rels = list(role.get("student_relationships") or [])
        known = {r.get("student") for r in rels}
        if len(rels) < 4 and student["id"] not in known and self.ctx.rng.random() < 0.5:
            rels.append(rec.relationship(self.ctx, student["id"]))
        elif len(rels) > 1 and self.ctx.rng.random() < 0.5:
            rels.pop(int(self.ctx.rng.random() * len(rels)))
        elif rels:
            rels[0] = {
                **rels[0],
                "type": self.ctx.pick(names.REL_TYPES),
                "relationship": self.ctx.pick(names.RELATIONSHIPS),
            }
        role["student_relationships"] = rels
        return self._update_roles(user, {**user["roles"], "contact": role})

    def contact_details_changed(self) -> list[EventSpec]:
        """A contact's phone or e-mail changes."""
        user = self._user_with("contact")
        if user is None:
            return []
        if self.ctx.rng.random() < 0.5:
            new, prev = changed(user, self.ctx, email=f"c{self.ctx.next_serial()}@example.org")
            return [("users", "updated", new, prev)]
        role = {
            **user["roles"]["contact"],
            "phone": f"555-{self.ctx.rng.randint(1000000, 9999999)}",
        }
        return self._update_roles(user, {**user["roles"], "contact": role})

    def adult_updated(self) -> list[EventSpec]:
        """A teacher's or staff member's title, e-mail or name changes."""
        user = self._pick(
            "users",
            lambda u: bool(set(u.get("roles") or {}) & {"teacher", "staff", "district_admin"}),
        )
        if user is None:
            return []
        kind = self.ctx.pick(("title", "email", "name"))
        if kind == "email":
            new, prev = changed(
                user,
                self.ctx,
                email=rec.email_for(user["name"], self.ctx.next_serial(), "example.edu"),
            )
            return [("users", "updated", new, prev)]
        if kind == "name":
            new, prev = changed(
                user, self.ctx, name={**user["name"], "last": self.ctx.pick(names.LAST)}
            )
            return [("users", "updated", new, prev)]
        key = next(r for r in ("teacher", "staff", "district_admin") if user["roles"].get(r))
        titles = {"teacher": names.TEACHER_TITLES, "staff": names.STAFF_TITLES}.get(
            key, names.ADMIN_TITLES
        )
        role = {**user["roles"][key], "title": self.ctx.pick(titles)}
        return self._update_roles(user, {**user["roles"], key: role})

    def role_gained(self) -> list[EventSpec]:
        """A teacher also becomes staff, or a district admin."""
        user = self._pick(
            "users",
            lambda u: (
                bool((u.get("roles") or {}).get("teacher"))
                and not ({"staff", "district_admin"} <= set(u["roles"]))
            ),
        )
        if user is None:
            return []
        roles = dict(user["roles"])
        if "staff" not in roles:
            roles["staff"] = rec.staff_role(
                self.ctx, list(roles["teacher"]["schools"]), user["name"]
            )
        else:
            roles["district_admin"] = rec.district_admin_role(self.ctx)
        return self._update_roles(user, roles)

    def role_lost(self) -> list[EventSpec]:
        """A multi-role adult keeps only one of their roles."""
        user = self._pick("users", lambda u: len(u.get("roles") or {}) > 1)
        if user is None:
            return []
        roles = dict(user["roles"])
        roles.pop(
            self.ctx.pick([r for r in ROLE_KEYS if r in roles and r != "teacher"] or ["teacher"])
        )
        return self._update_roles(user, roles)

    def family_enrolled(self) -> list[EventSpec]:
        """New sibling students arrive with their contacts (creating a school if there is none)."""
        school = self._pick("schools")
        if school is None:
            return [("schools", "created", rec.school(self.ctx, "high"), None)]
        return list(boot.family(self.ctx, school["id"], self.ctx.pick((1, 1, 2, 3))))

    def teacher_hired(self) -> list[EventSpec]:
        """A new teacher joins a school."""
        school = self._pick("schools")
        if school is None:
            return []
        name = rec.person_name(self.ctx)
        roles = {"teacher": rec.teacher_role(self.ctx, [school["id"]], name)}
        email = rec.email_for(name, self.ctx.next_serial(), "example.edu")
        return [("users", "created", rec.user(self.ctx, name, email, roles), None)]

    def student_withdrawn(self) -> list[EventSpec]:
        """A student is deleted; their sections and contacts are updated (or deleted) too."""
        user = self._user_with("student")
        if user is None:
            return []
        sid = user["id"]
        out: list[EventSpec] = []
        for section_id in sorted(self.state.sections_of.get(sid, ())):
            section = self.state["sections"].objects[section_id]
            new, prev = changed(
                section, self.ctx, students=[s for s in section["students"] if s != sid]
            )
            out.append(("sections", "updated", new, prev))
        for contact_id in sorted(self.state.contacts_of.get(sid, ())):
            contact = self.state["users"].objects[contact_id]
            role = contact["roles"]["contact"]
            rels = [r for r in role["student_relationships"] if r.get("student") != sid]
            if rels:
                out.extend(
                    self._update_roles(
                        contact,
                        {**contact["roles"], "contact": {**role, "student_relationships": rels}},
                    )
                )
            else:
                out.append(("users", "deleted", contact, None))
        return [*out, ("users", "deleted", user, None)]

    def contact_deleted(self) -> list[EventSpec]:
        """A contact is removed from the SIS."""
        user = self._user_with("contact")
        return [] if user is None else [("users", "deleted", user, None)]
