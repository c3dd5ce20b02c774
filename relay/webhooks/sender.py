"""One signed POST of an event to an endpoint, and what came of it.

Each endpoint has its own ``aiohttp.ClientSession`` whose connector allows ``max_in_flight``
connections: a slow endpoint fills only its own pool, never another endpoint's. Redirects are
not followed (a 3xx is a failure, as Standard Webhooks senders do), and the request timeout is
the endpoint's ``timeout_s`` for the whole exchange. Only the status matters: at most
:data:`MAX_RESPONSE_BYTES` of the response body are read, then a connection with more to come
is closed, so an endpoint answering with a huge body costs neither memory nor time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from relay import __version__
from relay.webhooks.signing import sign

if TYPE_CHECKING:
    from relay.webhooks.store import QueuedEvent

USER_AGENT = f"clever-relay/{__version__}"
GONE = 410
MAX_RESPONSE_BYTES = 1024
"""Bytes of a response body read at most (the status is the answer; the body is dropped)."""


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt; ``status_class`` is the metric label (``2xx``, ``timeout``)."""

    status_class: str
    status: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """A 2xx: delivered."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """A 410 Gone: the receiver asks us to stop sending."""
        return self.status == GONE

    def reason(self) -> str:
        """A short description for dead letters, logs and /status."""
        return f"http {self.status}" if self.status is not None else self.status_class


class Sender:
    """Signs and POSTs events to one URL."""

    def __init__(self, *, url: str, keys: list[bytes], timeout_s: float, max_in_flight: int):
        self.url = url
        self._keys = keys
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_in_flight = max_in_flight
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Create the session (inside the running loop)."""
        connector = aiohttp.TCPConnector(limit=self._max_in_flight)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers(self, event: QueuedEvent, timestamp: int) -> dict[str, str]:
        """The Standard Webhooks headers of an attempt at ``timestamp`` (Unix seconds)."""
        return {
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._keys, event.id, timestamp, event.data),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }

    async def send(self, event: QueuedEvent) -> Outcome:
        """POST ``event`` once; every failure is an :class:`Outcome`, never an exception."""
        assert self._session is not None, "open() first"
        headers = self.headers(event, int(time.time()))
        try:
            async with self._session.post(
                self.url, data=event.data, headers=headers, allow_redirects=False
            ) as response:
                await response.content.read(MAX_RESPONSE_BYTES)
                if not response.content.at_eof():
                    response.close()  # more is coming: drop the connection, never drain it
                return Outcome(f"{response.status // 100}xx", response.status)
        except TimeoutError:
            return Outcome("timeout", error="timeout")
        except aiohttp.ClientConnectorError as exc:
            return Outcome("connect", error=type(exc).__name__)
        except aiohttp.ClientError as exc:
            return Outcome("error", error=type(exc).__name__)
