"""The two API versions the simulator serves: ``/v3.0/...`` and ``/v3.1/...``.

Records and events are generated (and posted by tests) in v3.0's shape and served as they are
under ``/v3.0``. Under ``/v3.1`` each record also carries the fields v3.1 added: ``lms_status``
on users and sections, on student roles ``preferred_name``, ``disability``, ``iep_status``,
``frl_status``, ``gifted_status``, ``home_language``, ``home_language_code`` and
``section_504_status``, and on districts ``lms_state``, ``lms_type`` and
``last_attendance_sync``. Their values are drawn from a generator seeded with the record's id,
so one record shows the same v3.1 values in the Data API and in every event about it. A value
already present (posted by a test) is kept. Event ids are the same in both versions.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import msgspec

VERSIONS = ("v3.0", "v3.1")
DEFAULT = "v3.0"

Record = dict[str, Any]

_LANGUAGES = (
    ("English", "eng"),
    ("Spanish", "spa"),
    ("Chinese", "zho"),
    ("Vietnamese", "vie"),
    ("Arabic", "ara"),
    ("Haitian Creole", "hat"),
)
_DISABILITIES = (
    ("sld", "Specific learning disability"),
    ("sli", "Speech or language impairment"),
    ("ohi", "Other health impairment"),
    ("aut", "Autism"),
)


class _SeededRandom(random.Random):
    """Reproducible simulated values (never anything secret)."""


def version_of(path: str) -> str:
    """The API version a request path names (``/v3.1/events`` → ``v3.1``)."""
    head = path[1:5]
    return head if head in VERSIONS else DEFAULT


def _rng(record: Record) -> random.Random:
    return _SeededRandom(zlib.crc32(str(record.get("id", "")).encode()))


def _student_fields(rng: random.Random, name: Any) -> Record:
    language, code = rng.choice(_LANGUAGES)
    first = name.get("first", "") if isinstance(name, dict) else ""
    disabled = rng.random() < 0.12
    code_, kind = rng.choice(_DISABILITIES)
    return {
        "preferred_name": {"first": first[:3] if rng.random() < 0.2 else first},
        "disability": (
            {"disability_code": code_, "disability_status": "Y", "disability_type": kind}
            if disabled
            else {"disability_status": "N"}
        ),
        "iep_status": "Y" if disabled else "N",
        "frl_status": rng.choice(("Free", "Reduced", "Paid", "Paid", "")),
        "gifted_status": rng.choice(("Y", "N", "N", "N")),
        "home_language": language,
        "home_language_code": code,
        "section_504_status": rng.choice(("Y", "N", "N", "N", "")),
    }


def upgrade(record_type: str, record: Record) -> Record:
    """``record`` as v3.1 serves it (a new dict; the stored record is left alone)."""
    rng = _rng(record)
    if record_type == "users":
        out = {"lms_status": {"synced_in_lms": rng.random() < 0.7}, **record}
        roles = out.get("roles")
        student = roles.get("student") if isinstance(roles, dict) else None
        if isinstance(student, dict) and isinstance(roles, dict):
            added = _student_fields(rng, out.get("name"))
            out["roles"] = {**roles, "student": {**added, **student}}
        return out
    if record_type == "sections":
        return {"lms_status": {"synced_in_lms": rng.random() < 0.5}, **record}
    if record_type == "districts":
        extra = {"lms_state": "success", "lms_type": "canvas", "last_attendance_sync": None}
        return {**extra, **record}
    return record


_event_decoder = msgspec.json.Decoder(dict[str, Any])


def upgrade_event(body: bytes) -> bytes:
    """An encoded v3.0 event as v3.1 serves it (its ``data.object`` upgraded)."""
    event = _event_decoder.decode(body)
    data = event.get("data")
    if isinstance(data, dict) and isinstance(data.get("object"), dict):
        record_type = str(event.get("type", "")).partition(".")[0]
        event["data"] = {**data, "object": upgrade(record_type, data["object"])}
    return msgspec.json.encode(event)
