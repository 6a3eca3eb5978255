"""strom.tasks.Tasks: a service's background tasks, and nothing started once it closed."""

from __future__ import annotations

import asyncio

from strom.tasks import Tasks


async def test_close_cancels_what_runs() -> None:
    tasks = Tasks()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = tasks.spawn(forever(), "forever")
    await started.wait()
    await tasks.close()
    assert task.cancelled()


async def test_a_task_spawned_after_close_never_runs() -> None:
    # A bus event arriving while the app shuts down (a charger disconnecting after the bots
    # closed) must not start work that outlives the service: it would run against a store
    # that is closed by then.
    tasks = Tasks()
    await tasks.close()
    ran = []

    async def late() -> None:
        ran.append(True)

    task = tasks.spawn(late(), "late")
    await asyncio.sleep(0.01)
    assert task.cancelled() and ran == []
