"""From a fetched events page to publishable batches, one chunk at a time.

A page is normalized and published chunk by chunk (:func:`iter_batches` is a generator), so at
any moment the poller holds the page's envelope plus the encodings of *one* chunk, not of the
whole page: a 10,000-event page no longer exists at once as decoded events, normalized messages,
their encodings and the script's arguments (docs/performance.md, "Memory").

A page's first chunk is small (:data:`FIRST_CHUNK_EVENTS`), the others :data:`LATER_CHUNK_EVENTS`:
after an idle interval the oldest events of every district are published (and reach the
translator) a few dozen events in, instead of behind whole pages of other districts
(docs/performance.md, "Latency"), while a large page still costs one script call per
five hundred events (half the script's limit, :data:`relay.poller.publish.CHUNK_EVENTS`: a smaller
chunk is less memory at once, for a few percent of throughput).

Each batch is chained on the previous one's cursor and is atomic with it (:mod:`.publish`),
so a crash between chunks loses and repeats nothing. Events that fail validation become dead
letters and the cursor still moves past them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import msgspec

from relay.errors import CleverError, InvalidEvent
from relay.messages import EventMessage, encode, normalize
from relay.metrics import DEAD_LETTERED, EVENTS_POLLED, district_label
from relay.poller.publish import CHUNK_EVENTS, Batch, is_event_id

if TYPE_CHECKING:
    from collections.abc import Iterator

    from relay.messages import EventItem, EventsPage

FIRST_CHUNK_EVENTS = 50
"""Events in a page's first chunk (the oldest, the ones waiting longest); later chunks are
:data:`LATER_CHUNK_EVENTS`."""
LATER_CHUNK_EVENTS = min(500, CHUNK_EVENTS)
"""Events in each later chunk of a page."""


class _IdOnly(msgspec.Struct, frozen=True):
    """An event's id alone: read from events that fail validation, for the dead letter."""

    id: str


_id_decoder = msgspec.json.Decoder(_IdOnly)


def chunk_bounds(count: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk of a page of ``count`` events."""
    bounds: list[tuple[int, int]] = []
    start, size = 0, FIRST_CHUNK_EVENTS
    while start < count:
        end = min(count, start + size)
        bounds.append((start, end))
        start, size = end, LATER_CHUNK_EVENTS
    return bounds


def page_end_cursor(page: EventsPage) -> str | None:
    """Where the page leaves the cursor once published (None for an empty page).

    Checked before anything of the page is written, so a malformed page is retried as a whole.

    Raises:
        CleverError: a chunk has no event with a usable id and no ``next`` link says where the
            page ends, so there is no cursor to move to (a malformed page).
    """
    cursor: str | None = None
    for start, end in chunk_bounds(len(page.data)):
        cursor = _last_usable_id(page.data[start:end]) or _next_link_cursor(page)
        if cursor is None:
            raise CleverError("malformed", "page without any usable event id or next link")
    return cursor


def iter_batches(
    page: EventsPage, *, district: str, expected: str | None, api_version: str = "v3.0"
) -> Iterator[Batch]:
    """Normalize ``page`` lazily into batches chained from ``expected`` (none if no data).

    Call :func:`page_end_cursor` first: it guarantees every chunk has a cursor to move to.
    """
    EVENTS_POLLED.labels(district_label(district)).inc(len(page.data))
    for start, end in chunk_bounds(len(page.data)):
        batch = _build_batch(page.data[start:end], district, expected, api_version)
        if batch.new_cursor is None:
            batch.new_cursor = _next_link_cursor(page)
        yield batch
        expected = batch.new_cursor


def _normalize(raw: msgspec.Raw, district: str, api_version: str) -> EventMessage:
    message = normalize(raw, district, api_version)
    if not is_event_id(message.id):
        raise InvalidEvent(f"invalid event id {message.id!r}")
    return message


def _lenient_id(raw: msgspec.Raw | bytes) -> str:
    try:
        event_id = _id_decoder.decode(raw)
    except msgspec.DecodeError:
        return ""
    return event_id.id if is_event_id(event_id.id) else ""


def _last_usable_id(items: list[EventItem]) -> str | None:
    for item in reversed(items):
        event_id = _lenient_id(item.data)
        if event_id:
            return event_id
    return None


def _build_batch(
    items: list[EventItem], district: str, expected: str | None, api_version: str
) -> Batch:
    """The hot path: no per-event dicts, no copy of the raw event; the record stays ``Raw``."""
    entries: list[bytes | str] = []
    dead: list[bytes | str] = []
    last_id: str | None = None
    newest = ""
    for item in items:
        try:
            message = _normalize(item.data, district, api_version)
        except InvalidEvent as exc:
            event_id = _lenient_id(item.data)
            dead.extend((event_id, exc.reason, bytes(item.data)))
            DEAD_LETTERED.labels("poller", exc.reason.partition(":")[0]).inc()
            last_id = event_id or last_id
            continue
        entries.extend((message.id, message.type, encode(message)))
        last_id = message.id
        newest = message.created
    return Batch(
        expected=expected, new_cursor=last_id, entries=entries, dead=dead, newest_created=newest
    )


def _next_link_cursor(page: EventsPage) -> str | None:
    for link in page.links:
        if link.rel == "next":
            values = parse_qs(urlsplit(link.uri).query).get("starting_after", [])
            if values and is_event_id(values[0]):
                return values[0]
    return None
