"""Prometheus metrics of webhook delivery, one label per configured endpoint.

Registered on the relay's one registry (:data:`relay.metrics.REGISTRY`) so ``/metrics`` shows
them beside the rest; documented in docs/webhooks.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from relay.metrics import REGISTRY

DELIVERED = Counter(
    "clever_relay_webhook_delivered_total",
    "Events an endpoint accepted with a 2xx.",
    ["endpoint"],
    registry=REGISTRY,
)
FAILED_ATTEMPTS = Counter(
    "clever_relay_webhook_failed_attempts_total",
    "Delivery attempts that failed, by status class (3xx, 4xx, 5xx, timeout, connect, error).",
    ["endpoint", "status_class"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "clever_relay_webhook_dead_letters_total",
    "Events moved to the endpoint's dead-letter stream after the last retry.",
    ["endpoint"],
    registry=REGISTRY,
)
BACKLOG = Gauge(
    "clever_relay_webhook_backlog",
    "Events queued for the endpoint and not yet delivered (including those being retried).",
    ["endpoint"],
    registry=REGISTRY,
)
RETRYING = Gauge(
    "clever_relay_webhook_retry_backlog",
    "Districts whose next event is waiting for a retry (each holds back its district's queue).",
    ["endpoint"],
    registry=REGISTRY,
)
OLDEST_AGE = Gauge(
    "clever_relay_webhook_oldest_undelivered_age_seconds",
    "Age of the oldest undelivered event (since it was written to its stream); 0 when none.",
    ["endpoint"],
    registry=REGISTRY,
)
DEAD_LETTER_LENGTH = Gauge(
    "clever_relay_webhook_dead_letter_length",
    "Entries currently in the endpoint's dead-letter stream.",
    ["endpoint"],
    registry=REGISTRY,
)
ENABLED = Gauge(
    "clever_relay_webhook_endpoint_enabled",
    "1 while the endpoint is enabled, 0 after it answered 410 Gone.",
    ["endpoint"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "clever_relay_webhook_request_seconds",
    "Duration of one delivery attempt, whatever its outcome.",
    ["endpoint"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
