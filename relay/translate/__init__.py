"""Translation of Clever v3 events into the legacy v2 events (docs/translation.md): pure, no I/O.

Importable with redis and aiohttp absent (a test imports it with both blocked); the component
that reads and writes Redis around it is :mod:`relay.translator`.

- :mod:`relay.translate.v3`, :mod:`relay.translate.v2`: the typed records of each API version.
- :mod:`relay.translate.mapping`: one v3 record to its v2 object(s).
- :mod:`relay.translate.rules`: which legacy events an event becomes (:func:`translate`).
- :mod:`relay.translate.previous`: the ``previous_attributes`` of an update.
- :mod:`relay.translate.ids`: legacy event ids from stream ids.
"""

from relay.translate.ids import legacy_id
from relay.translate.rules import LegacyOut, Translation, encode_legacy_event, translate

__all__ = ["LegacyOut", "Translation", "encode_legacy_event", "legacy_id", "translate"]
