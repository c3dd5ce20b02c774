"""Fidelity rules: what Clever v2 would have sent on the paths real districts take.

Each case feeds the project's translator one v3 event and compares the legacy events with the
ones Clever v2 would have sent (type, v2 id and ``previous_attributes``, whole values).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from relay.translate.rules import Translation, translate
from tests.swagger import errors
from tests.test_rules import ALL_TYPES, golden_user, load, message, run, user_event
from tests.test_v2api import DEFINITIONS

TEACHER_ID = "5a25ff9fa178276346000101"
STAFF_ID = "5a25ff9fa178276346000201"
USER_ID = "603ebb2ab452fb006c76a001"


def summary(result: Translation) -> list[tuple[str, str, Any]]:
    """Each legacy event as (type, v2 id, previous_attributes or None); objects must validate
    strictly against v2.1."""
    for e in result.events:
        obj = json.loads(bytes(e.object))
        assert errors("v2.1.yml", DEFINITIONS[e.record_type], obj, strict=True) == []
    return [
        (
            e.type,
            json.loads(bytes(e.object))["id"],
            None if e.previous_attributes is None else json.loads(bytes(e.previous_attributes)),
        )
        for e in result.events
    ]


def teacher_only() -> dict[str, Any]:
    """The golden teacher+staff user without its staff role."""
    user = golden_user("teacher_staff_created")
    del user["roles"]["staff"]
    return user


pytestmark = pytest.mark.spec  # every legacy object is validated against v2.1.yml


class TestCompletePreviousValues:
    """A top-level key of previous_attributes is the complete previous value of that field."""

    def test_teacher_gains_staff_with_whole_previous_roles(self) -> None:
        """The whole previous roles (teacher only) mean the staff role was gained."""
        user = golden_user("teacher_staff_created")
        previous = {"roles": teacher_only()["roles"]}
        _, result = run(user_event("updated", user, previous))
        assert (summary(result), result.skipped, result.notes) == (
            [("schooladmins.created", STAFF_ID, None)],
            None,
            [],
        )

    def test_teacher_title_added(self) -> None:
        """A whole previous teacher role without title: teachers.updated with title null."""
        user = teacher_only()
        before = copy.deepcopy(user["roles"])
        del before["teacher"]["title"]
        _, result = run(user_event("updated", user, {"roles": before}))
        assert (summary(result), result.skipped) == (
            [("teachers.updated", TEACHER_ID, {"title": None})],
            None,
        )

    def test_student_became_contact(self) -> None:
        """A previous student role (students combine with no other role): contact gained."""
        student = golden_user("student_created")
        user = copy.deepcopy(student)
        user["roles"] = {"contact": {"phone": "555-0100", "phone_type": "Cell"}}
        user["id"] = "5a25ffb0c1bc2a00360003ee"
        student["id"] = user["id"]
        _, result = run(user_event("updated", user, {"roles": student["roles"]}))
        assert summary(result) == [
            ("students.deleted", user["id"], None),
            ("contacts.created", user["id"], None),
        ]

    def test_dotted_key(self) -> None:
        """A dotted key names one nested field: students.updated with the old grade."""
        user = golden_user("student_created")
        _, result = run(user_event("updated", user, {"roles.student.grade": "1"}))
        assert summary(result) == [("students.updated", user["id"], {"grade": "1"})]

    def test_partial_and_whole_roles_mixed_is_unreadable(self) -> None:
        """A whole role beside a per-field patch of another cannot be read: .updated with {}."""
        user = golden_user("teacher_staff_created")
        roles = copy.deepcopy(user["roles"])
        roles["teacher"]["title"] = "Old"
        previous = {"roles": {"teacher": roles["teacher"], "staff": {"title": "Old head"}}}
        _, result = run(user_event("updated", user, previous))
        assert (summary(result), result.notes) == (
            [("teachers.updated", TEACHER_ID, {}), ("schooladmins.updated", STAFF_ID, {})],
            ["previous_attributes_unreadable"],
        )


class TestUnreadablePrevious:
    """A previous_attributes shape that changes nothing is unknown, not 'no change'."""

    def test_top_level_role_field_on_user(self) -> None:
        """``{"grade": ...}`` at the top level changes nothing: students.updated with {}."""
        user = golden_user("student_created")
        _, result = run(user_event("updated", user, {"grade": "1"}))
        assert (summary(result), result.skipped, result.notes) == (
            [("students.updated", user["id"], {})],
            None,
            ["previous_attributes_unreadable"],
        )


class TestPartialDeadLetter:
    """One role that cannot be translated does not take the user's other roles with it."""

    def test_created_teacher_without_legacy_id(self) -> None:
        """The staff role is emitted; only the teacher role is dead-lettered."""
        user = golden_user("teacher_staff_created")
        del user["roles"]["teacher"]["legacy_id"]
        _, result = run(user_event("created", user))
        assert (summary(result), result.dead) == (
            [("schooladmins.created", STAFF_ID, None)],
            [("missing_legacy_id", f"user {USER_ID}: roles.teacher has no legacy_id")],
        )

    def test_deleted_teacher_without_legacy_id(self) -> None:
        """users.deleted still deletes the staff role's v2 object."""
        user = golden_user("teacher_staff_created")
        del user["roles"]["teacher"]["legacy_id"]
        _, result = run(user_event("deleted", user))
        assert (summary(result), result.dead) == (
            [("schooladmins.deleted", STAFF_ID, None)],
            [("missing_legacy_id", f"user {USER_ID}: roles.teacher has no legacy_id")],
        )

    def test_updated_untranslatable_role_is_not_lost(self) -> None:
        """A role that cannot be mapped now is dead-lettered, never reported as deleted."""
        before = golden_user("teacher_staff_created")
        user = copy.deepcopy(before)
        del user["roles"]["teacher"]["legacy_id"]
        user["roles"]["staff"]["title"] = "Principal"
        _, result = run(user_event("updated", user), previous_user=before)
        assert (summary(result), result.dead) == (
            [("schooladmins.updated", STAFF_ID, {"title": "Department Head"})],
            [("missing_legacy_id", f"user {USER_ID}: roles.teacher has no legacy_id")],
        )


class TestStudentAndContact:
    """A student+contact user never gives its contact the student's id."""

    def test_contact_without_legacy_id_beside_student(self) -> None:
        """The contact would reuse the user id: it is dead-lettered, the student emitted."""
        user = golden_user("student_created")
        user["roles"]["contact"] = {"phone": "555-0100"}
        _, result = run(user_event("created", user))
        assert (summary(result), result.dead) == (
            [("students.created", user["id"], None)],
            [
                (
                    "contact_id_conflict",
                    f"user {user['id']}: roles.contact has no legacy_id of its own and the "
                    "user is also a student (the v2 ids would collide)",
                )
            ],
        )

    def test_contact_with_legacy_id_beside_student(self) -> None:
        """A contact with its own legacy_id keeps it."""
        user = golden_user("student_created")
        user["roles"]["contact"] = {"legacy_id": "5a25ffb0c1bc2a0036000fff"}
        _, result = run(user_event("created", user))
        assert (summary(result), result.dead) == (
            [
                ("students.created", user["id"], None),
                ("contacts.created", "5a25ffb0c1bc2a0036000fff", None),
            ],
            [],
        )


class TestRecordPrevious:
    """Non-user records: every previous key that translates is kept."""

    def test_one_undecodable_key_is_dropped(self) -> None:
        """A null for a non-nullable field drops that key only (and is noted)."""
        event = load("term_updated")["event"]
        event["data"]["previous_attributes"] = {
            "end_date": "2024-12-20T00:00:00.000Z",
            "district": None,
        }
        _, result = run(event)
        assert (summary(result), result.notes) == (
            [
                (
                    "terms.updated",
                    event["data"]["object"]["id"],
                    {"end_date": "2024-12-20T00:00:00.000Z"},
                )
            ],
            ["previous_attribute_dropped"],
        )

    def test_gone_teacher_only_in_previous_is_left_out(self) -> None:
        """A teacher named only in previous values and gone from Clever is left out."""
        event = load("section_updated")["event"]
        gone = "603ebb2ab452fb006c76a009"
        event["data"]["previous_attributes"]["teacher"] = gone
        known = load("section_updated")["teacher_legacy_ids"]
        msg = message(event)
        result = translate(
            msg,
            previous_user=None,
            teacher_legacy_ids=known,
            record_types=ALL_TYPES,
            gone_teachers=frozenset({gone}),
        )
        assert (summary(result), result.notes) == (
            [("sections.updated", event["data"]["object"]["id"], {"period": "3"})],
            ["previous_teacher_not_found"],
        )
