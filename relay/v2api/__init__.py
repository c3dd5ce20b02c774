"""The v2 compatibility API (docs/v2-api.md): a Redis read model, its sync, and the HTTP routes.

Data flow: ``clever-relay sync`` (:mod:`relay.v2api.sync`) fills the read model from Clever's v3
Data API; the translator keeps it current with the same writes, in the same Lua call as the
legacy events (:mod:`relay.readmodel.writer`); :mod:`relay.v2api.server` answers v2 requests from
it. See ``docs/v2-api.md``.
"""
