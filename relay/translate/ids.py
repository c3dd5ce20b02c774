"""Legacy v2 event ids derived from where the source event sits in the events stream.

CONTRACT §4 wants legacy ids that are 24 lowercase hex (v2 consumers store ObjectIDs), unique
across every legacy topic, the same on every replay, and ascending in emission order within a
district. A counter would need its own atomic bookkeeping and could not be recomputed on
replay; the source entry's stream id can. The id is::

    f"{ms:012x}{seq:08x}{k:04x}"

where ``<ms>-<seq>`` is the source ``<p>:events`` entry id and ``k`` the index of the legacy
event among those produced from that source event. Stream ids are unique and strictly
increasing, so legacy ids are unique and ascend in emission order across the whole stream
(hence within each district). The first 12 hex digits are the entry's millisecond timestamp,
so legacy ids also sort like ObjectIDs do, by time.
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_SEQ = 0xFFFFFFFF
MAX_INDEX = 0xFFFF
MAX_MS = 0xFFFFFFFFFFFF


class StreamIdError(ValueError):
    """A stream id that does not fit the legacy id layout (never happens with ``XADD *``)."""


def parse_stream_id(stream_id: str) -> tuple[int, int]:
    """Split ``"<ms>-<seq>"`` into its two integers.

    Raises:
        StreamIdError: the text is not a stream id.
    """
    ms_text, dash, seq_text = stream_id.partition("-")
    if not dash or not ms_text.isdigit() or not seq_text.isdigit():
        raise StreamIdError(f"not a stream id: {stream_id!r}")
    return int(ms_text), int(seq_text)


def legacy_id(stream_id: str, index: int) -> str:
    """The legacy id of the ``index``-th legacy event produced from source entry ``stream_id``.

    Raises:
        StreamIdError: a part overflows its field (a hand-made stream id, or over 65536 legacy
            events from one source event).
    """
    ms, seq = parse_stream_id(stream_id)
    if ms > MAX_MS or seq > MAX_SEQ or not 0 <= index <= MAX_INDEX:
        raise StreamIdError(f"stream id {stream_id} / index {index} overflows a legacy id")
    return f"{ms:012x}{seq:08x}{index:04x}"


def legacy_ids(stream_id: str, count: int) -> list[str]:
    """``[legacy_id(stream_id, k) for k in range(count)]``, parsing ``stream_id`` once.

    Raises:
        StreamIdError: as :func:`legacy_id`.
    """
    ms, seq = parse_stream_id(stream_id)
    if ms > MAX_MS or seq > MAX_SEQ or count - 1 > MAX_INDEX:
        raise StreamIdError(f"stream id {stream_id} / index {count - 1} overflows a legacy id")
    prefix = f"{ms:012x}{seq:08x}"
    if count == 1:
        return [prefix + "0000"]
    return [f"{prefix}{index:04x}" for index in range(count)]


def stream_id_of(legacy: str) -> tuple[str, int]:
    """The inverse of :func:`legacy_id`: the source stream id and the index (for operators)."""
    return f"{int(legacy[:12], 16)}-{int(legacy[12:20], 16)}", int(legacy[20:], 16)


def stream_time(stream_id: str) -> str:
    """The time an events-stream entry was appended (the poller's ``XADD *``), as Clever
    writes times (``2024-05-01T10:00:01.123Z``): when the relay read the event.

    Raises:
        StreamIdError: the text is not a stream id.
    """
    ms, _ = parse_stream_id(stream_id)
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"
