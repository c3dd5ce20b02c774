"""The relay's exception hierarchy.

Retryable errors are the ones a loop boundary may wait out (Clever or Redis briefly away);
permanent errors need an operator (bad config, a lost cursor, a revoked token). Each carries
the thing it is about so logs and ``/status`` can name it without parsing messages.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base class of every error the relay raises on purpose."""


class ConfigError(RelayError):
    """The configuration is invalid; ``problems`` holds one ``key: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RetryableError(RelayError):
    """A failure that may go away by itself: retry with backoff."""


class PermanentError(RelayError):
    """A failure that retrying will not fix without someone changing something."""


class CleverError(RetryableError):
    """Clever answered with a transient failure (5xx, malformed body, timeout, reset).

    ``kind`` is the metric label: ``timeout``, ``connect``, ``5xx``, ``malformed``, ...
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class CleverAuthError(PermanentError):
    """Clever refused the district's token (401/403)."""

    def __init__(self, district: str, status: int) -> None:
        super().__init__(f"district {district}: Clever answered {status} to its token")
        self.district = district
        self.status = status


class CursorLostError(PermanentError):
    """Clever no longer knows the stored cursor (expired past retention, or never existed)."""

    def __init__(self, district: str, cursor: str, status: int) -> None:
        super().__init__(f"district {district}: cursor {cursor} rejected by Clever ({status})")
        self.district = district
        self.cursor = cursor
        self.status = status


class FencedError(PermanentError):
    """A write was refused because another writer moved the cursor or took the lease."""
