"""The relay's exception hierarchy.

Retryable errors are the ones a loop boundary may wait out (Clever or Redis briefly away);
permanent errors need an operator (bad config, a lost cursor, a revoked token). Each carries
the thing it is about so logs and ``/status`` can name it without parsing messages.

Every exception the relay defines lives here (the simulator, a separate program, keeps its own),
so a module catches an error without importing the module that raises it. This module imports
nothing from the relay: it is a leaf of the import graph, and can stay one.
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


class UsageError(Exception):
    """Bad command-line usage: exit 2 with the message."""


class PageTooLarge(PermanentError):
    """Clever answered 413: ``limit`` is above what it serves (10000); ask for less."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Clever refused limit={limit} (413)")
        self.limit = limit


class CleverNotFound(PermanentError):
    """Clever answered 404 for a record (deleted, unshared, or never existed)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"Clever has no {path} (404)")
        self.path = path


class Stopped(RelayError):
    """The stop event was set while waiting to retry; the caller should wind down."""


class InvalidEvent(ValueError):
    """An event that cannot be normalized; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LeaseLostError(FencedError):
    """The district's lease no longer holds this poller's value: another replica owns it now.

    Nothing was written. The poller stops polling the district until it acquires the lease
    again (issue 8: a paused or partitioned ex-owner must never write).
    """

    def __init__(self, district: str, holder: str) -> None:
        super().__init__(f"district {district}: lease is held by {holder or 'nobody'}")
        self.district = district
        self.holder = holder


class StreamIdError(ValueError):
    """A stream id that does not fit the legacy id layout (never happens with ``XADD *``)."""


class UntranslatableError(PermanentError):
    """The event cannot become v2 events: it goes to the dead-letter stream.

    ``reason`` is a short, low-cardinality code (``invalid_object``, ``unknown_record_type``,
    ``missing_legacy_id``, ``contact_id_conflict``, ``unknown_roles``) fit for a metric label;
    ``detail`` says exactly what.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TeacherLookupNeeded(RelayError):
    """A section names teachers (v3 user ids) whose legacy ids the caller did not pass.

    The consumer looks them up (Data API), then translates the event again; the relay never
    guesses a teacher id.
    """

    def __init__(self, user_ids: list[str]) -> None:
        super().__init__(f"teacher legacy ids needed for users {', '.join(user_ids)}")
        self.user_ids = user_ids


class DemoError(RelayError):
    """The demo cannot run here (no Redis to be had, port in use...)."""


class RedisUnreachable(DemoError):
    """The Redis the user named does not answer: a usage problem (exit 2), not a crash."""


class SignatureError(ValueError):
    """A request's signature or timestamp did not verify."""


class PageError(Exception):
    """A request the API refuses: ``status`` (400, 413) and a message for ``{"message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DiscoveryAuthError(RelayError):
    """Clever refused the app's client id and secret (401/403): an operator must fix them."""

    def __init__(self, status: int) -> None:
        super().__init__(f"Clever answered {status} to the app's client id and secret")
        self.status = status


class UnknownSource(ValueError):
    """The request named a source that is not configured."""


class TranslatorFencedError(FencedError):
    """A translator script refused: the translator lease is no longer held by this process."""


class PartitionsChangedError(RelayError):
    """``[redis] partitions`` differs from the count this deployment's data was written with."""
