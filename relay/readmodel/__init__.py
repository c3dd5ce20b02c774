"""State the translator writes and the v2 API reads: the v2 read model and the ID crosswalk.

``clever-relay sync`` (:mod:`relay.readmodel.sync`) fills both from Clever's v3 Data API; the
translator keeps them current with the same writes, in the same Lua call as the legacy events.

- :mod:`relay.readmodel.writer`: the read model's Lua functions and the ops that keep it current
  (pasted into the translator's batch script, used by ``clever-relay sync``).
- :mod:`relay.readmodel.entry_ids`: read-model stream entry ids derived from legacy ids.
- :mod:`relay.readmodel.sync`: :class:`~relay.readmodel.sync.DistrictSync`, a district's
  resumable sync (also the fleet's onboarding step).
- :mod:`relay.readmodel.crosswalk`: the v3 user ↔ v2 id crosswalk (its Lua is pasted into the
  translator's batch script too).

Keeping these apart from both lets the translator write them and the v2 API read them without
either package importing the other (docs/architecture.md). Key names: :mod:`relay.redis.keys`.
"""

from relay.readmodel.crosswalk import CrosswalkReader, CrosswalkWriter
from relay.readmodel.entry_ids import legacy_id_of, stream_id
from relay.readmodel.writer import ReadModelWriter

__all__ = ["CrosswalkReader", "CrosswalkWriter", "ReadModelWriter", "legacy_id_of", "stream_id"]
"""The sync (:mod:`relay.readmodel.sync`) is imported from its module (it loads the client)."""
