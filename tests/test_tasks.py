"""The one cancel-and-wait helper every shutdown path uses."""

from __future__ import annotations

import asyncio

from relay.tasks import cancel_and_wait


async def test_cancelled_tasks_finish_their_cleanup_before_it_returns() -> None:
    """Each task is cancelled and its ``finally`` has run by the time the helper returns."""
    cleaned: list[str] = []
    started = asyncio.Event()

    async def work(name: str) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)
            cleaned.append(name)

    tasks = [asyncio.create_task(work(name)) for name in ("a", "b")]
    await started.wait()
    still = await cancel_and_wait(tasks, deadline_s=60.0)
    assert (still, sorted(cleaned), [t.cancelled() for t in tasks]) == (
        set(),
        ["a", "b"],
        [True, True],
    )


async def test_done_tasks_and_their_errors_are_left_alone() -> None:
    """A task that already ended (even with an error) is neither cancelled nor re-raised."""

    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fail())
    await asyncio.wait({failed})
    assert await cancel_and_wait([failed], deadline_s=60.0) == set()
    assert (failed.cancelled(), str(failed.exception())) == (False, "boom")


async def test_a_task_ignoring_cancellation_is_returned_after_the_deadline() -> None:
    """A task that swallows the cancellation comes back as still running once the deadline ends."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                started.set()
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await started.wait()
    still = await cancel_and_wait([task], deadline_s=0.01)
    assert still == {task}
    release.set()
    await task
