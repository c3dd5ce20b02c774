"""Key names of the v2 read model, one district at a time (all under ``<p>:v2:<district>``).

Every key of a district shares the base ``<p>:v2:<district>``, so the Lua writers can build
them from that one string (with a hash-tagged prefix they stay in one cluster slot):

- ``<base>:obj:<rt>``: hash v2 id → v2.1 object JSON, per v2 record type (``students`` ...
  ``schooladmins``, ``sections``, ``schools``, ``districts``, ``courses``, ``terms``);
- ``<base>:ids:<rt>``: sorted set of the same ids, score 0, for ``ZRANGEBYLEX`` paging;
- ``<base>:refs:<rt>``: hash v2 id → the object's references (``<rt>:<id>`` lines), to move
  it between reverse relations when they change;
- ``<base>:rel:<rt>:<id>:<member_rt>``: sorted set (score 0) of the ``member_rt`` ids that point
  at object ``<rt>/<id>`` (a school's students, a student's contacts, a teacher's sections ...);
- ``<base>:events``: stream of the district's legacy events, entry id derived from the legacy
  id (:func:`stream_id`), fields ``type`` and ``data`` (the v2 event JSON);
- ``<base>:events:<rt>``, ``<base>:events:school:<id>`` and
  ``<base>:events:schooltype:<rt>:<id>``: index streams (same entry ids, field ``r`` = record
  type) for the ``record_type`` and ``school`` filters and the two together;
- ``<base>:idmap``: hash ``<rt>:<v2 id>`` → v3 user id and ``v3:<rt>:<v3 id>`` → v2 id;
- ``<base>:sync``: hash of a running sync's progress (resumable after a crash).
"""

from __future__ import annotations

import re

INDEX_SHIFT = 65536
"""Legacy ids end in a 4-hex-digit index; stream entry ids fold it into the sequence part."""
_LEGACY_ID = re.compile("[0-9a-f]{24}")


def stream_id(legacy_id: str) -> str:
    """The ``<base>:events`` entry id of a legacy id (order-preserving, reversible).

    The legacy id layout is :mod:`relay.translate.ids`'s (seconds, milliseconds, sequence,
    index). Any other ObjectId (a Clever v2 event id a migrating consumer still holds) maps to
    an entry id in its own second, so it pages from the events after that second; its
    "milliseconds" digits may exceed 999 and are capped.

    Raises:
        ValueError: ``legacy_id`` is not 24 lowercase hex digits (``int`` alone would take a
            sign, ``0x`` or ``_`` and make an id Redis refuses).
    """
    if _LEGACY_ID.fullmatch(legacy_id) is None:
        raise ValueError(f"not a legacy id: {legacy_id!r}")
    ms = int(legacy_id[:8], 16) * 1000 + min(int(legacy_id[8:11], 16), 999)
    seq, index = int(legacy_id[11:20], 16), int(legacy_id[20:], 16)
    return f"{ms}-{seq * INDEX_SHIFT + index}"


def legacy_id_of(entry_id: str) -> str:
    """The inverse of :func:`stream_id`."""
    ms_text, _, seq_text = entry_id.partition("-")
    seq, index = divmod(int(seq_text), INDEX_SHIFT)
    seconds, millis = divmod(int(ms_text), 1000)
    return f"{seconds:08x}{millis:03x}{seq:09x}{index:04x}"


class ReadModelKeys:
    """Key names of one district's read model."""

    def __init__(self, prefix: str, district: str) -> None:
        self.district = district
        self.base = f"{prefix}:v2:{district}"
        self.events = f"{self.base}:events"
        self.idmap = f"{self.base}:idmap"
        self.sync = f"{self.base}:sync"

    def objects(self, record_type: str) -> str:
        """Hash v2 id → object JSON."""
        return f"{self.base}:obj:{record_type}"

    def ids(self, record_type: str) -> str:
        """Sorted set of the record type's v2 ids (score 0)."""
        return f"{self.base}:ids:{record_type}"

    def rel(self, record_type: str, object_id: str, member_type: str) -> str:
        """Sorted set of the ``member_type`` ids that refer to ``record_type/object_id``."""
        return f"{self.base}:rel:{record_type}:{object_id}:{member_type}"

    def events_of_type(self, record_type: str) -> str:
        """Index stream of the district's events of one record type."""
        return f"{self.base}:events:{record_type}"

    def events_of_school(self, school_id: str) -> str:
        """Index stream of the district's events related to one school."""
        return f"{self.base}:events:school:{school_id}"

    def events_of_school_type(self, school_id: str, record_type: str) -> str:
        """Index stream of the district's events of one record type related to one school
        (so ``school`` with ``record_type`` reads one page, never a school's whole index)."""
        return f"{self.base}:events:schooltype:{record_type}:{school_id}"

    def sync_seen(self, record_type: str) -> str:
        """Set of the ids a running sync has written (to drop the others at its end)."""
        return f"{self.base}:sync:seen:{record_type}"
