"""Structured logging: JSON lines on stdout, with secrets scrubbed from every field.

Secrets are removed twice over: fields whose *name* says secret (``token``, ``authorization``,
``password``, ...) are masked, and every registered secret *value* (each district's Clever
token, v2 API keys, webhook secrets, the Redis password) is replaced wherever it appears in a
rendered string, including formatted exception tracebacks. The second rule is what keeps a
token out of an aiohttp error message that quotes a request header.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED = "[REDACTED]"
_SECRET_KEYS = re.compile(r"token|authorization|password|secret|api_key", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]+@")
_secrets: set[str] = set()
_ordered: list[str] = []


def register_secret(value: str) -> None:
    """Remember a secret value so it is scrubbed from every later log line.

    Whatever its length: a short secret is a weak one, refused by check-config where the relay
    sets the rules (v2 keys, webhook secrets), but still never written in clear.
    """
    if value and value not in _secrets:
        _secrets.add(value)
        # Longest first, so a secret contained in another cannot leave part of it behind.
        _ordered[:] = sorted(_secrets, key=len, reverse=True)


def scrub(text: str) -> str:
    """Replace every registered secret and URL password in ``text``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _URL_PASSWORD.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_KEYS.search(str(k)) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return scrub(repr(value))
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret-named fields and scrub secret values."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


def configure(
    *, level: str = "info", fmt: str = "json", stream: TextIO | None = None, cache: bool = True
) -> None:
    """Configure structlog once, from ``__main__`` (tests pass ``cache=False``)."""
    out = stream or sys.stdout
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=cache,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a logger bound to a component name."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
