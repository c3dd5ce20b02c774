"""Reading values out of Redis replies: text from bytes, numbers that may be missing.

Shared by everything that shows stored state (``/status``, the console), so they read it alike.
"""

from __future__ import annotations

from typing import Any


def decoded(value: Any) -> str:
    """A Redis reply (bytes) or any value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def float_or_none(value: str | None) -> float | None:
    """A stored number, or None when absent or unreadable."""
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
