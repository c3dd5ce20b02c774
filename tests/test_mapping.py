"""Field mapping: every v2 object is spec-exact (strict v2.1), on real and hand-written data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from relay.messages import normalize
from relay.translate import mapping, v2, v3
from relay.translate.rules import LEGACY_RECORD_TYPES, translate
from tests.swagger import SPEC_DIR, errors, load_spec

GOLDEN = Path(__file__).parent / "golden"
DEMO_USERS = SPEC_DIR / "samples" / "v3.0-demo-users.json"
DISTRICT = "5a0c91b95c7cc000010d417c"
DEFINITIONS = {
    "students": "Student",
    "teachers": "Teacher",
    "contacts": "Contact",
    "districtadmins": "DistrictAdmin",
    "schooladmins": "SchoolAdmin",
    "sections": "Section",
    "schools": "School",
    "districts": "District",
    "courses": "Course",
    "terms": "Term",
}
V2_STRUCTS: dict[str, type[msgspec.Struct]] = {
    "Student": v2.Student,
    "Teacher": v2.Teacher,
    "Contact": v2.Contact,
    "DistrictAdmin": v2.DistrictAdmin,
    "SchoolAdmin": v2.SchoolAdmin,
    "AdminName": v2.AdminName,
    "Section": v2.Section,
    "School": v2.School,
    "District": v2.District,
    "Course": v2.Course,
    "Term": v2.Term,
    "Name": v3.Name,
    "Location": v3.Location,
    "Credentials": v3.Credentials,
    "SchoolEnrollment": v3.SchoolEnrollment,
    "Principal": v3.Principal,
}
V3_STRUCTS: dict[str, type[msgspec.Struct]] = {
    "User": v3.User,
    "Roles": v3.Roles,
    "Student": v3.StudentRole,
    "Teacher": v3.TeacherRole,
    "Staff": v3.StaffRole,
    "Contact": v3.ContactRole,
    "DistrictAdmin": v3.DistrictAdminRole,
    "StudentRelationship": v3.StudentRelationship,
    "Section": v3.Section,
    "School": v3.School,
    "District": v3.District,
    "DistrictContact": v3.DistrictContact,
    "Course": v3.Course,
    "Term": v3.Term,
}


def properties(spec: str, definition: str) -> set[str]:
    """The property names of one spec definition."""
    return set(load_spec(spec)["definitions"][definition]["properties"])


def demo_events() -> list[bytes]:
    """Every demo-district user wrapped in a raw ``users.created`` event."""
    users = json.loads(DEMO_USERS.read_bytes())["data"]
    return [
        json.dumps(
            {
                "id": f"{n:024x}",
                "type": "users.created",
                "created": "t",
                "data": {"object": item["data"]},
            }
        ).encode()
        for n, item in enumerate(users)
    ]


def user(**fields: Any) -> v3.User:
    """A v3 user decoded from keyword fields (through the real typed decoder)."""
    return msgspec.convert({"id": "603ebb2bb452fb006c7639cd", **fields}, v3.User)


@pytest.mark.spec
class TestSpecConformance:
    """The Structs list exactly what Clever's specs define."""

    @pytest.mark.parametrize("definition", sorted(V2_STRUCTS))
    def test_v2_struct_fields_match_v2_1(self, definition: str) -> None:
        """Each v2 Struct has exactly the properties of its v2.1 definition."""
        struct = V2_STRUCTS[definition]
        assert set(struct.__struct_fields__) == properties("v2.1.yml", definition)

    @pytest.mark.parametrize("definition", sorted(V3_STRUCTS))
    def test_v3_struct_fields_match_v3_0(self, definition: str) -> None:
        """Each v3 Struct has exactly the properties of its v3.0 definition."""
        struct = V3_STRUCTS[definition]
        assert set(struct.__struct_fields__) == properties("v3.0.yml", definition)


@pytest.mark.spec
class TestDemoDistrict:
    """Clever's real demo-district users (2,098) all translate to strictly valid v2 objects."""

    def test_translate_demo_users_validate_strictly(self) -> None:
        """Every role of every demo user becomes a v2 object valid against v2.1, no extra key."""
        counts: dict[str, int] = {}
        problems: list[str] = []
        for raw in demo_events():
            result = translate(
                normalize(raw, DISTRICT),
                previous_user=None,
                teacher_legacy_ids={},
                record_types=frozenset(LEGACY_RECORD_TYPES),
            )
            for out in result.events:
                counts[out.record_type] = counts.get(out.record_type, 0) + 1
                obj = msgspec.json.decode(out.object)
                problems += errors("v2.1.yml", DEFINITIONS[out.record_type], obj, strict=True)
        assert (counts, problems) == (
            {"students": 1004, "teachers": 89, "districtadmins": 3, "contacts": 1002},
            [],
        )

    @pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
    def test_golden_objects_validate_strictly(self, path: Path) -> None:
        """Every v2 object and previous value in the golden files is strictly valid v2.1."""
        for event in json.loads(path.read_text())["expected"]["events"]:
            definition = DEFINITIONS[event["type"].split(".")[0]]
            data = event["data"]
            previous = data.get("previous_attributes", {})
            merged = {**data["object"], **{k: v for k, v in previous.items() if v is not None}}
            assert errors("v2.1.yml", definition, data["object"], strict=True) == []
            assert errors("v2.1.yml", definition, merged, strict=True) == []


class TestUserMapping:
    """Role-by-role mapping details."""

    def test_contact_students_deduplicated_in_order(self) -> None:
        """A student named twice is listed once, at its first position."""
        u = user(
            name={"first": "Ann", "middle": "", "last": "Lee"},
            roles={
                "contact": {
                    "legacy_id": "5a25ff9fa178276346000999",
                    "student_relationships": [
                        {"student": "b", "type": "Emergency", "relationship": None},
                        {"student": "a", "type": "Parent/Guardian", "relationship": "Parent"},
                        {"student": "b", "type": "Family", "relationship": "Sibling"},
                    ],
                }
            },
        )
        assert mapping.user_objects(u) == {
            "contacts": v2.Contact(
                id="5a25ff9fa178276346000999",
                name="Ann Lee",
                students=["b", "a"],
                type="Emergency",
                relationship=None,
            )
        }

    def test_contact_without_relationships(self) -> None:
        """No relationships: empty students, and no type/relationship is invented."""
        u = user(roles={"contact": {"student_relationships": []}})
        assert msgspec.json.encode(mapping.user_objects(u)["contacts"]) == (
            b'{"id":"603ebb2bb452fb006c7639cd","students":[]}'
        )

    @pytest.mark.parametrize(
        ("name", "joined"),
        [
            ({"first": "Ann", "middle": "B", "last": "Lee"}, "Ann B Lee"),
            ({"first": " Ann ", "middle": None, "last": "Lee"}, "Ann Lee"),
            ({"last": "Aaron Berge"}, "Aaron Berge"),
            ({}, ""),
        ],
    )
    def test_joined_name(self, name: dict[str, Any], joined: str) -> None:
        """v2 contact names join the non-empty parts with single spaces."""
        assert mapping.joined_name(msgspec.convert(name, v3.Name)) == joined

    def test_admin_null_email_left_out(self) -> None:
        """v2 admins' email is not nullable, so a null v3 email is omitted."""
        u = user(email=None, roles={"district_admin": {"legacy_id": "x"}})
        assert msgspec.json.encode(mapping.user_objects(u)["districtadmins"]) == b'{"id":"x"}'

    def test_student_role_timestamps_win(self) -> None:
        """The role's own created/last_modified are used when present."""
        u = user(
            created="2021-03-02T00:00:00.000Z",
            last_modified="2024-01-01T00:00:00.000Z",
            roles={"student": {"created": "2017-08-01T00:00:00.000Z"}},
        )
        assert mapping.user_objects(u)["students"] == v2.Student(
            id="603ebb2bb452fb006c7639cd",
            created="2017-08-01T00:00:00.000Z",
            last_modified="2024-01-01T00:00:00.000Z",
        )

    def test_teacher_falls_back_to_role_name_and_district(self) -> None:
        """A teacher's name and district come from the role when the user lacks them."""
        u = user(roles={"teacher": {"legacy_id": "t", "name": {"first": "A"}, "district": "d"}})
        assert mapping.user_objects(u)["teachers"] == v2.Teacher(
            id="t", district="d", name=v3.Name(first="A")
        )

    def test_null_roles_are_absent(self) -> None:
        """A role key holding null is no role."""
        u = user(roles={"student": None, "teacher": None, "contact": {}})
        assert list(mapping.user_objects(u)) == ["contacts"]


class TestRecordMapping:
    """Non-user records."""

    @pytest.mark.parametrize(
        ("launch", "expected"),
        [
            ("2017-11-15", "2017-11-15T00:00:00.000Z"),
            ("2017-11-15T08:00:00.000Z", "2017-11-15T08:00:00.000Z"),
            ("", ""),
        ],
    )
    def test_launch_datetime(self, launch: str, expected: str) -> None:
        """A v3 date becomes a v2.1 datetime at midnight UTC; anything else passes through."""
        assert mapping.launch_datetime(launch) == expected

    def test_section_without_teachers(self) -> None:
        """A section with a null teacher and no teachers needs no lookup."""
        section = v3.Section(id="s", teacher=None)
        assert mapping.section(section, {}) == v2.Section(id="s", teacher=None)
