"""Messages waiting to go out on one websocket, written by one sender task.

Answers to the client's own messages (OK, EOSE, stored events, …) are always queued, and the
connection stops reading while the backlog is high (`wait_room`), so a client that does not
read its answers is slowed down by TCP itself. Live events for subscriptions are queued
without waiting, so one slow reader never holds up the others; if its backlog passes
`max_pending`, `push_live` fails and the connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

_HIGH_WATER = 1000


class SendQueue:
    """A queue of JSON text frames for one connection."""

    def __init__(self, ws: ServerConnection, max_pending: int) -> None:
        self._ws = ws
        self._max_pending = max_pending
        self._high_water = max(1, min(_HIGH_WATER, max_pending // 2))
        self._items: deque[str] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False

    def push(self, message: str) -> None:
        """Queue an answer to the client."""
        if not self.closed:
            self._items.append(message)
            self._ready.set()

    def push_live(self, message: str) -> bool:
        """Queue a live event; False when the backlog is full (the reader is too slow)."""
        if len(self._items) >= self._max_pending:
            return False
        self.push(message)
        return True

    async def wait_room(self) -> None:
        """Until the backlog is below the high-water mark (or the connection is gone)."""
        while len(self._items) >= self._high_water and not self.closed:
            self._room.clear()
            await self._room.wait()

    async def run(self) -> None:
        """Send until the connection closes."""
        try:
            while True:
                if not self._items:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                message = self._items.popleft()
                if len(self._items) <= self._high_water // 2:
                    self._room.set()
                await self._ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._room.set()
