"""The district fleet: districts discovered from Clever's token list, onboarded, rotated, removed.

- :mod:`relay.fleet.tokens`: the OAuth tokens endpoint (HTTP Basic, ``next`` paging).
- :mod:`relay.fleet.registry`: the fleet state each district keeps in Redis (phase, progress).
- :mod:`relay.fleet.onboarding`: a new district's crash-safe sync before it polls.
- :mod:`relay.fleet.discovery`: the loop that reads the list and changes the poller's districts.

How an operator runs it: docs/fleet.md.
"""
