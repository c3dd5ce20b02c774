"""Entry ids of a district's read-model events stream, derived from the legacy ids.

The stream ``<p>:v2:<district>:events`` (key names: :class:`relay.redis.keys.ReadModelKeys`) uses
entry ids computed from the legacy event id, so a v2 ``starting_after`` maps to a stream position
without a lookup, and back.
"""

from __future__ import annotations

import re

INDEX_SHIFT = 65536
"""Legacy ids end in a 4-hex-digit index; stream entry ids fold it into the sequence part."""
_LEGACY_ID = re.compile("[0-9a-f]{24}")
OLD_LAYOUT_BELOW = 0x20000000
"""Ids whose seconds field is below this (before 1987: no Clever ObjectId) are the relay's old
layout, 12 hex digits of milliseconds then sequence and index, still held by read models and
consumers from before the upgrade."""


def stream_id(legacy_id: str) -> str:
    """The ``<base>:events`` entry id of a legacy id (order-preserving, reversible).

    The legacy id layout is :mod:`relay.translate.ids`'s (seconds, milliseconds, sequence,
    index). Any other ObjectId (a Clever v2 event id a migrating consumer still holds) maps to
    an entry id in its own second, so it pages from the events after that second; its
    "milliseconds" digits may exceed 999 and are capped. An id of the relay's old layout
    (seconds field before 1987) maps as the old writer did, so pages written before the upgrade
    still lead forward.

    Raises:
        ValueError: ``legacy_id`` is not 24 lowercase hex digits (``int`` alone would take a
            sign, ``0x`` or ``_`` and make an id Redis refuses).
    """
    if _LEGACY_ID.fullmatch(legacy_id) is None:
        raise ValueError(f"not a legacy id: {legacy_id!r}")
    if int(legacy_id[:8], 16) < OLD_LAYOUT_BELOW:
        # The old layout (milliseconds, sequence, index): mapped as its writer did.
        old_ms, old_seq = int(legacy_id[:12], 16), int(legacy_id[12:20], 16)
        return f"{old_ms}-{old_seq * INDEX_SHIFT + int(legacy_id[20:], 16)}"
    ms = int(legacy_id[:8], 16) * 1000 + min(int(legacy_id[8:11], 16), 999)
    seq, index = int(legacy_id[11:20], 16), int(legacy_id[20:], 16)
    return f"{ms}-{seq * INDEX_SHIFT + index}"


def legacy_id_of(entry_id: str) -> str:
    """The inverse of :func:`stream_id`."""
    ms_text, _, seq_text = entry_id.partition("-")
    seq, index = divmod(int(seq_text), INDEX_SHIFT)
    seconds, millis = divmod(int(ms_text), 1000)
    return f"{seconds:08x}{millis:03x}{seq:09x}{index:04x}"
