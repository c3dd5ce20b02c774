"""Reading an endpoint's source streams into its district queues, in emission order.

An endpoint may read several streams (one per legacy record type, maybe ``<p>:events``). A
district's events of different record types sit in different streams, so reading stream by
stream would reorder them. Every entry has an order key that is total across the streams:

* legacy entries: their legacy id (docs/legacy-consumers.md: derived from the source
  events-stream entry, ascending in emission order), then ``1``;
* events-stream entries: the legacy id the translator gives their first legacy event, then
  ``0`` (a v3 event sorts just before the legacy events made from it).

Each round reads up to ``COUNT`` entries per stream after the stored positions and merges them
by key. A stream that returned a full ``COUNT`` may have more entries beyond what was read,
lower-keyed than entries read from other streams, so only entries up to the smallest last key
of the full streams (the frontier) are taken; the rest are read again next round. Taken
entries that match the endpoint are queued and all positions advance in one script
(:meth:`relay.webhooks.store.EndpointStore.enqueue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay import logs
from relay.errors import StreamIdError
from relay.translate.ids import legacy_id, parse_stream_id
from relay.webhooks.store import QueuedEvent

if TYPE_CHECKING:
    from relay.webhooks.matcher import Matcher, Source

log = logs.get_logger("webhooks")

_FIELDS = (b"id", b"type", b"district", b"data")


@dataclass(frozen=True)
class Entry:
    """One source entry with its merge key; ``event`` is None when the entry is malformed."""

    stream: str
    entry_id: str
    key: str
    event: QueuedEvent | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def to_entry(source: Source, entry_id: str, fields: dict[bytes, bytes]) -> Entry:
    """Decode one stream entry and compute its merge key."""
    ms, _ = parse_stream_id(entry_id)
    fallback = legacy_id(entry_id, 0) + ("0" if source.v3 else "1")
    if not all(name in fields for name in _FIELDS):
        return Entry(source.key, entry_id, fallback, None)
    event = QueuedEvent(
        id=_text(fields[b"id"]),
        type=_text(fields[b"type"]),
        district=_text(fields[b"district"]),
        data=fields[b"data"],
        stream=source.key,
        entry=entry_id,
        ms=ms,
    )
    if source.v3:
        return Entry(source.key, entry_id, fallback, event)
    valid = len(event.id) == 24 and all(c in "0123456789abcdef" for c in event.id)
    return Entry(source.key, entry_id, event.id + "1" if valid else fallback, event)


def merge(read: dict[str, list[Entry]], count: int) -> tuple[list[Entry], dict[str, str]]:
    """Take the entries that are safe to order now; return them sorted and the new positions.

    Args:
        read: entries read per stream (in stream order), each list at most ``count`` long.
        count: the ``COUNT`` of the read; a stream that returned that many may hold more.
    """
    full = [entries[-1].key for entries in read.values() if len(entries) >= count]
    frontier = min(full) if full else None
    taken: list[Entry] = []
    moved: dict[str, str] = {}
    for stream, entries in read.items():
        for entry in entries:
            if frontier is not None and entry.key > frontier:
                break
            taken.append(entry)
            moved[stream] = entry.entry_id
    if not taken and full:
        # Keys out of order within a stream (hand-written entries): take the frontier stream
        # whole rather than stall on it.
        first = min((s for s, e in read.items() if len(e) >= count), key=lambda s: read[s][-1].key)
        taken = list(read[first])
        moved[first] = taken[-1].entry_id
    taken.sort(key=lambda entry: entry.key)
    return taken, moved


def parse_reply(reply: Any, sources: dict[str, Source]) -> dict[str, list[Entry]]:
    """Turn an ``XREAD`` reply into entries per stream (malformed ids become malformed entries)."""
    out: dict[str, list[Entry]] = {}
    for stream_raw, items in reply or []:
        source = sources[_text(stream_raw)]
        entries: list[Entry] = []
        for entry_raw, fields in items:
            entry_id = _text(entry_raw)
            try:
                entries.append(to_entry(source, entry_id, fields or {}))
            except StreamIdError:
                log.exception("webhook_entry_bad_stream_id", stream=source.key, entry=entry_id)
        out[source.key] = entries
    return out


def select(
    taken: list[Entry], matcher: Matcher, v3_streams: set[str], endpoint: str
) -> list[QueuedEvent]:
    """The taken entries the endpoint wants, in order; malformed entries are logged and skipped."""
    out: list[QueuedEvent] = []
    for entry in taken:
        event = entry.event
        if event is None:
            log.error(
                "webhook_entry_malformed",
                endpoint=endpoint,
                stream=entry.stream,
                entry=entry.entry_id,
            )
            continue
        if matcher.matches(
            v3=entry.stream in v3_streams, event_type=event.type, district=event.district
        ):
            out.append(event)
    return out
