"""Fetching the next page while the current one is published, within a memory budget.

Prefetching hides the HTTP round trip behind the publish, but a prefetched page is a second
body held per district (~8 MB at ``page_limit`` 10,000). All districts of a process share one
:class:`PrefetchBudget` of body bytes: a district fetches ahead only while the budget has room
for another page the size of its current one, so a replica polling many districts with large
pages stays bounded (docs/performance.md, "Memory"), while small pages always prefetch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")

PREFETCH_BUDGET_BYTES = 8 * 1024 * 1024
"""Page-body bytes one process may hold fetched ahead, over all its districts."""


class PrefetchBudget:
    """Bytes of page bodies fetched ahead, shared by the districts of one process."""

    def __init__(self, limit_bytes: int = PREFETCH_BUDGET_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0

    def take(self, size_bytes: int) -> bool:
        """Reserve ``size_bytes`` for a page fetched ahead; False (nothing taken) if no room."""
        if self.used_bytes + size_bytes > self.limit_bytes:
            return False
        self.used_bytes += size_bytes
        return True

    def give_back(self, size_bytes: int) -> None:
        """Return a reservation: the page fetched ahead is now current, or was dropped."""
        self.used_bytes -= size_bytes


@dataclass
class PendingFetch(Generic[T]):
    """A fetch running ahead: what it was fetched after, and the budget it holds."""

    cursor: str | None
    task: asyncio.Task[T]
    reserved_bytes: int


class Prefetcher(Generic[T]):
    """At most one fetch ahead for one district, charged to a shared :class:`PrefetchBudget`."""

    def __init__(self, budget: PrefetchBudget, name: str) -> None:
        self.budget = budget
        self.name = name
        self._ahead: PendingFetch[T] | None = None

    def start(
        self, cursor: str | None, size_bytes: int, fetch: Callable[[], Coroutine[Any, Any, T]]
    ) -> bool:
        """Run ``fetch()`` ahead if the budget has ``size_bytes`` of room; True if it does."""
        self.drop()
        if not self.budget.take(size_bytes):
            return False
        task = asyncio.create_task(fetch(), name=f"prefetch:{self.name}")
        self._ahead = PendingFetch(cursor, task, size_bytes)
        return True

    def take(self, cursor: str | None) -> asyncio.Task[T] | None:
        """The fetch ahead if it was fetched after ``cursor`` (else it is dropped): None if none."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        self.budget.give_back(ahead.reserved_bytes)
        if ahead.cursor == cursor:
            return ahead.task
        ahead.task.cancel()
        return None

    def drop(self) -> None:
        """Cancel the fetch ahead (the cursor it was fetched after may be wrong now)."""
        if self._ahead is not None:
            self._ahead.task.cancel()
            self.budget.give_back(self._ahead.reserved_bytes)
            self._ahead = None
