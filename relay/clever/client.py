"""An aiohttp client for the parts of Clever's v3 API the relay calls (``/v3.0`` or ``/v3.1``).

One :class:`CleverClient` per district token: it owns that token's rate-limit window and turns
every HTTP outcome into either a decoded result or one of the relay's errors, so callers decide
*what to do* (retry, halve the page, stop the district) without looking at status codes:

- transient (timeouts, connection resets, 5xx, 429, malformed or truncated bodies):
  :class:`~relay.errors.CleverError` with a ``kind`` for the metric label;
- 401/403: :class:`~relay.errors.CleverAuthError`;
- 400/404 on ``starting_after``: :class:`~relay.errors.CursorLostError`;
- 413: :class:`PageTooLarge`; 404 on a record: :class:`CleverNotFound`.

:func:`call_with_retries` is the one retry loop for transient errors (forever, capped
exponential backoff with full jitter, one log line and one metric per failure).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import msgspec
from aiohttp import hdrs

from relay.backoff import Backoff, sleep_or_stop
from relay.clever.ratelimit import RateLimiter
from relay.errors import (
    CleverAuthError,
    CleverError,
    CleverNotFound,
    CursorLostError,
    PageTooLarge,
    Stopped,
)
from relay.logs import get_logger
from relay.messages import EventsPage
from relay.metrics import POLL_ERRORS, POLL_REQUESTS, district_label

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

T = TypeVar("T")
log = get_logger("clever")

DEFAULT_API_VERSION = "v3.0"
"""``[clever] api_version`` when none is given; ``v3.1`` serves the same paths plus fields."""


@dataclass(frozen=True)
class FetchedPage:
    """One decoded events page and the size of the body it came from.

    The page's events are ``Raw`` views into that body, so the body lives as long as the page:
    ``size_bytes`` is what holding the page costs (the poller bounds its prefetch by it).
    """

    page: EventsPage
    size_bytes: int


class _EventId(msgspec.Struct, frozen=True):
    """Just an event's id: what :meth:`CleverClient.latest_event_id` needs."""

    id: str


class _LatestItem(msgspec.Struct, frozen=True):
    data: _EventId


class _LatestPage(msgspec.Struct, frozen=True):
    data: list[_LatestItem]


class _UserResponse(msgspec.Struct, frozen=True):
    data: msgspec.Raw


_page_decoder = msgspec.json.Decoder(EventsPage)
"""As :func:`relay.messages.decode_page`, but typed for the ``bytearray`` bodies too."""
_latest_decoder = msgspec.json.Decoder(_LatestPage)
_user_decoder = msgspec.json.Decoder(_UserResponse)


class CleverClient:
    """Requests to Clever for one district, paced by that token's rate limit."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_url: str,
        district: str,
        token: str,
        timeout_s: float,
        rate_limit_reserve: int = 5,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.api_prefix = f"/{api_version}"
        """Every path goes under this (``/v3.0`` or ``/v3.1``); the event ids are the same."""
        self.district = district
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._refused: dict[str, str] | None = None
        """The headers of the last request Clever answered 401/403 (identity, not value)."""
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.limiter = RateLimiter(district=district, reserve=rate_limit_reserve)

    def set_token(self, token: str) -> None:
        """Use ``token`` from the next request on (a rotated token; the rate window stays)."""
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def mark_refused(self) -> None:
        """Record that Clever refused the token in use now (seen by another client of it)."""
        self._refused = self._headers

    def token_refused(self) -> bool:
        """True when Clever refused the token in use now (not an older, since replaced one)."""
        return self._refused is self._headers

    def __repr__(self) -> str:
        """Never show the token."""
        return f"CleverClient(district={self.district!r}, base_url={self.base_url!r})"

    async def events_page(
        self, *, starting_after: str | None = None, ending_before: str | None = None, limit: int
    ) -> EventsPage:
        """Fetch one page of events (one request, after waiting for the rate limit).

        Raises:
            CleverError: transient failure; retry later.
            CleverAuthError: the token was refused.
            CursorLostError: Clever rejected ``starting_after`` (400/404).
            PageTooLarge: ``limit`` is too large (413).
        """
        fetched = await self.fetch_events(
            starting_after=starting_after, ending_before=ending_before, limit=limit
        )
        return fetched.page

    async def fetch_events(
        self, *, starting_after: str | None = None, ending_before: str | None = None, limit: int
    ) -> FetchedPage:
        """:meth:`events_page`, also telling the body's size (same errors)."""
        params = {"limit": str(limit)}
        if starting_after is not None:
            params["starting_after"] = starting_after
        if ending_before is not None:
            params["ending_before"] = ending_before
        status, body = await self._get("/events", params)
        if status in (400, 404) and starting_after is not None:
            raise CursorLostError(self.district, starting_after, status)
        if status == 413:
            raise PageTooLarge(limit)
        self._raise_for_status(status, "/events")
        try:
            return FetchedPage(_page_decoder.decode(body), len(body))
        except msgspec.DecodeError as exc:
            raise CleverError("malformed", f"malformed events page: {exc}", status=status) from None

    async def latest_event_id(self) -> str | None:
        """The newest event id in the district's feed (``ending_before=last&limit=1``), or None."""
        status, body = await self._get("/events", {"ending_before": "last", "limit": "1"})
        self._raise_for_status(status, "/events")
        try:
            page = _latest_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise CleverError("malformed", f"malformed events page: {exc}", status=status) from None
        return page.data[-1].data.id if page.data else None

    async def get_user(self, user_id: str) -> bytes:
        """The raw JSON of one v3 user (the ``data`` of ``GET /v3.x/users/{id}``).

        Raises:
            CleverError: transient failure; retry later.
            CleverAuthError: the token was refused.
            CleverNotFound: Clever has no such user (or it is not shared).
        """
        path = f"/users/{user_id}"
        status, body = await self._get(path, {})
        if status == 404:
            raise CleverNotFound(path)
        self._raise_for_status(status, path)
        try:
            return bytes(_user_decoder.decode(body).data)
        except msgspec.DecodeError as exc:
            raise CleverError("malformed", f"malformed user: {exc}", status=status) from None

    def _raise_for_status(self, status: int, path: str) -> None:
        if status in (401, 403):
            raise CleverAuthError(self.district, status)
        if status >= 500:
            raise CleverError("5xx", f"Clever answered {status} to {path}", status=status)
        if status != 200:
            raise CleverError("4xx", f"Clever answered {status} to {path}", status=status)

    async def _get(self, path: str, params: Mapping[str, str]) -> tuple[int, bytes | bytearray]:
        """One GET after the rate limiter allows it; 429 and transport failures raise."""
        await self.limiter.acquire()
        POLL_REQUESTS.inc()
        url = f"{self.base_url}{self.api_prefix}{path}"
        headers = self._headers
        try:
            async with self.session.get(
                url, params=params, headers=headers, timeout=self._timeout
            ) as resp:
                self.limiter.update(resp.headers)
                if resp.status in (401, 403):
                    self._refused = headers
                if resp.status == 429:
                    wait_s = self.limiter.on_429(resp.headers)
                    raise CleverError(
                        "rate_limited", f"429 from Clever; waiting {wait_s:.2f}s", status=429
                    )
                return resp.status, await _read_body(resp)
        except TimeoutError:
            raise CleverError(
                "timeout", f"no answer from Clever within {self._timeout.total}s"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise CleverError("truncated", f"truncated body from Clever: {exc}") from None
        except aiohttp.ClientError as exc:
            raise CleverError(
                "connect", f"cannot reach Clever: {type(exc).__name__}: {exc}"
            ) from None


async def _read_body(resp: aiohttp.ClientResponse) -> bytes | bytearray:
    """The whole body, read into one buffer of the announced size when there is one.

    aiohttp's ``read()`` collects the chunks and joins them into a second copy, so a 10,000-event
    page (~8 MB) would briefly exist twice, and a growing buffer reallocates; compressed bodies
    (size unknown) still take that path. msgspec's ``Raw`` values reference the buffer.

    Raises:
        CleverError: the body is longer or shorter than its ``Content-Length``.
    """
    size = resp.content_length
    if size is None or hdrs.CONTENT_ENCODING in resp.headers:
        return await resp.read()
    body = bytearray(size)
    filled = 0
    with memoryview(body) as view:
        while chunk := await resp.content.readany():
            end = filled + len(chunk)
            if end > size:
                raise CleverError("malformed", f"body longer than its Content-Length {size}")
            view[filled:end] = chunk
            filled = end
    if filled != size:
        raise CleverError("truncated", f"body of {filled} bytes, Content-Length {size}")
    return body


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    district: str,
    max_backoff_s: float,
    stop: asyncio.Event | None = None,
    on_error: Callable[[CleverError], None] | None = None,
    backoff: Backoff | None = None,
) -> T:
    """Call ``fn`` until it stops raising :class:`CleverError`; other errors propagate.

    Each failure counts in ``POLL_ERRORS`` by kind and logs one ``clever_request_failed`` line.
    Rate-limited calls retry without extra backoff: the client's limiter already waits for the
    window to reset.

    Raises:
        Stopped: ``stop`` was set while waiting to retry.
    """
    backoff = backoff or Backoff(cap_s=max_backoff_s)
    while True:
        try:
            return await fn()
        except CleverError as exc:
            POLL_ERRORS.labels(district_label(district), exc.kind).inc()
            delay = 0.0 if exc.kind == "rate_limited" else backoff.next_delay()
            log.warning(
                "clever_request_failed",
                district=district,
                kind=exc.kind,
                status=exc.status,
                error=str(exc),
                retry_in_s=round(delay, 3),
                attempt=backoff.attempt,
            )
            if on_error is not None:
                on_error(exc)
            if await sleep_or_stop(delay, stop):
                raise Stopped("stop requested while retrying") from None
