"""Translation of Clever v3 events into the legacy v2 events (docs/translation.md), without I/O.

``v3`` and ``v2`` hold the typed records of each API version, ``mapping`` maps one v3 record to
its v2 object(s), ``rules`` decides which legacy events an event becomes; the stream consumer
(``consumer``) drives it. The whole mapping is documented in ``docs/translation.md``.
"""
