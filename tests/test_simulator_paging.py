"""Unit tests of the simulator's id paging, feed filters, retention and rate limiter."""

from __future__ import annotations

import msgspec
import pytest

from relay.simulator._ids import IdMaker, id_time, iso_ms, lowest_id_at
from relay.simulator.feed import CursorLost, EventFilter, Feed, OutOfOrder
from relay.simulator.paging import PageRequest, links, select
from relay.simulator.ratelimit import FixedWindowLimiter

IDS = [f"{i:024x}" for i in range(1, 11)]


def _feed() -> Feed:
    feed = Feed()
    for i, event_id in enumerate(IDS):
        record_type = "users" if i % 2 == 0 else "sections"
        school = ("s1",) if i < 5 else ("s2",)
        feed.append(event_id, record_type, b"{}", schools=school, arrival=1000.0 + i)
    return feed


class TestIds:
    def test_idmaker_ascends_within_one_second(self) -> None:
        """Ids made in the same second still ascend, and carry that second."""
        maker = IdMaker(0xABCDEF)
        made = [maker.make(1_700_000_000.5) for _ in range(3)]
        assert made == sorted(made)
        assert [id_time(i) for i in made] == [1_700_000_000] * 3
        assert made[0] == "6553f100" + "0000abcdef" + "000001"

    def test_iso_ms_formats_clever_timestamps(self) -> None:
        """Timestamps are ISO 8601 UTC with milliseconds and a Z."""
        assert iso_ms(1_795_888_064.123) == "2026-11-28T17:47:44.123Z"

    def test_lowest_id_at_sorts_before_ids_of_that_second(self) -> None:
        """The bisect bound of a second sorts before every id made in it."""
        assert lowest_id_at(16) == "000000100000000000000000"


class TestSelect:
    def test_select_forward_from_start(self) -> None:
        """Without a cursor the page starts at the first visible item."""
        assert select(IDS, PageRequest(limit=3), lo=2) == [2, 3, 4]

    def test_select_starting_after_an_id(self) -> None:
        """starting_after returns the items after that id, ascending."""
        assert select(IDS, PageRequest(limit=3, starting_after=IDS[6])) == [7, 8, 9]

    def test_select_ending_before_last(self) -> None:
        """ending_before=last returns the newest items, still ascending."""
        assert select(IDS, PageRequest(limit=2, ending_before="last")) == [8, 9]

    def test_select_ending_before_with_filter(self) -> None:
        """A backward page with a filter scans down and returns ascending positions."""
        page = PageRequest(limit=2, ending_before=IDS[9])
        assert select(IDS, page, match=lambda i: i % 2 == 0) == [6, 8]

    def test_select_past_the_end_is_empty(self) -> None:
        """After the newest id the page is empty."""
        assert select(IDS, PageRequest(starting_after=IDS[-1])) == []

    def test_links_keep_parameters_and_replace_cursor(self) -> None:
        """next/prev links are relative and keep limit and record_type."""
        params = [("limit", "2"), ("record_type", "users"), ("starting_after", IDS[0])]
        assert msgspec.json.decode(links("/v3.0/events", params, IDS[1], IDS[2])) == [
            {
                "rel": "self",
                "uri": f"/v3.0/events?limit=2&record_type=users&starting_after={IDS[0]}",
            },
            {
                "rel": "next",
                "uri": f"/v3.0/events?limit=2&record_type=users&starting_after={IDS[2]}",
            },
            {
                "rel": "prev",
                "uri": f"/v3.0/events?limit=2&record_type=users&ending_before={IDS[1]}",
            },
        ]


class TestFeed:
    def test_feed_filters_by_record_type(self) -> None:
        """A single record_type pages through that type's events only."""
        flt = EventFilter(record_types=frozenset({"sections"}))
        assert _feed().select(PageRequest(limit=3), flt, lo=0) == [1, 3, 5]

    def test_feed_filters_by_school_and_type(self) -> None:
        """school and record_type combine."""
        flt = EventFilter(record_types=frozenset({"users", "sections"}), school="s2")
        assert _feed().select(PageRequest(limit=3), flt, lo=0) == [5, 6, 7]

    def test_feed_retention_hides_the_top(self) -> None:
        """Events that arrived before the cutoff are no longer visible."""
        feed = _feed()
        lo = feed.first_visible(1004.0)
        assert (lo, feed.select(PageRequest(limit=2), EventFilter(), lo=lo)) == (4, [4, 5])
        assert feed.get(IDS[0], lo=lo) is None

    def test_feed_cursor_lost_when_expired_or_unknown(self) -> None:
        """An expired or unknown cursor raises CursorLost saying which."""
        feed = _feed()
        with pytest.raises(CursorLost) as expired:
            feed.check_cursor(IDS[0], lo=4)
        with pytest.raises(CursorLost) as unknown:
            feed.check_cursor("f" * 24, lo=4)
        assert (expired.value.expired, unknown.value.expired) == (True, False)

    def test_feed_rejects_out_of_order_ids(self) -> None:
        """Appending an id that does not sort last is refused."""
        with pytest.raises(OutOfOrder):
            _feed().append(IDS[0], "users", b"{}", schools=(), arrival=0.0)


class TestFixedWindowLimiter:
    def test_limiter_allows_limit_then_refuses_until_next_window(self) -> None:
        """N requests pass, the N+1th is refused, and a new window starts fresh."""
        limiter = FixedWindowLimiter(limit=2, window_s=60)
        verdicts = [limiter.hit("b", now=120.0 + i) for i in range(3)]
        assert [(v.allowed, v.remaining, v.reset) for v in verdicts] == [
            (True, 1, 180),
            (True, 0, 180),
            (False, 0, 180),
        ]
        assert limiter.hit("b", now=180.0).allowed is True

    def test_limiter_headers_are_clevers(self) -> None:
        """The verdict renders Clever's four X-RateLimit headers."""
        verdict = FixedWindowLimiter(limit=1200, window_s=60).hit("d1", now=60.0)
        assert verdict.headers() == {
            "X-RateLimit-Limit": "1200",
            "X-RateLimit-Remaining": "1199",
            "X-RateLimit-Reset": "120",
            "X-RateLimit-Bucket": "d1",
        }
