"""The district's current records: what the Data API serves and what the generator changes.

Every event passes through ``State.apply``, so the Data API always answers with "the state after
applying all events so far", whether the events were generated, loaded from a scenario file or
posted by a test. Records are plain dicts (they are only ever encoded, never validated here);
their JSON is cached per record and dropped when the record changes.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

import msgspec

from relay.simulator import paging, versions

Record = dict[str, Any]
RECORD_TYPES = ("districts", "schools", "terms", "courses", "sections", "users", "resources")
_encode = msgspec.json.encode


class Store:
    """The live records of one type, ids kept sorted for paging."""

    def __init__(self, record_type: str) -> None:
        self.record_type = record_type
        self.ids: list[str] = []
        self.objects: dict[str, Record] = {}
        self._encoded: dict[str, bytes] = {}
        self._encoded_v31: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def put(self, obj: Record) -> None:
        """Insert or replace a record."""
        record_id: str = obj["id"]
        if record_id not in self.objects:
            insort(self.ids, record_id)
        self.objects[record_id] = obj
        self._encoded.pop(record_id, None)
        self._encoded_v31.pop(record_id, None)

    def remove(self, record_id: str) -> Record | None:
        """Delete a record; returns it (None if it was not there)."""
        obj = self.objects.pop(record_id, None)
        if obj is not None:
            del self.ids[bisect_left(self.ids, record_id)]
            self._encoded.pop(record_id, None)
            self._encoded_v31.pop(record_id, None)
        return obj

    def encoded(self, record_id: str, version: str = versions.DEFAULT) -> bytes | None:
        """The record's JSON as ``version`` serves it, encoded once per record version."""
        cache = self._encoded if version == versions.DEFAULT else self._encoded_v31
        body = cache.get(record_id)
        if body is None:
            obj = self.objects.get(record_id)
            if obj is None:
                return None
            if version != versions.DEFAULT:
                obj = versions.upgrade(self.record_type, obj)
            body = cache[record_id] = _encode(obj)
        return body

    def page_items(self, positions: list[int], version: str = versions.DEFAULT) -> list[bytes]:
        """Encoded ``{"data": record, "uri": ...}`` items for these positions of ``ids``."""
        prefix = f"/{version}/{self.record_type}/"
        out = []
        for i in positions:
            record_id = self.ids[i]
            body = self.encoded(record_id, version)
            assert body is not None
            out.append(paging.item(body, prefix + record_id))
        return out


class State:
    """Every record type of one district, plus the reverse indexes the generator needs."""

    def __init__(self) -> None:
        self.stores = {name: Store(name) for name in RECORD_TYPES}
        self.sections_of: dict[str, set[str]] = {}
        """Student user id -> ids of the sections that list the student."""
        self.contacts_of: dict[str, set[str]] = {}
        """Student user id -> ids of the contact users related to the student."""

    def __getitem__(self, record_type: str) -> Store:
        return self.stores[record_type]

    def apply(self, record_type: str, action: str, obj: Record) -> None:
        """Apply one event's record (``created``/``updated`` put it, ``deleted`` removes it)."""
        store = self.stores.get(record_type)
        if store is None:
            store = self.stores[record_type] = Store(record_type)
        old = store.objects.get(obj.get("id", ""))
        if action == "deleted":
            store.remove(obj.get("id", ""))
            new = None
        else:
            store.put(obj)
            new = obj
        if record_type == "sections":
            _reindex(self.sections_of, old, new, _section_students)
        elif record_type == "users":
            _reindex(self.contacts_of, old, new, _contact_students)


def _section_students(obj: Record) -> list[str]:
    students: list[str] = obj.get("students") or []
    return students


def _contact_students(obj: Record) -> list[str]:
    contact = (obj.get("roles") or {}).get("contact") or {}
    return [rel.get("student", "") for rel in contact.get("student_relationships") or []]


def _reindex(index: dict[str, set[str]], old: Record | None, new: Record | None, keys: Any) -> None:
    before = set(keys(old)) if old is not None else set()
    after = set(keys(new)) if new is not None else set()
    if not before and not after:
        return
    owner = (new or old or {}).get("id", "")
    for key in before - after:
        members = index.get(key)
        if members is not None:
            members.discard(owner)
            if not members:
                del index[key]
    for key in after - before:
        index.setdefault(key, set()).add(owner)
