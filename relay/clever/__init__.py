"""Talking to Clever's v3.0 API: the HTTP client, its rate limiter and its errors."""

from relay.clever.client import CleverClient, FetchedPage, call_with_retries
from relay.errors import CleverNotFound, PageTooLarge, Stopped

__all__ = [
    "CleverClient",
    "CleverNotFound",
    "FetchedPage",
    "PageTooLarge",
    "Stopped",
    "call_with_retries",
]
