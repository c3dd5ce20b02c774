"""Prometheus metrics, defined once so every component and the docs agree on names.

Names follow Prometheus conventions: ``clever_relay_`` prefix, base units (seconds), ``_total``
on counters, and no label with more values than the configured districts.

At fleet scale (thousands of districts) the per-district series are most of a scrape, so they
exist only where they carry information: lag, up and cursor age per district, event and error
counters only for districts that had events or errors, requests not per district at all; no
``_created`` companions. ``[http] per_district_metrics = false`` drops them entirely (the
``district`` label then reads :data:`ALL_DISTRICTS`); the aggregates by phase are always there.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# Every counter would also export a ``_created`` series: twice the lines, no information used.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus-client
REGISTRY = CollectorRegistry(auto_describe=True)
ALL_DISTRICTS = "all"
"""The ``district`` label of counters when per-district series are turned off."""
_per_district = [True]


def set_per_district(enabled: bool) -> None:
    """Turn per-district series on or off (``[http] per_district_metrics``), at start-up."""
    _per_district[0] = enabled


def per_district() -> bool:
    """Whether per-district series are exported."""
    return _per_district[0]


def district_label(district: str) -> str:
    """The ``district`` label value for counters: the id, or :data:`ALL_DISTRICTS` when off."""
    return district if _per_district[0] else ALL_DISTRICTS


EVENTS_POLLED = Counter(
    "clever_relay_events_polled_total",
    "Events received from Clever.",
    ["district"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "clever_relay_events_published_total",
    "Events written to the events stream.",
    ["district"],
    registry=REGISTRY,
)
EVENTS_TRANSLATED = Counter(
    "clever_relay_events_translated_total",
    "Legacy v2 events written, by legacy event type.",
    ["type"],
    registry=REGISTRY,
)
EVENTS_SKIPPED = Counter(
    "clever_relay_events_skipped_total",
    "v3 events deliberately not translated (no v2 equivalent, record type not enabled, "
    "no v2-visible change).",
    ["reason"],
    registry=REGISTRY,
)
PREVIOUS_UNREADABLE = Counter(
    "clever_relay_previous_attributes_unreadable_total",
    "Clever previous_attributes (or parts of them) the translator could not read and worked "
    "around, by note: previous_attributes_unreadable (the whole shape: .updated with {}), "
    "previous_attribute_dropped (one key left out), previous_teacher_not_found (a gone "
    "section teacher left out).",
    ["note"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "clever_relay_dead_lettered_total",
    "Entries written to the dead-letter stream, by stage and reason.",
    ["stage", "reason"],
    registry=REGISTRY,
)
POLL_REQUESTS = Counter(
    "clever_relay_poll_requests_total",
    "HTTP requests sent to Clever (all districts: a quiet district's rate is its poll interval).",
    registry=REGISTRY,
)
POLL_ERRORS = Counter(
    "clever_relay_poll_errors_total",
    "Failed requests to Clever, by kind "
    "(timeout, connect, 4xx, 5xx, malformed, rate_limited, auth).",
    ["district", "kind"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT = Counter(
    "clever_relay_rate_limit_wait_seconds_total",
    "Seconds spent waiting for Clever's rate-limit window to reset.",
    ["district"],
    registry=REGISTRY,
)
DISTRICT_LAG = Gauge(
    "clever_relay_district_lag_seconds",
    "Now minus the created time of the newest event published for the district.",
    ["district"],
    registry=REGISTRY,
)
CURSOR_AGE = Gauge(
    "clever_relay_cursor_age_seconds",
    "Seconds since the district's cursor last advanced or the feed was last seen caught up.",
    ["district"],
    registry=REGISTRY,
)
DISTRICT_UP = Gauge(
    "clever_relay_district_up",
    "1 while the district polls successfully, 0 while it fails (auth, cursor lost, errors).",
    ["district"],
    registry=REGISTRY,
)
TRANSLATOR_LAG = Gauge(
    "clever_relay_translator_group_lag",
    "Entries in the events stream not yet delivered to the translator group (XINFO GROUPS lag).",
    registry=REGISTRY,
)
TRANSLATOR_PENDING = Gauge(
    "clever_relay_translator_group_pending",
    "Entries delivered to the translator group but not yet acknowledged.",
    registry=REGISTRY,
)
REDIS_RECONNECTS = Counter(
    "clever_relay_redis_reconnects_total",
    "Times a component lost Redis and reconnected.",
    ["component"],
    registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "clever_relay_publish_seconds",
    "Duration of one atomic publish (a page of events and its cursor).",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
REDIS_EVICTION_POLICY_OK = Gauge(
    "clever_relay_redis_eviction_policy_ok",
    "1 while Redis' maxmemory-policy is noeviction, 0 while it may evict (readiness fails).",
    registry=REGISTRY,
)
REDIS_PERSISTENCE_OK = Gauge(
    "clever_relay_redis_persistence_ok",
    "1 while Redis persists (AOF or RDB snapshots), 0 while a restart would lose everything.",
    registry=REGISTRY,
)
FLEET_DISTRICTS = Gauge(
    "clever_relay_fleet_districts",
    "Districts this replica knows, by source (static, discovered) and phase "
    "(onboarding, polling, unauthorized, removed).",
    ["source", "phase"],
    registry=REGISTRY,
)
TRANSLATOR_HELD = Gauge(
    "clever_relay_translator_held_entries",
    "Entries set aside because their district is held back (a failed teacher look-up).",
    registry=REGISTRY,
)
DISTRICTS = Gauge(
    "clever_relay_districts",
    "Districts whose lease this replica holds, by phase (polling, caught_up, backoff, "
    "unauthorized, cursor_lost, ...); sum over replicas for the deployment.",
    ["phase"],
    registry=REGISTRY,
)
DISTRICT_LAG_MAX = Gauge(
    "clever_relay_district_lag_seconds_max",
    "The largest clever_relay_district_lag_seconds over all districts (read at scrape time).",
    registry=REGISTRY,
)
