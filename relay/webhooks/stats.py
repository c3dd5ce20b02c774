"""What an endpoint reports: Prometheus gauges and its ``/status`` entry.

Counts that describe Redis (backlog, districts in retry, oldest undelivered event, dead
letters) are read from Redis on a timer, so they are right across restarts and replicas;
``delivered`` and the last success/failure are this process's own view.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from relay.webhooks import metrics
from relay.webhooks.store import decode_event

if TYPE_CHECKING:
    from relay.config import WebhookEndpoint
    from relay.webhooks.sender import Outcome
    from relay.webhooks.store import EndpointStore, QueuedEvent


def public_url(url: str) -> str:
    """The URL without user info or query (either may carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class EndpointStats:
    """Gauges and the status view of one endpoint."""

    def __init__(self, *, endpoint: WebhookEndpoint, store: EndpointStore) -> None:
        self.name = endpoint.name
        self.url = public_url(endpoint.url)
        self.store = store
        self.disabled: str | None = None
        self.backlog = 0
        self.retrying = 0
        self.oldest_age_s = 0.0
        self.dead_letters = 0
        self.delivered_count = 0
        self.last_success: dict[str, Any] | None = None
        self.last_failure: dict[str, Any] | None = None
        metrics.ENABLED.labels(self.name).set(1)

    async def refresh_enabled(self) -> None:
        """Re-read the disabled flag (the CLI clears it on replay)."""
        self.disabled = await self.store.disabled()
        metrics.ENABLED.labels(self.name).set(0 if self.disabled else 1)

    async def disable(self, reason: str) -> None:
        """Persist and show that the endpoint is disabled."""
        await self.store.disable(reason, time.time())
        self.disabled = reason
        metrics.ENABLED.labels(self.name).set(0)

    def delivered(self, event: QueuedEvent) -> None:
        """Note a 2xx."""
        self.delivered_count += 1
        self.last_success = {"at": time.time(), "event_id": event.id, "district": event.district}

    def failed(self, event: QueuedEvent, outcome: Outcome) -> None:
        """Note a failed attempt."""
        self.last_failure = {
            "at": time.time(),
            "event_id": event.id,
            "district": event.district,
            "reason": outcome.reason(),
        }

    async def refresh(self) -> None:
        """Read the queue state from Redis and update the gauges."""
        keys = self.store.keys
        redis = self.store.redis
        raw: list[bytes] = await redis.zrange(keys.due, 0, -1)  # type: ignore[assignment]  # members, no scores asked
        districts = [d.decode() for d in raw]
        # Pipeline methods queue and return the pipeline; the replies come from execute().
        async with redis.pipeline(transaction=False) as pipe:
            for district in districts:
                _ = pipe.llen(keys.queue(district))
                _ = pipe.lindex(keys.queue(district), 0)
            _ = pipe.hlen(keys.attempts)
            _ = pipe.xlen(keys.deadletter)
            replies = await pipe.execute()
        lengths, heads = replies[0:-2:2], replies[1:-2:2]
        self.retrying, self.dead_letters = int(replies[-2]), int(replies[-1])
        self.backlog = sum(int(n) for n in lengths)
        oldest = min((decode_event(h).ms for h in heads if h is not None), default=None)
        self.oldest_age_s = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)
        metrics.BACKLOG.labels(self.name).set(self.backlog)
        metrics.RETRYING.labels(self.name).set(self.retrying)
        metrics.OLDEST_AGE.labels(self.name).set(self.oldest_age_s)
        metrics.DEAD_LETTER_LENGTH.labels(self.name).set(self.dead_letters)

    def view(self, *, in_flight: int) -> dict[str, Any]:
        """The endpoint's ``/status`` entry (no secret, no query string)."""
        return {
            "url": self.url,
            "state": "disabled" if self.disabled else "enabled",
            "disabled_reason": self.disabled,
            "backlog": self.backlog,
            "retrying_districts": self.retrying,
            "oldest_undelivered_age_s": round(self.oldest_age_s, 3),
            "dead_letters": self.dead_letters,
            "in_flight": in_flight,
            "delivered": self.delivered_count,
            "last_success": self.last_success,
            "last_failure": self.last_failure,
        }
