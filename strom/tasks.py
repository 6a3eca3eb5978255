"""Background tasks a service owns: named, kept until done, cancelled together on close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class Tasks:
    """The tasks of one service (a set holds them: the loop keeps only weak references)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        """Run `coro` as a task of this service; once the service closed, the task is
        cancelled before it starts (an event arriving during shutdown must not start work
        that outlives the service and meets its closed store)."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        if self._closed:
            task.cancel()
            return task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel every task and wait until all have ended; later spawns never run."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
