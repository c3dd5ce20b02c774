"""The config's value types: component and record-type names, durations, the section base.

The first module of the config package (docs/configuration.md): it imports nothing from the
relay, and every later config module may import it.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

ENV_PREFIX = "RELAY__"


CONFIG_ENV = "RELAY_CONFIG"


ComponentName = Literal["poller", "translator", "http", "v2api", "webhooks"]


RecordType = Literal[
    "students",
    "teachers",
    "contacts",
    "districtadmins",
    "schooladmins",
    "sections",
    "schools",
    "districts",
    "courses",
    "terms",
]


ALL_RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)


ApiVersion = Literal["v3.0", "v3.1"]


PositiveSeconds = Annotated[float, Meta(gt=0)]


NonEmpty = Annotated[str, Meta(min_length=1)]


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Config sections reject unknown keys and are immutable once loaded."""
