"""The garbage collector's pauses, kept short while thousands of chargers stay connected.

CPython's full collection walks every object it tracks, and each connected charger is ~120 of
them (its websocket, protocol, tasks, handlers): with 10,000 chargers one full collection
stopped the server for 0.4-1 s, whenever the interpreter's own rule (long-lived objects grown
by a quarter, counted by promotions, so steady traffic triggers it too) came round.

`GcKeeper` moves the long-lived objects out of the collector's way (`gc.freeze`): what
start-up built, then, once a second, what survived since, when that is many (a fleet
connecting). A full collection then walks only what is young, so it stays short. Frozen
objects are still freed by reference counting; only a frozen *cycle* that becomes garbage
stays (a closed connection's websocket objects reference each other). So when the heap has
grown by half since the keeper last collected all of it, it thaws, collects everything once
(as long as the interpreter's own full collection) and freezes the survivors again.
Growth is the heap's: the interpreter's allocated memory blocks (`sys.getallocatedblocks`,
< 1 ms at 10,000 chargers), which frozen garbage keeps and freed objects give back. A fleet
connecting or connections replaced make it grow, steady traffic does not, so under a steady
load no long pause comes. (Counting the frozen set itself walks all of it: 100-600 ms at
10,000 chargers. The objects frozen each second under load, ping timers and calls in flight
that die soon after, were once counted as growth instead, and that count ran every few
seconds: OCPP 2.0.1's nominal p99 of 730 ms, docs/performance.md.) The frozen garbage stays
below half the heap (the interpreter's own rule allows a quarter of the long-lived objects,
but a thaw also walks the ~140,000 objects start-up built, so each one costs more than its
growth). Measured in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between looks
# Young tracked objects worth freezing: a full collection of this many takes a few ms here.
FREEZE_AT = 10_000
GROWTH = 0.5  # heap grown by this share since the last thaw: thaw and collect it all


class GcKeeper:
    """Freezes survivors so collections stay short; thaws when frozen garbage may pile up."""

    def __init__(self, freeze_at: int = FREEZE_AT, growth: float = GROWTH) -> None:
        self._freeze_at = freeze_at
        self._growth = growth
        self._thawed_at = 0  # the heap's allocated blocks after the last full collection
        self.thaws = 0

    def start_up(self) -> None:
        """Collect once and freeze what start-up built (it lives as long as the process)."""
        self._thaw()

    def step(self) -> None:
        """Freeze the young objects when they are many; thaw when the heap grew by half."""
        if len(gc.get_objects()) < self._freeze_at:  # the young ones only: cheap
            return
        gc.collect()  # the garbage among them goes now, not into the frozen set
        if len(gc.get_objects()) < self._freeze_at:
            return
        gc.freeze()
        if sys.getallocatedblocks() > self._thawed_at * (1 + self._growth):
            started = time.perf_counter()
            self._thaw()
            log.debug("garbage collector: thawed and collected all in %.0f ms, %d blocks",
                      (time.perf_counter() - started) * 1000, self._thawed_at)

    def _thaw(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._thawed_at = sys.getallocatedblocks()
        self.thaws += 1

    async def run(self, interval: float = INTERVAL) -> None:
        """`step` every `interval` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.step()


@asynccontextmanager
async def short_gc_pauses(interval: float = INTERVAL) -> AsyncIterator[GcKeeper]:
    """A `GcKeeper` for the server's lifetime: start-up frozen now, then a step per interval."""
    keeper = GcKeeper()
    keeper.start_up()
    task = asyncio.create_task(keeper.run(interval), name="gc-keeper")
    try:
        yield keeper
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
