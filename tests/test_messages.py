"""The normalized message (CONTRACT §5)."""

from __future__ import annotations

import msgspec
import pytest

from relay.errors import InvalidEvent
from relay.messages import EventMessage, _EventMessageSchema, encode, normalize

USER = {
    "id": "603ebb2ab452fb006c76396d",
    "district": "5a0c91b95c7cc000010d417c",
    "roles": {"teacher": {"legacy_id": "5a25ff9fa178276346000082"}, "staff": None, "student": {}},
}


def event(**overrides: object) -> bytes:
    base: dict[str, object] = {
        "id": "6453a1b2c3d4e5f601234567",
        "type": "users.updated",
        "created": "2026-11-28T17:00:00.000Z",
        "data": {"object": USER, "previous_attributes": {"email": "old@example.net"}},
    }
    return msgspec.json.encode({**base, **overrides})


class TestNormalize:
    def test_normalize_user_event_whole_message(self) -> None:
        """A users.updated event becomes the normalized message with sorted non-null roles."""
        message = msgspec.json.decode(encode(normalize(event(), "5a0c91b95c7cc000010d417c")))
        assert message == {
            "id": "6453a1b2c3d4e5f601234567",
            "type": "users.updated",
            "record_type": "users",
            "action": "updated",
            "district": "5a0c91b95c7cc000010d417c",
            "created": "2026-11-28T17:00:00.000Z",
            "object": USER,
            "previous_attributes": {"email": "old@example.net"},
            "roles": ["student", "teacher"],
            "api_version": "v3.0",
        }

    def test_normalize_records_the_api_version(self) -> None:
        """An event polled from v3.1 says so, and its object passes through byte for byte."""
        raw = event(data={"object": {**USER, "lms_status": {"synced_in_lms": True}}})
        message = msgspec.json.decode(encode(normalize(raw, "d", "v3.1")))
        assert (message["api_version"], message["object"]["lms_status"]) == (
            "v3.1",
            {"synced_in_lms": True},
        )

    def test_messages_without_api_version_decode_as_v30(self) -> None:
        """A message written before the field existed decodes with api_version v3.0."""
        old = msgspec.json.decode(encode(normalize(event(), "d")))
        del old["api_version"]
        decoded = msgspec.json.decode(msgspec.json.encode(old), type=EventMessage)
        assert decoded.api_version == "v3.0"

    def test_normalize_accepts_top_level_previous_attributes(self) -> None:
        """previous_attributes at the event's top level (spec-generated clients) is used too."""
        raw = event(data={"object": USER}, previous_attributes={"name": {"first": "A"}})
        message = normalize(raw, "d")
        assert msgspec.json.decode(message.previous_attributes) == {"name": {"first": "A"}}

    def test_normalize_non_user_has_null_roles_and_previous(self) -> None:
        """A schools.deleted event has no roles and null previous_attributes."""
        raw = event(type="schools.deleted", data={"object": {"id": "s1"}})
        message = msgspec.json.decode(encode(normalize(raw, "d")))
        assert (message["roles"], message["previous_attributes"], message["action"]) == (
            None,
            None,
            "deleted",
        )

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b"{}", "invalid event: Object missing required field `id`"),
            (b"[1,", "invalid event: Expected `object`, got `array`"),
            (b'{"id": "x"', "invalid event: Input data was truncated"),
            (event(type="users.archived"), "invalid event type 'users.archived'"),
            (event(type="users"), "invalid event type 'users'"),
            (
                event(data={"object": {"name": "no id"}}),
                "invalid object: Object missing required field `id`",
            ),
        ],
    )
    def test_normalize_rejects_invalid_events_with_reason(self, raw: bytes, reason: str) -> None:
        """Events that are not valid Clever events raise InvalidEvent with a dead-letter reason."""
        with pytest.raises(InvalidEvent) as info:
            normalize(raw, "d")
        assert info.value.reason == reason

    def test_normalize_resource_roles_array_is_not_a_user_role_map(self) -> None:
        """A resources.* object has roles as an array; it normalizes (for skipping), not fails."""
        raw = event(type="resources.created", data={"object": {"id": "r1", "roles": ["student"]}})
        message = normalize(raw, "d")
        assert (message.record_type, message.roles) == ("resources", None)

    def test_normalize_user_roles_must_be_an_object(self) -> None:
        """A user whose roles is not an object is an invalid event."""
        raw = event(data={"object": {"id": "u1", "roles": ["teacher"]}})
        with pytest.raises(InvalidEvent) as info:
            normalize(raw, "d")
        assert info.value.reason == "invalid object: roles: Expected `object | null`, got `array`"

    def test_schema_twin_matches_message_fields(self) -> None:
        """The schema-generation twin has exactly the message's fields, in order."""
        names = [f.name for f in msgspec.structs.fields(EventMessage)]
        assert names == [f.name for f in msgspec.structs.fields(_EventMessageSchema)]
