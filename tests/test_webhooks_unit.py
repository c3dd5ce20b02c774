"""Unit tests of the webhook building blocks: signatures, topic matching, merge order, retries."""

from __future__ import annotations

import random

import pytest

from relay.config import WebhookEndpoint
from relay.errors import SignatureError
from relay.redis.keys import Keys
from relay.webhooks.ingest import Entry, merge
from relay.webhooks.matcher import Matcher, Source
from relay.webhooks.retries import Decision, after_failure
from relay.webhooks.signing import decode_secret, sign, verify
from tests.webhook_support import SECRET_A, SECRET_B, independent_signature


def _endpoint(topics: list[str], districts: list[str] | None = None) -> WebhookEndpoint:
    return WebhookEndpoint(
        name="e", url="http://x/", topics=topics, districts=districts or [], secret=SECRET_A
    )


class TestSigning:
    def test_signing_matches_an_independent_implementation(self) -> None:
        """The header is exactly the spec's v1 signature computed by code written in the test."""
        header = sign([decode_secret(SECRET_A)], "msg_1", 1700000000, b'{"a":1}')
        assert header == independent_signature(SECRET_A, "msg_1", "1700000000", b'{"a":1}')

    def test_signing_rotation_carries_one_signature_per_secret(self) -> None:
        """With two secrets the header holds both signatures, space-separated, in config order."""
        keys = [decode_secret(SECRET_A), decode_secret(SECRET_B)]
        header = sign(keys, "msg_1", 1700000000, b"{}")
        assert header == " ".join(
            independent_signature(s, "msg_1", "1700000000", b"{}") for s in (SECRET_A, SECRET_B)
        )

    def test_signing_verify_accepts_either_secret_and_rejects_tampering(self) -> None:
        """verify passes with either rotated secret and fails on a changed body or old stamp."""
        header = sign([decode_secret(SECRET_A), decode_secret(SECRET_B)], "m", 1000, b"{}")
        for secret in (SECRET_A, SECRET_B):
            verify(
                [decode_secret(secret)],
                msg_id="m",
                timestamp="1000",
                signatures=header,
                body=b"{}",
                now_s=1000,
            )
        with pytest.raises(SignatureError, match="no matching signature"):
            verify(
                [decode_secret(SECRET_A)],
                msg_id="m",
                timestamp="1000",
                signatures=header,
                body=b"{ }",
                now_s=1000,
            )
        with pytest.raises(SignatureError, match="outside the tolerance"):
            verify(
                [decode_secret(SECRET_A)],
                msg_id="m",
                timestamp="1000",
                signatures=header,
                body=b"{}",
                now_s=2000,
            )


class TestMatcher:
    def test_matcher_unprefixed_legacy_names_mean_legacy_events(self) -> None:
        """``sections.*`` matches the legacy stream's events, not v3 ``sections.*``."""
        matcher = Matcher(_endpoint(["sections.*", "users.*"]))
        assert matcher.matches(v3=False, event_type="sections.updated", district="d")
        assert not matcher.matches(v3=True, event_type="sections.updated", district="d")
        assert matcher.matches(v3=True, event_type="users.updated", district="d")
        assert not matcher.matches(v3=False, event_type="students.updated", district="d")

    def test_matcher_v3_prefix_and_control_entries(self) -> None:
        """``v3:`` forces the v3 meaning; control entries need an explicit ``v3:relay.*``."""
        assert Matcher(_endpoint(["v3:sections.*"])).matches(
            v3=True, event_type="sections.created", district="d"
        )
        everything = Matcher(_endpoint(["*"]))
        assert everything.matches(v3=True, event_type="users.created", district="d")
        assert not everything.matches(v3=True, event_type="relay.cursor_lost", district="d")
        assert Matcher(_endpoint(["v3:relay.*"])).matches(
            v3=True, event_type="relay.cursor_lost", district="d"
        )

    def test_matcher_filters_districts(self) -> None:
        """A district list admits only those districts; an empty list admits all."""
        matcher = Matcher(_endpoint(["*"], ["d1"]))
        assert matcher.matches(v3=False, event_type="students.created", district="d1")
        assert not matcher.matches(v3=False, event_type="students.created", district="d2")

    def test_matcher_sources_are_the_streams_a_pattern_can_match(self) -> None:
        """Only the legacy streams the patterns reach, plus the events stream for v3 patterns."""
        keys = Keys("p")
        assert Matcher(_endpoint(["students.*", "teachers.updated"])).sources(
            keys, ["students", "teachers", "contacts"]
        ) == [Source("p:legacy:students", v3=False), Source("p:legacy:teachers", v3=False)]
        assert Matcher(_endpoint(["users.*"])).sources(keys, ["students"]) == [
            Source("p:events", v3=True)
        ]


def _entries(stream: str, keys: list[str]) -> list[Entry]:
    return [Entry(stream, f"{i + 1}-0", key, None) for i, key in enumerate(keys)]


class TestMerge:
    def test_merge_orders_across_streams_by_key(self) -> None:
        """Entries of several streams come out in key order when no stream was full."""
        read = {"a": _entries("a", ["01", "04"]), "b": _entries("b", ["02", "03"])}
        taken, moved = merge(read, count=3)
        assert [e.key for e in taken] == ["01", "02", "03", "04"]
        assert moved == {"a": "2-0", "b": "2-0"}

    def test_merge_stops_at_the_frontier_of_a_full_stream(self) -> None:
        """A full stream may hide lower keys: nothing past its last key is taken yet."""
        read = {"a": _entries("a", ["01", "03"]), "b": _entries("b", ["02", "05"])}
        taken, moved = merge(read, count=2)
        assert [e.key for e in taken] == ["01", "02", "03"]
        assert moved == {"a": "2-0", "b": "1-0"}


class TestRetries:
    def test_retries_follow_the_schedule_with_jitter_then_dead_letter(self) -> None:
        """Failure n waits schedule[n-1] within ±20%; the failure after the last is dead."""
        rng = random.Random(1)
        for attempt, base in enumerate([5.0, 300.0], start=1):
            decision = after_failure([5.0, 300.0], attempt, rng)
            assert not decision.dead
            assert base * 0.8 <= decision.delay_s <= base * 1.2
        assert after_failure([5.0, 300.0], 3, rng) == Decision(dead=True)
