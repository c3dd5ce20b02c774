"""Legacy v2 event ids derived from where the source event sits in the events stream.

Legacy ids are 24 lowercase hex shaped like ObjectIDs (v2 consumers store ObjectIDs and a
migrating consumer holds real Clever v2 event ids): unique across every legacy topic, the same
on every replay, and ascending in emission order. A counter would need its own atomic
bookkeeping and could not be recomputed on replay; the source entry's stream id can. The id is::

    f"{ms // 1000:08x}{ms % 1000:03x}{seq:09x}{k:04x}"

where ``<ms>-<seq>`` is the source ``<p>:events`` entry id and ``k`` the index of the legacy
event among those produced from that source event. The first 4 bytes are the entry's time in
seconds, as in an ObjectID, so relay ids sort above every Clever v2 id issued before the relay
read the event (see ``docs/legacy-consumers.md``). The rest orders entries within a second.
Stream ids are unique and strictly increasing (across restarts and replicas: Redis assigns
them), so legacy ids are unique and ascend in emission order across the whole stream.

With ``[redis] partitions`` > 1 each partition has its own events stream, whose ids may equal
another partition's, so the partition's index goes into the top 8 bits of the 36-bit ``seq``
field (``seq | partition << 28``): ids stay unique across partitions and ascending within
each, and partition 0 (every id when there is one partition) is unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from relay.errors import StreamIdError

MAX_SEQ = 0xFFFFFFFFF
"""36 bits of entry sequence number (entries within one millisecond)."""
PARTITION_SHIFT = 28
"""The partition's index sits above this many bits of entry sequence number."""
MAX_PARTITION_SEQ = (1 << PARTITION_SHIFT) - 1
MAX_INDEX = 0xFFFF
MAX_MS = 0xFFFFFFFF * 1000 + 999
"""The 4-byte seconds timestamp lasts until 2106, as an ObjectID's."""


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
    return f"{ms // 1000:08x}{ms % 1000:03x}{seq:09x}{index:04x}"


def legacy_ids(stream_id: str, count: int, partition: int = 0) -> list[str]:
    """``[legacy_id(stream_id, k) for k in range(count)]``, parsing ``stream_id`` once.

    Raises:
        StreamIdError: as :func:`legacy_id`.
    """
    if count - 1 > MAX_INDEX:
        raise StreamIdError(f"stream id {stream_id} / index {count - 1} overflows a legacy id")
    prefix = legacy_prefix(stream_id, partition)
    if count == 1:
        return [prefix + "0000"]
    return [f"{prefix}{index:04x}" for index in range(count)]


def legacy_prefix(stream_id: str, partition: int = 0) -> str:
    """The first 20 hex digits (all but the index) of the legacy ids of source entry ``stream_id``
    of partition ``partition`` (see the module docstring).

    Raises:
        StreamIdError: a part overflows its field.
    """
    ms, seq = parse_stream_id(stream_id)
    if partition:
        if seq > MAX_PARTITION_SEQ or not 0 < partition < 256:
            raise StreamIdError(f"stream id {stream_id} overflows a partition's legacy id")
        seq |= partition << PARTITION_SHIFT
    if ms > MAX_MS or seq > MAX_SEQ:
        raise StreamIdError(f"stream id {stream_id} overflows a legacy id")
    return f"{ms // 1000:08x}{ms % 1000:03x}{seq:09x}"


def stream_id_of(legacy: str) -> tuple[str, int]:
    """The inverse of :func:`legacy_id`: the source stream id and the index (for operators)."""
    ms = int(legacy[:8], 16) * 1000 + int(legacy[8:11], 16)
    return f"{ms}-{int(legacy[11:20], 16)}", int(legacy[20:], 16)


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


def time_ms(text: str) -> int | None:
    """An ISO 8601 time as Clever writes it (``2024-05-01T10:00:01.123Z``) in epoch ms; None
    when it is not one. Naive times are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
