"""Cancel-and-wait: the one way the relay stops tasks it started (every shutdown path uses it).

Cancelling a task only asks it to stop; its ``finally`` blocks (closing a session, releasing a
lease) still have to run. So a shutdown cancels, then waits for the tasks to finish, bounded by a
deadline (``[relay] cancel_deadline_s``, docs/configuration.md) so one task that ignores the
cancellation cannot hang the process. What the tasks raised is retrieved (never re-raised, never
logged as "exception never retrieved"): the caller is stopping them, not judging them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]], *, deadline_s: float | None
) -> set[asyncio.Future[Any]]:
    """Cancel every task of ``tasks`` not done yet and wait until they finish.

    Waits at most ``deadline_s`` seconds (``None``: until they finish); returns the tasks still
    running then, so the caller can name them.
    """
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if not pending:
        return set()
    done, still = await asyncio.wait(pending, timeout=deadline_s)
    for task in done:
        if not task.cancelled():
            task.exception()
    return still
