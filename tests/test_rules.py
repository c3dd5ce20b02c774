"""Event rules: v3 events in, the exact legacy v2 events out (golden files in tests/golden/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from relay.messages import EventMessage, normalize
from relay.translate.rules import (
    LEGACY_RECORD_TYPES,
    LegacyOut,
    TeacherLookupNeeded,
    Translation,
    UntranslatableError,
    encode_legacy_event,
    section_teacher_user_ids,
    translate,
)

GOLDEN = Path(__file__).parent / "golden"
DISTRICT = "5a0c91b95c7cc000010d417c"
ALL_TYPES = frozenset(LEGACY_RECORD_TYPES)


def load(name: str) -> dict[str, Any]:
    """One golden case."""
    case: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return case


def message(event: dict[str, Any]) -> EventMessage:
    """The normalized message of a raw Clever event, through the real normalizer."""
    return normalize(json.dumps(event).encode(), DISTRICT)


def run(
    event: dict[str, Any],
    *,
    previous_user: dict[str, Any] | None = None,
    teacher_ids: dict[str, str] | None = None,
    record_types: frozenset[str] = ALL_TYPES,
) -> tuple[EventMessage, Translation]:
    """Translate one raw event the way the consumer does."""
    msg = message(event)
    previous = None if previous_user is None else json.dumps(previous_user).encode()
    result = translate(
        msg,
        previous_user=previous,
        teacher_legacy_ids=teacher_ids or {},
        record_types=record_types,
    )
    return msg, result


def legacy_events(msg: EventMessage, result: Translation) -> list[Any]:
    """The v2 events as the consumer would append them, with ids 1, 2, 3 ... (24 hex)."""
    return [
        json.loads(encode_legacy_event(out, f"{n:024x}", msg.created))
        for n, out in enumerate(result.events, start=1)
    ]


def check_golden(name: str) -> None:
    """Translate a golden case's event and compare every output with the expectation."""
    case = load(name)
    types = case.get("record_types")
    msg, result = run(
        case["event"],
        previous_user=case.get("previous_user"),
        teacher_ids=case.get("teacher_legacy_ids"),
        record_types=ALL_TYPES if types is None else frozenset(types),
    )
    expected = case["expected"]
    snapshot = {"stored": bytes(msg.object), "deleted": None, "none": None}[expected["snapshot"]]
    assert legacy_events(msg, result) == expected["events"]
    assert (result.skipped, result.teacher_ids) == (expected["skipped"], expected["teacher_ids"])
    assert result.delete_snapshot == (expected["snapshot"] == "deleted")
    assert (None if result.user_snapshot is None else bytes(result.user_snapshot)) == snapshot


class TestUserEvents:
    """users.* events become one legacy event per role."""

    def test_translate_student_created(self) -> None:
        """A demo student becomes students.created without non-spec fields."""
        check_golden("student_created")

    def test_translate_student_updated(self) -> None:
        """A grade change becomes students.updated with the old grade in previous_attributes."""
        check_golden("student_updated")

    def test_translate_student_deleted(self) -> None:
        """A deleted student becomes students.deleted and the snapshot is dropped."""
        check_golden("student_deleted")

    def test_translate_teacher_staff_created(self) -> None:
        """A teacher+staff user becomes two created events, teachers first."""
        check_golden("teacher_staff_created")

    def test_translate_teacher_staff_deleted(self) -> None:
        """A deleted teacher+staff user becomes two deleted events."""
        check_golden("teacher_staff_deleted")

    def test_translate_deleted_without_roles_uses_snapshot(self) -> None:
        """A role-less deleted object takes its roles from the snapshot."""
        check_golden("deleted_without_roles_uses_snapshot")

    def test_translate_staff_role_gained(self) -> None:
        """Gaining the staff role yields schooladmins.created only."""
        check_golden("staff_role_gained")

    def test_translate_district_admin_role_lost(self) -> None:
        """Losing district_admin yields districtadmins.deleted with the previous v2 object."""
        check_golden("district_admin_role_lost")

    def test_translate_three_role_name_change(self) -> None:
        """A name change on a 3-role user yields three updated events with the old name."""
        check_golden("three_role_name_change")

    def test_translate_three_role_name_change_without_snapshot(self) -> None:
        """Without a snapshot, Clever's previous_attributes rebuild the previous user."""
        check_golden("three_role_name_change_without_snapshot")

    def test_translate_update_without_any_previous(self) -> None:
        """With no previous state at all every role gets .updated with previous_attributes {}."""
        check_golden("update_without_any_previous")

    def test_translate_contact_three_relationships(self) -> None:
        """A contact with 3 relationships lists all students and uses the first relationship."""
        check_golden("contact_three_relationships")

    def test_translate_contact_relationship_changed(self) -> None:
        """A relationship change shows as students/type/relationship previous values."""
        check_golden("contact_relationship_changed")

    def test_translate_v3_only_fields_changed(self) -> None:
        """A change invisible to v2 emits nothing and says no_visible_change."""
        check_golden("v3_only_fields_changed")

    def test_translate_record_types_filter(self) -> None:
        """Only enabled v2 record types are emitted."""
        check_golden("record_types_filter")

    def test_translate_record_types_all_disabled(self) -> None:
        """When every produced type is disabled the skip reason is record_type_disabled."""
        check_golden("record_types_all_disabled")


class TestRecordEvents:
    """sections, schools, districts, courses, terms and resources events."""

    def test_translate_section_created(self) -> None:
        """Section teachers become legacy ids."""
        check_golden("section_created")

    def test_translate_section_updated(self) -> None:
        """previous_attributes teachers become legacy ids too."""
        check_golden("section_updated")

    def test_translate_school_updated(self) -> None:
        """A school maps field for field and drops unknown keys."""
        check_golden("school_updated")

    def test_translate_district_created(self) -> None:
        """district_contact and launch_date take their v2.1 shapes."""
        check_golden("district_created")

    def test_translate_course_deleted(self) -> None:
        """A course maps unchanged."""
        check_golden("course_deleted")

    def test_translate_term_updated(self) -> None:
        """A term maps unchanged with its previous_attributes."""
        check_golden("term_updated")

    def test_translate_resources_skipped(self) -> None:
        """resources.* is skipped as no_v2_equivalent."""
        check_golden("resources_skipped")


def user_event(kind: str, user: dict[str, Any], previous: Any = None) -> dict[str, Any]:
    """A raw ``users.<kind>`` event around ``user``."""
    data: dict[str, Any] = {"object": user}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": "66320c4100000000000000ff", "type": f"users.{kind}", "created": "t", "data": data}


def golden_user(name: str) -> dict[str, Any]:
    """The user object of a golden case's event."""
    user: dict[str, Any] = load(name)["event"]["data"]["object"]
    return user


class TestRebuiltPrevious:
    """Without a snapshot, Clever's previous_attributes shapes are all understood."""

    def test_translate_nested_role_field(self) -> None:
        """``roles.teacher.title`` alone yields teachers.updated with the old title."""
        user = golden_user("teacher_staff_created")
        _, result = run(user_event("updated", user, {"roles": {"teacher": {"title": "Old"}}}))
        assert [(e.type, bytes(e.previous_attributes or b"")) for e in result.events] == [
            ("teachers.updated", b'{"title":"Old"}')
        ]

    def test_translate_null_role_means_gained(self) -> None:
        """A role given as null was absent before: <t>.created."""
        user = golden_user("teacher_staff_created")
        _, result = run(user_event("updated", user, {"roles": {"staff": None}}))
        assert [e.type for e in result.events] == ["schooladmins.created"]

    def test_translate_role_no_longer_present_means_lost(self) -> None:
        """A whole previous role the user no longer has: <t>.deleted with that role's object."""
        three = load("district_admin_role_lost")
        msg, result = run(three["event"])
        assert legacy_events(msg, result) == three["expected"]["events"]

    def test_translate_unusable_previous_attributes(self) -> None:
        """previous_attributes that do not fit a user count as unknown: .updated with {}."""
        user = golden_user("student_created")
        _, result = run(user_event("updated", user, {"roles": {"student": {"grade": "Z"}}}))
        assert [(e.type, bytes(e.previous_attributes or b"")) for e in result.events] == [
            ("students.updated", b"{}")
        ]

    def test_translate_snapshot_wins_over_previous_attributes(self) -> None:
        """With a snapshot, Clever's previous_attributes are not trusted."""
        user = golden_user("student_created")
        _, result = run(
            user_event("updated", user, {"email": "old@example.org"}), previous_user=user
        )
        assert (result.events, result.skipped, result.user_snapshot) == (
            [],
            "no_visible_change",
            None,
        )


class TestUserRules:
    """Edge rules of users.* translation."""

    def test_translate_legacy_id_change_is_delete_and_create(self) -> None:
        """A kept role whose v2 id changes is a different v2 object: deleted, then created."""
        user = golden_user("teacher_staff_created")
        before = json.loads(json.dumps(user))
        before["roles"]["teacher"]["legacy_id"] = "5a25ff9fa178276346000100"
        _, result = run(user_event("updated", user), previous_user=before)
        assert [(e.type, json.loads(bytes(e.object))["id"]) for e in result.events] == [
            ("teachers.deleted", "5a25ff9fa178276346000100"),
            ("teachers.created", "5a25ff9fa178276346000101"),
        ]

    def test_translate_created_without_roles(self) -> None:
        """A user with no role has no v2 equivalent."""
        _, result = run(user_event("created", {"id": "603ebb2ab452fb006c76a0ff", "roles": {}}))
        assert (result.events, result.skipped) == ([], "no_v2_equivalent")

    def test_translate_deleted_without_any_roles_dead_letters(self) -> None:
        """A role-less deletion without a snapshot cannot say which v2 objects to delete."""
        with pytest.raises(UntranslatableError) as info:
            run(user_event("deleted", {"id": "603ebb2ab452fb006c76a0ff"}))
        assert info.value.reason == "unknown_roles"

    def test_translate_teacher_without_legacy_id_dead_letters(self) -> None:
        """A teacher role without legacy_id would need a made-up v2 id: that role is dead."""
        user = golden_user("teacher_staff_created")
        del user["roles"]["staff"]
        del user["roles"]["teacher"]["legacy_id"]
        _, result = run(user_event("created", user))
        assert (result.events, result.skipped, result.dead) == (
            [],
            None,
            [
                (
                    "missing_legacy_id",
                    "user 603ebb2ab452fb006c76a001: roles.teacher has no legacy_id",
                )
            ],
        )

    def test_translate_invalid_user_dead_letters(self) -> None:
        """A value outside Clever's enums makes the object invalid."""
        user = golden_user("student_created")
        user["roles"]["student"]["gender"] = "Q"
        with pytest.raises(UntranslatableError) as info:
            run(user_event("created", user))
        assert info.value.reason == "invalid_object"
        assert "gender" in info.value.detail

    def test_translate_unreadable_snapshot_is_ignored(self) -> None:
        """A snapshot this version cannot decode counts as no snapshot."""
        msg = message(user_event("updated", golden_user("student_created")))
        result = translate(msg, previous_user=b"[]", teacher_legacy_ids={}, record_types=ALL_TYPES)
        assert [e.type for e in result.events] == ["students.updated"]


class TestRecordRules:
    """Edge rules of non-user records."""

    SECTION = load("section_created")["event"]

    def test_translate_section_teacher_lookup_needed(self) -> None:
        """Unknown teachers raise TeacherLookupNeeded with exactly the missing user ids."""
        with pytest.raises(TeacherLookupNeeded) as info:
            run(self.SECTION, teacher_ids={"603ebb2ab452fb006c76a001": "5a25ff9fa178276346000101"})
        assert info.value.user_ids == ["603ebb2ab452fb006c76a002"]

    def test_translate_section_disabled_needs_no_lookup(self) -> None:
        """A disabled record type is skipped before any teacher lookup."""
        _, result = run(self.SECTION, record_types=frozenset({"students"}))
        assert (result.events, result.skipped) == ([], "record_type_disabled")

    def test_section_teacher_user_ids_lists_object_and_previous(self) -> None:
        """The prefetch list names teachers of the object and of previous_attributes, once."""
        event = json.loads(json.dumps(self.SECTION))
        event["data"]["previous_attributes"] = {"teacher": "603ebb2ab452fb006c76a003"}
        assert section_teacher_user_ids(message(event)) == [
            "603ebb2ab452fb006c76a001",
            "603ebb2ab452fb006c76a002",
            "603ebb2ab452fb006c76a003",
        ]

    def test_section_teacher_user_ids_other_records(self) -> None:
        """Non-section events need no teachers."""
        assert section_teacher_user_ids(message(load("school_updated")["event"])) == []

    def test_translate_record_v3_only_change(self) -> None:
        """An update whose previous_attributes name only v3-only fields emits nothing."""
        event = load("school_updated")["event"]
        event["data"]["previous_attributes"] = {"lms_only_field": "y"}
        _, result = run(event)
        assert (result.events, result.skipped) == ([], "no_visible_change")

    def test_translate_unknown_record_type_dead_letters(self) -> None:
        """An unknown record type is untranslatable."""
        event = {
            "id": "1",
            "type": "widgets.created",
            "created": "t",
            "data": {"object": {"id": "w"}},
        }
        with pytest.raises(UntranslatableError) as info:
            run(event)
        assert (info.value.reason, str(info.value)) == (
            "unknown_record_type",
            "unknown_record_type: no v2 equivalent known for widgets.created",
        )

    def test_translate_invalid_record_dead_letters(self) -> None:
        """A section with a non-enum subject is an invalid object."""
        event = json.loads(json.dumps(self.SECTION))
        event["data"]["object"]["subject"] = "alchemy"
        with pytest.raises(UntranslatableError) as info:
            run(event)
        assert info.value.reason == "invalid_object"


class TestEncodeLegacyEvent:
    """The v2 event envelope."""

    def test_encode_legacy_event_updated_has_previous(self) -> None:
        """*.updated carries previous_attributes ({} when unknown)."""
        out = LegacyOut("terms", "terms.updated", msgspec.Raw(b'{"id":"t"}'))
        assert json.loads(encode_legacy_event(out, "a" * 24, "2024-01-01T00:00:00.000Z")) == {
            "id": "a" * 24,
            "type": "terms.updated",
            "created": "2024-01-01T00:00:00.000Z",
            "data": {"object": {"id": "t"}, "previous_attributes": {}},
        }

    def test_encode_legacy_event_created_has_no_previous(self) -> None:
        """*.created and *.deleted carry no previous_attributes key."""
        out = LegacyOut("terms", "terms.created", msgspec.Raw(b'{"id":"t"}'), msgspec.Raw(b"{}"))
        assert encode_legacy_event(out, "b" * 24, "c") == (
            b'{"id":"bbbbbbbbbbbbbbbbbbbbbbbb","type":"terms.created","created":"c",'
            b'"data":{"object":{"id":"t"}}}'
        )
