"""Many simulated charge points in one process, started a few at a time.

A thousand chargers connecting in the same millisecond is not what a central system sees in
the field (and it would measure the listen backlog, not the server), so they are started
`stagger` seconds apart; their reconnect back-off is jittered for the same reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from strom.simulator.charge_point import SimulatedChargePoint


@dataclass(frozen=True)
class FleetCounts:
    """How the fleet is doing, for one progress line."""

    total: int
    connected: int
    booted: int
    charging: int
    queued: int


def fleet_ids(cp_id: str, count: int) -> list[str]:
    """`cp_id` itself for one charger, else `cp_id-1` … `cp_id-N`."""
    if count < 1:
        raise ValueError("count must be at least 1")
    return [cp_id] if count == 1 else [f"{cp_id}-{n}" for n in range(1, count + 1)]


class Fleet:
    """`count` SimulatedChargePoints sharing one URL and the same options."""

    def __init__(self, cp_id: str, count: int, url: str, *, stagger: float = 0.02,
                 seed: int | None = None, **options: Any) -> None:
        self._stagger = stagger
        self.chargers = [
            SimulatedChargePoint(sim_id, url, seed=None if seed is None else seed + n, **options)
            for n, sim_id in enumerate(fleet_ids(cp_id, count))]
        self._starter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start them in the background, `stagger` seconds apart."""
        if self._starter is None:
            self._starter = asyncio.create_task(self._start_all(), name="fleet start")

    async def close(self, **close_options: Any) -> None:
        """Close every charger (concurrently); `close_options` go to each `close()`."""
        if self._starter is not None:
            self._starter.cancel()
            await asyncio.gather(self._starter, return_exceptions=True)
            self._starter = None
        await asyncio.gather(*(sim.close(**close_options) for sim in self.chargers))

    def counts(self) -> FleetCounts:
        return FleetCounts(
            total=len(self.chargers),
            connected=sum(sim.connected for sim in self.chargers),
            booted=sum(sim.booted for sim in self.chargers),
            charging=sum(conn.tx is not None for sim in self.chargers
                         for conn in sim.charging.connectors.values()),
            queued=sum(sim.outbox.pending for sim in self.chargers))

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _start_all(self) -> None:
        for n, sim in enumerate(self.chargers):
            if n:
                await asyncio.sleep(self._stagger)
            await sim.start()
