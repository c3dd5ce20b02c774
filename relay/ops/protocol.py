"""Requests aiohttp refuses before any handler runs: one scrubbed JSON line, a JSON answer.

A request whose bytes do not parse (a control byte in a header, a header line over 8190 bytes,
a bad method) never reaches the application or its middlewares: aiohttp's protocol handler
answers it and logs a traceback on its own ``aiohttp.server`` logger. That path would write the
offending request line (and so an ``Authorization`` key) to stderr in clear, about ten lines per
request, and echo the bytes in a text/plain body. Here:

- :class:`ProtocolLogger` is the logger aiohttp is given (``AppRunner(logger=...)``, a public
  argument): each record becomes one ``http_bad_request`` line through the relay's structlog
  pipeline (so scrubbed), naming the error class and never its message (which holds the bytes),
  and at most :data:`LOG_BURST` lines per :data:`LOG_WINDOW_S` seconds; what was held back is
  counted on the next line (``suppressed``).
- :class:`Runner` makes the protocol handler answer with a JSON ``{"message": ...}`` naming
  only the status, never the request's bytes.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from relay.logs import get_logger, scrub

LOG_BURST = 10
"""Bad-request lines written per window at most; the rest are counted, not written."""
LOG_WINDOW_S = 10.0

log = get_logger("http")


class ProtocolLogger(logging.Logger):
    """A stdlib logger whose records go, summarized and rate-limited, to the JSON log."""

    def __init__(self, *, clock: Any = time.monotonic) -> None:
        super().__init__("relay.http.protocol")
        self._clock = clock
        self._window_start = float("-inf")
        self._written = 0
        self.suppressed = 0

    def handle(self, record: logging.LogRecord) -> None:
        """Write one line for ``record`` unless the window's budget is spent."""
        now = self._clock()
        if now - self._window_start >= LOG_WINDOW_S:
            self._window_start = now
            self._written = 0
        if self._written >= LOG_BURST:
            self.suppressed += 1
            return
        self._written += 1
        held, self.suppressed = self.suppressed, 0
        exc = record.exc_info[1] if record.exc_info else None
        fields: dict[str, Any] = {"error": type(exc).__name__ if exc else None}
        if held:
            fields["suppressed"] = held
        if isinstance(exc, HttpProcessingError):
            # The parser's message quotes the request's bytes: keep only the status.
            log.warning("http_bad_request", status=exc.code, **fields)
        else:
            log.error("http_protocol_error", message=scrub(record.getMessage()), **fields)


class _JsonErrorHandler(web.RequestHandler):
    """aiohttp's protocol handler, answering its own errors with a JSON body."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Log through :class:`ProtocolLogger` (the parent does), answer ``{"message"}``."""
        super().handle_error(request, status, exc, message)
        try:
            phrase = HTTPStatus(status).phrase.lower()
        except ValueError:
            phrase = "error"
        response = web.Response(
            body=msgspec.json.encode({"message": phrase}),
            status=status,
            content_type="application/json",
        )
        response.force_close()
        return response


class _Server(web.Server):
    """Creates :class:`_JsonErrorHandler` protocols instead of aiohttp's."""

    def __call__(self) -> web.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose server answers malformed requests in JSON.

    aiohttp offers no argument for the protocol handler's class, so the server the parent
    builds (with the app's handler, request factory and our kwargs) gets the subclass above,
    which only changes how connections' protocol handlers are created.
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server
        return server
