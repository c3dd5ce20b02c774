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
