"""Every message the charge point sends, in order, with OCPP 1.6's offline rules.

Transaction-related messages (StartTransaction, StopTransaction, periodic MeterValues) are
*persistent*: they wait in the queue while the charge point is offline and go out, in the order
they were made, once the next BootNotification is accepted. Other messages are *transient*:
dropped while offline, because the boot sequence re-sends the current state anyway.

A message leaves the queue only after its answer arrived, so a connection lost mid-call sends
it again after reconnecting (at least once, as OCPP expects of transaction messages).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ocpp.exceptions import OCPPError

log = logging.getLogger(__name__)

Build = Callable[[], Any | None]


class Offline(ConnectionError):
    """The message was not sent: the charge point is not connected and booted."""


class Caller(Protocol):
    async def call(self, payload: Any, suppress: bool = True) -> Any: ...


@dataclass
class _Item:
    # Built at send time, so a queued StopTransaction can carry the transactionId that the
    # StartTransaction ahead of it in the queue receives.
    build: Build
    persistent: bool
    on_result: Callable[[Any], None] | None
    on_failed: Callable[[], None] | None
    future: asyncio.Future[Any] | None
    attempts: int = 0


class CallQueue:
    """Ordered queue of outgoing calls; `run(link)` sends them while a connection is booted."""

    def __init__(self, *, attempts: Callable[[], float], retry_interval: Callable[[], float],
                 on_dropped: Callable[[str], None]) -> None:
        self._items: deque[_Item] = deque()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._online = False
        self._attempts = attempts
        self._retry_interval = retry_interval
        self._on_dropped = on_dropped

    @property
    def pending(self) -> int:
        """Messages waiting to be sent (persistent ones survive a disconnect)."""
        return len(self._items)

    def put(self, build: Build, *, persistent: bool,
            on_result: Callable[[Any], None] | None = None,
            on_failed: Callable[[], None] | None = None) -> None:
        """Queue a message; `on_result` runs before the next message is built."""
        if persistent or self._online:
            self._append(_Item(build, persistent, on_result, on_failed, None))

    async def request(self, build: Build) -> Any:
        """Send a transient message and return its answer; `Offline` when not connected."""
        if not self._online:
            raise Offline("not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._append(_Item(build, False, None, None, future))
        return await future

    async def drained(self, seconds: float) -> bool:
        """Wait up to `seconds` until everything queued was sent; False if it was not."""
        try:
            await asyncio.wait_for(self._empty.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def go_online(self) -> None:
        """The connection is booted: transient messages are accepted again."""
        self._online = True

    def go_offline(self) -> None:
        """The connection is gone: keep persistent messages, drop the rest."""
        self._online = False
        kept: deque[_Item] = deque()
        for item in self._items:
            if item.persistent:
                kept.append(item)
            elif item.future is not None and not item.future.done():
                item.future.set_exception(Offline("connection lost"))
        self._items = kept
        self._sync_events()

    async def run(self, link: Caller) -> None:
        """Send queued messages over `link` until cancelled (the connection ends)."""
        while True:
            await self._ready.wait()
            item = self._items[0]
            payload = item.build()
            if payload is None:
                self._pop()
                continue
            try:
                result = await link.call(payload, suppress=False)
            except OCPPError as exc:
                await self._failed(item, payload, f"{type(payload).__name__}: {exc.code}")
                continue
            except TimeoutError:
                # No answer: for a transaction message the central system may have missed it.
                await self._failed(item, payload, f"{type(payload).__name__}: no answer")
                continue
            self._pop()
            if item.on_result is not None:
                item.on_result(result)
            if item.future is not None and not item.future.done():
                item.future.set_result(result)

    async def _failed(self, item: _Item, payload: Any, why: str) -> None:
        item.attempts += 1
        if item.persistent and item.attempts < self._attempts():
            log.info("%s, retry %d", why, item.attempts)
            await asyncio.sleep(self._retry_interval() * item.attempts)
            return
        self._pop()
        self._on_dropped(why)
        if item.on_failed is not None:
            item.on_failed()
        if item.future is not None and not item.future.done():
            item.future.set_exception(Offline(why))

    def _append(self, item: _Item) -> None:
        self._items.append(item)
        self._sync_events()

    def _pop(self) -> None:
        self._items.popleft()
        self._sync_events()

    def _sync_events(self) -> None:
        if self._items:
            self._ready.set()
            self._empty.clear()
        else:
            self._ready.clear()
            self._empty.set()
